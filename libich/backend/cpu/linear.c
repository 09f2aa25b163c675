/* Linear layer on OpenBLAS: out = in * W^T + b, W in PyTorch's [out, in]
 * layout; an optional fused ReLU. Two kinds:
 *   "linear": the input's features are h*w*c values per sample (after a
 *       flatten: PyTorch's C*H*W order), one row per sample;
 *   "pointwise_linear": nn.Linear on each position's channels (ConvNeXt's
 *       CNBlock between its Permutes): an NHWC tensor is n*h*w rows of c
 *       values, each row multiplied by W^T; the output keeps h and w. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"

typedef struct linear_state {
    ich_relu_mask mask;
    int mask_valid;
    float *ones; /* pointwise: rows ones, for the bias gradient (a matrix-vector product) */
    int64_t ones_count;
} linear_state;

static int pointwise(const ich_layer *layer)
{
    /* by name: a plugin wrapping this backend (tests/plugins) copies the table */
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

/* OpenBLAS takes int sizes: products over more rows run in pieces. */
#define MAX_ROWS ((int64_t)1 << 30)

static void linear_destroy(ich_layer *layer)
{
    linear_state *s = layer->state;
    if (s) {
        ich_relu_mask_free(&s->mask);
        free(s->ones);
        free(s);
        layer->state = NULL;
    }
    ich_cpu_params_free(layer);
}

static ich_status linear_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    layer->state = calloc(1, sizeof(linear_state));
    if (!layer->state)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    int64_t w_dims[2] = {out->c, in_features(layer)};
    int64_t b_dims[1] = {out->c};
    if ((status = ich_cpu_params_alloc(layer, layer->args.bias ? 2 : 1)) != ICH_OK ||
        (status = ich_cpu_param_init(&layer->params[0], "weight", ICH_DTYPE_F32, 2, w_dims, 1)) !=
            ICH_OK ||
        (layer->args.bias && (status = ich_cpu_param_init(&layer->params[1], "bias", ICH_DTYPE_F32,
                                                          1, b_dims, 1)) != ICH_OK)) {
        linear_destroy(layer);
        return status;
    }
    return ICH_OK;
}

static ich_status linear_resize(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ((linear_state *)layer->state)->mask_valid = 0;
    return ich_cpu_shape(layer, in, out);
}

static ich_status linear_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    linear_state *s = layer->state;
    int64_t n = rows_of(layer);
    int k = (int)in_features(layer), m = layer->out.c;
    const float *w = layer->params[0].data;
    float beta = 0.0f;
    if (layer->args.bias) {
        const float *b = layer->params[1].data;
        for (int64_t i = 0; i < n; i++)
            memcpy(out + i * m, b, (size_t)m * sizeof(float));
        beta = 1.0f;
    }
    for (int64_t r = 0; r < n; r += MAX_ROWS) {
        int rows = (int)(n - r < MAX_ROWS ? n - r : MAX_ROWS);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, m, k, 1.0f, in[0] + r * k, k,
                    w, k, beta, out + r * m, m);
    }
    s->mask_valid = 0;
    if (layer->args.fuse_relu) {
        int64_t count = n * m;
        for (int64_t i = 0; i < count; i++)
            out[i] = out[i] > 0.0f ? out[i] : 0.0f;
        if (training) {
            ich_status status = ich_relu_mask_record(&s->mask, out, count);
            if (status != ICH_OK)
                return status;
            s->mask_valid = 1;
        }
    }
    return ICH_OK;
}

static ich_status linear_backward(ich_layer *layer, const float *const *in, const float *out,
                                  const float *grad_out, float *const *grad_in)
{
    linear_state *s = layer->state;
    int64_t n = rows_of(layer);
    int k = (int)in_features(layer), m = layer->out.c;
    if (layer->args.fuse_relu) {
        if (!s->mask_valid)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "%s: backward without a training forward pass", layer->name);
        ich_relu_mask_apply(&s->mask, (float *)grad_out, n * m);
    }
    ich_param *w = &layer->params[0];
    int bias = layer->args.bias && !layer->params[1].frozen;
    if (bias && pointwise(layer) && s->ones_count < (n < MAX_ROWS ? n : MAX_ROWS)) {
        int64_t count = n < MAX_ROWS ? n : MAX_ROWS;
        float *ones = malloc((size_t)count * sizeof(float));
        if (!ones)
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
        for (int64_t i = 0; i < count; i++)
            ones[i] = 1.0f;
        free(s->ones);
        s->ones = ones;
        s->ones_count = count;
    }
    for (int64_t r = 0; r < n; r += MAX_ROWS) {
        int rows = (int)(n - r < MAX_ROWS ? n - r : MAX_ROWS);
        const float *g = grad_out + r * m;
        if (grad_in && grad_in[0])
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, k, m, 1.0f, g, m,
                        w->data, k, 0.0f, grad_in[0] + r * k, k);
        if (!w->frozen)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, k, rows, 1.0f, g, m,
                        in[0] + r * k, k, 1.0f, w->grad, k);
        if (bias && pointwise(layer)) {
            /* many rows: the column sums as grad_out^T * ones, in threads */
            cblas_sgemv(CblasRowMajor, CblasTrans, rows, m, 1.0f, g, m, s->ones, 1, 1.0f,
                        layer->params[1].grad, 1);
        } else if (bias) {
            float *gb = layer->params[1].grad;
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < m; j++)
                    gb[j] += g[(int64_t)i * m + j];
        }
    }
    return ICH_OK;
}

const ich_layer_ops ich_cpu_linear_ops = {
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

const ich_layer_ops ich_cpu_pointwise_linear_ops = {
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
