/* Internal: the parts of a layer's time that ICH_PROFILE=1 shows (issue 16).
 *
 * The model (libich/nn/model.c) times each layer's forward and backward as
 * a whole; what happens inside a call (a convolution's backward is an
 * input-gradient and a weight-gradient primitive, and maybe reorders) only
 * the backend sees. So the model points the calling thread at a sink for
 * the duration of one layer call, and the backend's one place that runs
 * primitives (ich_cpu_execute) adds each primitive's time to the part its
 * label names. Labels are the `what` strings the layers already pass:
 * "... backward data", "... backward weights" / "... backward bias",
 * "... reorder" (with "weight" in it: a weight reorder, else an activation
 * reorder), any other "... backward", else forward. A layer that adds a
 * primitive with such a label is profiled without further code. */
#ifndef ICH_INTERNAL_PROFILE_H
#define ICH_INTERNAL_PROFILE_H

#include <stdint.h>

typedef enum ich_profile_part {
    ICH_PROFILE_FORWARD,
    ICH_PROFILE_BACKWARD,         /* one primitive for all gradients (batch norm) */
    ICH_PROFILE_BACKWARD_DATA,    /* the input's gradient */
    ICH_PROFILE_BACKWARD_WEIGHTS, /* the parameters' gradients */
    ICH_PROFILE_WEIGHT_REORDER,
    ICH_PROFILE_ACTIVATION_REORDER,
    ICH_PROFILE_PARTS
} ich_profile_part;

typedef struct ich_profile_sink {
    double seconds[ICH_PROFILE_PARTS];
    int64_t calls[ICH_PROFILE_PARTS];
} ich_profile_sink;

/* The part a primitive's label names (see above). */
ich_profile_part ich_profile_part_of(const char *what);

/* The calling thread's sink (NULL: not profiling; the default). */
void ich_profile_set_sink(ich_profile_sink *sink);
ich_profile_sink *ich_profile_sink_now(void);

/* Add `seconds` of the primitive labelled `what` to the thread's sink. */
void ich_profile_record(const char *what, double seconds);

/* Monotonic seconds. */
double ich_profile_clock(void);

#endif
