/* Internal: the window recipe's fields, for the code that reads or copies
 * a recipe (the dataset handle normalises PNG samples with them). */
#ifndef ICH_INTERNAL_WINDOW_H
#define ICH_INTERNAL_WINDOW_H

#include "ich/window.h"

struct ich_window {
    int count;
    float center[ICH_WINDOW_MAX_CHANNELS];
    float width[ICH_WINDOW_MAX_CHANNELS];
    ich_window_mode mode;
    int32_t out_rows, out_cols; /* 0, 0: keep the input size */
    ich_resize_method method;
    int quantize;      /* the uint8 step before the resize */
    int32_t neighbors; /* recorded only: slices a dataset stacks on each side */
    int norm_count; /* 0: none, 1: the same for every channel, else per channel */
    float mean[ICH_WINDOW_MAX_CHANNELS];
    float std[ICH_WINDOW_MAX_CHANNELS];
};

/* Every setting of a recipe, by value. */
typedef struct ich_window ich_window_settings;

/* Copy the settings of `window` into *out. Errors: ICH_ERR_INVALID_ARGUMENT. */
ich_status ich_window_read_settings(const ich_window *window, ich_window_settings *out);

/* A new recipe with the same settings as `window` (free with
 * ich_window_free()). Errors: ICH_ERR_INVALID_ARGUMENT, ICH_ERR_NO_MEMORY. */
ich_status ich_window_copy(const ich_window *window, ich_window **out);

/* Comma-separated finite floats (at most ICH_WINDOW_MAX_CHANNELS) into
 * out[], as recipe texts and the older checkpoint keys write them: their
 * count, 0 for "none", -1 when malformed. */
int ich_window_parse_floats(const char *text, float *out);

#endif
