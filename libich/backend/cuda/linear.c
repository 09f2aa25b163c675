/* Fully connected layer on the GPU with cuBLAS, matching
 * libich/backend/cpu/linear.c: y[r, out] = x[r, in] W^T + b, W [out, in]
 * row-major on the host. Kind "linear": one row per sample (h*w*c
 * features); kind "pointwise_linear": one row per position of the NHWC
 * tensor (c features), nn.Linear on each position's channels (ConvNeXt).
 *
 * cuBLAS is column-major: a row-major [r, c] matrix is its column-major
 * [c, r] transpose, so y^T = W x^T is gemm(T, N) on W and x as stored,
 * dx^T = W^T dy^T is gemm(N, N), dW^T = x^T dy is gemm(N, T). The
 * pointwise bias gradient (a column sum over many rows) is dy^T ones, a
 * gemm(N, N) with a column of ones. */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"

typedef struct linear_state {
    ich_cuda_mirror weight, bias;
    float *grad_w, *grad_b; /* backward scratch */
    ich_cuda_relu_mask mask;
    int mask_valid;
    float *ones; /* pointwise: a column of ones (device), ones_size bytes */
    size_t ones_size;
} linear_state;

static int pointwise(const ich_layer *layer)
{
    return !strcmp(layer->ops->kind, "pointwise_linear");
}

static int64_t in_features(const ich_layer *layer)
{
    if (pointwise(layer))
        return layer->in[0].c;
    return (int64_t)layer->in[0].h * layer->in[0].w * layer->in[0].c;
}

/* Rows of the matrix products: samples, or (pointwise) positions. */
static int64_t rows_of(const ich_layer *layer)
{
    if (pointwise(layer))
        return (int64_t)layer->in[0].n * layer->in[0].h * layer->in[0].w;
    return layer->in[0].n;
}

/* cuBLAS takes int sizes: products over more rows run in pieces. */
#define MAX_ROWS ((int64_t)1 << 30)

static void linear_destroy(ich_layer *layer)
{
    linear_state *s = layer->state;
    if (s) {
        ich_cuda_mirror_free(&s->weight);
        ich_cuda_mirror_free(&s->bias);
        ich_cuda_free(s->grad_w);
        ich_cuda_free(s->grad_b);
        ich_cuda_relu_mask_free(&s->mask);
        ich_cuda_free(s->ones);
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
    int64_t n = rows_of(layer);
    int k = (int)in_features(layer), m = layer->out.c;
    ich_status status = sync_weights(layer);
    if (status)
        return status;
    const float one = 1.0f, zero = 0.0f;
    for (int64_t r = 0; r < n; r += MAX_ROWS) {
        int rows = (int)(n - r < MAX_ROWS ? n - r : MAX_ROWS);
        CHECK_CUBLAS(cublasSgemm(ich_cuda_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, m, rows, k, &one,
                                 s->weight.device, k, in[0] + r * k, k, &zero, out + r * m, m),
                     "linear forward");
    }
    if (layer->args.bias) {
        ich_cuda_k_bias_add(out, s->bias.device, n, m);
        CHECK_LAUNCH("bias");
    }
    s->mask_valid = 0;
    if (layer->args.fuse_relu) {
        status = ich_cuda_relu_fused(layer, training ? &s->mask : NULL, out, n * m);
        s->mask_valid = training && !status;
    }
    return status;
}

/* s->ones holds at least `count` ones. */
static ich_status ones_reserve(ich_layer *layer, linear_state *s, int64_t count)
{
    size_t want = (size_t)count * sizeof(float);
    if (s->ones && s->ones_size >= want)
        return ICH_OK;
    ich_status status = ich_cuda_grow(layer, (void **)&s->ones, &s->ones_size, want);
    if (status)
        return status;
    ich_cuda_k_fill(s->ones, 1.0f, (int64_t)(s->ones_size / sizeof(float)));
    CHECK_LAUNCH("ones");
    return ICH_OK;
}

static ich_status linear_backward(ich_layer *layer, const float *const *in, const float *out,
                                  const float *grad_out, float *const *grad_in)
{
    linear_state *s = layer->state;
    int64_t n = rows_of(layer);
    int k = (int)in_features(layer), m = layer->out.c;
    cublasHandle_t h = ich_cuda_cublas();
    const float one = 1.0f, zero = 0.0f;
    ich_status status = ICH_OK;
    (void)out;
    if (layer->args.fuse_relu) {
        if (!s->mask_valid)
            return cuda_fail(ICH_ERR_INVALID_ARGUMENT,
                             "%s: backward without a training forward pass", layer->name);
        if ((status = ich_cuda_relu_mask_apply(layer, &s->mask, (float *)grad_out, n * m)))
            return status;
    }
    if ((status = sync_weights(layer)))
        return status;
    ich_param *w = &layer->params[0];
    int bias = layer->args.bias && !layer->params[1].frozen;
    if (bias && pointwise(layer) && (status = ones_reserve(layer, s, n < MAX_ROWS ? n : MAX_ROWS)))
        return status;
    for (int64_t r = 0; r < n; r += MAX_ROWS) {
        int rows = (int)(n - r < MAX_ROWS ? n - r : MAX_ROWS);
        const float *g = grad_out + r * m;
        const float *beta = r ? &one : &zero; /* the pieces add up */
        if (grad_in && grad_in[0])
            CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, k, rows, m, &one,
                                     s->weight.device, k, g, m, &zero, grad_in[0] + r * k, k),
                         "linear backward data");
        if (!w->frozen)
            CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, k, m, rows, &one, in[0] + r * k,
                                     k, g, m, beta, s->grad_w, k),
                         "linear backward weights");
        if (bias && pointwise(layer))
            CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, 1, rows, &one, g, m, s->ones,
                                     rows, beta, s->grad_b, m),
                         "linear backward bias");
    }
    if (!w->frozen && (status = ich_cuda_grad_add(layer, w, s->grad_w)))
        return status;
    if (bias) {
        if (!pointwise(layer)) {
            ich_cuda_k_column_sum(s->grad_b, grad_out, n, m);
            CHECK_LAUNCH("bias gradient");
        }
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

const ich_layer_ops ich_cuda_pointwise_linear_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "pointwise_linear",
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
