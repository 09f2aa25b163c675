/* Parameters of the CUDA plugin's layers: pinned host memory (the master
 * copy, see libich/backend/backend.h), device mirrors refreshed by version,
 * gradients added back to the host; and the fused ReLU's mask. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"

ich_status ich_cuda_params_alloc(ich_layer *layer, int32_t count)
{
    layer->params = calloc((size_t)count, sizeof *layer->params);
    if (!layer->params)
        return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for parameters", layer->name);
    layer->nparams = count;
    return ICH_OK;
}

ich_status ich_cuda_shape(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    return ich_layer_shape(layer, in, out, ich_cuda_host->fail);
}

/* Zeroed pinned memory: copies from it run at full bus speed. */
static void *pinned_calloc(size_t bytes)
{
    void *pointer = NULL;
    if (cudaMallocHost(&pointer, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    memset(pointer, 0, bytes);
    return pointer;
}

ich_status ich_cuda_param_init(ich_param *param, const char *name, ich_dtype dtype, int32_t ndim,
                               const int64_t *dims, int trainable)
{
    int64_t count = ich_param_describe(param, name, dtype, ndim, dims, trainable);
    size_t element = dtype == ICH_DTYPE_I64 ? sizeof(int64_t) : sizeof(float);
    param->data = pinned_calloc((size_t)count * element);
    if (trainable)
        param->grad = pinned_calloc((size_t)count * sizeof(float));
    if (!param->data || (trainable && !param->grad))
        return cuda_fail(ICH_ERR_NO_MEMORY, "out of pinned host memory for parameter %s", name);
    return ICH_OK;
}

void ich_cuda_params_free(ich_layer *layer)
{
    for (int32_t i = 0; i < layer->nparams; i++) {
        cudaFreeHost(layer->params[i].data);
        cudaFreeHost(layer->params[i].grad);
    }
    free(layer->params);
    layer->params = NULL;
    layer->nparams = 0;
}

ich_status ich_cuda_mirror_sync(const ich_layer *layer, const ich_param *param,
                                ich_cuda_mirror *mirror)
{
    int64_t count = ich_param_count(param);
    if (!mirror->device || mirror->count != count) {
        ich_cuda_free(mirror->device);
        mirror->device = ich_cuda_alloc((size_t)count * sizeof(float));
        mirror->count = mirror->device ? count : 0;
        mirror->valid = 0;
        if (!mirror->device)
            return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of GPU memory for %s", layer->name,
                             param->name);
    }
    if (mirror->valid && mirror->version == param->version)
        return ICH_OK;
    /* Asynchronous from pinned memory: the host copy changes only between
     * steps (optimizer, loading), after the stream has been waited for. */
    CHECK_CUDA(cudaMemcpyAsync(mirror->device, param->data, (size_t)count * sizeof(float),
                               cudaMemcpyHostToDevice, ich_cuda_stream()),
               "parameter upload");
    mirror->version = param->version;
    mirror->valid = 1;
    return ICH_OK;
}

void ich_cuda_mirror_mark(const ich_param *param, ich_cuda_mirror *mirror)
{
    mirror->version = param->version;
    mirror->valid = mirror->device != NULL;
}

void ich_cuda_mirror_free(ich_cuda_mirror *mirror)
{
    ich_cuda_free(mirror->device);
    memset(mirror, 0, sizeof *mirror);
}

/* Results the host finishes after the stream is waited for: each a copy
 * queued from the device into one pinned arena and a function that takes
 * it from there (add a gradient, update running statistics). A backward
 * pass queues all its parameter gradients and waits once, in
 * ich_cuda_synchronize, not once per parameter. */
typedef struct pending {
    ich_cuda_finish_fn finish;
    void *target;
    size_t offset; /* in floats, into the arena */
    int64_t count;
} pending;

static struct {
    pthread_mutex_t lock;
    float *arena; /* pinned */
    size_t capacity, used; /* floats */
    pending *items;
    size_t count, size;
} g_pending = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, NULL, 0, 0};

/* Wait for the stream, then run and forget the pending items. Called with
 * the lock held. */
static ich_status finish_pending(void)
{
    const ich_layer *layer = NULL;
    cudaError_t error = cudaStreamSynchronize(ich_cuda_stream());
    if (error == cudaSuccess)
        for (size_t i = 0; i < g_pending.count; i++) {
            pending *p = &g_pending.items[i];
            p->finish(p->target, g_pending.arena + p->offset, p->count);
        }
    g_pending.count = 0;
    g_pending.used = 0;
    CHECK_CUDA(error, "synchronize");
    return ICH_OK;
}

ich_status ich_cuda_synchronize(void)
{
    pthread_mutex_lock(&g_pending.lock);
    ich_status status = finish_pending();
    pthread_mutex_unlock(&g_pending.lock);
    return status;
}

/* Room for `count` more floats in the arena and one more item (finishing
 * what is pending first when the arena must move). */
static ich_status reserve(const ich_layer *layer, int64_t count)
{
    size_t want = g_pending.used + (size_t)count;
    if (want > g_pending.capacity) {
        ich_status status = finish_pending();
        if (status)
            return status;
        size_t capacity = g_pending.capacity * 2 > (size_t)count ? g_pending.capacity * 2
                                                                 : (size_t)count;
        capacity = capacity < 65536 ? 65536 : capacity;
        cudaFreeHost(g_pending.arena);
        g_pending.capacity = 0;
        /* pinned allocations cost milliseconds: grown by doubling, kept */
        if (cudaMallocHost((void **)&g_pending.arena, capacity * sizeof(float)) != cudaSuccess) {
            cudaGetLastError();
            g_pending.arena = NULL;
            return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of pinned host memory (%zu bytes)",
                             layer->name, capacity * sizeof(float));
        }
        g_pending.capacity = capacity;
    }
    if (g_pending.count == g_pending.size) {
        size_t size = g_pending.size ? 2 * g_pending.size : 64;
        pending *grown = realloc(g_pending.items, size * sizeof *grown);
        if (!grown)
            return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
        g_pending.items = grown;
        g_pending.size = size;
    }
    return ICH_OK;
}

ich_status ich_cuda_finish_later(const ich_layer *layer, const float *device, int64_t count,
                                 ich_cuda_finish_fn finish, void *target)
{
    pthread_mutex_lock(&g_pending.lock);
    ich_status status = reserve(layer, count);
    if (status == ICH_OK) {
        float *slot = g_pending.arena + g_pending.used;
        cudaError_t error = cudaMemcpyAsync(slot, device, (size_t)count * sizeof(float),
                                            cudaMemcpyDeviceToHost, ich_cuda_stream());
        if (error == cudaSuccess) {
            g_pending.items[g_pending.count++] = (pending){finish, target, g_pending.used, count};
            g_pending.used += ((size_t)count + 15) / 16 * 16; /* 64-byte slots */
        } else {
            status = ich_cuda_error(layer, "download", error);
        }
    }
    pthread_mutex_unlock(&g_pending.lock);
    return status;
}

typedef struct add_job {
    float *grad;
    const float *from;
} add_job;

static void add_range(void *context, int64_t begin, int64_t end)
{
    const add_job *job = context;
    float *restrict grad = job->grad; /* restrict: vectorised (params.c is -O3) */
    const float *restrict from = job->from;
    for (int64_t i = begin; i < end; i++)
        grad[i] += from[i];
}

/* On libich's CPU threads: millions of values a step for big layers. */
static void add_gradient(void *target, const float *host, int64_t count)
{
    add_job job = {((ich_param *)target)->grad, host};
    ich_cuda_host->parallel(count, add_range, &job);
}

ich_status ich_cuda_grad_add(const ich_layer *layer, ich_param *param, const float *device_grad)
{
    if (param->frozen || !param->grad)
        return ICH_OK;
    return ich_cuda_finish_later(layer, device_grad, ich_param_count(param), add_gradient, param);
}

ich_status ich_cuda_relu_fused(const ich_layer *layer, ich_cuda_relu_mask *mask, float *out,
                               int64_t count)
{
    if (mask && mask->capacity < (size_t)count) {
        ich_cuda_free(mask->bytes);
        mask->bytes = ich_cuda_alloc((size_t)count);
        mask->capacity = mask->bytes ? (size_t)count : 0;
        if (!mask->bytes)
            return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of GPU memory for a ReLU mask",
                             layer->name);
    }
    ich_cuda_k_relu_fused(out, mask ? mask->bytes : NULL, count);
    CHECK_LAUNCH("fused ReLU");
    return ICH_OK;
}

ich_status ich_cuda_relu_mask_apply(const ich_layer *layer, const ich_cuda_relu_mask *mask,
                                    float *grad, int64_t count)
{
    ich_cuda_k_mask_apply(grad, mask->bytes, count);
    CHECK_LAUNCH("fused ReLU backward");
    return ICH_OK;
}

void ich_cuda_relu_mask_free(ich_cuda_relu_mask *mask)
{
    ich_cuda_free(mask->bytes);
    mask->bytes = NULL;
    mask->capacity = 0;
}
