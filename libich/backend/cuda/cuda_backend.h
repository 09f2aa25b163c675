/* Internal to the CUDA plugin (libich-cuda.so): shared pieces of its
 * layers. C, included by the .c files; the kernels (.cu) are reached
 * through the ich_cuda_k_* launchers declared at the end, which queue work
 * on the backend's one stream and return at once.
 *
 * Every call here runs on the plugin's single CUDA stream, so kernels,
 * cuDNN and cuBLAS calls and copies are ordered without events; host code
 * waits only where it reads a result: to_host, and ich_cuda_synchronize at
 * the end of each forward and backward pass, which finishes parameter
 * gradients and batch-norm running statistics on the host.
 *
 * Parameters live in pinned host memory (see libich/backend/plugin_api.h); a
 * layer keeps a device mirror of each (ich_cuda_mirror) and has its
 * device-side gradients added into param->grad with ich_cuda_grad_add. */
#ifndef ICH_INTERNAL_BACKEND_CUDA_H
#define ICH_INTERNAL_BACKEND_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* libich's error and log functions, given at load time. */
extern const ich_plugin_host *ich_cuda_host;
#define cuda_fail(...) ich_cuda_host->fail(__VA_ARGS__)
#define cuda_log(...) ich_cuda_host->log(__VA_ARGS__)

/* The plugin's stream and library handles (created at load time). */
cudaStream_t ich_cuda_stream(void);
cudnnHandle_t ich_cuda_cudnn(void);
cublasHandle_t ich_cuda_cublas(void);
/* The arithmetic of convolutions and matrix products, from ICH_CUDA_MATH
 * (fp32, the default; tf32; bf16) or the older ICH_CUDA_TF32=1:
 *   FP32  full single precision (FMA), as the CPU backend;
 *   TF32  TensorFloat-32 tensor cores (about 1e-3 relative; PyTorch's
 *         default for cuDNN convolutions);
 *   BF16  convolutions on bfloat16 copies of their inputs, weights and
 *         output gradients, summed in FP32 (about 1e-2 relative; what
 *         PyTorch's autocast does); the rest of the model, the master
 *         weights and the optimizer in FP32. Matrix products TF32. */
typedef enum ich_cuda_math { ICH_CUDA_FP32, ICH_CUDA_TF32, ICH_CUDA_BF16 } ich_cuda_math;
ich_cuda_math ich_cuda_math_mode(void);
/* 1 when ICH_CUDA_BENCHMARK=1 (read at start): convolutions time cuDNN's
 * algorithms and keep the fastest (conv.c). */
int ich_cuda_benchmark(void);

/* Device memory from the plugin's cache (sizes rounded up to 256 bytes,
 * blocks kept by size and reused, so a training loop stops calling
 * cudaMalloc after its first step). NULL when the device is out of memory. */
void *ich_cuda_alloc(size_t bytes);
void ich_cuda_free(void *pointer);

/* The status for a failed call, its message naming the layer (may be NULL)
 * and the call. */
ich_status ich_cuda_error(const ich_layer *layer, const char *what, cudaError_t error);
ich_status ich_cudnn_error(const ich_layer *layer, const char *what, cudnnStatus_t status);
ich_status ich_cublas_error(const ich_layer *layer, const char *what, cublasStatus_t status);

/* Return from the calling function (which has an `ich_layer *layer`) with
 * the matching error when a call fails. */
#define CHECK_CUDA(call, what)                                                                   \
    do {                                                                                         \
        cudaError_t check_error_ = (call);                                                       \
        if (check_error_ != cudaSuccess)                                                         \
            return ich_cuda_error(layer, what, check_error_);                                   \
    } while (0)
#define CHECK_CUDNN(call, what)                                                                  \
    do {                                                                                         \
        cudnnStatus_t check_status_ = (call);                                                    \
        if (check_status_ != CUDNN_STATUS_SUCCESS)                                               \
            return ich_cudnn_error(layer, what, check_status_);                                  \
    } while (0)
#define CHECK_CUBLAS(call, what)                                                                 \
    do {                                                                                         \
        cublasStatus_t check_status_ = (call);                                                   \
        if (check_status_ != CUBLAS_STATUS_SUCCESS)                                              \
            return ich_cublas_error(layer, what, check_status_);                                 \
    } while (0)
/* A kernel launch's error (bad configuration), checked right after it. */
#define CHECK_LAUNCH(what) CHECK_CUDA(cudaPeekAtLastError(), what)
/* The same as a status: ICH_OK, or the error of the launches since the last
 * check, naming the layer and `what`. */
ich_status ich_cuda_check_launch(const ich_layer *layer, const char *what);

/* Make *buffer (device memory of *size bytes) at least `want` bytes; the old
 * contents are not kept. */
ich_status ich_cuda_grow(const ich_layer *layer, void **buffer, size_t *size, size_t want);

/* The plugin's one cuDNN workspace, grown to at least `bytes` (layers run
 * one after another on one stream, so they can share it). NULL after
 * cuda_fail() when the device is out of memory. */
void *ich_cuda_workspace(const ich_layer *layer, size_t bytes);

/* ---- parameters (host, pinned) ---------------------------------------- */

/* Allocate layer->params (count entries, zeroed). */
ich_status ich_cuda_params_alloc(ich_layer *layer, int32_t count);
/* Set up one parameter: zeroed pinned host data and (when trainable)
 * gradient, like the CPU backend's ich_cpu_param_init. */
ich_status ich_cuda_param_init(ich_param *param, const char *name, ich_dtype dtype, int32_t ndim,
                               const int64_t *dims, int trainable);
/* Free every parameter's data and gradient and the array itself. */
void ich_cuda_params_free(ich_layer *layer);

/* A device copy of one F32 parameter. */
typedef struct ich_cuda_mirror {
    float *device;
    int64_t count;
    uint64_t version; /* param->version it holds; 0 before the first upload */
    int valid;
} ich_cuda_mirror;

/* Upload param->data when the mirror is older than param->version (or was
 * never filled); a no-op otherwise. */
ich_status ich_cuda_mirror_sync(const ich_layer *layer, const ich_param *param,
                                ich_cuda_mirror *mirror);
/* Mark the mirror as holding param's current version (after the layer
 * itself wrote both copies, as batch norm's running statistics). */
void ich_cuda_mirror_mark(const ich_param *param, ich_cuda_mirror *mirror);
void ich_cuda_mirror_free(ich_cuda_mirror *mirror);

/* ---- results finished on the host after the stream's work -------------- */

/* Queue a copy of `count` floats from `device` to pinned host memory; at the
 * next ich_cuda_synchronize, once the stream has done it, call
 * finish(target, the copied floats, count). The device values may be
 * overwritten by work queued after this call. */
typedef void (*ich_cuda_finish_fn)(void *target, const float *host, int64_t count);
ich_status ich_cuda_finish_later(const ich_layer *layer, const float *device, int64_t count,
                                 ich_cuda_finish_fn finish, void *target);
/* Wait for the stream and run the finish functions queued so far (the
 * backend table's synchronize). */
ich_status ich_cuda_synchronize(void);

/* param->grad += the device gradient `device_grad` (param's count values),
 * unless the parameter is frozen, at the next ich_cuda_synchronize. */
ich_status ich_cuda_grad_add(const ich_layer *layer, ich_param *param, const float *device_grad);

/* ---- fused ReLU (conv, linear, batch norm) ----------------------------- */

/* One byte per value (value > 0) kept from a training forward; backward
 * zeroes the gradient where it is 0. */
typedef struct ich_cuda_relu_mask {
    uint8_t *bytes; /* device */
    size_t capacity;
} ich_cuda_relu_mask;

/* out = max(out, 0) in place, and (when mask != NULL) record the mask. */
ich_status ich_cuda_relu_fused(const ich_layer *layer, ich_cuda_relu_mask *mask, float *out,
                               int64_t count);
/* grad[i] = 0 where the mask is 0. */
ich_status ich_cuda_relu_mask_apply(const ich_layer *layer, const ich_cuda_relu_mask *mask,
                                    float *grad, int64_t count);
void ich_cuda_relu_mask_free(ich_cuda_relu_mask *mask);

/* ich_layer_shape with the host's error function: the create/resize of
 * the kinds that need no more. */
ich_status ich_cuda_shape(ich_layer *layer, const ich_shape *in, ich_shape *out);

/* ---- collectives across ranks (collective.c: NCCL) ---------------------- */

/* The backend table's collective_load, collective_id, collective_init,
 * allreduce_sum (backend/plugin_api.h). */
ich_status ich_cuda_collective_load(void);
ich_status ich_cuda_collective_id(void *id, size_t *bytes);
ich_status ich_cuda_collective_init(int32_t rank, int32_t ranks, const void *id, size_t bytes);
ich_status ich_cuda_allreduce_sum(float *data, int64_t count, double timeout, const char *what);

/* ---- the layer kinds ---------------------------------------------------- */

extern const ich_layer_ops ich_cuda_conv_ops;
extern const ich_layer_ops ich_cuda_linear_ops;
extern const ich_layer_ops ich_cuda_relu_ops;
extern const ich_layer_ops ich_cuda_maxpool_ops;
extern const ich_layer_ops ich_cuda_avgpool_ops;
extern const ich_layer_ops ich_cuda_gap_ops;
extern const ich_layer_ops ich_cuda_batchnorm_ops;
extern const ich_layer_ops ich_cuda_dropout_ops;
extern const ich_layer_ops ich_cuda_flatten_ops;
extern const ich_layer_ops ich_cuda_add_ops;
extern const ich_layer_ops ich_cuda_concat_ops;
/* issue 14: act.c */
extern const ich_layer_ops ich_cuda_silu_ops;
extern const ich_layer_ops ich_cuda_gelu_ops;
extern const ich_layer_ops ich_cuda_sigmoid_ops;
extern const ich_layer_ops ich_cuda_mul_ops;
/* norm.c: layer normalisation, layer scale, stochastic depth */
extern const ich_layer_ops ich_cuda_layernorm_ops;
extern const ich_layer_ops ich_cuda_layerscale_ops;
extern const ich_layer_ops ich_cuda_droppath_ops;
/* linear.c: nn.Linear on each position's channels (ConvNeXt) */
extern const ich_layer_ops ich_cuda_pointwise_linear_ops;

/* ---- kernel launchers (kernels.cu, layers_kernels.cu) ------------------- */

/* dst[(b * hw + p) * c + k] = src[(b * c + k) * hw + p]: NCHW images to NHWC */
void ich_cuda_k_nchw_to_nhwc(float *dst, const float *src, int32_t n, int32_t c, int64_t hw);
/* dst[i] = src[i] rounded to bfloat16 (nearest, ties to even), as 16 bits */
void ich_cuda_k_to_bf16(uint16_t *dst, const float *src, int64_t count);
/* dst[i] = the bfloat16 src[i] as float (exact) */
void ich_cuda_k_from_bf16(float *dst, const uint16_t *src, int64_t count);
/* acc[i] += x[i] */
void ich_cuda_k_accumulate(float *acc, const float *x, int64_t count);
/* x[i] = value */
void ich_cuda_k_fill(float *x, float value, int64_t count);
/* out = max(out, 0); mask[i] = out > 0 (mask may be NULL) */
void ich_cuda_k_relu_fused(float *out, uint8_t *mask, int64_t count);
/* grad[i] = mask[i] ? grad[i] : 0 */
void ich_cuda_k_mask_apply(float *grad, const uint8_t *mask, int64_t count);
/* y[r * c + j] += bias[j] for r < rows, j < c (NHWC bias add) */
void ich_cuda_k_bias_add(float *y, const float *bias, int64_t rows, int32_t c);
/* sum[j] = sum over r of x[r * c + j] (beta 0); for few rows (a linear
 * layer's batch): one block walks all rows of 32 columns. */
void ich_cuda_k_column_sum(float *sum, const float *x, int64_t rows, int32_t c);
/* Convolution weights between PyTorch's OIHW and cuDNN's NHWC filter
 * layout (OHWI): dst[o][y][x][i] = src[o][i][y][x], and back. */
void ich_cuda_k_oihw_to_ohwi(float *dst, const float *src, int32_t o, int32_t i, int32_t h,
                             int32_t w);
void ich_cuda_k_ohwi_to_oihw(float *dst, const float *src, int32_t o, int32_t i, int32_t h,
                             int32_t w);

#ifdef __cplusplus
}

/* Launch `kernel` on the plugin's stream: ICH_CUDA_LAUNCH(k, grid, block)(args).
 * Without nvcc (the CPU emulation of tests/cuda_emu, which compiles the
 * .cu files as C++), the emulator's launcher runs it. */
#ifdef __CUDACC__
#define ICH_CUDA_LAUNCH(kernel, grid, block) kernel<<<(grid), (block), 0, ich_cuda_stream()>>>
#else
#define ICH_CUDA_LAUNCH(kernel, grid, block) ich_emu_kernel((grid), (block), kernel)
#endif
#endif

#endif
