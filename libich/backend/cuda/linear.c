/* Fully connected layer on the GPU with cuBLAS, matching
 * libich/backend/cpu/linear.c: y[n, out] = x[n, in] W^T + b, W [out, in]
 * row-major on the host.
 *
 * cuBLAS is column-major: a row-major [r, c] matrix is its column-major
 * [c, r] transpose, so y^T = W x^T is gemm(T, N) on W and x as stored,
 * dx^T = W^T dy^T is gemm(N, N), dW^T = x^T dy is gemm(N, T). */
#include <stdlib.h>

#include "backend/cuda/cuda_backend.h"

typedef struct linear_state {
    ich_cuda_mirror weight, bias;
    float *grad_w, *grad_b; /* backward scratch */
    ich_cuda_relu_mask mask;
    int mask_valid;
} linear_state;

static int64_t in_features(const ich_layer *layer)
{
    return (int64_t)layer->in[0].h * layer->in[0].w * layer->in[0].c;
}

static void linear_destroy(ich_layer *layer)
{
    linear_state *s = layer->state;
    if (s) {
        ich_cuda_mirror_free(&s->weight);
        ich_cuda_mirror_free(&s->bias);
        ich_cuda_free(s->grad_w);
        ich_cuda_free(s->grad_b);
        ich_cuda_relu_mask_free(&s->mask);
        free(s);
        layer->state = NULL;
    }
    ich_cuda_params_free(layer);
}

static ich_status linear_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cuda_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    linear_state *s = calloc(1, sizeof *s);
    layer->state = s;
    if (!s)
        return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    int64_t w_dims[2] = {out->c, in_features(layer)};
    int64_t b_dims[1] = {out->c};
    if ((status = ich_cuda_params_alloc(layer, layer->args.bias ? 2 : 1)) ||
        (status = ich_cuda_param_init(&layer->params[0], "weight", ICH_DTYPE_F32, 2, w_dims, 1)) ||
        (layer->args.bias &&
         (status = ich_cuda_param_init(&layer->params[1], "bias", ICH_DTYPE_F32, 1, b_dims, 1))))
        goto fail;
    s->grad_w = ich_cuda_alloc((size_t)(w_dims[0] * w_dims[1]) * sizeof(float));
    s->grad_b = ich_cuda_alloc((size_t)out->c * sizeof(float));
    if (s->grad_w && s->grad_b)
        return ICH_OK;
    status = cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of GPU memory for the weights", layer->name);
fail:
    linear_destroy(layer);
    return status;
}

static ich_status linear_resize(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ((linear_state *)layer->state)->mask_valid = 0;
    return ich_cuda_shape(layer, in, out);
}

static ich_status sync_weights(ich_layer *layer)
{
    linear_state *s = layer->state;
    ich_status status = ich_cuda_mirror_sync(layer, &layer->params[0], &s->weight);
    if (!status && layer->args.bias)
        status = ich_cuda_mirror_sync(layer, &layer->params[1], &s->bias);
    return status;
}

static ich_status linear_forward(ich_layer *layer, const float *const *in, float *out,
                                 int training)
{
    linear_state *s = layer->state;
    int n = layer->in[0].n, k = (int)in_features(layer), m = layer->out.c;
    ich_status status = sync_weights(layer);
    if (status)
        return status;
    const float one = 1.0f, zero = 0.0f;
    CHECK_CUBLAS(cublasSgemm(ich_cuda_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one,
                             s->weight.device, k, in[0], k, &zero, out, m),
                 "linear forward");
    if (layer->args.bias) {
        ich_cuda_k_bias_add(out, s->bias.device, n, m);
        CHECK_LAUNCH("bias");
    }
    s->mask_valid = 0;
    if (layer->args.fuse_relu) {
        status = ich_cuda_relu_fused(layer, training ? &s->mask : NULL, out, (int64_t)n * m);
        s->mask_valid = training && !status;
    }
    return status;
}

static ich_status linear_backward(ich_layer *layer, const float *const *in, const float *out,
                                  const float *grad_out, float *const *grad_in)
{
    linear_state *s = layer->state;
    int n = layer->in[0].n, k = (int)in_features(layer), m = layer->out.c;
    cublasHandle_t h = ich_cuda_cublas();
    const float one = 1.0f, zero = 0.0f;
    ich_status status = ICH_OK;
    if (layer->args.fuse_relu) {
        if (!s->mask_valid)
            return cuda_fail(ICH_ERR_INVALID_ARGUMENT,
                             "%s: backward without a training forward pass", layer->name);
        if ((status = ich_cuda_relu_mask_apply(layer, &s->mask, (float *)grad_out,
                                               (int64_t)n * m)))
            return status;
    }
    if ((status = sync_weights(layer)))
        return status;
    if (grad_in && grad_in[0])
        CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, k, n, m, &one, s->weight.device, k,
                                 grad_out, m, &zero, grad_in[0], k),
                     "linear backward data");
    ich_param *w = &layer->params[0];
    if (!w->frozen) {
        CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, k, m, n, &one, in[0], k, grad_out, m,
                                 &zero, s->grad_w, k),
                     "linear backward weights");
        if ((status = ich_cuda_grad_add(layer, w, s->grad_w)))
            return status;
    }
    if (layer->args.bias && !layer->params[1].frozen) {
        ich_cuda_k_column_sum(s->grad_b, grad_out, n, m);
        CHECK_LAUNCH("bias gradient");
        status = ich_cuda_grad_add(layer, &layer->params[1], s->grad_b);
    }
    return status;
}

const ich_layer_ops ich_cuda_linear_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "linear",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = linear_create,
    .resize = linear_resize,
    .forward = linear_forward,
    .backward = linear_backward,
    .destroy = linear_destroy,
};
