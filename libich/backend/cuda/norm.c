/* Layer normalisation, layer scale and stochastic depth in the CUDA plugin,
 * over NHWC activations in device memory: the shapes, flags and formulas of
 * libich/backend/cpu/norm.c (kernels in norm_kernels.cu).
 *
 * layernorm: the row statistics (mean, 1 / sqrt(var + eps)) are computed
 *   again from the input in backward, so nothing of the forward is kept.
 * droppath: the mask is drawn again in backward from (seed, step, sample)
 *   with the CPU's generator: both backends drop the same samples for the
 *   same seed and step. */
#include <stdlib.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/norm_kernels.h"

typedef struct norm_state {
    ich_cuda_mirror p0, p1; /* weight and bias (layernorm), gamma (layerscale) */
    float *rows;            /* device: 2 floats per row (statistics) and 2 more (row sums) */
    size_t rows_size;
    double *partial;        /* device: the chunks' partial sums */
    size_t partial_size;
    float *grads;           /* device: 2 x C parameter gradients */
    uint64_t step;          /* droppath: the step of the last training forward */
    int trained;            /* droppath: the last forward was a training one */
} norm_state;

static void norm_destroy(ich_layer *layer)
{
    norm_state *s = layer->state;
    if (s) {
        ich_cuda_mirror_free(&s->p0);
        ich_cuda_mirror_free(&s->p1);
        ich_cuda_free(s->rows);
        ich_cuda_free(s->partial);
        ich_cuda_free(s->grads);
        free(s);
        layer->state = NULL;
    }
    ich_cuda_params_free(layer);
}

/* State and the parameters named names[0..count) of shape dims. */
static ich_status norm_create(ich_layer *layer, const ich_shape *in, ich_shape *out,
                              const char *const *names, int count, int32_t ndim,
                              const int64_t *dims)
{
    ich_status status = ich_cuda_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    norm_state *s = calloc(1, sizeof *s);
    layer->state = s;
    if (!s)
        return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    if (count) {
        s->grads = ich_cuda_alloc(2 * (size_t)in->c * sizeof(float));
        if (!s->grads)
            status = cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
        if (status == ICH_OK)
            status = ich_cuda_params_alloc(layer, count);
        for (int i = 0; i < count && status == ICH_OK; i++)
            status = ich_cuda_param_init(&layer->params[i], names[i], ICH_DTYPE_F32, ndim, dims,
                                         1);
    }
    if (status != ICH_OK)
        norm_destroy(layer);
    return status;
}

/* The row and partial buffers for the current batch. */
static ich_status norm_buffers(ich_layer *layer, int64_t rows, int sums)
{
    norm_state *s = layer->state;
    ich_status status = ich_cuda_grow(layer, (void **)&s->rows, &s->rows_size,
                                      4 * (size_t)rows * sizeof(float));
    if (status == ICH_OK)
        status = ich_cuda_grow(layer, (void **)&s->partial, &s->partial_size,
                               (size_t)(ich_cuda_norm_chunks(rows) * sums * layer->in[0].c) *
                                   sizeof(double));
    return status;
}

/* ---- layer normalisation --------------------------------------------------- */

static ich_status layernorm_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    static const char *const names[] = {"weight", "bias"};
    int64_t dims[1] = {in->c};
    return norm_create(layer, in, out, names, 2, 1, dims);
}

static ich_status layernorm_forward(ich_layer *layer, const float *const *in, float *out,
                                    int training)
{
    (void)training;
    norm_state *s = layer->state;
    const int32_t C = layer->in[0].c;
    const int64_t rows = ich_shape_count(layer->in[0]) / C;
    ich_status status;
    if ((status = ich_cuda_mirror_sync(layer, &layer->params[0], &s->p0)) ||
        (status = ich_cuda_mirror_sync(layer, &layer->params[1], &s->p1)) ||
        (status = norm_buffers(layer, rows, 2)))
        return status;
    if (rows <= 0)
        return ICH_OK;
    ich_cuda_k_ln_stats(s->rows, in[0], rows, C, layer->args.eps);
    CHECK_LAUNCH("layernorm statistics");
    ich_cuda_k_ln_forward(out, in[0], s->rows, s->p0.device, s->p1.device, rows, C);
    CHECK_LAUNCH("layernorm forward");
    return ICH_OK;
}

static ich_status layernorm_backward(ich_layer *layer, const float *const *in, const float *out,
                                     const float *grad_out, float *const *grad_in)
{
    (void)out;
    norm_state *s = layer->state;
    const int32_t C = layer->in[0].c;
    const int64_t rows = ich_shape_count(layer->in[0]) / C;
    ich_status status;
    if ((status = ich_cuda_mirror_sync(layer, &layer->params[0], &s->p0)) ||
        (status = norm_buffers(layer, rows, 2)))
        return status;
    if (rows <= 0)
        return ICH_OK;
    ich_cuda_k_ln_stats(s->rows, in[0], rows, C, layer->args.eps);
    CHECK_LAUNCH("layernorm statistics");
    ich_cuda_k_ln_backward(grad_in ? grad_in[0] : NULL, s->grads, s->rows + 2 * rows, s->partial,
                           in[0], grad_out, s->rows, s->p0.device, rows, C);
    CHECK_LAUNCH("layernorm backward");
    /* grad_add skips frozen parameters */
    if ((status = ich_cuda_grad_add(layer, &layer->params[0], s->grads)) ||
        (status = ich_cuda_grad_add(layer, &layer->params[1], s->grads + C)))
        return status;
    return ICH_OK;
}

const ich_layer_ops ich_cuda_layernorm_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "layernorm",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = layernorm_create,
    .resize = ich_cuda_shape,
    .forward = layernorm_forward,
    .backward = layernorm_backward,
    .destroy = norm_destroy,
};

/* ---- layer scale ------------------------------------------------------------- */

static ich_status layerscale_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    static const char *const names[] = {"layer_scale"};
    int64_t dims[3] = {in->c, 1, 1};
    return norm_create(layer, in, out, names, 1, 3, dims);
}

static ich_status layerscale_forward(ich_layer *layer, const float *const *in, float *out,
                                     int training)
{
    (void)training;
    norm_state *s = layer->state;
    const int32_t C = layer->in[0].c;
    const int64_t rows = ich_shape_count(layer->in[0]) / C;
    ich_status status = ich_cuda_mirror_sync(layer, &layer->params[0], &s->p0);
    if (status || rows <= 0)
        return status;
    ich_cuda_k_ls_forward(out, in[0], s->p0.device, rows, C);
    CHECK_LAUNCH("layerscale forward");
    return ICH_OK;
}

static ich_status layerscale_backward(ich_layer *layer, const float *const *in, const float *out,
                                      const float *grad_out, float *const *grad_in)
{
    (void)out;
    norm_state *s = layer->state;
    const int32_t C = layer->in[0].c;
    const int64_t rows = ich_shape_count(layer->in[0]) / C;
    ich_status status;
    if ((status = ich_cuda_mirror_sync(layer, &layer->params[0], &s->p0)) ||
        (status = norm_buffers(layer, rows, 1)))
        return status;
    if (rows <= 0)
        return ICH_OK;
    ich_cuda_k_ls_backward(grad_in ? grad_in[0] : NULL, s->grads, s->partial, in[0], grad_out,
                           s->p0.device, rows, C);
    CHECK_LAUNCH("layerscale backward");
    return ich_cuda_grad_add(layer, &layer->params[0], s->grads);
}

const ich_layer_ops ich_cuda_layerscale_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "layerscale",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 1,
    .create = layerscale_create,
    .resize = ich_cuda_shape,
    .forward = layerscale_forward,
    .backward = layerscale_backward,
    .destroy = norm_destroy,
};

/* ---- stochastic depth ---------------------------------------------------------- */

static ich_status droppath_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    return norm_create(layer, in, out, NULL, 0, 0, NULL);
}

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

static ich_status droppath_apply(ich_layer *layer, uint64_t step, const float *x, float *y)
{
    const int64_t count = ich_shape_count(layer->out);
    if (count <= 0)
        return ICH_OK;
    const double p = layer->args.p;
    ich_cuda_k_droppath(y, x, count, count / layer->out.n, layer->seed, step, p,
                        (float)(1.0 / (1.0 - p)));
    CHECK_LAUNCH("droppath");
    return ICH_OK;
}

static ich_status droppath_forward(ich_layer *layer, const float *const *in, float *out,
                                   int training)
{
    norm_state *s = layer->state;
    s->trained = training && layer->args.p > 0.0f;
    if (!s->trained)
        return copy_unless_same(layer, out, in[0], ich_shape_count(layer->out));
    s->step = layer->step++;
    return droppath_apply(layer, s->step, in[0], out);
}

static ich_status droppath_backward(ich_layer *layer, const float *const *in, const float *out,
                                    const float *grad_out, float *const *grad_in)
{
    (void)in;
    (void)out;
    norm_state *s = layer->state;
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    if (!s->trained)
        return copy_unless_same(layer, grad_in[0], grad_out, ich_shape_count(layer->out));
    return droppath_apply(layer, s->step, grad_out, grad_in[0]);
}

const ich_layer_ops ich_cuda_droppath_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "droppath",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 1,
    .create = droppath_create,
    .resize = ich_cuda_shape,
    .forward = droppath_forward,
    .backward = droppath_backward,
    .destroy = norm_destroy,
};
