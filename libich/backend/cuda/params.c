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

/* One pinned staging buffer for gradient downloads, grown as needed (pinned
 * allocations cost milliseconds: not one per step). */
static struct {
    pthread_mutex_t lock;
    float *data;
    size_t bytes;
} g_staging = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

ich_status ich_cuda_grad_add(const ich_layer *layer, ich_param *param, const float *device_grad)
{
    if (param->frozen || !param->grad)
        return ICH_OK;
    int64_t count = ich_param_count(param);
    size_t bytes = (size_t)count * sizeof(float);
    pthread_mutex_lock(&g_staging.lock);
    if (g_staging.bytes < bytes) {
        cudaFreeHost(g_staging.data);
        g_staging.data = NULL;
        g_staging.bytes = 0;
        if (cudaMallocHost((void **)&g_staging.data, bytes) != cudaSuccess) {
            cudaGetLastError();
            g_staging.data = NULL;
            pthread_mutex_unlock(&g_staging.lock);
            return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of pinned memory for %s's gradient",
                             layer->name, param->name);
        }
        g_staging.bytes = bytes;
    }
    ich_status st = ich_cuda_download(layer, g_staging.data, device_grad, bytes);
    for (int64_t i = 0; !st && i < count; i++)
        param->grad[i] += g_staging.data[i];
    pthread_mutex_unlock(&g_staging.lock);
    return st;
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
