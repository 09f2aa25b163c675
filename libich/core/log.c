/* The process-wide log callback. Silent unless the application installs one. */
#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

static ich_log_fn log_fn;
static void *log_user;
static ich_log_level log_min = ICH_LOG_INFO;
static _Thread_local int log_muted;

void ich_log_mute_thread(int muted)
{
    log_muted = muted;
}

void ich_set_log_callback(ich_log_fn fn, void *user, ich_log_level min_level)
{
    log_fn = fn;
    log_user = user;
    log_min = min_level;
}

void ich_log(ich_log_level level, const char *fmt, ...)
{
    ich_log_fn fn = log_fn;
    if (!fn || level < log_min || log_muted)
        return;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    fn(level, message, log_user);
}
