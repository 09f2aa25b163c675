/* The parts of a layer's time for ICH_PROFILE=1 (see profile.h). */
#include <string.h>
#include <time.h>

#include "core/profile.h"

static _Thread_local ich_profile_sink *g_sink;

ich_profile_part ich_profile_part_of(const char *what)
{
    if (!what)
        return ICH_PROFILE_FORWARD;
    if (strstr(what, "reorder"))
        return strstr(what, "weight") ? ICH_PROFILE_WEIGHT_REORDER
                                      : ICH_PROFILE_ACTIVATION_REORDER;
    if (strstr(what, "backward data"))
        return ICH_PROFILE_BACKWARD_DATA;
    if (strstr(what, "backward weights") || strstr(what, "backward bias"))
        return ICH_PROFILE_BACKWARD_WEIGHTS;
    if (strstr(what, "backward"))
        return ICH_PROFILE_BACKWARD;
    return ICH_PROFILE_FORWARD;
}

void ich_profile_set_sink(ich_profile_sink *sink)
{
    g_sink = sink;
}

ich_profile_sink *ich_profile_sink_now(void)
{
    return g_sink;
}

void ich_profile_record(const char *what, double seconds)
{
    if (!g_sink)
        return;
    ich_profile_part part = ich_profile_part_of(what);
    g_sink->seconds[part] += seconds;
    g_sink->calls[part]++;
}

double ich_profile_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
