/* Internal: reading a window recipe's settings, and copying a recipe.
 *
 * The public header has getters for the windows only; the dataset handle
 * also needs the output size, resize method, mode and normalisation (to
 * copy a recipe, and to normalise PNG samples the same way). */
#ifndef ICH_INTERNAL_WINDOW_H
#define ICH_INTERNAL_WINDOW_H

#include "ich/window.h"

/* Every setting of a recipe, by value. */
typedef struct ich_window_settings {
    int count;
    float center[ICH_WINDOW_MAX_CHANNELS];
    float width[ICH_WINDOW_MAX_CHANNELS];
    ich_window_mode mode;
    int32_t out_rows, out_cols; /* 0, 0: keep the input size */
    ich_resize_method method;
    int norm_count; /* 0: none, 1: the same for every channel, else per channel */
    float mean[ICH_WINDOW_MAX_CHANNELS];
    float std[ICH_WINDOW_MAX_CHANNELS];
} ich_window_settings;

/* Read the settings of `window` into *out. Errors: ICH_ERR_INVALID_ARGUMENT
 * (NULL), ICH_ERR_INTERNAL (the layout below window.c's changed). */
ich_status ich_window_read_settings(const ich_window *window, ich_window_settings *out);

/* A new recipe with the same settings as `window` (free with
 * ich_window_free()). Errors: those of ich_window_read_settings(),
 * ICH_ERR_NO_MEMORY. */
ich_status ich_window_copy(const ich_window *window, ich_window **out);

#endif
