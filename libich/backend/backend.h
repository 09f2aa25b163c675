/* Internal: the backend interface, shared by libich and its plugins.
 *
 * A backend supplies the layer implementations (libich/nn/layer.h) and its
 * memory. The CPU backend (oneDNN for convolution, pooling and batch norm;
 * OpenBLAS for matrix products) is built in. The CUDA backend is a plugin,
 * libich-cuda.so (libich/backend/cuda/), loaded with dlopen by
 * libich/backend/plugin.c; it exports one function, ICH_BACKEND_PLUGIN_ENTRY,
 * that returns this table. The model graph talks to a backend only through
 * this table, so the optimizers, checkpoints and training driver run
 * unchanged on either.
 *
 * Memory. Activations and their gradients live in backend memory (device
 * memory on CUDA): the model allocates them with alloc and reaches them
 * from the host only through to_device / to_host / accumulate, unless
 * host_memory says backend memory is host memory. Parameters, their
 * gradients and buffers (ich_param) live in HOST memory on every backend,
 * in PyTorch's layout: they are the master copy the optimizer updates and
 * checkpoints save. A device backend keeps its own copy of each parameter,
 * refreshed when ich_param.version changes, and adds its parameter
 * gradients into ich_param.grad by the end of the model's backward pass
 * (synchronize: a device backend queues the copies, so the device does not
 * wait for the host once per layer). This costs one small copy each way
 * per step (the tutorial ConvNet has 0.6 M
 * parameters, 2.5 MB) and keeps the optimizers (bit-exact with PyTorch),
 * freezing, tensor views and checkpoints identical on every backend.
 *
 * Version: ICH_BACKEND_INTERFACE_VERSION changes whenever this table, the
 * host services or the layer interface change; libich refuses a plugin
 * built for another version (with a message naming both numbers).
 */
#ifndef ICH_INTERNAL_BACKEND_H
#define ICH_INTERNAL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "nn/layer.h"

#define ICH_BACKEND_INTERFACE_VERSION 3

typedef struct ich_backend {
    uint32_t interface_version; /* ICH_BACKEND_INTERFACE_VERSION */
    const char *name;           /* "cpu", "cuda" */
    int host_memory;            /* 1: alloc returns host memory the model may touch */

    /* Memory: 64-byte aligned (256 on CUDA); free(NULL) is a no-op. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *pointer);
    /* Copies between host and backend memory (memcpy on the CPU). Both
     * return when the copy is complete (to_device may read src no more). */
    ich_status (*to_device)(void *dst, const void *src, size_t bytes);
    ich_status (*to_host)(void *dst, const void *src, size_t bytes);
    /* acc[i] += x[i] for i < count, both in backend memory. */
    ich_status (*accumulate)(float *acc, const float *x, int64_t count);
    /* Optional (NULL: the model reorders on the host, then to_device):
     * host NCHW images into backend memory as NHWC, n x h x w x c. From
     * host_alloc memory it may return before src has been read: the
     * caller keeps src unchanged until synchronize. */
    ich_status (*upload_nchw)(float *dst, const float *src, int32_t n, int32_t c, int32_t h,
                              int32_t w);
    /* Optional (NULL: malloc and free): host memory that to_device and
     * upload_nchw read fastest (pinned on CUDA: a copy from it is a plain
     * DMA, and it does not wait for the host). For buffers filled every
     * step, as the training driver's batches. */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *pointer);
    /* Optional (NULL: nothing is ever pending): wait for the backend's
     * queued work and finish what layers left for the host (parameter
     * gradients added into ich_param.grad, batch-norm running statistics).
     * The model calls it at the end of every forward and backward pass,
     * failed ones included, so host copies are right when they return. */
    ich_status (*synchronize)(void);

    /* The implementation of a layer kind, or NULL when unknown. */
    const ich_layer_ops *(*layer)(const char *kind);

    /* Threads used by the backend's host-side kernels (0: one per CPU). */
    void (*set_threads)(int threads);
    int (*threads)(void);

    /* C = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when t*
     * is 1, all in backend memory. */
    void (*gemm)(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

    /* One line on what runs: "cpu: 2 threads, oneDNN 2.6.3", "cuda: NVIDIA
     * H100 (sm_90, 80 GiB), cuDNN 9.x". Never NULL. */
    const char *(*describe)(void);
} ich_backend;

/* What libich gives a plugin: its error and log functions, its CPU
 * threads (a plugin links nothing of libich) and the interface version
 * libich was built with. */
typedef struct ich_plugin_host {
    uint32_t interface_version;
    /* Set the calling thread's error message and return `status`. */
    ich_status (*fail)(ich_status status, const char *fmt, ...);
    void (*log)(ich_log_level level, const char *fmt, ...);
    /* fn(context, begin, end) over [0, count) in contiguous ranges on the
     * CPU backend's threads (ich_set_threads), for host-side loops. */
    void (*parallel)(int64_t count, void (*fn)(void *context, int64_t begin, int64_t end),
                     void *context);
} ich_plugin_host;

/* The plugin's one exported function. It stores the interface version it
 * was built for in *plugin_version first; when that differs from
 * host->interface_version it returns NULL without touching anything else.
 * Otherwise it starts the backend (finds a device, creates its handles) and
 * returns its table, or NULL after host->fail() with the reason (no device,
 * no driver). Called once per process by libich. */
#define ICH_BACKEND_PLUGIN_ENTRY "ich_backend_plugin"
typedef const ich_backend *(*ich_backend_plugin_fn)(const ich_plugin_host *host,
                                                    uint32_t *plugin_version);

/* The built-in CPU backend. */
const ich_backend *ich_backend_cpu(void);

/* The backend new models use: chosen by ich_backend_select(), else by the
 * ICH_BACKEND environment variable (auto|cpu|cuda, default auto) on first
 * use. Fails (with the reason) only when a backend that cannot start was
 * asked for by name. */
ich_status ich_backend_get(const ich_backend **out);

/* The backend new models use, falling back to the CPU when
 * ich_backend_get fails (for calls that cannot report an error). */
const ich_backend *ich_backend_current(void);

/* Load the named plugin backend ("cuda"): libich-<name>.so beside libich.so,
 * in the folders of ICH_PLUGIN_PATH, then on the dlopen search path. Loaded
 * once per process; later calls return the same table or the same error.
 * *path receives the file that was loaded (or the last one tried). */
ich_status ich_backend_plugin_load(const char *name, const ich_backend **out, const char **path);

#endif
