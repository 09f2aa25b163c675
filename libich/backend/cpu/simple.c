/* The memory-bound layers: ReLU, dropout, flatten, residual add and channel
 * concatenation, on NHWC activations. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"

static void nothing_destroy(ich_layer *layer)
{
    free(layer->state);
    layer->state = NULL;
}

/* ---- ReLU ---------------------------------------------------------------- */

typedef struct relu_job {
    const float *x, *out, *grad_out;
    float *y;
} relu_job;

static void relu_forward_range(void *context, int64_t begin, int64_t end)
{
    const relu_job *job = context;
    for (int64_t i = begin; i < end; i++)
        job->y[i] = job->x[i] > 0.0f ? job->x[i] : 0.0f;
}

static ich_status relu_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    relu_job job = {in[0], NULL, NULL, out};
    ich_parallel_range(ich_shape_count(layer->out), relu_forward_range, &job);
    return ICH_OK;
}

static void relu_backward_range(void *context, int64_t begin, int64_t end)
{
    const relu_job *job = context;
    for (int64_t i = begin; i < end; i++)
        job->y[i] = job->out[i] > 0.0f ? job->grad_out[i] : 0.0f;
}

static ich_status relu_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    relu_job job = {NULL, out, grad_out, grad_in[0]};
    ich_parallel_range(ich_shape_count(layer->out), relu_backward_range, &job);
    return ICH_OK;
}

const ich_layer_ops ich_cpu_relu_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "relu",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 1,
    .in_place = 1,
    .create = ich_cpu_shape,
    .resize = ich_cpu_shape,
    .forward = relu_forward,
    .backward = relu_backward,
    .destroy = nothing_destroy,
};

/* ---- dropout ------------------------------------------------------------- */

/* The mask is not stored: it is drawn again in backward from (seed, step,
 * sample), one stream per sample. */
typedef struct dropout_state {
    uint64_t step; /* the step of the last training forward */
    int trained;   /* the last forward was a training one */
} dropout_state;

static ich_status dropout_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status)
        return status;
    layer->state = calloc(1, sizeof(dropout_state));
    if (!layer->state)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    return ICH_OK;
}

/* y = x * mask / (1 - p), sample by sample (dropped values are exact zeros). */
static void dropout_apply(const ich_layer *layer, uint64_t step, const float *x, float *y)
{
    const int64_t per_sample = ich_shape_count(layer->out) / layer->out.n;
    const double p = layer->args.p;
    const float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    for (int32_t n = 0; n < layer->out.n; n++) {
        ich_rng rng = ich_rng_init(layer->seed, step, (uint64_t)n);
        const float *xs = x + n * per_sample;
        float *ys = y + n * per_sample;
        for (int64_t i = 0; i < per_sample; i++)
            ys[i] = ich_rng_uniform(&rng) < p ? 0.0f : xs[i] * scale;
    }
}

static ich_status dropout_forward(ich_layer *layer, const float *const *in, float *out,
                                  int training)
{
    dropout_state *s = layer->state;
    s->trained = training;
    if (!training) {
        if (out != in[0])
            memcpy(out, in[0], (size_t)ich_shape_count(layer->out) * sizeof(float));
        return ICH_OK;
    }
    s->step = layer->step++;
    dropout_apply(layer, s->step, in[0], out);
    return ICH_OK;
}

static ich_status dropout_backward(ich_layer *layer, const float *const *in, const float *out,
                                   const float *grad_out, float *const *grad_in)
{
    dropout_state *s = layer->state;
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    if (!s->trained) {
        if (grad_in[0] != grad_out)
            memcpy(grad_in[0], grad_out, (size_t)ich_shape_count(layer->out) * sizeof(float));
        return ICH_OK;
    }
    dropout_apply(layer, s->step, grad_out, grad_in[0]);
    return ICH_OK;
}

const ich_layer_ops ich_cpu_dropout_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "dropout",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 1,
    .create = dropout_create,
    .resize = ich_cpu_shape,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .destroy = nothing_destroy,
};

/* ---- flatten ------------------------------------------------------------- */

static ich_status flatten_forward(ich_layer *layer, const float *const *in, float *out,
                                  int training)
{
    const ich_shape I = layer->in[0];
    const int64_t hw = (int64_t)I.h * I.w, per_sample = hw * I.c;
    for (int32_t n = 0; n < I.n; n++) {
        const float *x = in[0] + n * per_sample;
        float *y = out + n * per_sample;
        for (int64_t p = 0; p < hw; p++)
            for (int32_t c = 0; c < I.c; c++)
                y[c * hw + p] = x[p * I.c + c];
    }
    return ICH_OK;
}

static ich_status flatten_backward(ich_layer *layer, const float *const *in, const float *out,
                                   const float *grad_out, float *const *grad_in)
{
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    const ich_shape I = layer->in[0];
    const int64_t hw = (int64_t)I.h * I.w, per_sample = hw * I.c;
    for (int32_t n = 0; n < I.n; n++) {
        const float *g = grad_out + n * per_sample;
        float *dx = grad_in[0] + n * per_sample;
        for (int64_t p = 0; p < hw; p++)
            for (int32_t c = 0; c < I.c; c++)
                dx[p * I.c + c] = g[c * hw + p];
    }
    return ICH_OK;
}

const ich_layer_ops ich_cpu_flatten_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "flatten",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = ich_cpu_shape,
    .resize = ich_cpu_shape,
    .forward = flatten_forward,
    .backward = flatten_backward,
    .destroy = nothing_destroy,
};

/* ---- residual add -------------------------------------------------------- */

/* The add's element loops on the compute threads (ich_parallel_range):
 * one thread's copy or sum runs at about half the memory's bandwidth
 * (ichnet's res1, 4 MiB a gradient: 2.0 ms for its backward's two copies
 * on one thread). */
typedef struct add_job {
    const float *a, *b; /* b NULL: copy a */
    float *out[2];      /* the destinations of a + b or of a's copies; NULL: none */
} add_job;

static void add_range(void *context, int64_t begin, int64_t end)
{
    const add_job *j = context;
    for (int d = 0; d < 2; d++) {
        float *out = j->out[d];
        if (!out)
            continue;
        if (!j->b)
            memcpy(out + begin, j->a + begin, (size_t)(end - begin) * sizeof(float));
        else
            for (int64_t i = begin; i < end; i++)
                out[i] = j->a[i] + j->b[i];
    }
}

static ich_status add_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    (void)training;
    add_job j = {.a = in[0], .b = in[1], .out = {out, NULL}};
    ich_parallel_range(ich_shape_count(layer->out), add_range, &j);
    return ICH_OK;
}

static ich_status add_backward(ich_layer *layer, const float *const *in, const float *out,
                               const float *grad_out, float *const *grad_in)
{
    (void)in;
    (void)out;
    add_job j = {.a = grad_out};
    for (int i = 0; i < 2 && grad_in; i++)
        if (grad_in[i] && grad_in[i] != grad_out)
            j.out[i] = grad_in[i];
    if (j.out[0] || j.out[1])
        ich_parallel_range(ich_shape_count(layer->out), add_range, &j);
    return ICH_OK;
}

const ich_layer_ops ich_cpu_add_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "add",
    .inputs = 2,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 1,
    .create = ich_cpu_shape,
    .resize = ich_cpu_shape,
    .forward = add_forward,
    .backward = add_backward,
    .destroy = nothing_destroy,
};

/* ---- channel concatenation ----------------------------------------------- */

static ich_status concat_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    const int32_t c0 = layer->in[0].c, c1 = layer->in[1].c, c = c0 + c1;
    const int64_t rows = ich_shape_count(layer->out) / c;
    for (int64_t r = 0; r < rows; r++) {
        memcpy(out + r * c, in[0] + r * c0, (size_t)c0 * sizeof(float));
        memcpy(out + r * c + c0, in[1] + r * c1, (size_t)c1 * sizeof(float));
    }
    return ICH_OK;
}

static ich_status concat_backward(ich_layer *layer, const float *const *in, const float *out,
                                  const float *grad_out, float *const *grad_in)
{
    const int32_t cs[2] = {layer->in[0].c, layer->in[1].c}, c = cs[0] + cs[1];
    const int64_t rows = ich_shape_count(layer->out) / c;
    for (int i = 0; i < 2 && grad_in; i++) {
        if (!grad_in[i])
            continue;
        int32_t offset = i ? cs[0] : 0;
        for (int64_t r = 0; r < rows; r++)
            memcpy(grad_in[i] + r * cs[i], grad_out + r * c + offset,
                   (size_t)cs[i] * sizeof(float));
    }
    return ICH_OK;
}

const ich_layer_ops ich_cpu_concat_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "concat",
    .inputs = 2,
    .needs_input = 0,
    .needs_output = 0,
    .in_place = 0,
    .create = ich_cpu_shape,
    .resize = ich_cpu_shape,
    .forward = concat_forward,
    .backward = concat_backward,
    .destroy = nothing_destroy,
};
