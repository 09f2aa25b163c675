/* Pooling on NHWC activations. Max (oneDNN, with its workspace, so backward
 * needs neither the input nor the output) and average (oneDNN, padding
 * counted in the divisor, as PyTorch's AvgPool2d default); global average
 * in plain loops over channels (contiguous in NHWC, vectorised). */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"

/* ---- max and average pool on oneDNN ------------------------------------- */

typedef struct pool_state {
    dnnl_memory_desc_t src_md, dst_md;
    dnnl_alg_kind_t alg;
    dnnl_primitive_desc_t train_pd, infer_pd, bwd_pd;
    dnnl_primitive_t train, infer, bwd;
    void *workspace; /* max: where each maximum came from (training forward) */
    size_t workspace_size;
    int workspace_valid;
    void *scratch;
    size_t scratch_size;
} pool_state;

static void pool_primitives_free(pool_state *s)
{
    dnnl_primitive_t *prims[] = {&s->train, &s->infer, &s->bwd};
    dnnl_primitive_desc_t *pds[] = {&s->train_pd, &s->infer_pd, &s->bwd_pd};
    for (int i = 0; i < 3; i++) {
        if (*prims[i])
            dnnl_primitive_destroy(*prims[i]);
        if (*pds[i])
            dnnl_primitive_desc_destroy(*pds[i]);
        *prims[i] = NULL;
        *pds[i] = NULL;
    }
    s->workspace_valid = 0;
}

static void pool_geometry(const ich_layer *layer, dnnl_dims_t strides, dnnl_dims_t kernel,
                          dnnl_dims_t dilation, dnnl_dims_t pad_l, dnnl_dims_t pad_r)
{
    const ich_layer_args *a = &layer->args;
    for (int i = 0; i < 2; i++) {
        int32_t in = i == 0 ? layer->in[0].h : layer->in[0].w;
        int32_t out = i == 0 ? layer->out.h : layer->out.w;
        strides[i] = a->stride[i];
        kernel[i] = a->kernel[i];
        dilation[i] = 0;
        pad_l[i] = a->padding[i];
        /* the right padding PyTorch's floored output size actually uses */
        pad_r[i] = (int64_t)(out - 1) * a->stride[i] + a->kernel[i] - in - a->padding[i];
        if (pad_r[i] < 0)
            pad_r[i] = 0;
    }
}

/* The forward primitive for training (with workspace) or inference, built
 * by the first forward of that kind (issue 16: an inference-only model
 * compiles no training or backward primitive, and allocates no workspace). */
static ich_status pool_build_forward(ich_layer *layer, int training)
{
    pool_state *s = layer->state;
    const ich_shape *in = &layer->in[0], *out = &layer->out;
    dnnl_dims_t src_dims = {in->n, in->c, in->h, in->w};
    dnnl_dims_t dst_dims = {out->n, out->c, out->h, out->w};
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->src_md, 4, src_dims, dnnl_f32, dnnl_nhwc), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc), "md");
    dnnl_dims_t strides, kernel, dilation, pad_l, pad_r;
    pool_geometry(layer, strides, kernel, dilation, pad_l, pad_r);
    dnnl_pooling_v2_desc_t desc;
    CHECK_DNNL(dnnl_pooling_v2_forward_desc_init(
                   &desc, training ? dnnl_forward_training : dnnl_forward_inference, s->alg,
                   &s->src_md, &s->dst_md, strides, kernel, dilation, pad_l, pad_r),
               "pooling desc");
    dnnl_primitive_attr_t attr;
    CHECK_DNNL(dnnl_primitive_attr_create(&attr), "attr");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t *pd = training ? &s->train_pd : &s->infer_pd;
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &desc, attr, ich_cpu_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    CHECK_DNNL(st, "pooling forward");
    CHECK_DNNL(dnnl_primitive_create(training ? &s->train : &s->infer, *pd), "pooling forward");
    ich_cpu_log_impl(layer, training ? "training forward" : "inference forward", *pd);
    const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(*pd, dnnl_query_workspace_md, 0);
    ich_status status = ich_cpu_grow(layer, &s->scratch, &s->scratch_size, ich_cpu_scratchpad_size(*pd));
    if (status == ICH_OK && training && ws)
        status = ich_cpu_grow(layer, &s->workspace, &s->workspace_size, dnnl_memory_desc_get_size(ws));
    return status;
}

static ich_status pool_build_backward(ich_layer *layer)
{
    pool_state *s = layer->state;
    dnnl_dims_t strides, kernel, dilation, pad_l, pad_r;
    pool_geometry(layer, strides, kernel, dilation, pad_l, pad_r);
    dnnl_pooling_v2_desc_t desc;
    CHECK_DNNL(dnnl_pooling_v2_backward_desc_init(&desc, s->alg, &s->src_md, &s->dst_md, strides,
                                                  kernel, dilation, pad_l, pad_r),
               "pooling backward desc");
    dnnl_primitive_attr_t attr;
    CHECK_DNNL(dnnl_primitive_attr_create(&attr), "attr");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&s->bwd_pd, &desc, attr, ich_cpu_engine(), s->train_pd);
    dnnl_primitive_attr_destroy(attr);
    CHECK_DNNL(st, "pooling backward");
    CHECK_DNNL(dnnl_primitive_create(&s->bwd, s->bwd_pd), "pooling backward");
    ich_cpu_log_impl(layer, "backward", s->bwd_pd);
    return ich_cpu_grow(layer, &s->scratch, &s->scratch_size, ich_cpu_scratchpad_size(s->bwd_pd));
}

static void pool_destroy(ich_layer *layer)
{
    pool_state *s = layer->state;
    if (s) {
        pool_primitives_free(s);
        ich_cpu_free(s->workspace);
        ich_cpu_free(s->scratch);
        free(s);
        layer->state = NULL;
    }
}

static ich_status pool_create(ich_layer *layer, const ich_shape *in, ich_shape *out,
                              dnnl_alg_kind_t alg)
{
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    if (!ich_cpu_engine())
        return ICH_ERR_INTERNAL;
    pool_state *s = calloc(1, sizeof *s);
    layer->state = s;
    if (!s)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    s->alg = alg;
    return ICH_OK; /* primitives are built by the first call that needs them */
}

static ich_status maxpool_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    return pool_create(layer, in, out, dnnl_pooling_max);
}

static ich_status avgpool_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    return pool_create(layer, in, out, dnnl_pooling_avg_include_padding);
}

static ich_status pool_resize(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    pool_primitives_free(layer->state);
    return ICH_OK;
}

static ich_status pool_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    pool_state *s = layer->state;
    ich_status status;
    /* max pooling's inference primitive skips the workspace */
    int use_train = training || s->alg != dnnl_pooling_max;
    if (!(use_train ? s->train : s->infer) &&
        (status = pool_build_forward(layer, use_train)) != ICH_OK)
        return status;
    dnnl_primitive_desc_t pd = use_train ? s->train_pd : s->infer_pd;
    const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
    int has_ws = ws && dnnl_memory_desc_get_size(ws) > 0;
    ich_dnnl_arg args[] = {
        {DNNL_ARG_SRC, &s->src_md, in[0]},
        {DNNL_ARG_DST, &s->dst_md, out},
        {DNNL_ARG_WORKSPACE, ws, s->workspace},
    };
    status = ich_cpu_execute(layer, use_train ? s->train : s->infer, pd, args, has_ws ? 3 : 2,
                             s->scratch, "pooling forward");
    s->workspace_valid = status == ICH_OK && training;
    return status;
}

static ich_status pool_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    pool_state *s = layer->state;
    ich_status status;
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    if (s->alg == dnnl_pooling_max && !s->workspace_valid)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: backward without a training forward pass",
                        layer->name);
    /* the backward primitive is made with the training forward's as hint */
    if (!s->train && (status = pool_build_forward(layer, 1)) != ICH_OK)
        return status;
    if (!s->bwd && (status = pool_build_backward(layer)) != ICH_OK)
        return status;
    const dnnl_memory_desc_t *ws =
        dnnl_primitive_desc_query_md(s->bwd_pd, dnnl_query_workspace_md, 0);
    int has_ws = ws && dnnl_memory_desc_get_size(ws) > 0;
    ich_dnnl_arg args[] = {
        {DNNL_ARG_DIFF_DST, &s->dst_md, grad_out},
        {DNNL_ARG_DIFF_SRC, &s->src_md, grad_in[0]},
        {DNNL_ARG_WORKSPACE, ws, s->workspace},
    };
    return ich_cpu_execute(layer, s->bwd, s->bwd_pd, args, has_ws ? 3 : 2, s->scratch,
                           "pooling backward");
}

const ich_layer_ops ich_cpu_maxpool_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "maxpool",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = maxpool_create,
    .resize = pool_resize,
    .forward = pool_forward,
    .backward = pool_backward,
    .destroy = pool_destroy,
};

const ich_layer_ops ich_cpu_avgpool_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "avgpool",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = avgpool_create,
    .resize = pool_resize,
    .forward = pool_forward,
    .backward = pool_backward,
    .destroy = pool_destroy,
};

static void nothing_destroy(ich_layer *layer)
{
    (void)layer;
}

/* ---- global average pool ------------------------------------------------- */

static ich_status gap_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    const ich_shape I = layer->in[0];
    const int C = I.c;
    const int64_t hw = (int64_t)I.h * I.w;
    for (int n = 0; n < I.n; n++) {
        float *y = out + (int64_t)n * C;
        memset(y, 0, (size_t)C * sizeof(float));
        const float *x = in[0] + (int64_t)n * hw * C;
        for (int64_t p = 0; p < hw; p++)
            for (int c = 0; c < C; c++)
                y[c] += x[p * C + c];
        for (int c = 0; c < C; c++)
            y[c] /= (float)hw;
    }
    return ICH_OK;
}

static ich_status gap_backward(ich_layer *layer, const float *const *in, const float *out,
                               const float *grad_out, float *const *grad_in)
{
    const ich_shape I = layer->in[0];
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    const int C = I.c;
    const int64_t hw = (int64_t)I.h * I.w;
    for (int n = 0; n < I.n; n++) {
        const float *g = grad_out + (int64_t)n * C;
        float *dx = grad_in[0] + (int64_t)n * hw * C;
        for (int64_t p = 0; p < hw; p++)
            for (int c = 0; c < C; c++)
                dx[p * C + c] = g[c] / (float)hw;
    }
    return ICH_OK;
}

const ich_layer_ops ich_cpu_gap_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "gap",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = ich_cpu_shape,
    .resize = ich_cpu_shape,
    .forward = gap_forward,
    .backward = gap_backward,
    .destroy = nothing_destroy,
};
