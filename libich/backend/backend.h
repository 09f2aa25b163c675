/* Internal: the backend interface.
 *
 * A backend supplies the layer implementations (libich/nn/layer.h), the
 * elementwise kernels of the loss and the optimizers, and its memory. The
 * CPU backend (oneDNN for convolution, pooling and batch norm; OpenBLAS for
 * matrix products) is built in; a CUDA backend will be a plugin exporting
 * the same table. The model graph, the checkpoints and the optimizers only
 * talk to a backend through this table, so adding one touches none of them.
 *
 * Memory: on the CPU backend, device memory is host memory. The model and
 * optimizer pass parameter and activation pointers they got from
 * backend->alloc.
 */
#ifndef ICH_INTERNAL_BACKEND_H
#define ICH_INTERNAL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "nn/layer.h"

#define ICH_BACKEND_INTERFACE_VERSION 1

typedef struct ich_backend {
    uint32_t interface_version; /* ICH_BACKEND_INTERFACE_VERSION */
    const char *name;           /* "cpu", "cuda" */

    /* Memory: 64-byte aligned; free(NULL) is a no-op. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *pointer);
    /* Copies between host and backend memory (memcpy on the CPU). */
    ich_status (*to_device)(void *dst, const void *src, size_t bytes);
    ich_status (*to_host)(void *dst, const void *src, size_t bytes);

    /* The implementation of a layer kind, or NULL when unknown. */
    const ich_layer_ops *(*layer)(const char *kind);

    /* Threads used by the backend's kernels (0: one per CPU). */
    void (*set_threads)(int threads);
    int (*threads)(void);

    /* C = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when t*
     * is 1. */
    void (*gemm)(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
} ich_backend;

/* The built-in CPU backend. */
const ich_backend *ich_backend_cpu(void);

/* The backend models use (the CPU backend until a plugin is selected). */
const ich_backend *ich_backend_current(void);

#endif
