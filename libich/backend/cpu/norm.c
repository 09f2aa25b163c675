/* Layer normalisation, layer scale and stochastic depth on the CPU, over
 * NHWC activations (issue 14):
 *
 * layernorm: nn.LayerNorm(C) over the C innermost values of each position
 *   (a position's channels; a flat tensor's features): the spec's
 *   layernorm2d (ConvNeXt's LayerNorm2d) and layernorm both run here.
 *   y = (x - mean) / sqrt(var + eps) * weight + bias, biased variance.
 *   Backward recomputes each row's statistics from the input:
 *   dx = rstd * (g w - mean(g w) - xhat * mean(g w xhat)),
 *   d weight = sum(g xhat), d bias = sum(g).
 * layerscale: y = x * gamma[c] (torchvision's CNBlock layer_scale, [C, 1, 1]).
 * droppath: torchvision's StochasticDepth(p, "row"): in training each
 *   sample is kept with probability 1 - p (scaled by 1 / (1 - p)) or zeroed,
 *   one draw per sample from (seed, step, sample) with the dropout
 *   generator; backward draws the same mask again; evaluation is the
 *   identity.
 *
 * layernorm runs on oneDNN's layer_normalization primitive (JIT kernels,
 * float arithmetic, forward training keeps each row's mean and variance for
 * backward); the plain loops below (rows in double) are its fallback when
 * oneDNN has no implementation. layerscale's parameter gradient is summed
 * per fixed chunk of rows, then the chunks in order: the result does not
 * depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"
#include "core/rng.h"

enum { CHUNK_ROWS = 256 };

/* layernorm's oneDNN flags: PyTorch's weight and bias */
#define LN_FLAGS (dnnl_use_scale | dnnl_use_shift)

/* The first unit index whose start (unit * size) lies in [begin, end) and
 * the end of them: ich_parallel_range cuts [0, units * size) anywhere; each
 * unit goes wholly to the call whose range holds its first value. */
static void units_in(int64_t begin, int64_t end, int64_t size, int64_t units, int64_t *first,
                     int64_t *last)
{
    *first = (begin + size - 1) / size;
    *last = (end + size - 1) / size;
    if (*last > units)
        *last = units;
}

/* Parameter-gradient partial sums: chunks x (2 x C) doubles. */
typedef struct norm_state {
    double *partial;
    size_t partial_size;
    uint64_t step; /* droppath: the step of the last training forward */
    int trained;   /* droppath: the last forward was a training one */
    /* layernorm on oneDNN, for `rows` rows (0: not built; -1: oneDNN has
     * no implementation, the loops run) */
    int64_t rows;
    dnnl_memory_desc_t data_md, stat_md, param_md;
    dnnl_primitive_desc_t fwd_pd, bwd_pd;
    dnnl_primitive_t fwd, bwd;
    float *stats; /* rows means, then rows variances (training forward) */
    size_t stats_size;
    float *dparams; /* d weight, d bias (C each) */
    size_t dparams_size;
    float *dx; /* a diff source when the caller wants none */
    size_t dx_size;
} norm_state;

static void ln_primitives_free(norm_state *s)
{
    dnnl_primitive_t *prims[] = {&s->fwd, &s->bwd};
    dnnl_primitive_desc_t *pds[] = {&s->fwd_pd, &s->bwd_pd};
    for (int i = 0; i < 2; i++) {
        if (*prims[i])
            dnnl_primitive_destroy(*prims[i]);
        if (*pds[i])
            dnnl_primitive_desc_destroy(*pds[i]);
        *prims[i] = NULL;
        *pds[i] = NULL;
    }
    s->rows = 0;
}

static void norm_destroy(ich_layer *layer)
{
    norm_state *s = layer->state;
    if (s) {
        ln_primitives_free(s);
        ich_cpu_free(s->stats);
        ich_cpu_free(s->dparams);
        ich_cpu_free(s->dx);
        ich_cpu_free(s->partial);
        free(s);
        layer->state = NULL;
    }
    ich_cpu_params_free(layer);
}

static ich_status norm_state_create(ich_layer *layer)
{
    layer->state = calloc(1, sizeof(norm_state));
    if (!layer->state)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    return ICH_OK;
}

static int64_t chunk_count(int64_t rows)
{
    return (rows + CHUNK_ROWS - 1) / CHUNK_ROWS;
}

/* Room for `per_chunk` doubles per chunk of rows. */
static ich_status partial_grow(ich_layer *layer, int64_t rows, int64_t per_chunk)
{
    norm_state *s = layer->state;
    return ich_cpu_grow(layer, (void **)&s->partial, &s->partial_size,
                        (size_t)(chunk_count(rows) * per_chunk) * sizeof(double));
}

/* grad[c] += the chunks' sums of column `column` of partial (chunks x stride). */
static void partial_add(const double *partial, int64_t chunks, int64_t stride, int64_t offset,
                        int32_t C, ich_param *param)
{
    if (param->frozen || !param->grad)
        return;
    for (int32_t c = 0; c < C; c++) {
        double sum = 0.0;
        for (int64_t j = 0; j < chunks; j++)
            sum += partial[j * stride + offset + c];
        param->grad[c] += (float)sum;
    }
}

/* ---- layer normalisation --------------------------------------------------- */

enum { LN_WEIGHT, LN_BIAS, LN_PARAMS };

static ich_status layernorm_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status st = ich_cpu_shape(layer, in, out);
    if (st)
        return st;
    int64_t dims[1] = {in->c};
    if ((st = norm_state_create(layer)) || (st = ich_cpu_params_alloc(layer, LN_PARAMS)) ||
        (st = ich_cpu_param_init(&layer->params[LN_WEIGHT], "weight", ICH_DTYPE_F32, 1, dims, 1)) ||
        (st = ich_cpu_param_init(&layer->params[LN_BIAS], "bias", ICH_DTYPE_F32, 1, dims, 1))) {
        norm_destroy(layer);
        return st;
    }
    return ICH_OK;
}

/* Mean and 1 / sqrt(biased variance + eps) of one row of C values. */
static void row_stats(const float *x, int32_t C, double eps, double *mean, double *rstd)
{
    double sum = 0.0;
    for (int32_t c = 0; c < C; c++)
        sum += x[c];
    const double m = sum / C;
    double var = 0.0;
    for (int32_t c = 0; c < C; c++) {
        const double d = x[c] - m;
        var += d * d;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(var / C + eps);
}

typedef struct ln_job {
    const ich_layer *layer;
    const float *x, *g;
    float *y, *dx;
    double *partial; /* backward: chunks x 2C (d weight, d bias) */
    int64_t rows;
} ln_job;

static void ln_forward_range(void *context, int64_t begin, int64_t end)
{
    const ln_job *job = context;
    const int32_t C = job->layer->in[0].c;
    const float *w = job->layer->params[LN_WEIGHT].data, *b = job->layer->params[LN_BIAS].data;
    const double eps = job->layer->args.eps;
    int64_t first, last;
    units_in(begin, end, C, job->rows, &first, &last);
    for (int64_t r = first; r < last; r++) {
        const float *x = job->x + r * C;
        float *y = job->y + r * C;
        double mean, rstd;
        row_stats(x, C, eps, &mean, &rstd);
        for (int32_t c = 0; c < C; c++)
            y[c] = (float)((x[c] - mean) * rstd * w[c] + b[c]);
    }
}

/* Build the oneDNN forward primitive for the layer's row count; leaves
 * s->rows at -1 (the loops run) when oneDNN has no implementation. The
 * backward one is built by the first backward (ln_build_backward): an
 * inference-only model compiles none (issue 16). */
static ich_status ln_build(ich_layer *layer, int64_t rows)
{
    norm_state *s = layer->state;
    const int32_t C = layer->in[0].c;
    if (s->rows == rows || s->rows == -1)
        return ICH_OK;
    ln_primitives_free(s);
    if (!ich_cpu_engine())
        return ICH_ERR_INTERNAL;
    dnnl_dims_t dims = {rows, C}, stat_dims = {rows}, param_dims = {C};
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->data_md, 2, dims, dnnl_f32, dnnl_ab), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->stat_md, 1, stat_dims, dnnl_f32, dnnl_a), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->param_md, 1, param_dims, dnnl_f32, dnnl_a), "md");
    dnnl_layer_normalization_desc_t desc;
    dnnl_status_t st = dnnl_layer_normalization_forward_desc_init(
        &desc, dnnl_forward_training, &s->data_md, &s->stat_md, (float)layer->args.eps,
        LN_FLAGS);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&s->fwd_pd, &desc, NULL, ich_cpu_engine(), NULL);
    if (st == dnnl_unimplemented) {
        ln_primitives_free(s);
        s->rows = -1;
        return ICH_OK;
    }
    CHECK_DNNL(st, "layer normalization");
    CHECK_DNNL(dnnl_primitive_create(&s->fwd, s->fwd_pd), "layer normalization forward");
    ich_cpu_log_impl(layer, "forward", s->fwd_pd);
    ich_status status = ich_cpu_grow(layer, (void **)&s->stats, &s->stats_size,
                                     2 * (size_t)rows * sizeof(float));
    if (status == ICH_OK)
        s->rows = rows;
    return status;
}

/* The backward primitive beside a built forward one; without a oneDNN
 * implementation the layer falls back to the loops (s->rows -1), whose
 * backward needs nothing from a oneDNN forward. */
static ich_status ln_build_backward(ich_layer *layer)
{
    norm_state *s = layer->state;
    dnnl_layer_normalization_desc_t desc;
    dnnl_status_t st = dnnl_layer_normalization_backward_desc_init(
        &desc, dnnl_backward, &s->data_md, &s->data_md, &s->stat_md, (float)layer->args.eps,
        LN_FLAGS);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&s->bwd_pd, &desc, NULL, ich_cpu_engine(), s->fwd_pd);
    if (st == dnnl_unimplemented) {
        ln_primitives_free(s);
        s->rows = -1;
        return ICH_OK;
    }
    CHECK_DNNL(st, "layer normalization backward");
    CHECK_DNNL(dnnl_primitive_create(&s->bwd, s->bwd_pd), "layer normalization backward");
    ich_cpu_log_impl(layer, "backward", s->bwd_pd);
    return ich_cpu_grow(layer, (void **)&s->dparams, &s->dparams_size,
                        2 * (size_t)layer->in[0].c * sizeof(float));
}

static ich_status layernorm_forward(ich_layer *layer, const float *const *in, float *out,
                                    int training)
{
    (void)training;
    const int32_t C = layer->in[0].c;
    norm_state *s = layer->state;
    ich_status st = ln_build(layer, ich_shape_count(layer->in[0]) / C);
    if (st != ICH_OK)
        return st;
    if (s->rows > 0) {
        ich_dnnl_arg args[] = {{DNNL_ARG_SRC, &s->data_md, in[0]},
                               {DNNL_ARG_DST, &s->data_md, out},
                               {DNNL_ARG_MEAN, &s->stat_md, s->stats},
                               {DNNL_ARG_VARIANCE, &s->stat_md, s->stats + s->rows},
                               {DNNL_ARG_SCALE, &s->param_md, layer->params[LN_WEIGHT].data},
                               {DNNL_ARG_SHIFT, &s->param_md, layer->params[LN_BIAS].data}};
        return ich_cpu_execute(layer, s->fwd, s->fwd_pd, args, 6, NULL,
                               "layer normalization forward");
    }
    ln_job job = {layer, in[0], NULL, out, NULL, NULL, ich_shape_count(layer->in[0]) / C};
    ich_parallel_range(job.rows * C, ln_forward_range, &job);
    return ICH_OK;
}

static void ln_backward_range(void *context, int64_t begin, int64_t end)
{
    const ln_job *job = context;
    const int32_t C = job->layer->in[0].c;
    const float *w = job->layer->params[LN_WEIGHT].data;
    const double eps = job->layer->args.eps;
    int64_t first, last;
    units_in(begin, end, (int64_t)CHUNK_ROWS * C, chunk_count(job->rows), &first, &last);
    for (int64_t j = first; j < last; j++) {
        double *dw = job->partial + j * 2 * C, *db = dw + C;
        memset(dw, 0, 2 * (size_t)C * sizeof(double));
        int64_t r_end = (j + 1) * CHUNK_ROWS < job->rows ? (j + 1) * CHUNK_ROWS : job->rows;
        for (int64_t r = j * CHUNK_ROWS; r < r_end; r++) {
            const float *x = job->x + r * C, *g = job->g + r * C;
            double mean, rstd;
            row_stats(x, C, eps, &mean, &rstd);
            double a = 0.0, bsum = 0.0;
            for (int32_t c = 0; c < C; c++) {
                const double xhat = (x[c] - mean) * rstd, gw = (double)g[c] * w[c];
                a += gw;
                bsum += gw * xhat;
                dw[c] += (double)g[c] * xhat;
                db[c] += g[c];
            }
            if (job->dx) {
                float *dx = job->dx + r * C;
                a /= C;
                bsum /= C;
                for (int32_t c = 0; c < C; c++) {
                    const double xhat = (x[c] - mean) * rstd;
                    dx[c] = (float)(rstd * ((double)g[c] * w[c] - a - xhat * bsum));
                }
            }
        }
    }
}

static ich_status layernorm_backward(ich_layer *layer, const float *const *in, const float *out,
                                     const float *grad_out, float *const *grad_in)
{
    (void)out;
    const int32_t C = layer->in[0].c;
    const int64_t rows = ich_shape_count(layer->in[0]) / C;
    norm_state *s = layer->state;
    ich_status st;
    if (s->rows > 0) {
        if (s->rows != rows)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: backward without a forward pass",
                            layer->name);
        if (!s->bwd && (st = ln_build_backward(layer)) != ICH_OK)
            return st;
    }
    if (s->rows > 0) {
        float *dx = grad_in ? grad_in[0] : NULL;
        if (!dx && (st = ich_cpu_grow(layer, (void **)&s->dx, &s->dx_size,
                                      (size_t)rows * C * sizeof(float))) != ICH_OK)
            return st;
        ich_dnnl_arg args[] = {{DNNL_ARG_SRC, &s->data_md, in[0]},
                               {DNNL_ARG_MEAN, &s->stat_md, s->stats},
                               {DNNL_ARG_VARIANCE, &s->stat_md, s->stats + rows},
                               {DNNL_ARG_DIFF_DST, &s->data_md, grad_out},
                               {DNNL_ARG_SCALE, &s->param_md, layer->params[LN_WEIGHT].data},
                               {DNNL_ARG_SHIFT, &s->param_md, layer->params[LN_BIAS].data},
                               {DNNL_ARG_DIFF_SRC, &s->data_md, dx ? dx : s->dx},
                               {DNNL_ARG_DIFF_SCALE, &s->param_md, s->dparams},
                               {DNNL_ARG_DIFF_SHIFT, &s->param_md, s->dparams + C}};
        if ((st = ich_cpu_execute(layer, s->bwd, s->bwd_pd, args, 9, NULL,
                                  "layer normalization backward")) != ICH_OK)
            return st;
        for (int p = LN_WEIGHT; p <= LN_BIAS; p++) {
            ich_param *param = &layer->params[p];
            if (!param->frozen && param->grad)
                for (int32_t c = 0; c < C; c++)
                    param->grad[c] += s->dparams[p * C + c];
        }
        return ICH_OK;
    }
    if ((st = partial_grow(layer, rows, 2 * (int64_t)C)))
        return st;
    ln_job job = {layer, in[0], grad_out, NULL, grad_in ? grad_in[0] : NULL, s->partial, rows};
    const int64_t chunks = chunk_count(rows);
    ich_parallel_range(chunks * CHUNK_ROWS * C, ln_backward_range, &job);
    partial_add(s->partial, chunks, 2 * (int64_t)C, 0, C, &layer->params[LN_WEIGHT]);
    partial_add(s->partial, chunks, 2 * (int64_t)C, C, C, &layer->params[LN_BIAS]);
    return ICH_OK;
}

const ich_layer_ops ich_cpu_layernorm_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "layernorm",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = layernorm_create,
    .resize = ich_cpu_shape,
    .forward = layernorm_forward,
    .backward = layernorm_backward,
    .destroy = norm_destroy,
};

/* ---- layer scale ------------------------------------------------------------- */

static ich_status layerscale_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status st = ich_cpu_shape(layer, in, out);
    if (st)
        return st;
    int64_t dims[3] = {in->c, 1, 1};
    if ((st = norm_state_create(layer)) || (st = ich_cpu_params_alloc(layer, 1)) ||
        (st = ich_cpu_param_init(&layer->params[0], "layer_scale", ICH_DTYPE_F32, 3, dims, 1))) {
        norm_destroy(layer);
        return st;
    }
    return ICH_OK;
}

typedef struct ls_job {
    const ich_layer *layer;
    const float *x, *g;
    float *y;
    double *partial; /* backward: chunks x C */
    int64_t rows;
} ls_job;

static void ls_forward_range(void *context, int64_t begin, int64_t end)
{
    const ls_job *job = context;
    const int32_t C = job->layer->in[0].c;
    const float *gamma = job->layer->params[0].data;
    /* by rows of C (no division per value): a partial row at each end */
    int64_t i = begin;
    while (i < end) {
        const int64_t c0 = i % C, n = (end - i < C - c0) ? end - i : C - c0;
        const float *x = job->x + i, *g = gamma + c0;
        float *y = job->y + i;
        for (int64_t c = 0; c < n; c++)
            y[c] = x[c] * g[c];
        i += n;
    }
}

static ich_status layerscale_forward(ich_layer *layer, const float *const *in, float *out,
                                     int training)
{
    (void)training;
    ls_job job = {layer, in[0], NULL, out, NULL, 0};
    ich_parallel_range(ich_shape_count(layer->in[0]), ls_forward_range, &job);
    return ICH_OK;
}

static void ls_backward_range(void *context, int64_t begin, int64_t end)
{
    const ls_job *job = context;
    const int32_t C = job->layer->in[0].c;
    const float *gamma = job->layer->params[0].data;
    int64_t first, last;
    units_in(begin, end, (int64_t)CHUNK_ROWS * C, chunk_count(job->rows), &first, &last);
    for (int64_t j = first; j < last; j++) {
        double *dgamma = job->partial + j * C;
        memset(dgamma, 0, (size_t)C * sizeof(double));
        int64_t r_end = (j + 1) * CHUNK_ROWS < job->rows ? (j + 1) * CHUNK_ROWS : job->rows;
        for (int64_t r = j * CHUNK_ROWS; r < r_end; r++) {
            const float *x = job->x + r * C, *g = job->g + r * C;
            for (int32_t c = 0; c < C; c++)
                dgamma[c] += (double)g[c] * x[c];
            if (job->y) {
                float *dx = job->y + r * C;
                for (int32_t c = 0; c < C; c++)
                    dx[c] = g[c] * gamma[c];
            }
        }
    }
}

static ich_status layerscale_backward(ich_layer *layer, const float *const *in, const float *out,
                                      const float *grad_out, float *const *grad_in)
{
    (void)out;
    const int32_t C = layer->in[0].c;
    const int64_t rows = ich_shape_count(layer->in[0]) / C;
    ich_status st = partial_grow(layer, rows, C);
    if (st)
        return st;
    norm_state *s = layer->state;
    ls_job job = {layer, in[0], grad_out, grad_in ? grad_in[0] : NULL, s->partial, rows};
    const int64_t chunks = chunk_count(rows);
    ich_parallel_range(chunks * CHUNK_ROWS * C, ls_backward_range, &job);
    partial_add(s->partial, chunks, C, 0, C, &layer->params[0]);
    return ICH_OK;
}

const ich_layer_ops ich_cpu_layerscale_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "layerscale",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 1,
    .create = layerscale_create,
    .resize = ich_cpu_shape,
    .forward = layerscale_forward,
    .backward = layerscale_backward,
    .destroy = norm_destroy,
};

/* ---- stochastic depth ---------------------------------------------------------- */

static ich_status droppath_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status st = ich_cpu_shape(layer, in, out);
    if (st)
        return st;
    return norm_state_create(layer);
}

/* y = x * keep(n) / (1 - p) per sample n; keep(n): the first draw of the
 * stream (seed, step, n) is >= p (dropped samples are exact zeros). */
static void droppath_apply(const ich_layer *layer, uint64_t step, const float *x, float *y)
{
    const int64_t per_sample = ich_shape_count(layer->out) / layer->out.n;
    const double p = layer->args.p;
    const float scale = (float)(1.0 / (1.0 - p));
    for (int32_t n = 0; n < layer->out.n; n++) {
        ich_rng rng = ich_rng_init(layer->seed, step, (uint64_t)n);
        const int keep = !(ich_rng_uniform(&rng) < p);
        const float *xs = x + n * per_sample;
        float *ys = y + n * per_sample;
        if (keep)
            for (int64_t i = 0; i < per_sample; i++)
                ys[i] = xs[i] * scale;
        else
            memset(ys, 0, (size_t)per_sample * sizeof(float));
    }
}

static ich_status droppath_forward(ich_layer *layer, const float *const *in, float *out,
                                   int training)
{
    norm_state *s = layer->state;
    s->trained = training && layer->args.p > 0.0f;
    if (!s->trained) {
        if (out != in[0])
            memcpy(out, in[0], (size_t)ich_shape_count(layer->out) * sizeof(float));
        return ICH_OK;
    }
    s->step = layer->step++;
    droppath_apply(layer, s->step, in[0], out);
    return ICH_OK;
}

static ich_status droppath_backward(ich_layer *layer, const float *const *in, const float *out,
                                    const float *grad_out, float *const *grad_in)
{
    (void)in;
    (void)out;
    norm_state *s = layer->state;
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    if (!s->trained) {
        if (grad_in[0] != grad_out)
            memcpy(grad_in[0], grad_out, (size_t)ich_shape_count(layer->out) * sizeof(float));
        return ICH_OK;
    }
    droppath_apply(layer, s->step, grad_out, grad_in[0]);
    return ICH_OK;
}

const ich_layer_ops ich_cpu_droppath_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "droppath",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 1,
    .create = droppath_create,
    .resize = ich_cpu_shape,
    .forward = droppath_forward,
    .backward = droppath_backward,
    .destroy = norm_destroy,
};
