/* Internal: resizing one float32 plane. */
#ifndef ICH_INTERNAL_RESIZE_H
#define ICH_INTERNAL_RESIZE_H

#include "ich/window.h"

/* Resize `in` (in_rows x in_cols) into `out` (out_rows x out_cols) with
 * `method` (see ich/window.h for the exact definitions). `scratch` holds at
 * least ich_resize_scratch(...) floats. Returns ICH_ERR_NO_MEMORY or ICH_OK. */
ich_status ich_resize_plane(const float *in, int32_t in_rows, int32_t in_cols, float *out,
                            int32_t out_rows, int32_t out_cols, ich_resize_method method,
                            float *scratch);

/* Floats of scratch space ich_resize_plane() needs for these sizes. */
size_t ich_resize_scratch(int32_t in_rows, int32_t in_cols, int32_t out_rows, int32_t out_cols);

#endif
