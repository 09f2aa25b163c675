/* Output shapes of the layer kinds, shared by every backend: compiled into
 * libich (for the CPU backend) and into each plugin, so the shape rules, the
 * argument checks and their defaults live in one place. */
#include <stdio.h>
#include <string.h>

#include "backend/layer.h"

static ich_status conv_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                             ich_fail_fn fail)
{
    ich_layer_args *a = &layer->args;
    for (int i = 0; i < 2; i++) {
        if (a->stride[i] <= 0)
            a->stride[i] = 1;
        if (a->dilation[i] <= 0)
            a->dilation[i] = 1;
    }
    if (a->out <= 0 || a->kernel[0] <= 0 || a->kernel[1] <= 0 || a->padding[0] < 0 ||
        a->padding[1] < 0)
        return fail(ICH_ERR_INVALID_ARGUMENT,
                    "%s: conv needs output channels and a kernel > 0, padding >= 0", layer->name);
    if (a->groups <= 0)
        a->groups = 1;
    if (in->c % a->groups || a->out % a->groups)
        return fail(ICH_ERR_SHAPE,
                    "%s: conv groups %d must divide the input channels (%d) and the output "
                    "channels (%d)",
                    layer->name, a->groups, in->c, a->out);
    out->n = in->n;
    out->c = a->out;
    out->h = ich_out_size(in->h, a->kernel[0], a->stride[0], a->padding[0], a->dilation[0]);
    out->w = ich_out_size(in->w, a->kernel[1], a->stride[1], a->padding[1], a->dilation[1]);
    if (out->h <= 0 || out->w <= 0 || in->c <= 0)
        return fail(ICH_ERR_SHAPE, "%s: conv kernel %dx%d does not fit input %dx%dx%d",
                    layer->name, a->kernel[0], a->kernel[1], in->h, in->w, in->c);
    return ICH_OK;
}

static ich_status linear_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                               ich_fail_fn fail)
{
    int64_t features = (int64_t)in->h * in->w * in->c;
    if (layer->args.out <= 0 || features <= 0 || features > INT32_MAX)
        return fail(ICH_ERR_SHAPE, "%s: linear needs output features > 0 and an input",
                    layer->name);
    out->n = in->n;
    out->h = out->w = 1;
    out->c = layer->args.out;
    return ICH_OK;
}

/* nn.Linear on each position's channels: N x H x W x C -> N x H x W x OUT. */
static ich_status pointwise_linear_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                                         ich_fail_fn fail)
{
    if (layer->args.out <= 0 || in->n <= 0 || in->h <= 0 || in->w <= 0 || in->c <= 0)
        return fail(ICH_ERR_SHAPE, "%s: pointwise linear needs output features > 0 and an input",
                    layer->name);
    *out = *in;
    out->c = layer->args.out;
    return ICH_OK;
}

/* Max and average pool; the stride defaults to the kernel. */
static ich_status pool_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                             ich_fail_fn fail)
{
    ich_layer_args *a = &layer->args;
    for (int i = 0; i < 2; i++)
        if (a->stride[i] <= 0)
            a->stride[i] = a->kernel[i];
    if (a->kernel[0] <= 0 || a->kernel[1] <= 0 || a->padding[0] < 0 || a->padding[1] < 0 ||
        2 * a->padding[0] > a->kernel[0] || 2 * a->padding[1] > a->kernel[1])
        return fail(ICH_ERR_INVALID_ARGUMENT,
                    "%s: pooling needs a kernel > 0 and padding at most half the kernel",
                    layer->name);
    *out = *in;
    out->h = ich_out_size(in->h, a->kernel[0], a->stride[0], a->padding[0], 1);
    out->w = ich_out_size(in->w, a->kernel[1], a->stride[1], a->padding[1], 1);
    if (out->h <= 0 || out->w <= 0)
        return fail(ICH_ERR_SHAPE, "%s: pooling window %dx%d does not fit input %dx%d",
                    layer->name, a->kernel[0], a->kernel[1], in->h, in->w);
    return ICH_OK;
}

static ich_status gap_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                            ich_fail_fn fail)
{
    if (in->h <= 0 || in->w <= 0 || in->c <= 0)
        return fail(ICH_ERR_SHAPE, "%s: global average pool of an empty input", layer->name);
    *out = *in;
    out->h = out->w = 1;
    return ICH_OK;
}

/* eps and momentum default to PyTorch's. */
static ich_status batchnorm_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                                  ich_fail_fn fail)
{
    if (in->c <= 0 || in->n <= 0 || in->h <= 0 || in->w <= 0)
        return fail(ICH_ERR_SHAPE, "%s: batchnorm of an empty input", layer->name);
    if (layer->args.eps <= 0.0f)
        layer->args.eps = 1e-5f;
    if (layer->args.momentum <= 0.0f)
        layer->args.momentum = 0.1f;
    *out = *in;
    return ICH_OK;
}

/* NHWC in, PyTorch's C*H*W order out (what nn.Flatten gives on NCHW). */
static ich_status flatten_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                                ich_fail_fn fail)
{
    int64_t features = (int64_t)in->h * in->w * in->c;
    if (features <= 0 || features > INT32_MAX)
        return fail(ICH_ERR_SHAPE, "%s: cannot flatten %dx%dx%d", layer->name, in->h, in->w,
                    in->c);
    out->n = in->n;
    out->h = out->w = 1;
    out->c = (int32_t)features;
    return ICH_OK;
}

static ich_status add_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                            ich_fail_fn fail)
{
    if (in[0].n != in[1].n || in[0].h != in[1].h || in[0].w != in[1].w || in[0].c != in[1].c)
        return fail(ICH_ERR_SHAPE, "%s: add of %dx%dx%d and %dx%dx%d", layer->name, in[0].h,
                    in[0].w, in[0].c, in[1].h, in[1].w, in[1].c);
    *out = in[0];
    return ICH_OK;
}

static ich_status concat_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                               ich_fail_fn fail)
{
    if (in[0].n != in[1].n || in[0].h != in[1].h || in[0].w != in[1].w)
        return fail(ICH_ERR_SHAPE, "%s: concat of %dx%d and %dx%d", layer->name, in[0].h,
                    in[0].w, in[1].h, in[1].w);
    *out = in[0];
    out->c = in[0].c + in[1].c;
    return ICH_OK;
}

static ich_status dropout_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                                ich_fail_fn fail)
{
    if (!(layer->args.p >= 0.0f && layer->args.p <= 1.0f))
        return fail(ICH_ERR_INVALID_ARGUMENT, "%s: dropout probability %g not in [0, 1]",
                    layer->name, (double)layer->args.p);
    *out = *in;
    return ICH_OK;
}

/* x (N x H x W x C) times per-channel factors (N x 1 x 1 x C). */
static ich_status mul_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                            ich_fail_fn fail)
{
    if (in[0].n != in[1].n || in[1].h != 1 || in[1].w != 1 || in[0].c != in[1].c)
        return fail(ICH_ERR_SHAPE, "%s: mul of %dx%dx%d by %dx%dx%d (wants Cx1x1 factors)",
                    layer->name, in[0].h, in[0].w, in[0].c, in[1].h, in[1].w, in[1].c);
    *out = in[0];
    return ICH_OK;
}

/* Layer normalisation over the channels (NHWC: the innermost values of a
 * position; a flat tensor's features). eps defaults to PyTorch's 1e-5. */
static ich_status layernorm_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                                  ich_fail_fn fail)
{
    if (in->c <= 0 || in->n <= 0 || in->h <= 0 || in->w <= 0)
        return fail(ICH_ERR_SHAPE, "%s: layernorm of an empty input", layer->name);
    if (!(layer->args.eps > 0.0f))
        layer->args.eps = 1e-5f;
    *out = *in;
    return ICH_OK;
}

static ich_status droppath_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                                 ich_fail_fn fail)
{
    if (!(layer->args.p >= 0.0f && layer->args.p < 1.0f))
        return fail(ICH_ERR_INVALID_ARGUMENT, "%s: drop path probability %g not in [0, 1)",
                    layer->name, (double)layer->args.p);
    *out = *in;
    return ICH_OK;
}

static ich_status same_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                             ich_fail_fn fail)
{
    (void)layer;
    (void)fail;
    *out = *in;
    return ICH_OK;
}

ich_status ich_layer_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                           ich_fail_fn fail)
{
    static const struct {
        const char *kind;
        ich_status (*shape)(ich_layer *, const ich_shape *, ich_shape *, ich_fail_fn);
    } kinds[] = {
        {"conv", conv_shape},       {"linear", linear_shape},   {"maxpool", pool_shape},
        {"avgpool", pool_shape},    {"gap", gap_shape},         {"batchnorm", batchnorm_shape},
        {"flatten", flatten_shape}, {"add", add_shape},         {"concat", concat_shape},
        {"dropout", dropout_shape}, {"relu", same_shape},
        /* issue 14: activations and the per-channel multiply of scale() */
        {"silu", same_shape},       {"gelu", same_shape},       {"sigmoid", same_shape},
        {"mul", mul_shape},
        {"layernorm", layernorm_shape}, {"layerscale", same_shape},
        {"droppath", droppath_shape},
        /* ConvNeXt's Linear layers between Permutes (spec "linear OUT pointwise") */
        {"pointwise_linear", pointwise_linear_shape},
    };
    const char *kind = layer->ops ? layer->ops->kind : "";
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kinds[i].kind, kind) != 0)
            continue;
        ich_status status = kinds[i].shape(layer, in, out, fail);
        if (status != ICH_OK)
            return status;
        for (int j = 0; j < layer->ops->inputs; j++)
            layer->in[j] = in[j];
        layer->out = *out;
        return ICH_OK;
    }
    return fail(ICH_ERR_INTERNAL, "%s: no shape rule for layer kind \"%s\"", layer->name, kind);
}

int64_t ich_param_count(const ich_param *param)
{
    int64_t count = 1;
    for (int32_t i = 0; i < param->ndim; i++)
        count *= param->dims[i];
    return count;
}

int64_t ich_param_describe(ich_param *param, const char *name, ich_dtype dtype, int32_t ndim,
                           const int64_t *dims, int trainable)
{
    memset(param, 0, sizeof *param);
    snprintf(param->name, sizeof param->name, "%s", name);
    param->dtype = dtype;
    param->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++)
        param->dims[i] = dims[i];
    param->trainable = trainable;
    return ich_param_count(param);
}
