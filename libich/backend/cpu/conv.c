/* Convolution on oneDNN: forward (optionally with a fused ReLU), backward
 * data and backward weights (with bias); grouped and depthwise too.
 *
 * Activations are plain NHWC; the weights are PyTorch's OIHW in the
 * parameter and reordered once into the layout oneDNN's kernel prefers
 * (format_tag any), cached until param->version changes. The weight
 * gradient comes out in the kernel's layout and is added to the OIHW
 * gradient by a reorder with a sum post-op (accumulation without a
 * temporary). Primitives are built once per batch size; the backward ones
 * on the first backward call, so inference never builds them.
 *
 * Groups (args.groups = G > 1): oneDNN's grouped convolution, whose
 * weights are 5-D, G x OUT/G x IN/G x KH x KW. PyTorch's grouped weight
 * [OUT, IN/G, KH, KW] is that tensor in goihw order byte for byte (output
 * channel o is filter o % (OUT/G) of group o / (OUT/G)), so the parameter
 * is used and reordered as goihw; depthwise (G = IN) is the same call,
 * for which oneDNN picks its depthwise kernels. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"

/* A weight copy in a primitive's preferred layout. */
typedef struct weight_cache {
    dnnl_memory_desc_t md;
    int reorder_needed; /* 0: md is OIHW, use the parameter directly */
    void *data;
    dnnl_primitive_t reorder;
    int valid;
    uint64_t version;
} weight_cache;

typedef struct conv_state {
    dnnl_memory_desc_t src_md, dst_md, w_user_md, b_md;
    dnnl_primitive_desc_t fwd_pd, bwd_data_pd, bwd_w_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_w;
    weight_cache w_fwd, w_bwd;
    /* backward weights: the kernel's diff weights and the reorder that adds
     * them into the OIHW gradient */
    void *dw;
    int dw_direct; /* the kernel's layout is OIHW: accumulate by a plain add */
    dnnl_primitive_t dw_add;
    float *db;
    void *scratch;
    size_t scratch_size;
    ich_relu_mask mask;
    int mask_valid;
} conv_state;

static void weight_cache_reset(weight_cache *cache)
{
    if (cache->reorder)
        dnnl_primitive_destroy(cache->reorder);
    ich_cpu_free(cache->data);
    memset(cache, 0, sizeof *cache);
}

static void primitives_free(conv_state *s)
{
    dnnl_primitive_t *prims[] = {&s->fwd, &s->bwd_data, &s->bwd_w, &s->dw_add};
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++)
        if (*prims[i]) {
            dnnl_primitive_destroy(*prims[i]);
            *prims[i] = NULL;
        }
    dnnl_primitive_desc_t *pds[] = {&s->fwd_pd, &s->bwd_data_pd, &s->bwd_w_pd};
    for (size_t i = 0; i < sizeof pds / sizeof pds[0]; i++)
        if (*pds[i]) {
            dnnl_primitive_desc_destroy(*pds[i]);
            *pds[i] = NULL;
        }
    weight_cache_reset(&s->w_fwd);
    weight_cache_reset(&s->w_bwd);
    ich_cpu_free(s->dw);
    s->dw = NULL;
    ich_cpu_free(s->db);
    s->db = NULL;
}

/* Grow the layer's scratchpad to what `pd` asks for. */
static ich_status scratch_reserve(ich_layer *layer, conv_state *s, const_dnnl_primitive_desc_t pd)
{
    return ich_cpu_grow(layer, &s->scratch, &s->scratch_size, ich_cpu_scratchpad_size(pd));
}

/* The weights' dims as oneDNN wants them: OIHW, or with groups GOIHW;
 * returns the number of dims. */
static int weight_dims(const ich_layer *layer, dnnl_dims_t dims)
{
    const ich_layer_args *a = &layer->args;
    int32_t g = a->groups > 1 ? a->groups : 1;
    int32_t out = layer->out.c, in = layer->in[0].c;
    int n = 0;
    if (g > 1)
        dims[n++] = g;
    dims[n++] = out / g;
    dims[n++] = in / g;
    dims[n++] = a->kernel[0];
    dims[n++] = a->kernel[1];
    return n;
}

/* The convolution's geometry as oneDNN wants it (dilation 0 = none). */
static void geometry(const ich_layer *layer, dnnl_dims_t strides, dnnl_dims_t dilates,
                     dnnl_dims_t pad_l, dnnl_dims_t pad_r)
{
    const ich_layer_args *a = &layer->args;
    for (int i = 0; i < 2; i++) {
        strides[i] = a->stride[i];
        dilates[i] = a->dilation[i] - 1;
        pad_l[i] = a->padding[i];
        /* right padding that gives exactly PyTorch's (floored) output size */
        int32_t in = i == 0 ? layer->in[0].h : layer->in[0].w;
        int32_t out = i == 0 ? layer->out.h : layer->out.w;
        int32_t span = a->dilation[i] * (a->kernel[i] - 1) + 1;
        pad_r[i] = (int64_t)(out - 1) * a->stride[i] + span - in - a->padding[i];
    }
}

static ich_status make_attr(ich_layer *layer, int relu, dnnl_primitive_attr_t *attr)
{
    CHECK_DNNL(dnnl_primitive_attr_create(attr), "attr_create");
    CHECK_DNNL(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user),
               "set_scratchpad_mode");
    if (relu) {
        dnnl_post_ops_t ops;
        CHECK_DNNL(dnnl_post_ops_create(&ops), "post_ops_create");
        dnnl_status_t st = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(*attr, ops);
        dnnl_post_ops_destroy(ops);
        CHECK_DNNL(st, "relu post-op");
    }
    return ICH_OK;
}

/* Weight cache for a primitive whose weights md is `md`. */
static ich_status weight_cache_init(ich_layer *layer, conv_state *s, weight_cache *cache,
                                    const dnnl_memory_desc_t *md)
{
    cache->md = *md;
    cache->reorder_needed = !dnnl_memory_desc_equal(md, &s->w_user_md);
    if (!cache->reorder_needed)
        return ICH_OK;
    cache->data = ich_cpu_alloc(dnnl_memory_desc_get_size(md));
    if (!cache->data)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for the weights", layer->name);
    dnnl_primitive_desc_t pd;
    dnnl_engine_t engine = ich_cpu_engine();
    CHECK_DNNL(dnnl_reorder_primitive_desc_create(&pd, &s->w_user_md, engine, md, engine, NULL),
               "weights reorder");
    dnnl_status_t st = dnnl_primitive_create(&cache->reorder, pd);
    dnnl_primitive_desc_destroy(pd);
    CHECK_DNNL(st, "weights reorder");
    return ICH_OK;
}

/* The weights in the cache's layout, reordered again only when changed. */
static ich_status weight_cache_get(ich_layer *layer, weight_cache *cache, void **weights)
{
    ich_param *w = &layer->params[0];
    if (!cache->reorder_needed) {
        *weights = w->data;
        return ICH_OK;
    }
    if (!cache->valid || cache->version != w->version) {
        conv_state *s = layer->state;
        ich_dnnl_arg args[] = {{DNNL_ARG_FROM, &s->w_user_md, w->data},
                               {DNNL_ARG_TO, &cache->md, cache->data}};
        ich_status status = ich_cpu_execute_serial(layer, cache->reorder, args, 2,
                                                   "weights reorder");
        if (status != ICH_OK)
            return status;
        cache->valid = 1;
        cache->version = w->version;
    }
    *weights = cache->data;
    return ICH_OK;
}

static ich_status build_forward(ich_layer *layer)
{
    conv_state *s = layer->state;
    const ich_shape *in = &layer->in[0];
    const ich_shape *out = &layer->out;
    dnnl_dims_t src_dims = {in->n, in->c, in->h, in->w};
    dnnl_dims_t dst_dims = {out->n, out->c, out->h, out->w};
    dnnl_dims_t w_dims;
    int w_ndims = weight_dims(layer, w_dims);
    dnnl_dims_t b_dims = {out->c};
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->src_md, 4, src_dims, dnnl_f32, dnnl_nhwc), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->w_user_md, w_ndims, w_dims, dnnl_f32,
                                            w_ndims == 5 ? dnnl_goihw : dnnl_oihw),
               "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->b_md, 1, b_dims, dnnl_f32, dnnl_x), "md");
    dnnl_memory_desc_t w_any;
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&w_any, w_ndims, w_dims, dnnl_f32,
                                            dnnl_format_tag_any),
               "md");
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(layer, strides, dilates, pad_l, pad_r);
    dnnl_convolution_desc_t desc;
    CHECK_DNNL(dnnl_dilated_convolution_forward_desc_init(
                   &desc, dnnl_forward_training, dnnl_convolution_direct, &s->src_md, &w_any,
                   layer->args.bias ? &s->b_md : NULL, &s->dst_md, strides, dilates, pad_l, pad_r),
               "convolution forward desc");
    dnnl_primitive_attr_t attr;
    ich_status status = make_attr(layer, layer->args.fuse_relu, &attr);
    if (status != ICH_OK)
        return status;
    dnnl_status_t st = dnnl_primitive_desc_create(&s->fwd_pd, &desc, attr, ich_cpu_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    CHECK_DNNL(st, "convolution forward");
    CHECK_DNNL(dnnl_primitive_create(&s->fwd, s->fwd_pd), "convolution forward");
    ich_cpu_log_impl(layer, "forward", s->fwd_pd);
    status = scratch_reserve(layer, s, s->fwd_pd);
    if (status != ICH_OK)
        return status;
    return weight_cache_init(layer, s, &s->w_fwd,
                             dnnl_primitive_desc_query_md(s->fwd_pd, dnnl_query_weights_md, 0));
}

/* oneDNN 2.6.3's 1x1 kernels (jit_1x1:avx2, jit_1x1:avx512_core) get the
 * weight gradient of a strided 1x1 convolution wrong: their "reduce to unit
 * stride" copy of the NHWC source puts rows at (ic_b * is + sp) * ic_block
 * in a per-thread area sized is * ic, so when the input channels are not a
 * multiple of the kernel's channel block (8 on AVX2, 16 on AVX-512) it
 * writes past its scratchpad: wrong gradients that change from run to run
 * with several threads, a corrupted heap with one. The pattern is still in
 * oneDNN's master (upstream issue 6035 looks like it). Forward and backward
 * data are right. A strided 1x1 convolution therefore takes the next
 * implementation oneDNN offers for its backward weights (jit or gemm; no
 * measurable cost on ichnet). tests/sweep/test_layer_sweep.py checks every case.
 * The check is by the kernel's name, so it holds for grouped 1x1
 * convolutions too (oneDNN 2.6.3 gave them jit or gemm kernels, not jit_1x1,
 * on AVX-512 and AVX2; the sweep's gconv_k1_s2 cases check them). */
static int faulty_backward_weights(const ich_layer *layer, const_dnnl_primitive_desc_t pd)
{
    const ich_layer_args *a = &layer->args;
    if (a->kernel[0] != 1 || a->kernel[1] != 1 || (a->stride[0] == 1 && a->stride[1] == 1))
        return 0;
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        return 0;
    return strncmp(impl, "jit_1x1", 7) == 0;
}

/* The first backward-weights implementation, in oneDNN's order of
 * preference, that is not one of the faulty kernels above. */
static dnnl_status_t backward_weights_pd(const ich_layer *layer,
                                         const dnnl_convolution_desc_t *desc,
                                         const_dnnl_primitive_attr_t attr,
                                         const_dnnl_primitive_desc_t hint,
                                         dnnl_primitive_desc_t *out)
{
    dnnl_primitive_desc_iterator_t it;
    dnnl_status_t st =
        dnnl_primitive_desc_iterator_create(&it, desc, attr, ich_cpu_engine(), hint);
    if (st != dnnl_success)
        return st;
    *out = NULL;
    do {
        dnnl_primitive_desc_t pd = dnnl_primitive_desc_iterator_fetch(it);
        if (pd && !faulty_backward_weights(layer, pd)) {
            *out = pd;
            break;
        }
        if (pd)
            dnnl_primitive_desc_destroy(pd);
    } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
    return *out ? dnnl_success : dnnl_unimplemented;
}

static ich_status build_backward(ich_layer *layer)
{
    conv_state *s = layer->state;
    dnnl_memory_desc_t w_any;
    dnnl_dims_t w_dims;
    int w_ndims = weight_dims(layer, w_dims);
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&w_any, w_ndims, w_dims, dnnl_f32,
                                            dnnl_format_tag_any),
               "md");
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(layer, strides, dilates, pad_l, pad_r);
    dnnl_primitive_attr_t attr;
    ich_status status = make_attr(layer, 0, &attr);
    if (status != ICH_OK)
        return status;

    dnnl_convolution_desc_t desc;
    dnnl_status_t st = dnnl_dilated_convolution_backward_data_desc_init(
        &desc, dnnl_convolution_direct, &s->src_md, &w_any, &s->dst_md, strides, dilates, pad_l,
        pad_r);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&s->bwd_data_pd, &desc, attr, ich_cpu_engine(), s->fwd_pd);
    if (st == dnnl_success)
        st = dnnl_dilated_convolution_backward_weights_desc_init(
            &desc, dnnl_convolution_direct, &s->src_md, &w_any, layer->args.bias ? &s->b_md : NULL,
            &s->dst_md, strides, dilates, pad_l, pad_r);
    if (st == dnnl_success)
        st = backward_weights_pd(layer, &desc, attr, s->fwd_pd, &s->bwd_w_pd);
    dnnl_primitive_attr_destroy(attr);
    CHECK_DNNL(st, "convolution backward desc");
    CHECK_DNNL(dnnl_primitive_create(&s->bwd_data, s->bwd_data_pd), "convolution backward data");
    CHECK_DNNL(dnnl_primitive_create(&s->bwd_w, s->bwd_w_pd), "convolution backward weights");
    ich_cpu_log_impl(layer, "backward data", s->bwd_data_pd);
    ich_cpu_log_impl(layer, "backward weights", s->bwd_w_pd);
    if ((status = scratch_reserve(layer, s, s->bwd_data_pd)) != ICH_OK ||
        (status = scratch_reserve(layer, s, s->bwd_w_pd)) != ICH_OK)
        return status;
    status =
        weight_cache_init(layer, s, &s->w_bwd,
                          dnnl_primitive_desc_query_md(s->bwd_data_pd, dnnl_query_weights_md, 0));
    if (status != ICH_OK)
        return status;

    /* diff weights: the kernel's layout, added into the OIHW gradient */
    const dnnl_memory_desc_t *dw_md =
        dnnl_primitive_desc_query_md(s->bwd_w_pd, dnnl_query_diff_weights_md, 0);
    s->dw = ich_cpu_alloc(dnnl_memory_desc_get_size(dw_md));
    s->db = ich_cpu_alloc((size_t)layer->out.c * sizeof(float));
    if (!s->dw || !s->db)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for the weight gradient",
                        layer->name);
    s->dw_direct = dnnl_memory_desc_equal(dw_md, &s->w_user_md);
    if (!s->dw_direct) {
        dnnl_primitive_attr_t sum_attr;
        dnnl_post_ops_t ops;
        CHECK_DNNL(dnnl_primitive_attr_create(&sum_attr), "attr_create");
        st = dnnl_post_ops_create(&ops);
        if (st == dnnl_success) {
            st = dnnl_post_ops_append_sum(ops, 1.0f);
            if (st == dnnl_success)
                st = dnnl_primitive_attr_set_post_ops(sum_attr, ops);
            dnnl_post_ops_destroy(ops);
        }
        dnnl_primitive_desc_t pd = NULL;
        if (st == dnnl_success)
            st = dnnl_reorder_primitive_desc_create(&pd, dw_md, ich_cpu_engine(), &s->w_user_md,
                                                    ich_cpu_engine(), sum_attr);
        dnnl_primitive_attr_destroy(sum_attr);
        if (st == dnnl_success)
            st = dnnl_primitive_create(&s->dw_add, pd);
        if (pd)
            dnnl_primitive_desc_destroy(pd);
        CHECK_DNNL(st, "weight gradient reorder");
    }
    return ICH_OK;
}

static void conv_destroy(ich_layer *layer)
{
    conv_state *s = layer->state;
    if (s) {
        primitives_free(s);
        ich_cpu_free(s->scratch);
        ich_relu_mask_free(&s->mask);
        free(s);
        layer->state = NULL;
    }
    ich_cpu_params_free(layer);
}

static ich_status conv_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    if (!ich_cpu_engine())
        return ICH_ERR_INTERNAL;
    layer->state = calloc(1, sizeof(conv_state));
    if (!layer->state)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    /* PyTorch's [OUT, IN/G, KH, KW] (ich_cpu_shape checked G divides both) */
    int64_t w_dims[4] = {out->c, in->c / layer->args.groups, layer->args.kernel[0],
                         layer->args.kernel[1]};
    int64_t b_dims[1] = {out->c};
    if ((status = ich_cpu_params_alloc(layer, layer->args.bias ? 2 : 1)) != ICH_OK ||
        (status = ich_cpu_param_init(&layer->params[0], "weight", ICH_DTYPE_F32, 4, w_dims, 1)) !=
            ICH_OK ||
        (layer->args.bias && (status = ich_cpu_param_init(&layer->params[1], "bias", ICH_DTYPE_F32,
                                                          1, b_dims, 1)) != ICH_OK) ||
        (status = build_forward(layer)) != ICH_OK) {
        conv_destroy(layer);
        return status;
    }
    return ICH_OK;
}

static ich_status conv_resize(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    conv_state *s = layer->state;
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    primitives_free(s);
    s->mask_valid = 0;
    return build_forward(layer);
}

static ich_status conv_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    conv_state *s = layer->state;
    void *weights;
    ich_status status = weight_cache_get(layer, &s->w_fwd, &weights);
    if (status != ICH_OK)
        return status;
    ich_dnnl_arg args[] = {
        {DNNL_ARG_SRC, &s->src_md, in[0]},
        {DNNL_ARG_WEIGHTS, &s->w_fwd.md, weights},
        {DNNL_ARG_DST, &s->dst_md, out},
        {DNNL_ARG_BIAS, &s->b_md, layer->args.bias ? layer->params[1].data : NULL},
    };
    status = ich_cpu_execute(layer, s->fwd, s->fwd_pd, args, layer->args.bias ? 4 : 3, s->scratch,
                             "conv forward");
    if (status != ICH_OK)
        return status;
    s->mask_valid = 0;
    if (training && layer->args.fuse_relu) {
        status = ich_relu_mask_record(&s->mask, out, ich_shape_count(layer->out));
        s->mask_valid = status == ICH_OK;
    }
    return status;
}

static ich_status conv_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    conv_state *s = layer->state;
    ich_status status;
    if (!s->bwd_data && (status = build_backward(layer)) != ICH_OK)
        return status;
    if (layer->args.fuse_relu) {
        if (!s->mask_valid)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "%s: backward without a training forward pass", layer->name);
        /* The model does not read grad_out after backward (layer.h). */
        ich_relu_mask_apply(&s->mask, (float *)grad_out, ich_shape_count(layer->out));
    }
    if (grad_in && grad_in[0]) {
        void *weights;
        if ((status = weight_cache_get(layer, &s->w_bwd, &weights)) != ICH_OK)
            return status;
        ich_dnnl_arg args[] = {
            {DNNL_ARG_DIFF_DST, &s->dst_md, grad_out},
            {DNNL_ARG_WEIGHTS, &s->w_bwd.md, weights},
            {DNNL_ARG_DIFF_SRC, &s->src_md, grad_in[0]},
        };
        if ((status = ich_cpu_execute(layer, s->bwd_data, s->bwd_data_pd, args, 3, s->scratch,
                                      "conv backward data")) != ICH_OK)
            return status;
    }
    ich_param *w = &layer->params[0];
    ich_param *b = layer->args.bias ? &layer->params[1] : NULL;
    int want_w = !w->frozen, want_b = b && !b->frozen;
    if (!want_w && !want_b)
        return ICH_OK;
    const dnnl_memory_desc_t *dw_md =
        dnnl_primitive_desc_query_md(s->bwd_w_pd, dnnl_query_diff_weights_md, 0);
    ich_dnnl_arg args[] = {
        {DNNL_ARG_SRC, &s->src_md, in[0]},
        {DNNL_ARG_DIFF_DST, &s->dst_md, grad_out},
        {DNNL_ARG_DIFF_WEIGHTS, dw_md, s->dw},
        {DNNL_ARG_DIFF_BIAS, &s->b_md, s->db},
    };
    if ((status = ich_cpu_execute(layer, s->bwd_w, s->bwd_w_pd, args, b ? 4 : 3, s->scratch,
                                  "conv backward weights")) != ICH_OK)
        return status;
    if (want_w) {
        if (s->dw_direct) {
            int64_t count = ich_param_count(w);
            const float *dw = s->dw;
            for (int64_t i = 0; i < count; i++)
                w->grad[i] += dw[i];
        } else {
            ich_dnnl_arg add[] = {{DNNL_ARG_FROM, dw_md, s->dw},
                                  {DNNL_ARG_TO, &s->w_user_md, w->grad}};
            status = ich_cpu_execute_serial(layer, s->dw_add, add, 2, "weight gradient reorder");
            if (status != ICH_OK)
                return status;
        }
    }
    if (want_b)
        for (int32_t o = 0; o < layer->out.c; o++)
            b->grad[o] += s->db[o];
    return ICH_OK;
}

const ich_layer_ops ich_cpu_conv_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "conv",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = conv_create,
    .resize = conv_resize,
    .forward = conv_forward,
    .backward = conv_backward,
    .destroy = conv_destroy,
};
