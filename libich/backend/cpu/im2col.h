/* Internal: the weight gradient of convolutions with one input channel as
 * matrix products of unfolded input rows and the output gradient (im2col
 * and OpenBLAS; conv.c decides when, see im2col.c).
 *
 * dW[o][t] = sum over the output positions p of dy[p][o] * col[p][t],
 * col[p][t] the input value under tap t at p (0 in the padding), and the
 * bias gradient db[o] = sum dy[p][o] as a column of ones. Any stride,
 * padding and dilation; ungrouped; NHWC activations. */
#ifndef ICH_INTERNAL_CPU_IM2COL_H
#define ICH_INTERNAL_CPU_IM2COL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/layer.h"

typedef struct ich_cpu_im2col {
    float *work; /* per thread: a block of unfolded rows and its sums */
    size_t work_size;
    int64_t runs; /* calls so far (tests count them) */
} ich_cpu_im2col;

/* Whether the layer's weight gradient goes this way by default: one input
 * channel (the tutorial's conv1: oneDNN 2.6's kernels ran it at 8-10% of
 * the FMA peak on AVX2, 15-20% on AVX-512, 3-4x slower than this) and
 * few enough taps and outputs that each product stays under OpenBLAS's
 * threading threshold with a useful depth. */
int ich_cpu_im2col_pays(const ich_layer *layer);

/* Whether the geometry is one this computes (no groups, and the product
 * limit above): the tests force it on more channels. */
int ich_cpu_im2col_fits(const ich_layer *layer);

/* The weight gradient (OIHW, params[0]'s shape) into dw and, when db is
 * not NULL, the bias gradient into db, overwritten, for the layer's
 * batch: x and dy NHWC of the layer's input and output shapes. On the
 * compute threads. ICH_ERR_NO_MEMORY when its buffers cannot grow. */
ich_status ich_cpu_im2col_weights(ich_layer *layer, ich_cpu_im2col *state, const float *x,
                                  const float *dy, float *dw, float *db);

void ich_cpu_im2col_free(ich_cpu_im2col *state);

#endif
