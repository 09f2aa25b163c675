/* Pooling on the GPU over NHWC activations, matching
 * libich/backend/cpu/pool.c (oneDNN there):
 *
 * max: the first maximum of the window in scan order (rows, then columns)
 *   wins ties, padding takes no part; a training forward keeps, per output,
 *   where its maximum came from (its index in the window), so backward needs
 *   neither the input nor the output. Backward is a gather (one thread per
 *   input value adds the gradients of the outputs that took it, in output
 *   order): deterministic, no atomics.
 * average: padding counted in the divisor (kernel rows x columns), as
 *   PyTorch's AvgPool2d default and oneDNN's avg_include_padding.
 * global average: one thread per (sample, channel) adds the positions in
 *   order, as the CPU's loop.
 *
 * Output sizes by PyTorch's floor rule; padding at most half the kernel
 * (so every window holds an input value). */
#include <stdlib.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/layers_kernels.h"

typedef struct pool_state {
    int32_t *argmax; /* max: per output, ky * kw + kx of its maximum (device) */
    size_t argmax_size;
    int argmax_valid; /* a training forward filled it for the current shapes */
} pool_state;

static ich_cuda_pool_geometry pool_geometry(const ich_layer *layer)
{
    const ich_layer_args *a = &layer->args;
    ich_cuda_pool_geometry g = {
        .n = layer->in[0].n,
        .h = layer->in[0].h,
        .w = layer->in[0].w,
        .c = layer->in[0].c,
        .oh = layer->out.h,
        .ow = layer->out.w,
        .kh = a->kernel[0],
        .kw = a->kernel[1],
        .sh = a->stride[0],
        .sw = a->stride[1],
        .ph = a->padding[0],
        .pw = a->padding[1],
    };
    return g;
}

static void pool_destroy(ich_layer *layer)
{
    pool_state *s = layer->state;
    if (s) {
        ich_cuda_free(s->argmax);
        free(s);
        layer->state = NULL;
    }
}

static ich_status pool_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cuda_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    layer->state = calloc(1, sizeof(pool_state));
    if (!layer->state)
        return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    return ICH_OK;
}

static ich_status pool_resize(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cuda_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    ((pool_state *)layer->state)->argmax_valid = 0;
    return ICH_OK;
}

/* ---- max pool -------------------------------------------------------------- */

static ich_status maxpool_forward(ich_layer *layer, const float *const *in, float *out,
                                  int training)
{
    pool_state *s = layer->state;
    const int64_t count = ich_shape_count(layer->out);
    ich_status status;
    s->argmax_valid = 0;
    if (count <= 0)
        return ICH_OK;
    /* inference keeps no workspace, as the CPU's inference primitive */
    if (training &&
        (status = ich_cuda_grow(layer, (void **)&s->argmax, &s->argmax_size,
                                (size_t)count * sizeof(int32_t))) != ICH_OK)
        return status;
    ich_cuda_k_maxpool_forward(out, training ? s->argmax : NULL, in[0], pool_geometry(layer));
    CHECK_LAUNCH("max pool forward");
    s->argmax_valid = training;
    return ICH_OK;
}

static ich_status maxpool_backward(ich_layer *layer, const float *const *in, const float *out,
                                   const float *grad_out, float *const *grad_in)
{
    pool_state *s = layer->state;
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    if (!s->argmax_valid)
        return cuda_fail(ICH_ERR_INVALID_ARGUMENT, "%s: backward without a training forward pass",
                         layer->name);
    if (ich_shape_count(layer->in[0]) <= 0)
        return ICH_OK;
    ich_cuda_k_maxpool_backward(grad_in[0], grad_out, s->argmax, pool_geometry(layer));
    CHECK_LAUNCH("max pool backward");
    return ICH_OK;
}

const ich_layer_ops ich_cuda_maxpool_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "maxpool",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = pool_create,
    .resize = pool_resize,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .destroy = pool_destroy,
};

/* ---- average pool ---------------------------------------------------------- */

static ich_status avgpool_forward(ich_layer *layer, const float *const *in, float *out,
                                  int training)
{
    if (ich_shape_count(layer->out) <= 0)
        return ICH_OK;
    ich_cuda_k_avgpool_forward(out, in[0], pool_geometry(layer));
    CHECK_LAUNCH("average pool forward");
    return ICH_OK;
}

static ich_status avgpool_backward(ich_layer *layer, const float *const *in, const float *out,
                                   const float *grad_out, float *const *grad_in)
{
    if (!grad_in || !grad_in[0] || ich_shape_count(layer->in[0]) <= 0)
        return ICH_OK;
    ich_cuda_k_avgpool_backward(grad_in[0], grad_out, pool_geometry(layer));
    CHECK_LAUNCH("average pool backward");
    return ICH_OK;
}

const ich_layer_ops ich_cuda_avgpool_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "avgpool",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = pool_create,
    .resize = pool_resize,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .destroy = pool_destroy,
};

/* ---- global average pool ---------------------------------------------------- */

static void nothing_destroy(ich_layer *layer)
{
    free(layer->state);
    layer->state = NULL;
}

static ich_status gap_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    const ich_shape I = layer->in[0];
    if (I.n <= 0)
        return ICH_OK;
    ich_cuda_k_gap_forward(out, in[0], I.n, (int64_t)I.h * I.w, I.c);
    CHECK_LAUNCH("global average pool forward");
    return ICH_OK;
}

static ich_status gap_backward(ich_layer *layer, const float *const *in, const float *out,
                               const float *grad_out, float *const *grad_in)
{
    const ich_shape I = layer->in[0];
    if (!grad_in || !grad_in[0] || I.n <= 0)
        return ICH_OK;
    ich_cuda_k_gap_backward(grad_in[0], grad_out, I.n, (int64_t)I.h * I.w, I.c);
    CHECK_LAUNCH("global average pool backward");
    return ICH_OK;
}

const ich_layer_ops ich_cuda_gap_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "gap",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = ich_cuda_shape,
    .resize = ich_cuda_shape,
    .forward = gap_forward,
    .backward = gap_backward,
    .destroy = nothing_destroy,
};
