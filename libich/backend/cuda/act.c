/* The CUDA plugin's activations SiLU, GELU (erf form) and sigmoid, and the
 * per-channel multiply ("mul") of the scale block (squeeze-and-excitation),
 * on NHWC activations in device memory. Same shapes, flags and formulas as
 * libich/backend/cpu/act.c; the kernels are in act_kernels.cu. */
#include <stdlib.h>

#include "backend/cuda/act_kernels.h"
#include "backend/cuda/cuda_backend.h"

static void act_destroy(ich_layer *layer)
{
    free(layer->state);
    layer->state = NULL;
}

static ich_status act_forward(ich_layer *layer, ich_cuda_act act, const float *x, float *y)
{
    int64_t count = ich_shape_count(layer->out);
    if (count <= 0)
        return ICH_OK;
    ich_cuda_k_act_forward(act, y, x, count);
    CHECK_LAUNCH("activation forward");
    return ICH_OK;
}

static ich_status act_backward(ich_layer *layer, ich_cuda_act act, const float *v,
                               const float *grad_out, float *const *grad_in)
{
    int64_t count = ich_shape_count(layer->out);
    if (!grad_in || !grad_in[0] || count <= 0)
        return ICH_OK;
    ich_cuda_k_act_backward(act, grad_in[0], v, grad_out, count);
    CHECK_LAUNCH("activation backward");
    return ICH_OK;
}

static ich_status silu_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    (void)training;
    return act_forward(layer, ICH_CUDA_SILU, in[0], out);
}

static ich_status silu_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    (void)out;
    return act_backward(layer, ICH_CUDA_SILU, in[0], grad_out, grad_in);
}

static ich_status gelu_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    (void)training;
    return act_forward(layer, ICH_CUDA_GELU, in[0], out);
}

static ich_status gelu_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    (void)out;
    return act_backward(layer, ICH_CUDA_GELU, in[0], grad_out, grad_in);
}

static ich_status sigmoid_forward(ich_layer *layer, const float *const *in, float *out,
                                  int training)
{
    (void)training;
    return act_forward(layer, ICH_CUDA_SIGMOID, in[0], out);
}

static ich_status sigmoid_backward(ich_layer *layer, const float *const *in, const float *out,
                                   const float *grad_out, float *const *grad_in)
{
    (void)in;
    return act_backward(layer, ICH_CUDA_SIGMOID, out, grad_out, grad_in);
}

const ich_layer_ops ich_cuda_silu_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "silu",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 1,
    .create = ich_cuda_shape,
    .resize = ich_cuda_shape,
    .forward = silu_forward,
    .backward = silu_backward,
    .destroy = act_destroy,
};

const ich_layer_ops ich_cuda_gelu_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "gelu",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 1,
    .create = ich_cuda_shape,
    .resize = ich_cuda_shape,
    .forward = gelu_forward,
    .backward = gelu_backward,
    .destroy = act_destroy,
};

const ich_layer_ops ich_cuda_sigmoid_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "sigmoid",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 1,
    .in_place = 1,
    .create = ich_cuda_shape,
    .resize = ich_cuda_shape,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
    .destroy = act_destroy,
};

/* ---- mul: y[n, p, c] = x[n, p, c] * s[n, c] ------------------------------ */

static ich_status mul_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    (void)training;
    const ich_shape I = layer->in[0];
    if (ich_shape_count(I) <= 0)
        return ICH_OK;
    ich_cuda_k_mul_channels(out, in[0], in[1], I.n, (int64_t)I.h * I.w, I.c);
    CHECK_LAUNCH("mul forward");
    return ICH_OK;
}

static ich_status mul_backward(ich_layer *layer, const float *const *in, const float *out,
                               const float *grad_out, float *const *grad_in)
{
    (void)out;
    const ich_shape I = layer->in[0];
    if (!grad_in || ich_shape_count(I) <= 0)
        return ICH_OK;
    const int64_t hw = (int64_t)I.h * I.w;
    if (grad_in[1]) {
        ich_cuda_k_mul_factor_grad(grad_in[1], grad_out, in[0], I.n, hw, I.c);
        CHECK_LAUNCH("mul backward (factors)");
    }
    if (grad_in[0]) {
        ich_cuda_k_mul_channels(grad_in[0], grad_out, in[1], I.n, hw, I.c);
        CHECK_LAUNCH("mul backward");
    }
    return ICH_OK;
}

const ich_layer_ops ich_cuda_mul_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "mul",
    .inputs = 2,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = ich_cuda_shape,
    .resize = ich_cuda_shape,
    .forward = mul_forward,
    .backward = mul_backward,
    .destroy = act_destroy,
};
