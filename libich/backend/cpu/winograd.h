/* Internal: the CPU convolutions' Winograd F(4x4,5x5) forward, for
 * inference (conv.c decides when; see there and <ich/backend.h>,
 * ICH_CPU_WINOGRAD).
 *
 * A 5x5, stride-1, undilated, ungrouped convolution on NHWC activations,
 * with its bias and fused ReLU, in 8x8 input tiles that give 4x4 outputs
 * each: 64 products per tile and channel pair instead of 400 (6.25x fewer
 * multiplications), done as 64 matrix products (tiles x IN by IN x OUT)
 * per block of tiles through OpenBLAS. Results differ from the direct
 * convolution's by the float32 rounding of the transforms (about 5e-6
 * relative on the tutorial's layers, 1e-6 for the direct kernels). */
#ifndef ICH_INTERNAL_CPU_WINOGRAD_H
#define ICH_INTERNAL_CPU_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

#include "backend/layer.h"

typedef struct ich_cpu_winograd {
    float *u; /* the transformed weights, [64][IN][OUT] */
    size_t u_size;
    int u_valid;
    uint64_t u_version; /* params[0].version u was made from */
    float *work;        /* per thread: one block's transformed tiles */
    size_t work_size;
    int64_t runs;       /* forward calls so far (tests count them) */
} ich_cpu_winograd;

/* Whether the layer's geometry is one this forward computes: a 5x5
 * kernel, stride 1, no dilation, one group. */
int ich_cpu_winograd_fits(const ich_layer *layer);

/* Whether it is worth it (ICH_CPU_WINOGRAD=auto): it fits, and has at
 * least 16 input and 16 output channels (fewer leave the matrix products
 * too thin: the tutorial's conv1 has 1) and at most 16384 channel pairs
 * (IN x OUT), below which a block of 16 tiles keeps each product under
 * OpenBLAS's threading threshold (one product per thread, none nested). */
int ich_cpu_winograd_pays(const ich_layer *layer);

/* y = conv(x) (+ bias, ReLU when the layer fuses one), x and y NHWC of
 * the layer's shapes, on the compute threads. The weights are transformed
 * again when params[0].version changed. ICH_ERR_NO_MEMORY when its
 * buffers cannot grow. */
ich_status ich_cpu_winograd_forward(ich_layer *layer, ich_cpu_winograd *w, const float *x,
                                    float *y);

void ich_cpu_winograd_free(ich_cpu_winograd *w);

/* Which copy of the transforms runs: "avx512", "avx2" or "baseline",
 * chosen by oneDNN's effective ISA (ONEDNN_MAX_CPU_ISA limits it). */
const char *ich_cpu_winograd_isa(void);

/* The Winograd forwards a CPU convolution layer has run (conv.c; tests
 * check that the path they mean to test ran). */
int64_t ich_cpu_conv_winograd_runs(const ich_layer *layer);

#endif
