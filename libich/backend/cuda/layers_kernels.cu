// The kernels of the CUDA plugin's memory-bound layers (ReLU, dropout,
// flatten, add, concat, max / average / global average pooling, batch
// norm) and their launchers (declared in layers_kernels.h). Each launcher
// queues on the plugin's stream and returns; callers check
// cudaPeekAtLastError (CHECK_LAUNCH).
//
// The value of one output element is computed by a __host__ __device__
// function, so the index arithmetic can be checked on a machine without a
// GPU against the CPU backend's loops. Every formula follows
// libich/backend/cpu/ (and oneDNN's reference kernels behind it), in the
// same order of float operations where the CPU's is fixed.
#include <math.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/layers_kernels.h"
#include "core/rng.h"

namespace {

constexpr int kThreads = 256;

// Enough blocks to fill the GPU with grid-stride loops, never more than
// the work needs.
unsigned blocks_for(int64_t count)
{
    int64_t blocks = (count + kThreads - 1) / kThreads;
    return (unsigned)(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

#define GRID_STRIDE(i, count)                                                                    \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (count);              \
         i += (int64_t)gridDim.x * blockDim.x)

// ---- per-element functions ------------------------------------------------------

__host__ __device__ inline float dropout_value(const float *x, int64_t i, int64_t per_sample,
                                               uint64_t seed, uint64_t step, double p,
                                               float scale)
{
    int64_t n = i / per_sample, j = i - n * per_sample;
    // The sample's stream, as the CPU draws it, advanced to value j.
    ich_rng rng = ich_rng_init(seed, step, (uint64_t)n);
    ich_rng_skip(&rng, (uint64_t)j);
    return ich_rng_uniform(&rng) < p ? 0.0f : x[i] * scale;
}

// Output i of flatten (sample-major C*H*W) from NHWC x.
__host__ __device__ inline float flatten_forward_value(const float *x, int64_t i, int64_t hw,
                                                       int32_t c)
{
    int64_t per_sample = hw * c;
    int64_t n = i / per_sample, j = i - n * per_sample; // j = q * hw + p
    int64_t q = j / hw, p = j - q * hw;
    return x[n * per_sample + p * c + q];
}

// Input gradient i (NHWC) from the flat gradient g.
__host__ __device__ inline float flatten_backward_value(const float *g, int64_t i, int64_t hw,
                                                        int32_t c)
{
    int64_t per_sample = hw * c;
    int64_t n = i / per_sample, j = i - n * per_sample; // j = p * c + q
    int64_t p = j / c, q = j - p * c;
    return g[n * per_sample + q * hw + p];
}

__host__ __device__ inline float concat_forward_value(const float *a, const float *b, int64_t i,
                                                      int32_t c0, int32_t c1)
{
    int64_t c = (int64_t)c0 + c1;
    int64_t r = i / c, j = i - r * c;
    return j < c0 ? a[r * c0 + j] : b[r * c1 + (j - c0)];
}

__host__ __device__ inline float concat_backward_value(const float *g, int64_t i, int32_t c,
                                                       int32_t offset, int32_t part)
{
    int64_t r = i / part, j = i - r * part;
    return g[r * c + offset + j];
}

// Output i of a pool: its sample, row, column and channel.
struct pool_position {
    int64_t n;
    int32_t y, x, c;
};

__host__ __device__ inline pool_position pool_split(int64_t i, int32_t rows, int32_t columns,
                                                    int32_t c)
{
    pool_position at;
    int64_t t = i / c;
    at.c = (int32_t)(i - t * c);
    int64_t u = t / columns;
    at.x = (int32_t)(t - u * columns);
    at.n = u / rows;
    at.y = (int32_t)(u - at.n * rows);
    return at;
}

// The outputs (first, last inclusive; last < first: none) along one axis
// whose window [o * stride - pad, o * stride - pad + kernel) holds input i.
__host__ __device__ inline void pool_covering(int32_t i, int32_t kernel, int32_t stride,
                                              int32_t pad, int32_t outputs, int32_t *first,
                                              int32_t *last)
{
    int32_t shifted = i + pad; // >= 0
    *first = shifted < kernel ? 0 : (shifted - kernel) / stride + 1;
    int32_t l = shifted / stride;
    *last = l < outputs - 1 ? l : outputs - 1;
}

// Max pool output i; *arg = ky * kw + kx of the first maximum in scan
// order (-1 if the window held no input, which pool_shape's padding rule
// rules out). oneDNN skips padding and replaces its maximum only by a
// strictly greater value: ties keep the first, as PyTorch.
__host__ __device__ inline float maxpool_value(const float *x, int64_t i,
                                               const ich_cuda_pool_geometry &g, int32_t *arg)
{
    pool_position o = pool_split(i, g.oh, g.ow, g.c);
    int32_t y0 = o.y * g.sh - g.ph, x0 = o.x * g.sw - g.pw;
    float best = -INFINITY;
    int32_t best_at = -1;
    for (int32_t ky = 0; ky < g.kh; ky++) {
        int32_t iy = y0 + ky;
        if (iy < 0 || iy >= g.h)
            continue;
        for (int32_t kx = 0; kx < g.kw; kx++) {
            int32_t ix = x0 + kx;
            if (ix < 0 || ix >= g.w)
                continue;
            float v = x[((o.n * g.h + iy) * g.w + ix) * g.c + o.c];
            if (best_at < 0 || v > best) {
                best = v;
                best_at = ky * g.kw + kx;
            }
        }
    }
    *arg = best_at;
    return best;
}

__host__ __device__ inline float maxpool_backward_value(const float *gy, const int32_t *argmax,
                                                        int64_t i,
                                                        const ich_cuda_pool_geometry &g)
{
    pool_position at = pool_split(i, g.h, g.w, g.c);
    int32_t oy0, oy1, ox0, ox1;
    pool_covering(at.y, g.kh, g.sh, g.ph, g.oh, &oy0, &oy1);
    pool_covering(at.x, g.kw, g.sw, g.pw, g.ow, &ox0, &ox1);
    float sum = 0.0f;
    for (int32_t oy = oy0; oy <= oy1; oy++) {
        int32_t ky = at.y + g.ph - oy * g.sh;
        for (int32_t ox = ox0; ox <= ox1; ox++) {
            int32_t kx = at.x + g.pw - ox * g.sw;
            int64_t o = ((at.n * g.oh + oy) * g.ow + ox) * g.c + at.c;
            if (argmax[o] == ky * g.kw + kx)
                sum += gy[o];
        }
    }
    return sum;
}

// Average pool output i: the window's inputs summed in scan order, divided
// by the whole window's size (padding counted, oneDNN's
// pooling_avg_include_padding = PyTorch's count_include_pad).
__host__ __device__ inline float avgpool_value(const float *x, int64_t i,
                                               const ich_cuda_pool_geometry &g)
{
    pool_position o = pool_split(i, g.oh, g.ow, g.c);
    int32_t y0 = o.y * g.sh - g.ph, x0 = o.x * g.sw - g.pw;
    float sum = 0.0f;
    for (int32_t ky = 0; ky < g.kh; ky++) {
        int32_t iy = y0 + ky;
        if (iy < 0 || iy >= g.h)
            continue;
        for (int32_t kx = 0; kx < g.kw; kx++) {
            int32_t ix = x0 + kx;
            if (ix < 0 || ix >= g.w)
                continue;
            sum += x[((o.n * g.h + iy) * g.w + ix) * g.c + o.c];
        }
    }
    return sum / (float)(g.kh * g.kw);
}

// oneDNN's backward divides each output gradient, then adds.
__host__ __device__ inline float avgpool_backward_value(const float *gy, int64_t i,
                                                        const ich_cuda_pool_geometry &g)
{
    pool_position at = pool_split(i, g.h, g.w, g.c);
    int32_t oy0, oy1, ox0, ox1;
    pool_covering(at.y, g.kh, g.sh, g.ph, g.oh, &oy0, &oy1);
    pool_covering(at.x, g.kw, g.sw, g.pw, g.ow, &ox0, &ox1);
    const float area = (float)(g.kh * g.kw);
    float sum = 0.0f;
    for (int32_t oy = oy0; oy <= oy1; oy++)
        for (int32_t ox = ox0; ox <= ox1; ox++)
            sum += gy[((at.n * g.oh + oy) * g.ow + ox) * g.c + at.c] / area;
    return sum;
}

// Global average of channel q of sample n (i = n * c + q), positions in
// order as the CPU's loop.
__host__ __device__ inline float gap_value(const float *x, int64_t i, int64_t hw, int32_t c)
{
    int64_t n = i / c, q = i - n * c;
    const float *base = x + n * hw * c + q;
    float sum = 0.0f;
    for (int64_t p = 0; p < hw; p++)
        sum += base[p * c];
    return sum / (float)hw;
}

__host__ __device__ inline float gap_backward_value(const float *g, int64_t i, int64_t hw,
                                                    int32_t c)
{
    int64_t per_sample = hw * c;
    int64_t n = i / per_sample, q = (i - n * per_sample) % c;
    return g[n * c + q] / (float)hw;
}

__host__ __device__ inline float bn_forward_value(const float *x, int64_t i, const float *mean,
                                                  const float *var, const float *weight,
                                                  const float *bias, float eps, int32_t c)
{
    int32_t q = (int32_t)(i % c);
    float scale = weight[q] / sqrtf(var[q] + eps);
    return scale * (x[i] - mean[q]) + bias[q];
}

// oneDNN's reference: v = dy; with batch statistics
// v -= dbias / M + (x - mean) * dweight * inv / M; v *= weight * inv.
__host__ __device__ inline float bn_backward_value(const float *x, const float *dy, int64_t i,
                                                   const float *mean, const float *var,
                                                   const float *weight, const float *dweight,
                                                   const float *dbias, float eps, float m,
                                                   int32_t c, int training)
{
    int32_t q = (int32_t)(i % c);
    float inv = 1.0f / sqrtf(var[q] + eps);
    float v = dy[i];
    if (training)
        v -= dbias[q] / m + (x[i] - mean[q]) * dweight[q] * inv / m;
    return v * (weight[q] * inv);
}

// ---- kernels ----------------------------------------------------------------------

__global__ void relu_forward_kernel(float *y, const float *x, int64_t count)
{
    GRID_STRIDE(i, count)
    {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

__global__ void relu_backward_kernel(float *dx, const float *out, const float *g, int64_t count)
{
    GRID_STRIDE(i, count) dx[i] = out[i] > 0.0f ? g[i] : 0.0f;
}

__global__ void add_kernel(float *y, const float *a, const float *b, int64_t count)
{
    GRID_STRIDE(i, count) y[i] = a[i] + b[i];
}

__global__ void dropout_kernel(float *y, const float *x, int64_t count, int64_t per_sample,
                               uint64_t seed, uint64_t step, double p, float scale)
{
    GRID_STRIDE(i, count) y[i] = dropout_value(x, i, per_sample, seed, step, p, scale);
}

__global__ void flatten_forward_kernel(float *y, const float *x, int64_t count, int64_t hw,
                                       int32_t c)
{
    GRID_STRIDE(i, count) y[i] = flatten_forward_value(x, i, hw, c);
}

__global__ void flatten_backward_kernel(float *dx, const float *g, int64_t count, int64_t hw,
                                        int32_t c)
{
    GRID_STRIDE(i, count) dx[i] = flatten_backward_value(g, i, hw, c);
}

__global__ void concat_forward_kernel(float *y, const float *a, const float *b, int64_t count,
                                      int32_t c0, int32_t c1)
{
    GRID_STRIDE(i, count) y[i] = concat_forward_value(a, b, i, c0, c1);
}

__global__ void concat_backward_kernel(float *dx, const float *g, int64_t count, int32_t c,
                                       int32_t offset, int32_t part)
{
    GRID_STRIDE(i, count) dx[i] = concat_backward_value(g, i, c, offset, part);
}

__global__ void maxpool_forward_kernel(float *y, int32_t *argmax, const float *x, int64_t count,
                                       ich_cuda_pool_geometry g)
{
    GRID_STRIDE(i, count)
    {
        int32_t arg;
        y[i] = maxpool_value(x, i, g, &arg);
        if (argmax)
            argmax[i] = arg;
    }
}

__global__ void maxpool_backward_kernel(float *dx, const float *gy, const int32_t *argmax,
                                        int64_t count, ich_cuda_pool_geometry g)
{
    GRID_STRIDE(i, count) dx[i] = maxpool_backward_value(gy, argmax, i, g);
}

__global__ void avgpool_forward_kernel(float *y, const float *x, int64_t count,
                                       ich_cuda_pool_geometry g)
{
    GRID_STRIDE(i, count) y[i] = avgpool_value(x, i, g);
}

__global__ void avgpool_backward_kernel(float *dx, const float *gy, int64_t count,
                                        ich_cuda_pool_geometry g)
{
    GRID_STRIDE(i, count) dx[i] = avgpool_backward_value(gy, i, g);
}

// One thread per (sample, channel): consecutive threads read consecutive
// channels of one position.
__global__ void gap_forward_kernel(float *y, const float *x, int64_t count, int64_t hw, int32_t c)
{
    GRID_STRIDE(i, count) y[i] = gap_value(x, i, hw, c);
}

__global__ void gap_backward_kernel(float *dx, const float *g, int64_t count, int64_t hw,
                                    int32_t c)
{
    GRID_STRIDE(i, count) dx[i] = gap_backward_value(g, i, hw, c);
}

// Batch-norm partial sums: block (blockIdx.x, blockIdx.y) covers columns
// [32 blockIdx.x, +32) and rows [per_chunk blockIdx.y, +per_chunk); its
// 32 x 8 threads walk those rows with a stride of 8 (a warp reads 32
// consecutive channels), then the 8 partial sums of a column are added in
// order in shared memory. Written: partial[chunk * c + column] and, for
// GRADIENT, partial[(chunks + chunk) * c + column].
__global__ void bn_partial_kernel(ich_cuda_bn_sum what, double *partial, const float *x,
                                  const float *dy, const float *mean, int64_t rows, int32_t c,
                                  int64_t per_chunk)
{
    __shared__ double s0[8][33], s1[8][33];
    const int32_t column = blockIdx.x * 32 + threadIdx.x;
    const int64_t chunk = blockIdx.y, chunks = gridDim.y;
    const int64_t begin = chunk * per_chunk;
    const int64_t end = begin + per_chunk < rows ? begin + per_chunk : rows;
    double a = 0.0, b = 0.0;
    if (column < c) {
        const double m = what == ICH_CUDA_BN_MEAN ? 0.0 : (double)mean[column];
        for (int64_t r = begin + threadIdx.y; r < end; r += 8) {
            double v = (double)x[r * c + column];
            if (what == ICH_CUDA_BN_MEAN) {
                a += v;
            } else if (what == ICH_CUDA_BN_VARIANCE) {
                double d = v - m;
                a += d * d;
            } else {
                double gv = (double)dy[r * c + column];
                a += gv;
                b += (v - m) * gv;
            }
        }
    }
    s0[threadIdx.y][threadIdx.x] = a;
    s1[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && column < c) {
        double ta = 0.0, tb = 0.0;
        for (int k = 0; k < 8; k++) {
            ta += s0[k][threadIdx.x];
            tb += s1[k][threadIdx.x];
        }
        partial[chunk * c + column] = ta;
        if (what == ICH_CUDA_BN_GRADIENT)
            partial[(chunks + chunk) * c + column] = tb;
    }
}

// One thread per channel adds the chunks' partial sums in order.
__global__ void bn_finish_kernel(ich_cuda_bn_sum what, float *out0, float *out1,
                                 const double *partial, int32_t chunks, const float *var,
                                 float eps, int64_t rows, int32_t c)
{
    GRID_STRIDE(column, c)
    {
        double a = 0.0, b = 0.0;
        for (int64_t k = 0; k < chunks; k++) {
            a += partial[k * c + column];
            if (what == ICH_CUDA_BN_GRADIENT)
                b += partial[((int64_t)chunks + k) * c + column];
        }
        if (what == ICH_CUDA_BN_GRADIENT) {
            // oneDNN: d weight = sum((x - mean) dy) * (1 / sqrtf(var + eps))
            float inv = 1.0f / sqrtf(var[column] + eps);
            out0[column] = (float)b * inv;
            out1[column] = (float)a;
        } else {
            out0[column] = (float)(a / (double)rows);
        }
    }
}

__global__ void bn_forward_kernel(float *y, const float *x, const float *mean, const float *var,
                                  const float *weight, const float *bias, float eps,
                                  int64_t count, int32_t c)
{
    GRID_STRIDE(i, count) y[i] = bn_forward_value(x, i, mean, var, weight, bias, eps, c);
}

__global__ void bn_backward_kernel(float *dx, const float *x, const float *dy, const float *mean,
                                   const float *var, const float *weight, const float *dweight,
                                   const float *dbias, float eps, float m, int64_t count,
                                   int32_t c, int training)
{
    GRID_STRIDE(i, count)
    dx[i] = bn_backward_value(x, dy, i, mean, var, weight, dweight, dbias, eps, m, c, training);
}

} // namespace

extern "C" {

void ich_cuda_k_relu_forward(float *y, const float *x, int64_t count)
{
    ICH_CUDA_LAUNCH(relu_forward_kernel, blocks_for(count), kThreads)(y, x, count);
}

void ich_cuda_k_relu_backward(float *dx, const float *out, const float *g, int64_t count)
{
    ICH_CUDA_LAUNCH(relu_backward_kernel, blocks_for(count), kThreads)(dx, out, g,
                                                                                count);
}

void ich_cuda_k_add(float *y, const float *a, const float *b, int64_t count)
{
    ICH_CUDA_LAUNCH(add_kernel, blocks_for(count), kThreads)(y, a, b, count);
}

void ich_cuda_k_dropout(float *y, const float *x, int64_t count, int64_t per_sample, uint64_t seed,
                        uint64_t step, double p, float scale)
{
    ICH_CUDA_LAUNCH(dropout_kernel, blocks_for(count), kThreads)(y, x, count, per_sample,
                                                                          seed, step, p, scale);
}

void ich_cuda_k_flatten_forward(float *y, const float *x, int32_t n, int64_t hw, int32_t c)
{
    int64_t count = (int64_t)n * hw * c;
    ICH_CUDA_LAUNCH(flatten_forward_kernel, blocks_for(count), kThreads)(y, x, count, hw,
                                                                                  c);
}

void ich_cuda_k_flatten_backward(float *dx, const float *g, int32_t n, int64_t hw, int32_t c)
{
    int64_t count = (int64_t)n * hw * c;
    ICH_CUDA_LAUNCH(flatten_backward_kernel, blocks_for(count), kThreads)(dx, g, count,
                                                                                   hw, c);
}

void ich_cuda_k_concat_forward(float *y, const float *a, const float *b, int64_t rows, int32_t c0,
                               int32_t c1)
{
    int64_t count = rows * ((int64_t)c0 + c1);
    ICH_CUDA_LAUNCH(concat_forward_kernel, blocks_for(count), kThreads)(y, a, b, count,
                                                                                 c0, c1);
}

void ich_cuda_k_concat_backward(float *dx, const float *g, int64_t rows, int32_t c, int32_t offset,
                                int32_t part)
{
    int64_t count = rows * part;
    ICH_CUDA_LAUNCH(concat_backward_kernel, blocks_for(count), kThreads)(
        dx, g, count, c, offset, part);
}

void ich_cuda_k_maxpool_forward(float *y, int32_t *argmax, const float *x,
                                ich_cuda_pool_geometry g)
{
    int64_t count = (int64_t)g.n * g.oh * g.ow * g.c;
    ICH_CUDA_LAUNCH(maxpool_forward_kernel, blocks_for(count), kThreads)(y, argmax, x,
                                                                                  count, g);
}

void ich_cuda_k_maxpool_backward(float *dx, const float *gy, const int32_t *argmax,
                                 ich_cuda_pool_geometry g)
{
    int64_t count = (int64_t)g.n * g.h * g.w * g.c;
    ICH_CUDA_LAUNCH(maxpool_backward_kernel, blocks_for(count), kThreads)(dx, gy, argmax,
                                                                                   count, g);
}

void ich_cuda_k_avgpool_forward(float *y, const float *x, ich_cuda_pool_geometry g)
{
    int64_t count = (int64_t)g.n * g.oh * g.ow * g.c;
    ICH_CUDA_LAUNCH(avgpool_forward_kernel, blocks_for(count), kThreads)(y, x, count, g);
}

void ich_cuda_k_avgpool_backward(float *dx, const float *gy, ich_cuda_pool_geometry g)
{
    int64_t count = (int64_t)g.n * g.h * g.w * g.c;
    ICH_CUDA_LAUNCH(avgpool_backward_kernel, blocks_for(count), kThreads)(dx, gy, count,
                                                                                   g);
}

void ich_cuda_k_gap_forward(float *y, const float *x, int32_t n, int64_t hw, int32_t c)
{
    int64_t count = (int64_t)n * c;
    ICH_CUDA_LAUNCH(gap_forward_kernel, blocks_for(count), kThreads)(y, x, count, hw, c);
}

void ich_cuda_k_gap_backward(float *dx, const float *g, int32_t n, int64_t hw, int32_t c)
{
    int64_t count = (int64_t)n * hw * c;
    ICH_CUDA_LAUNCH(gap_backward_kernel, blocks_for(count), kThreads)(dx, g, count, hw,
                                                                               c);
}

void ich_cuda_k_bn_reduce(ich_cuda_bn_sum what, float *out0, float *out1, double *partial,
                          int32_t chunks, const float *x, const float *dy, const float *mean,
                          const float *var, float eps, int64_t rows, int32_t c)
{
    int64_t per_chunk = (rows + chunks - 1) / chunks;
    if (per_chunk < 1)
        per_chunk = 1;
    dim3 grid((unsigned)(((int64_t)c + 31) / 32), (unsigned)chunks), threads(32, 8);
    ICH_CUDA_LAUNCH(bn_partial_kernel, grid, threads)(what, partial, x, dy, mean, rows, c,
                                                               per_chunk);
    ICH_CUDA_LAUNCH(bn_finish_kernel, blocks_for(c), kThreads)(what, out0, out1, partial,
                                                                        chunks, var, eps, rows, c);
}

void ich_cuda_k_bn_forward(float *y, const float *x, const float *mean, const float *var,
                           const float *weight, const float *bias, float eps, int64_t rows,
                           int32_t c)
{
    int64_t count = rows * c;
    ICH_CUDA_LAUNCH(bn_forward_kernel, blocks_for(count), kThreads)(
        y, x, mean, var, weight, bias, eps, count, c);
}

void ich_cuda_k_bn_backward(float *dx, const float *x, const float *dy, const float *mean,
                            const float *var, const float *weight, const float *dweight,
                            const float *dbias, float eps, int64_t rows, int32_t c, int training)
{
    int64_t count = rows * c;
    ICH_CUDA_LAUNCH(bn_backward_kernel, blocks_for(count), kThreads)(
        dx, x, dy, mean, var, weight, dweight, dbias, eps, (float)rows, count, c, training);
}

} // extern "C"
