/* The CUDA plugin's memory-bound layers without parameters: ReLU, dropout,
 * flatten, residual add and channel concatenation, on NHWC activations in
 * device memory. Same shapes, flags and formulas as
 * libich/backend/cpu/simple.c; the kernels are in layers_kernels.cu. */
#include <stdlib.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/layers_kernels.h"

static void nothing_destroy(ich_layer *layer)
{
    free(layer->state);
    layer->state = NULL;
}

/* dst = src (device, on the stream) unless they are the same buffer. */
static ich_status copy_unless_same(const ich_layer *layer, float *dst, const float *src,
                                   int64_t count)
{
    if (dst == src || count <= 0)
        return ICH_OK;
    CHECK_CUDA(cudaMemcpyAsync(dst, src, (size_t)count * sizeof(float), cudaMemcpyDeviceToDevice,
                               ich_cuda_stream()),
               "copy");
    return ICH_OK;
}

/* ---- ReLU ---------------------------------------------------------------- */

static ich_status relu_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    ich_cuda_k_relu_forward(out, in[0], ich_shape_count(layer->out));
    CHECK_LAUNCH("relu forward");
    return ICH_OK;
}

static ich_status relu_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    ich_cuda_k_relu_backward(grad_in[0], out, grad_out, ich_shape_count(layer->out));
    CHECK_LAUNCH("relu backward");
    return ICH_OK;
}

const ich_layer_ops ich_cuda_relu_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "relu",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 1,
    .in_place = 1,
    .create = ich_cuda_shape,
    .resize = ich_cuda_shape,
    .forward = relu_forward,
    .backward = relu_backward,
    .destroy = nothing_destroy,
};

/* ---- dropout ------------------------------------------------------------- */

/* As on the CPU the mask is not stored: backward draws it again from
 * (seed, step, sample) with the CPU's generator (layers_kernels.h), so both
 * backends drop the same values for the same seed and step. */
typedef struct dropout_state {
    uint64_t step; /* the step of the last training forward */
    int trained;   /* the last forward was a training one */
} dropout_state;

static ich_status dropout_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cuda_shape(layer, in, out);
    if (status)
        return status;
    layer->state = calloc(1, sizeof(dropout_state));
    if (!layer->state)
        return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    return ICH_OK;
}

/* y = x * mask / (1 - p), sample by sample (dropped values are exact zeros). */
static ich_status dropout_apply(ich_layer *layer, uint64_t step, const float *x, float *y)
{
    const int64_t count = ich_shape_count(layer->out);
    if (count <= 0)
        return ICH_OK;
    const int64_t per_sample = count / layer->out.n;
    const double p = layer->args.p;
    const float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    ich_cuda_k_dropout(y, x, count, per_sample, layer->seed, step, p, scale);
    CHECK_LAUNCH("dropout");
    return ICH_OK;
}

static ich_status dropout_forward(ich_layer *layer, const float *const *in, float *out,
                                  int training)
{
    dropout_state *s = layer->state;
    s->trained = training;
    if (!training)
        return copy_unless_same(layer, out, in[0], ich_shape_count(layer->out));
    s->step = layer->step++;
    return dropout_apply(layer, s->step, in[0], out);
}

static ich_status dropout_backward(ich_layer *layer, const float *const *in, const float *out,
                                   const float *grad_out, float *const *grad_in)
{
    dropout_state *s = layer->state;
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    if (!s->trained)
        return copy_unless_same(layer, grad_in[0], grad_out, ich_shape_count(layer->out));
    return dropout_apply(layer, s->step, grad_out, grad_in[0]);
}

const ich_layer_ops ich_cuda_dropout_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "dropout",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 1,
    .create = dropout_create,
    .resize = ich_cuda_shape,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .destroy = nothing_destroy,
};

/* ---- flatten ------------------------------------------------------------- */

static ich_status flatten_forward(ich_layer *layer, const float *const *in, float *out,
                                  int training)
{
    const ich_shape I = layer->in[0];
    const int64_t hw = (int64_t)I.h * I.w;
    if (hw == 1 || I.c == 1) /* the two orders are the same */
        return copy_unless_same(layer, out, in[0], ich_shape_count(I));
    ich_cuda_k_flatten_forward(out, in[0], I.n, hw, I.c);
    CHECK_LAUNCH("flatten forward");
    return ICH_OK;
}

static ich_status flatten_backward(ich_layer *layer, const float *const *in, const float *out,
                                   const float *grad_out, float *const *grad_in)
{
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    const ich_shape I = layer->in[0];
    const int64_t hw = (int64_t)I.h * I.w;
    if (hw == 1 || I.c == 1)
        return copy_unless_same(layer, grad_in[0], grad_out, ich_shape_count(I));
    ich_cuda_k_flatten_backward(grad_in[0], grad_out, I.n, hw, I.c);
    CHECK_LAUNCH("flatten backward");
    return ICH_OK;
}

const ich_layer_ops ich_cuda_flatten_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "flatten",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = ich_cuda_shape,
    .resize = ich_cuda_shape,
    .forward = flatten_forward,
    .backward = flatten_backward,
    .destroy = nothing_destroy,
};

/* ---- residual add -------------------------------------------------------- */

static ich_status add_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    ich_cuda_k_add(out, in[0], in[1], ich_shape_count(layer->out));
    CHECK_LAUNCH("add forward");
    return ICH_OK;
}

static ich_status add_backward(ich_layer *layer, const float *const *in, const float *out,
                               const float *grad_out, float *const *grad_in)
{
    const int64_t count = ich_shape_count(layer->out);
    ich_status status = ICH_OK;
    for (int i = 0; i < 2 && grad_in && status == ICH_OK; i++)
        if (grad_in[i])
            status = copy_unless_same(layer, grad_in[i], grad_out, count);
    return status;
}

const ich_layer_ops ich_cuda_add_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "add",
    .inputs = 2,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 1,
    .create = ich_cuda_shape,
    .resize = ich_cuda_shape,
    .forward = add_forward,
    .backward = add_backward,
    .destroy = nothing_destroy,
};

/* ---- channel concatenation ----------------------------------------------- */

static ich_status concat_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    const int32_t c0 = layer->in[0].c, c1 = layer->in[1].c, c = c0 + c1;
    if (c <= 0)
        return ICH_OK;
    const int64_t rows = ich_shape_count(layer->out) / c;
    ich_cuda_k_concat_forward(out, in[0], in[1], rows, c0, c1);
    CHECK_LAUNCH("concat forward");
    return ICH_OK;
}

static ich_status concat_backward(ich_layer *layer, const float *const *in, const float *out,
                                  const float *grad_out, float *const *grad_in)
{
    const int32_t cs[2] = {layer->in[0].c, layer->in[1].c}, c = cs[0] + cs[1];
    if (c <= 0)
        return ICH_OK;
    const int64_t rows = ich_shape_count(layer->out) / c;
    for (int i = 0; i < 2 && grad_in; i++) {
        if (!grad_in[i] || cs[i] <= 0)
            continue;
        ich_cuda_k_concat_backward(grad_in[i], grad_out, rows, c, i ? cs[0] : 0, cs[i]);
        CHECK_LAUNCH("concat backward");
    }
    return ICH_OK;
}

const ich_layer_ops ich_cuda_concat_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "concat",
    .inputs = 2,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = ich_cuda_shape,
    .resize = ich_cuda_shape,
    .forward = concat_forward,
    .backward = concat_backward,
    .destroy = nothing_destroy,
};
