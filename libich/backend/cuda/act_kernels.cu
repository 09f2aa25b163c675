// The CUDA plugin's activation kernels (SiLU, GELU in the erf form,
// sigmoid) and the per-channel multiply of the scale block, with their
// launchers (act_kernels.h). The value of one element is a __host__
// __device__ function, the same formula as libich/backend/cpu/act.c.
#include <math.h>

#include "backend/cuda/act_kernels.h"
#include "backend/cuda/cuda_backend.h"

namespace {

constexpr int kThreads = 256;

unsigned act_blocks_for(int64_t count)
{
    int64_t blocks = (count + kThreads - 1) / kThreads;
    return (unsigned)(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

#define ACT_GRID_STRIDE(i, count)                                                                \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (count);              \
         i += (int64_t)gridDim.x * blockDim.x)

__host__ __device__ inline float act_sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

__host__ __device__ inline float act_value(ich_cuda_act act, float v)
{
    switch (act) {
    case ICH_CUDA_SILU:
        return v * act_sigmoid(v);
    case ICH_CUDA_GELU:
        return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
    default:
        return act_sigmoid(v);
    }
}

// d act / d x times g; v the input (SiLU, GELU) or the output (sigmoid).
__host__ __device__ inline float act_grad(ich_cuda_act act, float v, float g)
{
    switch (act) {
    case ICH_CUDA_SILU: {
        float s = act_sigmoid(v);
        return g * (s * (1.0f + v * (1.0f - s)));
    }
    case ICH_CUDA_GELU:
        return g * (0.5f * (1.0f + erff(v * 0.70710678118654752440f)) +
                    v * 0.39894228040143267794f * expf(-0.5f * v * v));
    default:
        return g * (v * (1.0f - v));
    }
}

__global__ void act_forward_kernel(ich_cuda_act act, float *y, const float *x, int64_t count)
{
    ACT_GRID_STRIDE(i, count) y[i] = act_value(act, x[i]);
}

__global__ void act_backward_kernel(ich_cuda_act act, float *dx, const float *v, const float *g,
                                    int64_t count)
{
    ACT_GRID_STRIDE(i, count) dx[i] = act_grad(act, v[i], g[i]);
}

__global__ void mul_channels_kernel(float *y, const float *x, const float *s, int64_t count,
                                    int64_t hw, int32_t c)
{
    ACT_GRID_STRIDE(i, count)
    {
        int64_t per_sample = hw * c;
        int64_t n = i / per_sample, q = i % c;
        y[i] = x[i] * s[n * c + q];
    }
}

// One thread per (sample, channel): a sum over the positions in order.
__global__ void mul_factor_grad_kernel(float *ds, const float *g, const float *x, int64_t count,
                                       int64_t hw, int32_t c)
{
    ACT_GRID_STRIDE(i, count)
    {
        int64_t n = i / c, q = i % c;
        const int64_t base = n * hw * c + q;
        double acc = 0.0;
        for (int64_t p = 0; p < hw; p++)
            acc += (double)g[base + p * c] * (double)x[base + p * c];
        ds[i] = (float)acc;
    }
}

} // namespace

extern "C" {

void ich_cuda_k_act_forward(ich_cuda_act act, float *y, const float *x, int64_t count)
{
    ICH_CUDA_LAUNCH(act_forward_kernel, act_blocks_for(count), kThreads)(act, y, x, count);
}

void ich_cuda_k_act_backward(ich_cuda_act act, float *dx, const float *v, const float *g,
                             int64_t count)
{
    ICH_CUDA_LAUNCH(act_backward_kernel, act_blocks_for(count), kThreads)(act, dx, v, g, count);
}

void ich_cuda_k_mul_channels(float *y, const float *x, const float *s, int32_t n, int64_t hw,
                             int32_t c)
{
    int64_t count = (int64_t)n * hw * c;
    ICH_CUDA_LAUNCH(mul_channels_kernel, act_blocks_for(count), kThreads)(y, x, s, count, hw, c);
}

void ich_cuda_k_mul_factor_grad(float *ds, const float *g, const float *x, int32_t n, int64_t hw,
                                int32_t c)
{
    int64_t count = (int64_t)n * c;
    ICH_CUDA_LAUNCH(mul_factor_grad_kernel, act_blocks_for(count), kThreads)(ds, g, x, count, hw,
                                                                             c);
}

} // extern "C"
