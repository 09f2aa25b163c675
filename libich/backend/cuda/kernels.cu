// The CUDA plugin's shared elementwise kernels (the layers' own kernels are
// in layers_kernels.cu). Each launcher queues on the plugin's stream and
// returns; callers check cudaPeekAtLastError (CHECK_LAUNCH).
#include <string.h>

#include "backend/cuda/cuda_backend.h"

namespace {

constexpr int kThreads = 256;

// Enough blocks to fill the GPU with grid-stride loops, never more than
// the work needs.
unsigned blocks_for(int64_t count)
{
    int64_t blocks = (count + kThreads - 1) / kThreads;
    return (unsigned)(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

__global__ void accumulate_kernel(float *acc, const float *x, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        acc[i] += x[i];
}

__global__ void fill_kernel(float *x, float value, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = value;
}

__global__ void relu_fused_kernel(float *out, uint8_t *mask, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = out[i];
        bool positive = v > 0.0f;
        out[i] = positive ? v : 0.0f;
        if (mask)
            mask[i] = positive;
    }
}

__global__ void mask_apply_kernel(float *grad, const uint8_t *mask, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        if (!mask[i])
            grad[i] = 0.0f;
}

__global__ void bias_add_kernel(float *y, const float *bias, int64_t rows, int32_t c)
{
    int64_t count = rows * c;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += bias[i % c];
}

// One block per group of 32 columns: each thread of a 32 x 8 tile walks
// rows with a stride of 8, then the 8 partial sums of a column are added
// in shared memory. Columns are contiguous in NHWC, so a warp reads 32
// consecutive floats.
__global__ void column_sum_kernel(float *sum, const float *x, int64_t rows, int32_t c)
{
    __shared__ float partial[8][33];
    int32_t column = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (column < c)
        for (int64_t r = threadIdx.y; r < rows; r += 8)
            s += x[r * c + column];
    partial[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && column < c) {
        float total = 0.0f;
        for (int k = 0; k < 8; k++)
            total += partial[k][threadIdx.x];
        sum[column] = total;
    }
}

// One thread per output (NHWC) value: consecutive threads write
// consecutive channels.
__global__ void nchw_to_nhwc_kernel(float *dst, const float *src, int64_t count, int32_t c,
                                    int64_t hw)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t k = i % c, p = i / c % hw, b = i / (c * hw);
        dst[i] = src[(b * c + k) * hw + p];
    }
}

// bfloat16 as its 16 bits: float -> bf16 rounds to nearest, ties to even
// (NaN stays a quiet NaN); bf16 -> float is exact. Integer operations
// only, the same on the host and the GPU.
__host__ __device__ inline uint16_t bf16_from_float(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__host__ __device__ inline float bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

__global__ void to_bf16_kernel(uint16_t *dst, const float *src, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = bf16_from_float(src[i]);
}

__global__ void from_bf16_kernel(float *dst, const uint16_t *src, int64_t count)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = bf16_to_float(src[i]);
}

// One thread per weight, indexed by its OIHW position.
__global__ void oihw_ohwi_kernel(float *dst, const float *src, int32_t o, int32_t i, int32_t h,
                                 int32_t w, bool to_ohwi)
{
    int64_t count = (int64_t)o * i * h * w;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < count;
         k += (int64_t)gridDim.x * blockDim.x) {
        int64_t x = k % w, y = k / w % h, ci = k / ((int64_t)w * h) % i, co = k / ((int64_t)w * h * i);
        int64_t ohwi = ((co * h + y) * w + x) * i + ci;
        if (to_ohwi)
            dst[ohwi] = src[k];
        else
            dst[k] = src[ohwi];
    }
}

} // namespace

extern "C" {

void ich_cuda_k_oihw_to_ohwi(float *dst, const float *src, int32_t o, int32_t i, int32_t h,
                             int32_t w)
{
    ICH_CUDA_LAUNCH(oihw_ohwi_kernel, blocks_for((int64_t)o * i * h * w), kThreads)(
        dst, src, o, i, h, w, true);
}

void ich_cuda_k_ohwi_to_oihw(float *dst, const float *src, int32_t o, int32_t i, int32_t h,
                             int32_t w)
{
    ICH_CUDA_LAUNCH(oihw_ohwi_kernel, blocks_for((int64_t)o * i * h * w), kThreads)(
        dst, src, o, i, h, w, false);
}

void ich_cuda_k_nchw_to_nhwc(float *dst, const float *src, int32_t n, int32_t c, int64_t hw)
{
    int64_t count = (int64_t)n * c * hw;
    ICH_CUDA_LAUNCH(nchw_to_nhwc_kernel, blocks_for(count), kThreads)(dst, src, count, c, hw);
}

void ich_cuda_k_to_bf16(uint16_t *dst, const float *src, int64_t count)
{
    ICH_CUDA_LAUNCH(to_bf16_kernel, blocks_for(count), kThreads)(dst, src, count);
}

void ich_cuda_k_from_bf16(float *dst, const uint16_t *src, int64_t count)
{
    ICH_CUDA_LAUNCH(from_bf16_kernel, blocks_for(count), kThreads)(dst, src, count);
}

void ich_cuda_k_accumulate(float *acc, const float *x, int64_t count)
{
    ICH_CUDA_LAUNCH(accumulate_kernel, blocks_for(count), kThreads)(acc, x, count);
}

void ich_cuda_k_fill(float *x, float value, int64_t count)
{
    ICH_CUDA_LAUNCH(fill_kernel, blocks_for(count), kThreads)(x, value, count);
}

void ich_cuda_k_relu_fused(float *out, uint8_t *mask, int64_t count)
{
    ICH_CUDA_LAUNCH(relu_fused_kernel, blocks_for(count), kThreads)(out, mask, count);
}

void ich_cuda_k_mask_apply(float *grad, const uint8_t *mask, int64_t count)
{
    ICH_CUDA_LAUNCH(mask_apply_kernel, blocks_for(count), kThreads)(grad, mask, count);
}

void ich_cuda_k_bias_add(float *y, const float *bias, int64_t rows, int32_t c)
{
    ICH_CUDA_LAUNCH(bias_add_kernel, blocks_for(rows * c), kThreads)(y, bias, rows, c);
}

void ich_cuda_k_column_sum(float *sum, const float *x, int64_t rows, int32_t c)
{
    dim3 threads(32, 8);
    ICH_CUDA_LAUNCH(column_sum_kernel, (unsigned)((c + 31) / 32), threads)(sum, x, rows,
                                                                                    c);
}

} // extern "C"
