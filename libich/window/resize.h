/* Internal: resizing a float32 image row by row. */
#ifndef ICH_INTERNAL_RESIZE_H
#define ICH_INTERNAL_RESIZE_H

#include "ich/window.h"

/* Fills `dst` (in_cols floats) with input row `row`. */
typedef void (*ich_fill_row_fn)(void *ctx, int32_t row, float *dst);

/* Receives output row `row` (out_cols floats, valid during the call). */
typedef void (*ich_take_row_fn)(void *ctx, int32_t row, const float *values);

/* Resize an in_rows x in_cols image to out_rows x out_cols with `method`
 * (see ich/window.h for the exact definitions), asking `fill` for input
 * rows as they are needed (each at most once, in rising order) and giving
 * output rows to `take` in order. Only a few rows are ever held, so the
 * input never needs to exist as a whole. Returns ICH_ERR_NO_MEMORY or
 * ICH_OK. */
ich_status ich_resize_rows(int32_t in_rows, int32_t in_cols, int32_t out_rows, int32_t out_cols,
                           ich_resize_method method, ich_fill_row_fn fill, ich_take_row_fn take,
                           void *ctx);

/* Resize an 8-bit image (in_rows x in_cols, row-major) into `out`
 * (out_rows x out_cols) as PIL resizes an "L" image: the horizontal pass
 * first, rounded to 8 bits, then the vertical pass, rounded, in PIL's
 * fixed point. With ICH_RESIZE_ANTIALIAS it equals Pillow's
 * Image.resize(BILINEAR) bit for bit. Returns ICH_ERR_NO_MEMORY or ICH_OK. */
ich_status ich_resize_u8(const uint8_t *in, int32_t in_rows, int32_t in_cols, uint8_t *out,
                         int32_t out_rows, int32_t out_cols, ich_resize_method method);

#endif
