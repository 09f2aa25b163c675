/* Batch normalisation on oneDNN over NHWC activations, with PyTorch's
 * semantics: training normalises with the batch mean and biased variance
 * and updates running_mean / running_var (unbiased variance) with the
 * momentum, num_batches_tracked += 1; evaluation uses the running
 * statistics. An optional fused ReLU (oneDNN's fuse_norm_relu, whose
 * training workspace backward uses instead of the output).
 *
 * Primitives for the four cases (training / evaluation, forward /
 * backward) are built when first used: inference builds the evaluation
 * forward only (issue 16). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"

enum { BN_WEIGHT, BN_BIAS, BN_MEAN, BN_VAR, BN_COUNT, BN_PARAMS };

typedef struct bn_state {
    dnnl_memory_desc_t data_md, stat_md;
    dnnl_primitive_desc_t fwd_pd[2], bwd_pd[2]; /* [1]: training */
    dnnl_primitive_t fwd[2], bwd[2];
    float *mean, *var; /* the batch statistics of the last training forward */
    float *dscale, *dshift;
    void *workspace; /* fused ReLU, training */
    size_t workspace_size;
    void *scratch;
    size_t scratch_size;
    int last_training; /* the mode of the last forward */
    int ready;         /* a forward ran since create/resize */
} bn_state;

static void bn_primitives_free(bn_state *s)
{
    for (int t = 0; t < 2; t++) {
        if (s->fwd[t])
            dnnl_primitive_destroy(s->fwd[t]);
        if (s->bwd[t])
            dnnl_primitive_destroy(s->bwd[t]);
        if (s->fwd_pd[t])
            dnnl_primitive_desc_destroy(s->fwd_pd[t]);
        if (s->bwd_pd[t])
            dnnl_primitive_desc_destroy(s->bwd_pd[t]);
        s->fwd[t] = s->bwd[t] = NULL;
        s->fwd_pd[t] = s->bwd_pd[t] = NULL;
    }
    s->ready = 0;
}

static void bn_destroy(ich_layer *layer)
{
    bn_state *s = layer->state;
    if (s) {
        bn_primitives_free(s);
        free(s->mean);
        free(s->var);
        free(s->dscale);
        free(s->dshift);
        ich_cpu_free(s->workspace);
        ich_cpu_free(s->scratch);
        free(s);
        layer->state = NULL;
    }
    ich_cpu_params_free(layer);
}

static unsigned bn_flags(const ich_layer *layer, int training)
{
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    if (!training)
        flags |= dnnl_use_global_stats;
    if (layer->args.fuse_relu)
        flags |= dnnl_fuse_norm_relu;
    return flags;
}

static ich_status bn_build(ich_layer *layer, int training, int backward)
{
    bn_state *s = layer->state;
    const ich_shape *in = &layer->in[0];
    dnnl_dims_t dims = {in->n, in->c, in->h, in->w}, c_dims = {in->c};
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->data_md, 4, dims, dnnl_f32, dnnl_nhwc), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->stat_md, 1, c_dims, dnnl_f32, dnnl_x), "md");
    dnnl_batch_normalization_desc_t desc;
    if (backward)
        CHECK_DNNL(dnnl_batch_normalization_backward_desc_init(&desc, dnnl_backward, &s->data_md,
                                                               &s->data_md, layer->args.eps,
                                                               bn_flags(layer, training)),
                   "batchnorm backward desc");
    else
        CHECK_DNNL(dnnl_batch_normalization_forward_desc_init(
                       &desc, training ? dnnl_forward_training : dnnl_forward_inference,
                       &s->data_md, layer->args.eps, bn_flags(layer, training)),
                   "batchnorm forward desc");
    dnnl_primitive_attr_t attr;
    CHECK_DNNL(dnnl_primitive_attr_create(&attr), "attr");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t *pd = backward ? &s->bwd_pd[training] : &s->fwd_pd[training];
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &desc, attr, ich_cpu_engine(),
                                        backward ? s->fwd_pd[training] : NULL);
    dnnl_primitive_attr_destroy(attr);
    CHECK_DNNL(st, backward ? "batchnorm backward" : "batchnorm forward");
    CHECK_DNNL(dnnl_primitive_create(backward ? &s->bwd[training] : &s->fwd[training], *pd),
               "batchnorm");
    ich_cpu_log_impl(layer, backward ? "backward" : "forward", *pd);
    ich_status status = ich_cpu_grow(layer, &s->scratch, &s->scratch_size, ich_cpu_scratchpad_size(*pd));
    const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(*pd, dnnl_query_workspace_md, 0);
    if (status == ICH_OK && ws)
        status = ich_cpu_grow(layer, &s->workspace, &s->workspace_size, dnnl_memory_desc_get_size(ws));
    return status;
}

static ich_status bn_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    if (!ich_cpu_engine())
        return ICH_ERR_INTERNAL;
    bn_state *s = calloc(1, sizeof *s);
    layer->state = s;
    if (!s)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    size_t C = (size_t)in->c;
    s->mean = calloc(C, sizeof(float));
    s->var = calloc(C, sizeof(float));
    s->dscale = calloc(C, sizeof(float));
    s->dshift = calloc(C, sizeof(float));
    int64_t dims[1] = {in->c};
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var"};
    if (!s->mean || !s->var || !s->dscale || !s->dshift)
        status = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    if (status == ICH_OK)
        status = ich_cpu_params_alloc(layer, BN_PARAMS);
    for (int i = 0; i < 4 && status == ICH_OK; i++)
        status = ich_cpu_param_init(&layer->params[i], names[i], ICH_DTYPE_F32, 1, dims, i < 2);
    if (status == ICH_OK)
        status = ich_cpu_param_init(&layer->params[BN_COUNT], "num_batches_tracked", ICH_DTYPE_I64,
                                    0, NULL, 0);
    if (status != ICH_OK) {
        bn_destroy(layer);
        return status;
    }
    return ICH_OK;
}

static ich_status bn_resize(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    bn_primitives_free(layer->state);
    return ICH_OK;
}

/* PyTorch's running statistics update from the batch's mean and biased
 * variance (the running variance takes the unbiased one). */
static void update_running(ich_layer *layer)
{
    bn_state *s = layer->state;
    const int C = layer->in[0].c;
    const double rows = (double)(ich_shape_count(layer->in[0]) / C);
    const double m = layer->args.momentum;
    const double unbias = rows > 1 ? rows / (rows - 1) : 1.0;
    float *rm = layer->params[BN_MEAN].data, *rv = layer->params[BN_VAR].data;
    for (int c = 0; c < C; c++) {
        rm[c] = (float)((1.0 - m) * rm[c] + m * s->mean[c]);
        rv[c] = (float)((1.0 - m) * rv[c] + m * s->var[c] * unbias);
    }
    layer->params[BN_MEAN].version++;
    layer->params[BN_VAR].version++;
    (*(int64_t *)layer->params[BN_COUNT].data)++;
    layer->params[BN_COUNT].version++;
}

static ich_status bn_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    bn_state *s = layer->state;
    int t = training ? 1 : 0;
    ich_status status;
    if (!s->fwd[t] && (status = bn_build(layer, t, 0)) != ICH_OK)
        return status;
    const dnnl_memory_desc_t *ws =
        dnnl_primitive_desc_query_md(s->fwd_pd[t], dnnl_query_workspace_md, 0);
    int has_ws = ws && dnnl_memory_desc_get_size(ws) > 0;
    /* training writes the batch statistics, evaluation reads the running ones */
    ich_dnnl_arg args[] = {
        {DNNL_ARG_SRC, &s->data_md, in[0]},
        {DNNL_ARG_DST, &s->data_md, out},
        {DNNL_ARG_SCALE, &s->stat_md, layer->params[BN_WEIGHT].data},
        {DNNL_ARG_SHIFT, &s->stat_md, layer->params[BN_BIAS].data},
        {DNNL_ARG_MEAN, &s->stat_md, t ? s->mean : layer->params[BN_MEAN].data},
        {DNNL_ARG_VARIANCE, &s->stat_md, t ? s->var : layer->params[BN_VAR].data},
        {DNNL_ARG_WORKSPACE, ws, s->workspace},
    };
    status = ich_cpu_execute(layer, s->fwd[t], s->fwd_pd[t], args, has_ws ? 7 : 6, s->scratch,
                             "batchnorm forward");
    if (status != ICH_OK)
        return status;
    s->last_training = t;
    s->ready = 1;
    if (t)
        update_running(layer);
    return ICH_OK;
}

static ich_status bn_backward(ich_layer *layer, const float *const *in, const float *out,
                              const float *grad_out, float *const *grad_in)
{
    bn_state *s = layer->state;
    int t = s->last_training;
    ich_status status;
    if (!s->ready)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: backward without a forward pass",
                        layer->name);
    if (layer->args.fuse_relu && !t)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: backward of a fused batchnorm+ReLU after an evaluation forward",
                        layer->name);
    if (!s->bwd[t] && (status = bn_build(layer, t, 1)) != ICH_OK)
        return status;
    const int C = layer->in[0].c;
    /* oneDNN always writes diff_src: without grad_in, into grad_out, which is
     * the layer's scratch (layer.h) */
    float *dx = grad_in && grad_in[0] ? grad_in[0] : (float *)grad_out;
    const dnnl_memory_desc_t *ws =
        dnnl_primitive_desc_query_md(s->bwd_pd[t], dnnl_query_workspace_md, 0);
    int has_ws = ws && dnnl_memory_desc_get_size(ws) > 0;
    ich_dnnl_arg args[] = {
        {DNNL_ARG_SRC, &s->data_md, in[0]},
        {DNNL_ARG_DIFF_DST, &s->data_md, grad_out},
        {DNNL_ARG_DIFF_SRC, &s->data_md, dx},
        {DNNL_ARG_SCALE, &s->stat_md, layer->params[BN_WEIGHT].data},
        /* oneDNN 2.6's nspc backward fails with invalid_arguments without it */
        {DNNL_ARG_SHIFT, &s->stat_md, layer->params[BN_BIAS].data},
        {DNNL_ARG_DIFF_SCALE, &s->stat_md, s->dscale},
        {DNNL_ARG_DIFF_SHIFT, &s->stat_md, s->dshift},
        {DNNL_ARG_MEAN, &s->stat_md, t ? s->mean : layer->params[BN_MEAN].data},
        {DNNL_ARG_VARIANCE, &s->stat_md, t ? s->var : layer->params[BN_VAR].data},
        {DNNL_ARG_WORKSPACE, ws, s->workspace},
    };
    status = ich_cpu_execute(layer, s->bwd[t], s->bwd_pd[t], args, has_ws ? 10 : 9, s->scratch,
                             "batchnorm backward");
    if (status != ICH_OK)
        return status;
    ich_param *w = &layer->params[BN_WEIGHT], *b = &layer->params[BN_BIAS];
    for (int c = 0; c < C; c++) {
        if (!w->frozen)
            w->grad[c] += s->dscale[c];
        if (!b->frozen)
            b->grad[c] += s->dshift[c];
    }
    return ICH_OK;
}

const ich_layer_ops ich_cpu_batchnorm_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "batchnorm",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = bn_create,
    .resize = bn_resize,
    .forward = bn_forward,
    .backward = bn_backward,
    .destroy = bn_destroy,
};
