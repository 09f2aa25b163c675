// The kernels of the CUDA plugin's layer normalisation, layer scale and
// drop path (issue 14; launchers declared in norm_kernels.h), with the
// formulas of libich/backend/cpu/norm.c: each row's statistics in double,
// parameter gradients summed per fixed chunk of rows, then the chunks in
// order. One thread per row or per (chunk, channel): simple and exact, not
// tuned.
#include <math.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/norm_kernels.h"
#include "core/rng.h"

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t count)
{
    int64_t blocks = (count + kThreads - 1) / kThreads;
    return (unsigned)(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

#define GRID_STRIDE(i, count)                                                                    \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (count);              \
         i += (int64_t)gridDim.x * blockDim.x)

__host__ __device__ inline void row_stats(const float *x, int32_t c, double eps, double *mean,
                                          double *rstd)
{
    double sum = 0.0;
    for (int32_t q = 0; q < c; q++)
        sum += x[q];
    const double m = sum / c;
    double var = 0.0;
    for (int32_t q = 0; q < c; q++) {
        const double d = x[q] - m;
        var += d * d;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(var / c + eps);
}

__global__ void ln_stats_kernel(float *stats, const float *x, int64_t rows, int32_t c, float eps)
{
    GRID_STRIDE(r, rows)
    {
        double mean, rstd;
        row_stats(x + r * c, c, eps, &mean, &rstd);
        stats[2 * r] = (float)mean;
        stats[2 * r + 1] = (float)rstd;
    }
}

__global__ void ln_forward_kernel(float *y, const float *x, const float *stats,
                                  const float *weight, const float *bias, int64_t count,
                                  int32_t c)
{
    GRID_STRIDE(i, count)
    {
        const int64_t r = i / c;
        const int32_t q = (int32_t)(i - r * c);
        y[i] = (float)(((double)x[i] - stats[2 * r]) * stats[2 * r + 1] * weight[q] + bias[q]);
    }
}

// rowsums[2r], [2r + 1] = mean(g w), mean(g w xhat) of row r
__global__ void ln_rowsums_kernel(float *rowsums, const float *x, const float *g,
                                  const float *stats, const float *weight, int64_t rows,
                                  int32_t c)
{
    GRID_STRIDE(r, rows)
    {
        const double mean = stats[2 * r], rstd = stats[2 * r + 1];
        double a = 0.0, b = 0.0;
        for (int32_t q = 0; q < c; q++) {
            const double gw = (double)g[r * c + q] * weight[q];
            a += gw;
            b += gw * ((x[r * c + q] - mean) * rstd);
        }
        rowsums[2 * r] = (float)(a / c);
        rowsums[2 * r + 1] = (float)(b / c);
    }
}

__global__ void ln_dx_kernel(float *dx, const float *x, const float *g, const float *stats,
                             const float *rowsums, const float *weight, int64_t count, int32_t c)
{
    GRID_STRIDE(i, count)
    {
        const int64_t r = i / c;
        const int32_t q = (int32_t)(i - r * c);
        const double rstd = stats[2 * r + 1];
        const double xhat = ((double)x[i] - stats[2 * r]) * rstd;
        dx[i] = (float)(rstd * ((double)g[i] * weight[q] - rowsums[2 * r] -
                                xhat * rowsums[2 * r + 1]));
    }
}

// partial[j][q] (and [j][c + q] for layer norm) over the rows of chunk j:
// layer norm (stats != NULL): sum(g xhat), sum(g); layer scale: sum(g x).
__global__ void chunk_sums_kernel(double *partial, const float *x, const float *g,
                                  const float *stats, int64_t rows, int32_t c, int64_t chunks)
{
    const int sums = stats ? 2 : 1;
    GRID_STRIDE(t, chunks * c)
    {
        const int64_t j = t / c;
        const int32_t q = (int32_t)(t - j * c);
        const int64_t end = (j + 1) * ICH_CUDA_NORM_CHUNK < rows ? (j + 1) * ICH_CUDA_NORM_CHUNK
                                                                 : rows;
        double s0 = 0.0, s1 = 0.0;
        for (int64_t r = j * ICH_CUDA_NORM_CHUNK; r < end; r++) {
            const double gv = g[r * c + q];
            if (stats) {
                s0 += gv * (((double)x[r * c + q] - stats[2 * r]) * stats[2 * r + 1]);
                s1 += gv;
            } else {
                s0 += gv * x[r * c + q];
            }
        }
        partial[j * sums * c + q] = s0;
        if (stats)
            partial[j * sums * c + c + q] = s1;
    }
}

// out[k] = sum over chunks j, in order, of partial[j][k], k < width
__global__ void chunk_finish_kernel(float *out, const double *partial, int64_t chunks,
                                    int64_t width)
{
    GRID_STRIDE(k, width)
    {
        double sum = 0.0;
        for (int64_t j = 0; j < chunks; j++)
            sum += partial[j * width + k];
        out[k] = (float)sum;
    }
}

__global__ void ls_forward_kernel(float *y, const float *x, const float *gamma, int64_t count,
                                  int32_t c)
{
    GRID_STRIDE(i, count) y[i] = x[i] * gamma[i % c];
}

__host__ __device__ inline float droppath_value(const float *x, int64_t i, int64_t per_sample,
                                                uint64_t seed, uint64_t step, double p,
                                                float scale)
{
    const int64_t n = i / per_sample;
    ich_rng rng = ich_rng_init(seed, step, (uint64_t)n);
    return ich_rng_uniform(&rng) < p ? 0.0f : x[i] * scale;
}

__global__ void droppath_kernel(float *y, const float *x, int64_t count, int64_t per_sample,
                                uint64_t seed, uint64_t step, double p, float scale)
{
    GRID_STRIDE(i, count) y[i] = droppath_value(x, i, per_sample, seed, step, p, scale);
}

} // namespace

extern "C" {

void ich_cuda_k_ln_stats(float *stats, const float *x, int64_t rows, int32_t c, float eps)
{
    ICH_CUDA_LAUNCH(ln_stats_kernel, blocks_for(rows), kThreads)(stats, x, rows, c, eps);
}

void ich_cuda_k_ln_forward(float *y, const float *x, const float *stats, const float *weight,
                           const float *bias, int64_t rows, int32_t c)
{
    int64_t count = rows * c;
    ICH_CUDA_LAUNCH(ln_forward_kernel, blocks_for(count), kThreads)(y, x, stats, weight, bias,
                                                                    count, c);
}

void ich_cuda_k_ln_backward(float *dx, float *grads, float *rowsums, double *partial,
                            const float *x, const float *g, const float *stats,
                            const float *weight, int64_t rows, int32_t c)
{
    int64_t chunks = ich_cuda_norm_chunks(rows), count = rows * c;
    ICH_CUDA_LAUNCH(chunk_sums_kernel, blocks_for(chunks * c), kThreads)(partial, x, g, stats,
                                                                         rows, c, chunks);
    ICH_CUDA_LAUNCH(chunk_finish_kernel, blocks_for(2 * (int64_t)c), kThreads)(
        grads, partial, chunks, 2 * (int64_t)c);
    if (!dx)
        return;
    ICH_CUDA_LAUNCH(ln_rowsums_kernel, blocks_for(rows), kThreads)(rowsums, x, g, stats, weight,
                                                                   rows, c);
    ICH_CUDA_LAUNCH(ln_dx_kernel, blocks_for(count), kThreads)(dx, x, g, stats, rowsums, weight,
                                                               count, c);
}

void ich_cuda_k_ls_forward(float *y, const float *x, const float *gamma, int64_t rows, int32_t c)
{
    int64_t count = rows * c;
    ICH_CUDA_LAUNCH(ls_forward_kernel, blocks_for(count), kThreads)(y, x, gamma, count, c);
}

void ich_cuda_k_ls_backward(float *dx, float *dgamma, double *partial, const float *x,
                            const float *g, const float *gamma, int64_t rows, int32_t c)
{
    int64_t chunks = ich_cuda_norm_chunks(rows);
    ICH_CUDA_LAUNCH(chunk_sums_kernel, blocks_for(chunks * c), kThreads)(partial, x, g, nullptr,
                                                                         rows, c, chunks);
    ICH_CUDA_LAUNCH(chunk_finish_kernel, blocks_for(c), kThreads)(dgamma, partial, chunks,
                                                                  (int64_t)c);
    if (dx)
        ICH_CUDA_LAUNCH(ls_forward_kernel, blocks_for(rows * c), kThreads)(dx, g, gamma,
                                                                           rows * c, c);
}

void ich_cuda_k_droppath(float *y, const float *x, int64_t count, int64_t per_sample,
                         uint64_t seed, uint64_t step, double p, float scale)
{
    ICH_CUDA_LAUNCH(droppath_kernel, blocks_for(count), kThreads)(y, x, count, per_sample, seed,
                                                                  step, p, scale);
}

} // extern "C"
