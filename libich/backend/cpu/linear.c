/* Linear layer on OpenBLAS: out = in * W^T + b, W in PyTorch's [out, in]
 * layout; an optional fused ReLU. Two kinds:
 *   "linear": the input's features are h*w*c values per sample (after a
 *       flatten: PyTorch's C*H*W order), one row per sample;
 *   "pointwise_linear": nn.Linear on each position's channels (ConvNeXt's
 *       CNBlock between its Permutes): an NHWC tensor is n*h*w rows of c
 *       values, each row multiplied by W^T; the output keeps h and w.
 *       These products are big (ConvNeXt's are most of its work) and run
 *       on oneDNN's matmul (brgemm kernels), on the OpenMP threads the
 *       convolutions use: OpenBLAS's own threads beside oneDNN's spinning
 *       OpenMP team oversubscribed the cores (a sixth of a ConvNeXt
 *       training step was spent spinning or yielding). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"

/* One oneDNN matmul and its memory descriptors (src x weights -> dst). */
typedef struct matmul {
    dnnl_memory_desc_t src, weights, bias, dst;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
} matmul;

typedef struct linear_state {
    ich_relu_mask mask;
    int mask_valid;
    float *ones; /* pointwise: rows ones, for the bias gradient (a matrix-vector product) */
    int64_t ones_count;
    /* pointwise: the products for `mm_rows` rows; the backward ones built
     * on the first backward call */
    int64_t mm_rows;
    matmul fwd, bwd_data, bwd_w, bwd_b;
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

static void matmul_free(matmul *mm)
{
    if (mm->prim)
        dnnl_primitive_destroy(mm->prim);
    if (mm->pd)
        dnnl_primitive_desc_destroy(mm->pd);
    mm->prim = NULL;
    mm->pd = NULL;
}

static void matmuls_free(linear_state *s)
{
    matmul_free(&s->fwd);
    matmul_free(&s->bwd_data);
    matmul_free(&s->bwd_w);
    matmul_free(&s->bwd_b);
    s->mm_rows = 0;
}

/* A 2-D f32 descriptor: rows x cols, "ab" (row-major) or "ba" (the
 * transpose of a row-major cols x rows matrix). */
static dnnl_status_t md2(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int transposed)
{
    dnnl_dims_t dims = {rows, cols};
    return dnnl_memory_desc_init_by_tag(md, 2, dims, dnnl_f32, transposed ? dnnl_ba : dnnl_ab);
}

/* dst (m x n, row-major) = src (m x k) x weights (k x n) [+ bias 1 x n]
 * [+ dst when accumulate]; src_t / w_t: the operand is stored transposed. */
static ich_status matmul_build(ich_layer *layer, matmul *mm, int64_t m, int64_t k, int64_t n,
                               int src_t, int w_t, int bias, int accumulate, const char *what)
{
    CHECK_DNNL(md2(&mm->src, m, k, src_t), "md");
    CHECK_DNNL(md2(&mm->weights, k, n, w_t), "md");
    CHECK_DNNL(md2(&mm->bias, 1, n, 0), "md");
    CHECK_DNNL(md2(&mm->dst, m, n, 0), "md");
    dnnl_matmul_desc_t desc;
    CHECK_DNNL(dnnl_matmul_desc_init(&desc, &mm->src, &mm->weights, bias ? &mm->bias : NULL,
                                     &mm->dst),
               what);
    dnnl_primitive_attr_t attr = NULL;
    if (accumulate) {
        dnnl_post_ops_t ops;
        CHECK_DNNL(dnnl_primitive_attr_create(&attr), "attr_create");
        dnnl_status_t st = dnnl_post_ops_create(&ops);
        if (st == dnnl_success) {
            st = dnnl_post_ops_append_sum(ops, 1.0f);
            if (st == dnnl_success)
                st = dnnl_primitive_attr_set_post_ops(attr, ops);
            dnnl_post_ops_destroy(ops);
        }
        if (st != dnnl_success) {
            dnnl_primitive_attr_destroy(attr);
            return ich_cpu_dnnl_fail(layer, "sum post-op", st);
        }
    }
    dnnl_status_t st = dnnl_primitive_desc_create(&mm->pd, &desc, attr, ich_cpu_engine(), NULL);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    CHECK_DNNL(st, what);
    CHECK_DNNL(dnnl_primitive_create(&mm->prim, mm->pd), what);
    ich_cpu_log_impl(layer, what, mm->pd);
    return ICH_OK;
}

static ich_status matmul_run(const ich_layer *layer, matmul *mm, const void *src,
                             const void *weights, const void *bias, void *dst, const char *what)
{
    ich_dnnl_arg args[] = {{DNNL_ARG_SRC, &mm->src, src},
                           {DNNL_ARG_WEIGHTS, &mm->weights, weights},
                           {DNNL_ARG_DST, &mm->dst, dst},
                           {DNNL_ARG_BIAS, &mm->bias, bias}};
    return ich_cpu_execute(layer, mm->prim, mm->pd, args, bias ? 4 : 3, NULL, what);
}

static void linear_destroy(ich_layer *layer)
{
    linear_state *s = layer->state;
    if (s) {
        matmuls_free(s);
        ich_relu_mask_free(&s->mask);
        ich_cpu_free(s->ones);
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
    if (pointwise(layer) && !ich_cpu_engine())
        return ICH_ERR_INTERNAL;
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
    matmuls_free(layer->state);
    return ich_cpu_shape(layer, in, out);
}

/* pointwise: out (rows x m) = in (rows x k) x W^T (+ b). */
static ich_status pointwise_forward(ich_layer *layer, const float *in, float *out)
{
    linear_state *s = layer->state;
    const int64_t n = rows_of(layer), k = in_features(layer), m = layer->out.c;
    ich_status st;
    if (s->mm_rows != n) {
        matmuls_free(s);
        /* W is [m, k] row-major: as the k x m right operand, transposed */
        if ((st = matmul_build(layer, &s->fwd, n, k, m, 0, 1, layer->args.bias, 0,
                               "pointwise linear forward")) != ICH_OK)
            return st;
        s->mm_rows = n;
    }
    return matmul_run(layer, &s->fwd, in, layer->params[0].data,
                      layer->args.bias ? layer->params[1].data : NULL, out,
                      "pointwise linear forward");
}

/* pointwise: d in = g W; d W += g^T in; d b += ones^T g (g: rows x m). */
static ich_status pointwise_backward(ich_layer *layer, const float *in, const float *g,
                                     float *grad_in)
{
    linear_state *s = layer->state;
    const int64_t n = rows_of(layer), k = in_features(layer), m = layer->out.c;
    ich_param *w = &layer->params[0];
    ich_param *b = layer->args.bias ? &layer->params[1] : NULL;
    ich_status st;
    if (s->mm_rows != n)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: backward without a forward pass",
                        layer->name);
    if (!s->bwd_data.prim &&
        ((st = matmul_build(layer, &s->bwd_data, n, m, k, 0, 0, 0, 0,
                            "pointwise linear backward data")) != ICH_OK ||
         (st = matmul_build(layer, &s->bwd_w, m, n, k, 1, 0, 0, 1,
                            "pointwise linear backward weights")) != ICH_OK ||
         (b && (st = matmul_build(layer, &s->bwd_b, 1, n, m, 0, 0, 0, 1,
                                  "pointwise linear backward bias")) != ICH_OK)))
        return st;
    if (b && !b->frozen && s->ones_count < n) {
        float *ones = ich_cpu_alloc((size_t)n * sizeof(float));
        if (!ones)
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
        for (int64_t i = 0; i < n; i++)
            ones[i] = 1.0f;
        ich_cpu_free(s->ones);
        s->ones = ones;
        s->ones_count = n;
    }
    if (grad_in && (st = matmul_run(layer, &s->bwd_data, g, w->data, NULL, grad_in,
                                    "pointwise linear backward data")) != ICH_OK)
        return st;
    if (!w->frozen && (st = matmul_run(layer, &s->bwd_w, g, in, NULL, w->grad,
                                       "pointwise linear backward weights")) != ICH_OK)
        return st;
    if (b && !b->frozen && (st = matmul_run(layer, &s->bwd_b, s->ones, g, NULL, b->grad,
                                            "pointwise linear backward bias")) != ICH_OK)
        return st;
    return ICH_OK;
}

static ich_status linear_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    linear_state *s = layer->state;
    int64_t n = rows_of(layer);
    int k = (int)in_features(layer), m = layer->out.c;
    const float *w = layer->params[0].data;
    float beta = 0.0f;
    if (pointwise(layer)) {
        ich_status st = pointwise_forward(layer, in[0], out);
        if (st != ICH_OK)
            return st;
    } else if (layer->args.bias) {
        const float *b = layer->params[1].data;
        for (int64_t i = 0; i < n; i++)
            memcpy(out + i * m, b, (size_t)m * sizeof(float));
        beta = 1.0f;
    }
    for (int64_t r = 0; r < n && !pointwise(layer); r += MAX_ROWS) {
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
    if (pointwise(layer))
        return pointwise_backward(layer, in[0], grad_out, grad_in ? grad_in[0] : NULL);
    ich_param *w = &layer->params[0];
    int bias = layer->args.bias && !layer->params[1].frozen;
    for (int64_t r = 0; r < n; r += MAX_ROWS) {
        int rows = (int)(n - r < MAX_ROWS ? n - r : MAX_ROWS);
        const float *g = grad_out + r * m;
        if (grad_in && grad_in[0])
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, k, m, 1.0f, g, m,
                        w->data, k, 0.0f, grad_in[0] + r * k, k);
        if (!w->frozen)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, k, rows, 1.0f, g, m,
                        in[0] + r * k, k, 1.0f, w->grad, k);
        if (bias) {
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
