/* The element-wise activations SiLU, GELU (erf form) and sigmoid, and the
 * per-channel multiply of the scale block ("mul": x * s, s one value per
 * sample and channel; squeeze-and-excitation), on NHWC activations.
 *
 * The activations are oneDNN eltwise primitives (swish with alpha 1,
 * gelu_erf, logistic_use_dst_for_bwd), forward and backward, on the tensor
 * seen as one flat vector: oneDNN's JIT kernels evaluate exp and erf with
 * vector polynomials (a few ulp from libm's), many times faster than the
 * scalar loops over expf/erff these layers had (8% of an EfficientNet
 * training step). The primitives are built on the first call for a given
 * element count and kept. The formulas are PyTorch's:
 *   silu(x)    = x * sigmoid(x),   d/dx = s * (1 + x * (1 - s))
 *   gelu(x)    = x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)),
 *                d/dx = Phi(x) + x * exp(-x^2 / 2) / sqrt(2 pi)
 *   sigmoid(x) = 1 / (1 + exp(-x)), d/dx = y * (1 - y) from the output y. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"

/* The primitives of one activation layer for `count` values. */
typedef struct act_state {
    int64_t count;
    dnnl_memory_desc_t md;
    dnnl_primitive_desc_t fwd_pd, bwd_pd;
    dnnl_primitive_t fwd, bwd;
} act_state;

static void act_free_primitives(act_state *s)
{
    if (s->fwd)
        dnnl_primitive_destroy(s->fwd);
    if (s->bwd)
        dnnl_primitive_destroy(s->bwd);
    if (s->fwd_pd)
        dnnl_primitive_desc_destroy(s->fwd_pd);
    if (s->bwd_pd)
        dnnl_primitive_desc_destroy(s->bwd_pd);
    s->fwd = s->bwd = NULL;
    s->fwd_pd = s->bwd_pd = NULL;
    s->count = 0;
}

static void act_destroy(ich_layer *layer)
{
    act_state *s = layer->state;
    if (s && layer->ops->inputs == 1)
        act_free_primitives(s);
    free(s);
    layer->state = NULL;
}

static ich_status act_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status st = ich_cpu_shape(layer, in, out);
    if (st != ICH_OK)
        return st;
    if (!ich_cpu_engine())
        return ICH_ERR_INTERNAL;
    layer->state = calloc(1, sizeof(act_state));
    if (!layer->state)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    return ICH_OK;
}

static dnnl_alg_kind_t act_alg(const ich_layer *layer)
{
    const char *kind = layer->ops->kind;
    if (!strcmp(kind, "silu"))
        return dnnl_eltwise_swish;
    if (!strcmp(kind, "gelu"))
        return dnnl_eltwise_gelu_erf;
    return dnnl_eltwise_logistic_use_dst_for_bwd;
}

/* The forward primitive (and, when `backward`, the backward one) for the
 * layer's current element count. */
static ich_status act_build(ich_layer *layer, int backward)
{
    act_state *s = layer->state;
    const int64_t count = ich_shape_count(layer->out);
    if (s->count != count) {
        act_free_primitives(s);
        dnnl_dims_t dims = {count};
        CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->md, 1, dims, dnnl_f32, dnnl_a), "md");
        dnnl_eltwise_desc_t desc;
        CHECK_DNNL(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_training, act_alg(layer),
                                                  &s->md, 1.0f, 0.0f),
                   "eltwise forward desc");
        CHECK_DNNL(dnnl_primitive_desc_create(&s->fwd_pd, &desc, NULL, ich_cpu_engine(), NULL),
                   "eltwise forward");
        CHECK_DNNL(dnnl_primitive_create(&s->fwd, s->fwd_pd), "eltwise forward");
        ich_cpu_log_impl(layer, "forward", s->fwd_pd);
        s->count = count;
    }
    if (backward && !s->bwd) {
        dnnl_eltwise_desc_t desc;
        CHECK_DNNL(dnnl_eltwise_backward_desc_init(&desc, act_alg(layer), &s->md, &s->md, 1.0f,
                                                   0.0f),
                   "eltwise backward desc");
        CHECK_DNNL(dnnl_primitive_desc_create(&s->bwd_pd, &desc, NULL, ich_cpu_engine(),
                                              s->fwd_pd),
                   "eltwise backward");
        CHECK_DNNL(dnnl_primitive_create(&s->bwd, s->bwd_pd), "eltwise backward");
        ich_cpu_log_impl(layer, "backward", s->bwd_pd);
    }
    return ICH_OK;
}

static ich_status act_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    (void)training;
    ich_status st = act_build(layer, 0);
    if (st != ICH_OK)
        return st;
    act_state *s = layer->state;
    ich_dnnl_arg args[] = {{DNNL_ARG_SRC, &s->md, in[0]}, {DNNL_ARG_DST, &s->md, out}};
    return ich_cpu_execute(layer, s->fwd, s->fwd_pd, args, 2, NULL, "eltwise forward");
}

/* silu and gelu take their input (`in`), sigmoid its output (`out`). */
static ich_status act_backward(ich_layer *layer, const float *const *in, const float *out,
                               const float *grad_out, float *const *grad_in)
{
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    ich_status st = act_build(layer, 1);
    if (st != ICH_OK)
        return st;
    act_state *s = layer->state;
    const int use_dst = act_alg(layer) == dnnl_eltwise_logistic_use_dst_for_bwd;
    ich_dnnl_arg args[] = {{use_dst ? DNNL_ARG_DST : DNNL_ARG_SRC, &s->md, use_dst ? out : in[0]},
                           {DNNL_ARG_DIFF_DST, &s->md, grad_out},
                           {DNNL_ARG_DIFF_SRC, &s->md, grad_in[0]}};
    return ich_cpu_execute(layer, s->bwd, s->bwd_pd, args, 3, NULL, "eltwise backward");
}

/* silu and gelu read their input again in backward (in place only in
 * evaluation, where the model allows it); sigmoid its output, so it may
 * overwrite its input in training too, as ReLU. */
const ich_layer_ops ich_cpu_silu_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "silu",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 1,
    .create = act_create,
    .resize = ich_cpu_shape,
    .forward = act_forward,
    .backward = act_backward,
    .destroy = act_destroy,
};

const ich_layer_ops ich_cpu_gelu_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "gelu",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 1,
    .create = act_create,
    .resize = ich_cpu_shape,
    .forward = act_forward,
    .backward = act_backward,
    .destroy = act_destroy,
};

const ich_layer_ops ich_cpu_sigmoid_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "sigmoid",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 1,
    .in_place = 1,
    .create = act_create,
    .resize = ich_cpu_shape,
    .forward = act_forward,
    .backward = act_backward,
    .destroy = act_destroy,
};

/* ---- mul: y[n, p, c] = x[n, p, c] * s[n, c] ------------------------------ */

typedef struct mul_job {
    const float *x, *s, *g;
    float *y, *ds;
    int64_t pixels; /* h * w */
    int32_t c;
} mul_job;

/* Forward (g NULL) or d loss / d x (g the output gradient): rows of C. */
static void mul_rows(void *context, int64_t begin, int64_t end)
{
    const mul_job *job = context;
    const int32_t c = job->c;
    for (int64_t r = begin; r < end; r++) {
        const float *s = job->s + (r / job->pixels) * c;
        const float *a = (job->g ? job->g : job->x) + r * c;
        float *y = job->y + r * c;
        for (int32_t k = 0; k < c; k++)
            y[k] = a[k] * s[k];
    }
}

/* d loss / d s[n, c] = sum over pixels of g * x, one sample per call. */
static void mul_factor_grad(void *context, int64_t begin, int64_t end)
{
    const mul_job *job = context;
    const int32_t c = job->c;
    for (int64_t n = begin; n < end; n++) {
        float *ds = job->ds + n * c;
        const float *x = job->x + n * job->pixels * c, *g = job->g + n * job->pixels * c;
        /* float partial sums of 64 pixels, added in double */
        float part[256];
        for (int32_t k0 = 0; k0 < c; k0 += 256) {
            int32_t kn = c - k0 < 256 ? c - k0 : 256;
            double total[256];
            memset(total, 0, sizeof(double) * (size_t)kn);
            for (int64_t p0 = 0; p0 < job->pixels; p0 += 64) {
                int64_t pe = p0 + 64 < job->pixels ? p0 + 64 : job->pixels;
                memset(part, 0, sizeof(float) * (size_t)kn);
                for (int64_t p = p0; p < pe; p++)
                    for (int32_t k = 0; k < kn; k++)
                        part[k] += g[p * c + k0 + k] * x[p * c + k0 + k];
                for (int32_t k = 0; k < kn; k++)
                    total[k] += part[k];
            }
            for (int32_t k = 0; k < kn; k++)
                ds[k0 + k] = (float)total[k];
        }
    }
}

static ich_status mul_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    (void)training;
    const ich_shape I = layer->in[0];
    mul_job job = {in[0], in[1], NULL, out, NULL, (int64_t)I.h * I.w, I.c};
    ich_parallel_range((int64_t)I.n * job.pixels, mul_rows, &job);
    return ICH_OK;
}

static ich_status mul_backward(ich_layer *layer, const float *const *in, const float *out,
                               const float *grad_out, float *const *grad_in)
{
    (void)out;
    if (!grad_in)
        return ICH_OK;
    const ich_shape I = layer->in[0];
    mul_job job = {in[0], in[1], grad_out, grad_in[0], grad_in[1], (int64_t)I.h * I.w, I.c};
    /* the factors' gradient first: grad_in[0] never aliases grad_out
     * (mul is not in place), but read g before anything else is written */
    if (grad_in[1])
        ich_parallel_range(I.n, mul_factor_grad, &job);
    if (grad_in[0])
        ich_parallel_range((int64_t)I.n * job.pixels, mul_rows, &job);
    return ICH_OK;
}

const ich_layer_ops ich_cpu_mul_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "mul",
    .inputs = 2,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = ich_cpu_shape,
    .resize = ich_cpu_shape,
    .forward = mul_forward,
    .backward = mul_backward,
    .destroy = act_destroy,
};
