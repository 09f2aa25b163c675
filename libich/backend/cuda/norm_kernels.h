/* Internal to the CUDA plugin: the launchers of the layer normalisation,
 * layer scale and drop path kernels (norm_kernels.cu), called from norm.c.
 * Each queues its work on ich_cuda_stream() and returns; the caller checks
 * the launch with CHECK_LAUNCH. Rows are the C innermost values of a
 * position (NHWC). Parameter-gradient sums are taken per chunk of
 * ICH_CUDA_NORM_CHUNK rows into partial[chunks][sums * c] (double), then
 * the chunks in order, one thread per channel: deterministic, no atomics,
 * the CPU backend's chunking (libich/backend/cpu/norm.c). */
#ifndef ICH_INTERNAL_BACKEND_CUDA_NORM_KERNELS_H
#define ICH_INTERNAL_BACKEND_CUDA_NORM_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ICH_CUDA_NORM_CHUNK 256

static inline int64_t ich_cuda_norm_chunks(int64_t rows)
{
    return (rows + ICH_CUDA_NORM_CHUNK - 1) / ICH_CUDA_NORM_CHUNK;
}

/* stats[2r], stats[2r + 1] = mean, 1 / sqrt(biased variance + eps) of row r
 * (double sums). */
void ich_cuda_k_ln_stats(float *stats, const float *x, int64_t rows, int32_t c, float eps);
/* y = (x - mean) * rstd * weight + bias */
void ich_cuda_k_ln_forward(float *y, const float *x, const float *stats, const float *weight,
                           const float *bias, int64_t rows, int32_t c);
/* Layer norm backward: grads[0..c) = d weight = sum(g xhat), grads[c..2c) =
 * d bias = sum(g); dx (NULL: not wanted) = rstd (g w - mean(g w) - xhat
 * mean(g w xhat)); rowsums holds 2 floats per row, partial 2c doubles per
 * chunk. */
void ich_cuda_k_ln_backward(float *dx, float *grads, float *rowsums, double *partial,
                            const float *x, const float *g, const float *stats,
                            const float *weight, int64_t rows, int32_t c);
/* y = x * gamma[channel] (y may be x) */
void ich_cuda_k_ls_forward(float *y, const float *x, const float *gamma, int64_t rows, int32_t c);
/* dgamma[0..c) = sum(g x); dx (NULL: not wanted) = g * gamma; partial c
 * doubles per chunk. */
void ich_cuda_k_ls_backward(float *dx, float *dgamma, double *partial, const float *x,
                            const float *g, const float *gamma, int64_t rows, int32_t c);
/* y = x * keep(n) * scale for sample n = i / per_sample, keep(n): the first
 * draw of the CPU's stream (seed, step, n) is >= p (y may be x). */
void ich_cuda_k_droppath(float *y, const float *x, int64_t count, int64_t per_sample,
                         uint64_t seed, uint64_t step, double p, float scale);

#ifdef __cplusplus
}
#endif

#endif
