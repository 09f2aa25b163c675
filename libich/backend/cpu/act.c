/* The element-wise activations SiLU, GELU (erf form) and sigmoid, and the
 * per-channel multiply of the scale block ("mul": x * s, s one value per
 * sample and channel; squeeze-and-excitation), on NHWC activations.
 *
 * Plain loops over ich_parallel_range, as ReLU: they are memory-bound, and
 * a loop needs no primitive cache per shape. The formulas are PyTorch's:
 *   silu(x)    = x * sigmoid(x),   d/dx = s * (1 + x * (1 - s))
 *   gelu(x)    = x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)),
 *                d/dx = Phi(x) + x * exp(-x^2 / 2) / sqrt(2 pi)
 *   sigmoid(x) = 1 / (1 + exp(-x)), d/dx = y * (1 - y) from the output y. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"

static void act_destroy(ich_layer *layer)
{
    free(layer->state);
    layer->state = NULL;
}

typedef struct act_job {
    const float *x;    /* forward: input; backward: input (silu, gelu) or output (sigmoid) */
    const float *grad; /* backward: d loss / d output */
    float *y;          /* forward: output; backward: d loss / d input */
} act_job;

static inline float sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

#define ACT_RANGE(name, expr)                                                                     \
    static void name(void *context, int64_t begin, int64_t end)                                   \
    {                                                                                             \
        const act_job *job = context;                                                             \
        const float *x = job->x, *g = job->grad;                                                  \
        float *y = job->y;                                                                        \
        (void)g;                                                                                  \
        for (int64_t i = begin; i < end; i++) {                                                   \
            const float v = x[i];                                                                 \
            y[i] = (expr);                                                                        \
        }                                                                                         \
    }

#define SQRT1_2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

ACT_RANGE(silu_forward_range, v * sigmoidf(v))
static inline float silu_grad(float v)
{
    const float s = sigmoidf(v);
    return s * (1.0f + v * (1.0f - s));
}

ACT_RANGE(silu_backward_range, g[i] * silu_grad(v))
ACT_RANGE(gelu_forward_range, 0.5f * v * (1.0f + erff(v * SQRT1_2)))
ACT_RANGE(gelu_backward_range,
          g[i] * (0.5f * (1.0f + erff(v * SQRT1_2)) + v * INV_SQRT_2PI * expf(-0.5f * v * v)))
ACT_RANGE(sigmoid_forward_range, sigmoidf(v))
ACT_RANGE(sigmoid_backward_range, g[i] * (v * (1.0f - v)))

static ich_status run(ich_layer *layer, ich_range_fn fn, const float *x, const float *grad,
                      float *y)
{
    act_job job = {x, grad, y};
    ich_parallel_range(ich_shape_count(layer->out), fn, &job);
    return ICH_OK;
}

static ich_status silu_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    (void)training;
    return run(layer, silu_forward_range, in[0], NULL, out);
}

static ich_status silu_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    (void)out;
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    return run(layer, silu_backward_range, in[0], grad_out, grad_in[0]);
}

static ich_status gelu_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    (void)training;
    return run(layer, gelu_forward_range, in[0], NULL, out);
}

static ich_status gelu_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    (void)out;
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    return run(layer, gelu_backward_range, in[0], grad_out, grad_in[0]);
}

static ich_status sigmoid_forward(ich_layer *layer, const float *const *in, float *out,
                                  int training)
{
    (void)training;
    return run(layer, sigmoid_forward_range, in[0], NULL, out);
}

static ich_status sigmoid_backward(ich_layer *layer, const float *const *in, const float *out,
                                   const float *grad_out, float *const *grad_in)
{
    (void)in;
    if (!grad_in || !grad_in[0])
        return ICH_OK;
    return run(layer, sigmoid_backward_range, out, grad_out, grad_in[0]);
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
    .create = ich_cpu_shape,
    .resize = ich_cpu_shape,
    .forward = silu_forward,
    .backward = silu_backward,
    .destroy = act_destroy,
};

const ich_layer_ops ich_cpu_gelu_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "gelu",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 1,
    .create = ich_cpu_shape,
    .resize = ich_cpu_shape,
    .forward = gelu_forward,
    .backward = gelu_backward,
    .destroy = act_destroy,
};

const ich_layer_ops ich_cpu_sigmoid_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "sigmoid",
    .inputs = 1,
    .needs_input = 0,
    .needs_output = 1,
    .in_place = 1,
    .create = ich_cpu_shape,
    .resize = ich_cpu_shape,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
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
