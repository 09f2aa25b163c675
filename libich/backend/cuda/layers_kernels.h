/* Internal to the CUDA plugin: the launchers of the memory-bound layers'
 * kernels (layers_kernels.cu), called from layers.c, pool.c and
 * batchnorm.c. Each queues its work on ich_cuda_stream() and returns at
 * once; the caller checks the launch with CHECK_LAUNCH. All counts and
 * offsets are 64-bit: an activation may hold more than 2^31 values. */
#ifndef ICH_INTERNAL_BACKEND_CUDA_LAYERS_KERNELS_H
#define ICH_INTERNAL_BACKEND_CUDA_LAYERS_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise and copies ------------------------------------------------ */

/* y = x > 0 ? x : 0 (y may be x) */
void ich_cuda_k_relu_forward(float *y, const float *x, int64_t count);
/* dx = out > 0 ? g : 0 (dx may be g) */
void ich_cuda_k_relu_backward(float *dx, const float *out, const float *g, int64_t count);
/* y = a + b (y may be a or b) */
void ich_cuda_k_add(float *y, const float *a, const float *b, int64_t count);
/* Dropout: y[i] = u(i) < p ? 0 : x[i] * scale, u from (seed, step, sample
 * i / per_sample, draw i % per_sample) as above (y may be x). */
void ich_cuda_k_dropout(float *y, const float *x, int64_t count, int64_t per_sample, uint64_t seed,
                        uint64_t step, double p, float scale);
/* Flatten: y[n][c * hw + p] = x[n][p * c + q] for sample n, position p,
 * channel q (NHWC to PyTorch's C*H*W), and back. */
void ich_cuda_k_flatten_forward(float *y, const float *x, int32_t n, int64_t hw, int32_t c);
void ich_cuda_k_flatten_backward(float *dx, const float *g, int32_t n, int64_t hw, int32_t c);
/* Channel concatenation of rows of c0 and c1 values into rows of c0 + c1. */
void ich_cuda_k_concat_forward(float *y, const float *a, const float *b, int64_t rows, int32_t c0,
                               int32_t c1);
/* dx[r][j] = g[r][offset + j] for j < part, rows of g have c values. */
void ich_cuda_k_concat_backward(float *dx, const float *g, int64_t rows, int32_t c, int32_t offset,
                                int32_t part);

/* ---- pooling ----------------------------------------------------------------- */

/* NHWC input n x h x w x c, output n x oh x ow x c, window kh x kw, stride
 * sh x sw, padding ph x pw at the top / left (the bottom / right padding is
 * whatever the floored output size uses). */
typedef struct ich_cuda_pool_geometry {
    int32_t n, h, w, c;
    int32_t oh, ow;
    int32_t kh, kw, sh, sw, ph, pw;
} ich_cuda_pool_geometry;

/* Max over the window's input positions (padding takes no part), the first
 * maximum in scan order (rows, then columns) winning ties; argmax (NULL:
 * not kept) receives its index in the window, ky * kw + kx. */
void ich_cuda_k_maxpool_forward(float *y, int32_t *argmax, const float *x,
                                ich_cuda_pool_geometry g);
/* dx[i] = sum, over the outputs whose argmax is input i, of their gradient
 * (in output order): a gather, one thread per input value, deterministic. */
void ich_cuda_k_maxpool_backward(float *dx, const float *gy, const int32_t *argmax,
                                 ich_cuda_pool_geometry g);
/* Average with the padding counted: the window's sum / (kh * kw). */
void ich_cuda_k_avgpool_forward(float *y, const float *x, ich_cuda_pool_geometry g);
/* dx[i] = sum over the windows holding i of gy / (kh * kw), in output order. */
void ich_cuda_k_avgpool_backward(float *dx, const float *gy, ich_cuda_pool_geometry g);
/* Global average: y[n][q] = (sum over p of x[n][p][q]) / hw, p in order. */
void ich_cuda_k_gap_forward(float *y, const float *x, int32_t n, int64_t hw, int32_t c);
/* dx[n][p][q] = g[n][q] / hw */
void ich_cuda_k_gap_backward(float *dx, const float *g, int32_t n, int64_t hw, int32_t c);

/* ---- batch normalisation (per channel of rows x c NHWC values) --------------- */

/* Per-channel sums run in two passes: `chunks` blocks of rows each write a
 * partial sum per channel (double) into partial[chunks][c] (and a second
 * array partial[chunks][c] after it for two sums), then one thread per
 * channel adds the chunks in order: deterministic, no atomics. */
static inline int32_t ich_cuda_bn_chunks(int64_t rows, int32_t c)
{
    int64_t column_blocks = ((int64_t)c + 31) / 32;
    int64_t want = 2048 / column_blocks; /* about 2048 blocks in all */
    if (want < 1)
        want = 1;
    int64_t per_chunk = (rows + want - 1) / want;
    if (per_chunk < 64)
        per_chunk = 64;
    int64_t chunks = (rows + per_chunk - 1) / per_chunk;
    return (int32_t)(chunks > 0 ? chunks : 1);
}

/* What the batch-norm reduction sums per channel. */
typedef enum ich_cuda_bn_sum {
    ICH_CUDA_BN_MEAN = 0,     /* out0 = mean of x */
    ICH_CUDA_BN_VARIANCE = 1, /* out0 = mean of (x - mean)^2 (biased variance) */
    ICH_CUDA_BN_GRADIENT = 2  /* out0 = d weight = sum((x - mean) dy) / sqrt(var + eps),
                                 out1 = d bias = sum(dy) */
} ich_cuda_bn_sum;

/* The per-channel statistic `what` of x (and dy) into out0 (and out1),
 * partial holding 2 * chunks * c doubles, chunks = ich_cuda_bn_chunks(rows,
 * c). mean is read for VARIANCE and GRADIENT, var for GRADIENT. */
void ich_cuda_k_bn_reduce(ich_cuda_bn_sum what, float *out0, float *out1, double *partial,
                          int32_t chunks, const float *x, const float *dy, const float *mean,
                          const float *var, float eps, int64_t rows, int32_t c);
/* y = weight / sqrt(var + eps) * (x - mean) + bias (oneDNN's formula). */
void ich_cuda_k_bn_forward(float *y, const float *x, const float *mean, const float *var,
                           const float *weight, const float *bias, float eps, int64_t rows,
                           int32_t c);
/* dx with batch statistics (training = 1):
 *   weight / sqrt(var + eps) * (dy - dbias / M - (x - mean) dweight / sqrt(var + eps) / M),
 * M = rows; with fixed statistics (training = 0): weight / sqrt(var + eps) * dy. */
void ich_cuda_k_bn_backward(float *dx, const float *x, const float *dy, const float *mean,
                            const float *var, const float *weight, const float *dweight,
                            const float *dbias, float eps, int64_t rows, int32_t c,
                            int training);

#ifdef __cplusplus
}
#endif

#endif
