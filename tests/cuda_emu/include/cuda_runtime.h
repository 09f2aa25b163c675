/* Test double of the CUDA runtime for the CPU emulation of the plugin
 * (tests/cuda_emu/README.md): the types, constants and functions
 * libich/backend/cuda/ uses, declared for C and C++, plus (in C++) what
 * kernel code needs: __global__ and friends, threadIdx and the others,
 * __syncthreads, dim3 and the launch that ICH_CUDA_LAUNCH expands to.
 * Implemented in tests/cuda_emu/emu_runtime.cpp. */
#ifndef ICH_CUDA_EMU_RUNTIME_H
#define ICH_CUDA_EMU_RUNTIME_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorNotReady = 600,
} cudaError_t;

typedef struct ich_emu_stream *cudaStream_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
};

#define cudaStreamNonBlocking 0x01

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
};

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
/* cudaSuccess when the stream's work is done: here it runs it first (the
 * emulated device keeps up), unless ich_emu_stall holds it. */
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaMalloc(void **pointer, size_t bytes);
cudaError_t cudaFree(void *pointer);
cudaError_t cudaMallocHost(void **pointer, size_t bytes);
cudaError_t cudaFreeHost(void *pointer);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t error);
const char *cudaGetErrorName(cudaError_t error);

/* ---- the emulator's own (for emu_dnn.cpp and emu_blas.cpp) ---------------- */

/* Device memory is readable by the host only between these brackets
 * (kernels, copies, cuDNN and cuBLAS calls; they nest), so host code that
 * touches device memory elsewhere faults at once, as it would on a GPU. */
void ich_emu_device_enter(void);
void ich_emu_device_leave(void);
/* 1 when [pointer, pointer + bytes) lies inside one live cudaMalloc block. */
int ich_emu_is_device(const void *pointer, size_t bytes);
/* Make the stream hang (1: cudaStreamQuery says cudaErrorNotReady, as
 * for a device kernel that waits for a dead peer) and go on again (0):
 * for the emulated NCCL (emu_nccl.cpp), whose aborted communicator ends
 * the hang. */
void ich_emu_stall(int on);
/* Report a misuse of the emulated API on stderr (the test's log) and make
 * it the runtime's sticky last error, so the caller's next check fails. */
void ich_emu_misuse(cudaError_t error, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}

/* ---- kernel code --------------------------------------------------------- */

#include <functional>

#define __global__
#define __device__
#define __host__
/* The threads of a block run one at a time on one host thread (see
 * ich_emu_launch): a function-level static is the block's shared memory. */
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* The running thread's coordinates (one launch at a time, process-wide). */
extern dim3 threadIdx, blockIdx, blockDim, gridDim;

void __syncthreads();

/* Queue work on the (one) stream: it runs, in order, when the host waits
 * (cudaStreamSynchronize, a copy to or from pageable memory, cudaFree), as
 * a GPU runs it later than the call that queued it. Copies to and from
 * pinned memory, kernels, cuDNN and cuBLAS calls are queued; so host code
 * that reads a result before waiting for it reads stale data here too. */
void ich_emu_enqueue(std::function<void()> work);

/* Queue `kernel` (a call of the kernel with its arguments, by value) for
 * every thread of every block, blocks in order. The first block's threads
 * run as coroutines that meet at each __syncthreads; when none of them
 * called it, the other blocks' threads run one after another (fast).
 * Checks the launch configuration as CUDA does, at once
 * (cudaErrorInvalidConfiguration). */
void ich_emu_launch(dim3 grid, dim3 block, std::function<void()> kernel);

/* What ICH_CUDA_LAUNCH(kernel, grid, block)(args...) becomes here. */
template <typename... Params> struct ich_emu_launcher {
    dim3 grid, block;
    void (*kernel)(Params...);
    template <typename... Args> void operator()(Args... args) const
    {
        void (*k)(Params...) = kernel;
        ich_emu_launch(grid, block, [=]() { k(args...); });
    }
};

template <typename... Params>
ich_emu_launcher<Params...> ich_emu_kernel(dim3 grid, dim3 block, void (*kernel)(Params...))
{
    return ich_emu_launcher<Params...>{grid, block, kernel};
}

#endif

#endif
