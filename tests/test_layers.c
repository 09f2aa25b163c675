/* Tests of the CPU backend's layers (libich/backend/cpu/) through the
 * internal backend table: every layer's forward against a naive NCHW
 * reference written here (double accumulation), every layer's backward
 * (input and parameter gradients) against central finite differences of a
 * random linear functional of the output, batch norm's running statistics,
 * dropout's mask, fused ReLU, the weight cache and resizing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "backend/cpu/winograd.h"
#include "ich/ich.h"
#include "test_util.h"

/* ---- small utilities ----------------------------------------------------- */

static uint64_t g_rng = 12345;

static double urand(void) /* [0, 1) */
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_rng >> 11) * (1.0 / 9007199254740992.0);
}

static float *frand(int64_t count, double lo, double hi)
{
    float *v = malloc((size_t)count * sizeof(float));
    assert_non_null(v);
    for (int64_t i = 0; i < count; i++)
        v[i] = (float)(lo + (hi - lo) * urand());
    return v;
}

/* Random values at least `gap` away from 0 (no ReLU kink near them). */
static float *frand_away(int64_t count, double gap)
{
    float *v = frand(count, -1.0, 1.0);
    for (int64_t i = 0; i < count; i++)
        if (fabsf(v[i]) < gap)
            v[i] = v[i] < 0 ? v[i] - (float)gap : v[i] + (float)gap;
    return v;
}

/* Distinct values 0.05 apart in random order (no max-pool ties). */
static float *frand_distinct(int64_t count)
{
    float *v = malloc((size_t)count * sizeof(float));
    assert_non_null(v);
    for (int64_t i = 0; i < count; i++)
        v[i] = (float)(0.05 * (double)(i - count / 2));
    for (int64_t i = count - 1; i > 0; i--) {
        int64_t j = (int64_t)(urand() * (double)(i + 1));
        float t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    return v;
}

static float *fcopy(const float *v, int64_t count)
{
    float *c = malloc((size_t)count * sizeof(float));
    assert_non_null(c);
    memcpy(c, v, (size_t)count * sizeof(float));
    return c;
}

static float *fzeros(int64_t count)
{
    float *v = calloc((size_t)count, sizeof(float));
    assert_non_null(v);
    return v;
}

static ich_shape shp(int n, int h, int w, int c)
{
    ich_shape s = {n, h, w, c};
    return s;
}

/* NHWC <-> NCHW index of (n, c, h, w). */
static int64_t nhwc(ich_shape s, int n, int c, int h, int w)
{
    return (((int64_t)n * s.h + h) * s.w + w) * s.c + c;
}

static int64_t nchw(ich_shape s, int n, int c, int h, int w)
{
    return (((int64_t)n * s.c + c) * s.h + h) * s.w + w;
}

static float *to_nchw(const float *x, ich_shape s)
{
    float *y = malloc((size_t)ich_shape_count(s) * sizeof(float));
    assert_non_null(y);
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    y[nchw(s, n, c, h, w)] = x[nhwc(s, n, c, h, w)];
    return y;
}

/* Compare an NHWC output with an NCHW reference. */
static void expect_close_nchw(const float *got_nhwc, const double *want_nchw, ich_shape s,
                              double tol, const char *what)
{
    double worst = 0;
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) {
                    double got = got_nhwc[nhwc(s, n, c, h, w)];
                    double want = want_nchw[nchw(s, n, c, h, w)];
                    double err = fabs(got - want) / (1.0 + fabs(want));
                    if (err > worst)
                        worst = err;
                }
    if (worst > tol)
        fail_msg("%s: worst relative error %g > %g", what, worst, tol);
}

/* ---- layers through the backend table ------------------------------------ */

static const ich_backend *be(void)
{
    return ich_backend_cpu();
}

static ich_layer *make_layer(const char *kind, ich_layer_args args, const ich_shape *in)
{
    const ich_layer_ops *ops = be()->layer(kind);
    assert_non_null(ops);
    ich_layer *layer = calloc(1, sizeof *layer);
    assert_non_null(layer);
    layer->ops = ops;
    snprintf(layer->name, sizeof layer->name, "test_%s", kind);
    layer->args = args;
    layer->seed = 99;
    ich_shape out;
    ich_status status = ops->create(layer, in, &out);
    if (status != ICH_OK)
        fail_msg("create %s: %s", kind, ich_last_error());
    assert_int_equal(out.n, layer->out.n);
    return layer;
}

static void free_layer(ich_layer *layer)
{
    layer->ops->destroy(layer);
    free(layer);
}

/* Random parameters (batch norm's running variance positive). */
static void randomise_params(ich_layer *layer)
{
    for (int i = 0; i < layer->nparams; i++) {
        ich_param *p = &layer->params[i];
        if (p->dtype != ICH_DTYPE_F32)
            continue;
        int64_t count = 1;
        for (int d = 0; d < p->ndim; d++)
            count *= p->dims[d];
        float *v = p->data;
        int positive = strcmp(p->name, "running_var") == 0 || strcmp(p->name, "weight") == 0;
        for (int64_t j = 0; j < count; j++)
            v[j] = (float)(positive && strcmp(layer->ops->kind, "batchnorm") == 0 ? 0.5 + urand()
                                                                                  : urand() - 0.5);
        p->version++;
    }
}

static ich_param *param(ich_layer *layer, const char *name)
{
    for (int i = 0; i < layer->nparams; i++)
        if (strcmp(layer->params[i].name, name) == 0)
            return &layer->params[i];
    return NULL;
}

static int64_t param_count(const ich_param *p)
{
    int64_t count = 1;
    for (int d = 0; d < p->ndim; d++)
        count *= p->dims[d];
    return count;
}

static float *run_forward(ich_layer *layer, float *const *in, int training)
{
    float *out = fzeros(ich_shape_count(layer->out));
    const float *ins[2] = {in[0], layer->ops->inputs > 1 ? in[1] : NULL};
    ich_status status = layer->ops->forward(layer, ins, out, training);
    if (status != ICH_OK)
        fail_msg("forward %s: %s", layer->ops->kind, ich_last_error());
    return out;
}

/* sum(r * forward(in)) in double; dropout replays the same step. */
static double functional(ich_layer *layer, float *const *in, const float *r, uint64_t step)
{
    layer->step = step;
    float *out = run_forward(layer, in, 1);
    double sum = 0;
    for (int64_t i = 0; i < ich_shape_count(layer->out); i++)
        sum += (double)r[i] * out[i];
    free(out);
    return sum;
}

static void expect_grad(double analytic, double numeric, const char *what, int64_t index)
{
    if (fabs(analytic - numeric) > 5e-3 + 1e-2 * fabs(numeric))
        fail_msg("%s[%lld]: analytic %g, finite difference %g", what, (long long)index, analytic,
                 numeric);
}

/* Check every input and parameter gradient of `layer` (already created,
 * parameters set) against central differences with step h, at up to
 * `samples` random positions of each tensor. */
static void grad_check(ich_layer *layer, float *const *in, double h, int samples)
{
    int inputs = layer->ops->inputs;
    int64_t out_count = ich_shape_count(layer->out);
    float *r = frand(out_count, -1.0, 1.0);
    uint64_t step = layer->step;

    /* analytic: one training forward, then backward with grad_out = r */
    for (int i = 0; i < layer->nparams; i++)
        if (layer->params[i].grad)
            memset(layer->params[i].grad, 0, (size_t)param_count(&layer->params[i]) * 4);
    float *out = run_forward(layer, in, 1);
    float *grad_out = fcopy(r, out_count);
    float *grad_in[2] = {NULL, NULL};
    for (int i = 0; i < inputs; i++)
        grad_in[i] = fzeros(ich_shape_count(layer->in[i]));
    const float *ins[2] = {in[0], inputs > 1 ? in[1] : NULL};
    ich_status status =
        layer->ops->backward(layer, layer->ops->needs_input ? ins : NULL,
                             layer->ops->needs_output ? out : NULL, grad_out, grad_in);
    if (status != ICH_OK)
        fail_msg("backward %s: %s", layer->ops->kind, ich_last_error());

    for (int i = 0; i < inputs; i++) {
        int64_t count = ich_shape_count(layer->in[i]);
        for (int s = 0; s < samples && s < count; s++) {
            int64_t j = samples >= count ? s : (int64_t)(urand() * (double)count);
            float keep = in[i][j];
            in[i][j] = (float)(keep + h);
            double plus = functional(layer, in, r, step);
            in[i][j] = (float)(keep - h);
            double minus = functional(layer, in, r, step);
            in[i][j] = keep;
            expect_grad(grad_in[i][j], (plus - minus) / (2 * h), "input grad", j);
        }
    }
    for (int p = 0; p < layer->nparams; p++) {
        ich_param *prm = &layer->params[p];
        if (!prm->trainable)
            continue;
        float *data = prm->data;
        int64_t count = param_count(prm);
        for (int s = 0; s < samples && s < count; s++) {
            int64_t j = samples >= count ? s : (int64_t)(urand() * (double)count);
            float keep = data[j];
            data[j] = (float)(keep + h);
            prm->version++;
            double plus = functional(layer, in, r, step);
            data[j] = (float)(keep - h);
            prm->version++;
            double minus = functional(layer, in, r, step);
            data[j] = keep;
            prm->version++;
            expect_grad(prm->grad[j], (plus - minus) / (2 * h), prm->name, j);
        }
    }
    free(r);
    free(out);
    free(grad_out);
    free(grad_in[0]);
    free(grad_in[1]);
}

/* ---- naive references (NCHW, double) ------------------------------------- */

static double *ref_conv(const float *x_nhwc, ich_shape is, const ich_layer *layer, ich_shape os)
{
    const ich_layer_args *a = &layer->args;
    const float *w = layer->params[0].data;
    const float *b = a->bias ? layer->params[1].data : NULL;
    float *x = to_nchw(x_nhwc, is);
    double *y = calloc((size_t)ich_shape_count(os), sizeof(double));
    assert_non_null(y);
    int K0 = a->kernel[0], K1 = a->kernel[1];
    /* groups: output channel o reads input channels [g * cg, (g + 1) * cg) */
    int groups = a->groups > 1 ? a->groups : 1, cg = is.c / groups;
    for (int n = 0; n < os.n; n++)
        for (int o = 0; o < os.c; o++)
            for (int oh = 0; oh < os.h; oh++)
                for (int ow = 0; ow < os.w; ow++) {
                    double sum = b ? b[o] : 0.0;
                    int first = o / (os.c / groups) * cg;
                    for (int c = 0; c < cg; c++)
                        for (int kh = 0; kh < K0; kh++)
                            for (int kw = 0; kw < K1; kw++) {
                                int ih = oh * a->stride[0] - a->padding[0] + kh * a->dilation[0];
                                int iw = ow * a->stride[1] - a->padding[1] + kw * a->dilation[1];
                                if (ih < 0 || ih >= is.h || iw < 0 || iw >= is.w)
                                    continue;
                                sum += (double)x[nchw(is, n, first + c, ih, iw)] *
                                       w[((o * cg + c) * K0 + kh) * K1 + kw];
                            }
                    if (a->fuse_relu && sum < 0)
                        sum = 0;
                    y[nchw(os, n, o, oh, ow)] = sum;
                }
    free(x);
    return y;
}

/* max (kind 0) or average with padding counted (kind 1) */
static double *ref_pool(const float *x_nhwc, ich_shape is, const ich_layer_args *a, ich_shape os,
                        int average)
{
    float *x = to_nchw(x_nhwc, is);
    double *y = calloc((size_t)ich_shape_count(os), sizeof(double));
    assert_non_null(y);
    for (int n = 0; n < os.n; n++)
        for (int c = 0; c < os.c; c++)
            for (int oh = 0; oh < os.h; oh++)
                for (int ow = 0; ow < os.w; ow++) {
                    double acc = average ? 0.0 : -INFINITY;
                    for (int kh = 0; kh < a->kernel[0]; kh++)
                        for (int kw = 0; kw < a->kernel[1]; kw++) {
                            int ih = oh * a->stride[0] - a->padding[0] + kh;
                            int iw = ow * a->stride[1] - a->padding[1] + kw;
                            if (ih < 0 || ih >= is.h || iw < 0 || iw >= is.w)
                                continue;
                            double v = x[nchw(is, n, c, ih, iw)];
                            acc = average ? acc + v : (v > acc ? v : acc);
                        }
                    y[nchw(os, n, c, oh, ow)] = average ? acc / (a->kernel[0] * a->kernel[1]) : acc;
                }
    free(x);
    return y;
}

/* ---- forward and gradient tests per layer -------------------------------- */

typedef struct conv_case {
    ich_shape in;
    int out, k0, k1, s0, s1, p0, p1, d0, d1, bias;
} conv_case;

static const conv_case conv_cases[] = {
    {{1, 7, 6, 3}, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},    /* batch 1, same padding */
    {{3, 9, 8, 2}, 5, 3, 2, 2, 2, 1, 0, 1, 1, 1},    /* stride 2, odd sizes, 3x2
                                                        kernel */
    {{2, 11, 10, 3}, 3, 3, 3, 1, 1, 2, 2, 2, 2, 0},  /* dilation 2, no bias */
    {{2, 8, 9, 5}, 6, 5, 5, 2, 2, 0, 0, 1, 1, 1},    /* k5 stride 2 */
    {{1, 10, 10, 1}, 17, 5, 5, 1, 1, 0, 0, 1, 1, 1}, /* one input channel (the
                                                        tutorial's conv1) */
    {{2, 8, 7, 3}, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1},    /* stride 2 leaves the right
                                                        padding unused */
    {{3, 13, 12, 1}, 9, 4, 4, 2, 1, 1, 2, 1, 1, 1},  /* one input channel, 4x4,
                                                        stride (2, 1), padding */
};

static ich_layer_args conv_args(const conv_case *c)
{
    ich_layer_args a = {0};
    a.out = c->out;
    a.kernel[0] = c->k0;
    a.kernel[1] = c->k1;
    a.stride[0] = c->s0;
    a.stride[1] = c->s1;
    a.padding[0] = c->p0;
    a.padding[1] = c->p1;
    a.dilation[0] = c->d0;
    a.dilation[1] = c->d1;
    a.bias = c->bias;
    return a;
}

static void test_conv_forward(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        const conv_case *c = &conv_cases[i];
        for (int relu = 0; relu < 2; relu++) {
            ich_layer_args a = conv_args(c);
            a.fuse_relu = relu;
            ich_layer *layer = make_layer("conv", a, &c->in);
            randomise_params(layer);
            assert_int_equal(layer->params[0].ndim, 4);
            assert_int_equal(layer->params[0].dims[0], c->out);
            assert_int_equal(layer->params[0].dims[1], c->in.c);
            assert_int_equal(layer->nparams, c->bias ? 2 : 1);
            float *x = frand(ich_shape_count(c->in), -1, 1);
            for (int training = 0; training < 2; training++) {
                float *y = run_forward(layer, &x, training);
                double *ref = ref_conv(x, c->in, layer, layer->out);
                char what[64];
                snprintf(what, sizeof what, "conv case %zu relu %d", i, relu);
                expect_close_nchw(y, ref, layer->out, 1e-4, what);
                free(y);
                free(ref);
            }
            free(x);
            free_layer(layer);
        }
    }
}

static void test_conv_backward(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        const conv_case *c = &conv_cases[i];
        ich_layer *layer = make_layer("conv", conv_args(c), &c->in);
        randomise_params(layer);
        float *x = frand(ich_shape_count(c->in), -1, 1);
        grad_check(layer, &x, 1e-2, 40);
        free(x);
        free_layer(layer);
    }
}

/* Winograd F(4x4,5x5) (backend/cpu/winograd.c), the inference forward of
 * 5x5 stride-1 convolutions: against the naive reference and the direct
 * (training) forward of the same layer, on odd sizes (tiles cut at the
 * edge), padding (equal and not), batch 1, one and several blocks of tiles,
 * 1 and 3 threads; a weight change reaches it; ICH_CPU_WINOGRAD=0 and
 * training forwards never run it; a bad value fails. */
typedef struct wino_case {
    conv_case c;
    int forced; /* needs ICH_CPU_WINOGRAD=1: too few channels for auto */
} wino_case;

static void set_winograd_env(const char *value)
{
    if (value)
        setenv("ICH_CPU_WINOGRAD", value, 1);
    else
        unsetenv("ICH_CPU_WINOGRAD");
}

/* max |got - want| / max |want|: PyTorch parity's measure (test_model.py's
 * assert_close). Winograd's rounding error grows with the magnitude of a
 * tile's terms, not of each output, so an output near zero among large
 * ones carries the error of its neighbours (1e-4 of 1 + |want| failed at
 * outputs up to 28 with weights in +-0.5, as the direct kernels' 1e-5 did
 * not; relative to the largest output both are below 1e-5). */
static double scaled_error(const float *got_nhwc, const double *want_nchw, ich_shape s)
{
    double worst = 0, largest = 1e-12;
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) {
                    double want = want_nchw[nchw(s, n, c, h, w)];
                    double err = fabs(got_nhwc[nhwc(s, n, c, h, w)] - want);
                    worst = err > worst ? err : worst;
                    largest = fabs(want) > largest ? fabs(want) : largest;
                }
    return worst / largest;
}

static void check_winograd_case(const wino_case *wc, int relu, const char *what)
{
    ich_layer_args a = conv_args(&wc->c);
    a.fuse_relu = relu;
    ich_layer *layer = make_layer("conv", a, &wc->c.in);
    randomise_params(layer);
    float *x = frand(ich_shape_count(wc->c.in), -1, 1);
    int64_t count = ich_shape_count(layer->out);
    for (int change = 0; change < 2; change++) {
        if (change) { /* new weights: the transformed copy must follow */
            float *w = layer->params[0].data;
            for (int64_t j = 0; j < param_count(&layer->params[0]); j++)
                w[j] = -1.5f * w[j] + 0.01f;
            layer->params[0].version++;
        }
        int64_t runs = ich_cpu_conv_winograd_runs(layer);
        float *y = run_forward(layer, &x, 0);
        assert_int_equal(ich_cpu_conv_winograd_runs(layer), runs + 1);
        float *direct = run_forward(layer, &x, 1);
        assert_int_equal(ich_cpu_conv_winograd_runs(layer), runs + 1);
        double *ref = ref_conv(x, wc->c.in, layer, layer->out);
        double to_ref = scaled_error(y, ref, layer->out);
        double worst = 0, largest = 1e-12; /* against direct, both NHWC */
        for (int64_t i = 0; i < count; i++) {
            worst = fmax(worst, fabs((double)y[i] - direct[i]));
            largest = fmax(largest, fabs(direct[i]));
        }
        if (to_ref > 1e-4 || worst / largest > 1e-4)
            fail_msg("%s: Winograd against the reference %g, against direct %g (> 1e-4)", what,
                     to_ref, worst / largest);
        free(y);
        free(direct);
        free(ref);
    }
    free(x);
    free_layer(layer);
}

static void test_conv_winograd(void **state)
{
    (void)state;
    static const wino_case cases[] = {
        {{{1, 13, 11, 16}, 20, 5, 5, 1, 1, 0, 0, 1, 1, 1}, 0}, /* batch 1, out 9x7 */
        {{{3, 10, 9, 17}, 16, 5, 5, 1, 1, 2, 2, 1, 1, 0}, 0},  /* "same", no bias */
        {{{2, 6, 5, 16}, 18, 5, 5, 1, 1, 2, 1, 1, 1, 1}, 0},   /* pads 2 and 1: 6x3 */
        {{{2, 30, 29, 64}, 64, 5, 5, 1, 1, 1, 0, 1, 1, 1}, 0}, /* 2 blocks of 64, the last cut */
        {{{1, 10, 10, 1}, 17, 5, 5, 1, 1, 0, 0, 1, 1, 1}, 1},  /* 1 channel: forced */
    };
    const char *saved = getenv("ICH_CPU_WINOGRAD");
    char *keep = saved ? strdup(saved) : NULL;
    int thread_counts[] = {1, 3};
    for (int t = 0; t < 2; t++) {
        ich_set_threads(thread_counts[t]);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int relu = 0; relu < 2; relu++) {
                set_winograd_env(cases[i].forced ? "1" : NULL);
                char what[80];
                snprintf(what, sizeof what, "winograd case %zu relu %d threads %d", i, relu,
                         thread_counts[t]);
                check_winograd_case(&cases[i], relu, what);
            }
    }
    ich_set_threads(0);

    /* auto leaves a 1-channel layer, and 0 every layer, to the direct kernel */
    for (int off = 0; off < 2; off++) {
        set_winograd_env(off ? "0" : "auto");
        const conv_case *c = off ? &cases[0].c : &cases[4].c;
        ich_layer *layer = make_layer("conv", conv_args(c), &c->in);
        float *x = frand(ich_shape_count(c->in), -1, 1);
        free(run_forward(layer, &x, 0));
        assert_int_equal(ich_cpu_conv_winograd_runs(layer), 0);
        free(x);
        free_layer(layer);
    }

    set_winograd_env("sometimes");
    const ich_layer_ops *ops = be()->layer("conv");
    ich_layer layer = {.ops = ops, .args = conv_args(&cases[0].c)};
    snprintf(layer.name, sizeof layer.name, "bad_winograd");
    ich_shape out;
    assert_int_equal(ops->create(&layer, &cases[0].c.in, &out), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "ICH_CPU_WINOGRAD=sometimes"));
    set_winograd_env(keep);
    free(keep);
}

/* A pass on copies (blocked or NCHW) runs over the batch in chunks whose
 * copies fit a budget; with a budget of one byte every image is its own
 * call, so the weight gradient sums over calls and, where both backward
 * passes take the same chunks, the data pass reuses the diff_dst copy the
 * weights pass made for the same images. Every gradient against finite
 * differences, on the blocked layout and under auto (on AVX2 the 8-channel
 * case's backward runs blocked). */
static void test_conv_chunked_backward(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        {{3, 12, 11, 8}, 6, 5, 5, 1, 1, 1, 0, 1, 1, 1},
        {{3, 13, 12, 1}, 9, 4, 4, 2, 1, 1, 2, 1, 1, 1},
    };
    static const char *const layouts[] = {"blocked", "auto"};
    const char *was = getenv("ICH_CPU_LAYOUT"); /* the test command sets it for other runs */
    char *saved = was ? strdup(was) : NULL;
    ich_cpu_conv_set_copy_budget(1);
    for (size_t l = 0; l < 2; l++) {
        setenv("ICH_CPU_LAYOUT", layouts[l], 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            ich_layer *layer = make_layer("conv", conv_args(&cases[i]), &cases[i].in);
            randomise_params(layer);
            float *x = frand(ich_shape_count(cases[i].in), -1, 1);
            grad_check(layer, &x, 1e-2, 40);
            free(x);
            free_layer(layer);
        }
    }
    if (saved)
        setenv("ICH_CPU_LAYOUT", saved, 1);
    else
        unsetenv("ICH_CPU_LAYOUT");
    free(saved);
    ich_cpu_conv_set_copy_budget(0);
}

/* The input gradient of an ungrouped convolution for the output gradient
 * dy (NHWC), in double, NCHW: ref_conv's transpose, term by term. */
static double *ref_conv_input_grad(const float *dy, const ich_layer *layer)
{
    const ich_layer_args *a = &layer->args;
    ich_shape is = layer->in[0], os = layer->out;
    const float *w = layer->params[0].data;
    double *dx = calloc((size_t)ich_shape_count(is), sizeof *dx);
    assert_non_null(dx);
    for (int n = 0; n < os.n; n++)
        for (int oh = 0; oh < os.h; oh++)
            for (int ow = 0; ow < os.w; ow++)
                for (int o = 0; o < os.c; o++) {
                    double g = dy[(((int64_t)n * os.h + oh) * os.w + ow) * os.c + o];
                    for (int c = 0; c < is.c; c++)
                        for (int kh = 0; kh < a->kernel[0]; kh++)
                            for (int kw = 0; kw < a->kernel[1]; kw++) {
                                int ih = oh * a->stride[0] - a->padding[0] + kh * a->dilation[0];
                                int iw = ow * a->stride[1] - a->padding[1] + kw * a->dilation[1];
                                if (ih < 0 || ih >= is.h || iw < 0 || iw >= is.w)
                                    continue;
                                int64_t k = (((int64_t)o * is.c + c) * a->kernel[0] + kh) *
                                                a->kernel[1] + kw;
                                dx[nchw(is, n, c, ih, iw)] += g * w[k];
                            }
                }
    return dx;
}

/* One backward of `layer` after a training forward of x, output gradient
 * dy: the input gradient against the naive reference (1e-4). */
static void check_input_grad(ich_layer *layer, float *x, const float *dy, const char *what)
{
    float *y = run_forward(layer, &x, 1);
    float *grad_out = fcopy(dy, ich_shape_count(layer->out));
    float *dx = fzeros(ich_shape_count(layer->in[0]));
    const float *ins[1] = {x};
    float *grad_in[1] = {dx};
    if (layer->ops->backward(layer, ins, NULL, grad_out, grad_in) != ICH_OK)
        fail_msg("%s: backward: %s", what, ich_last_error());
    double *ref = ref_conv_input_grad(dy, layer);
    expect_close_nchw(dx, ref, layer->in[0], 1e-4, what);
    free(ref);
    free(dx);
    free(grad_out);
    free(y);
}

/* The backward data as a forward convolution with the flipped weights
 * (conv.c, data_as_forward(): stride 1, kernels of 4x4 or more, on AVX2
 * without AVX-512), with oneDNN's padding and through the copy that
 * carries the left padding (forced here; the tutorial's 5x5 layers take
 * it on jit:avx2), on whole
 * batches and one image a call: the input gradient against the naive
 * transpose, again after a weight change (the flipped copy remade), and
 * every gradient against finite differences. On other CPUs (and the
 * test command's SSE4.1 pass) oneDNN's backward-data kernels run the
 * same checks. */
static void test_conv_backward_data_as_forward(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        {{3, 12, 11, 8}, 6, 5, 5, 1, 1, 0, 0, 1, 1, 1}, /* the tutorial's 5x5, no padding */
        {{2, 9, 10, 16}, 8, 5, 5, 1, 1, 2, 1, 1, 1, 0}, /* uneven padding, no bias */
        {{3, 13, 12, 9}, 9, 4, 4, 1, 1, 0, 2, 1, 1, 1}, /* 4x4, padding on one axis */
        {{2, 7, 9, 12}, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* ichnet's 3x3: oneDNN's kernel */
    };
    const char *was = getenv("ICH_CPU_LAYOUT"); /* the test command sets it for other runs */
    char *saved = was ? strdup(was) : NULL;
    setenv("ICH_CPU_LAYOUT", "auto", 1);
    const dnnl_cpu_isa_t avx2 = dnnl_cpu_isa_avx2, avx512 = dnnl_cpu_isa_avx512_core;
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    int avx2_only = (isa & avx2) == avx2 && (isa & avx512) != avx512;
    for (int copy = 0; copy < 2; copy++)
        for (int chunked = 0; chunked < 2; chunked++)
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const conv_case *c = &cases[i];
                ich_cpu_conv_force_data_copy(copy);
                ich_cpu_conv_set_copy_budget(chunked ? 1 : 0);
                ich_layer *layer = make_layer("conv", conv_args(c), &c->in);
                randomise_params(layer);
                float *x = frand(ich_shape_count(c->in), -1, 1);
                float *dy = frand(ich_shape_count(layer->out), -1, 1);
                char what[96];
                snprintf(what, sizeof what, "case %zu copy %d chunked %d", i, copy, chunked);
                check_input_grad(layer, x, dy, what);
                int mode = ich_cpu_conv_data_mode(layer);
                if (!avx2_only || c->k0 * c->k1 < 16)
                    assert_int_equal(mode, 0);
                else if (copy && c->k1 - 1 - c->p1 > 0)
                    assert_int_equal(mode, 2);
                else
                    assert_int_not_equal(mode, 0);
                float *w = layer->params[0].data;
                for (int64_t j = 0; j < param_count(&layer->params[0]); j++)
                    w[j] *= -2.0f;
                layer->params[0].version++;
                strncat(what, " after a weight change", sizeof what - strlen(what) - 1);
                check_input_grad(layer, x, dy, what);
                grad_check(layer, &x, 1e-2, 30);
                free(dy);
                free(x);
                free_layer(layer);
            }
    ich_cpu_conv_force_data_copy(0);
    ich_cpu_conv_set_copy_budget(0);
    if (saved)
        setenv("ICH_CPU_LAYOUT", saved, 1);
    else
        unsetenv("ICH_CPU_LAYOUT");
    free(saved);
}

/* The weight and bias gradients of an ungrouped convolution for input x
 * and output gradient dy (both NHWC), in double: OIHW, then the bias. */
static double *ref_conv_weight_grad(const float *x, const float *dy, const ich_layer *layer)
{
    const ich_layer_args *a = &layer->args;
    ich_shape is = layer->in[0], os = layer->out;
    int64_t taps = (int64_t)is.c * a->kernel[0] * a->kernel[1];
    double *g = calloc((size_t)(os.c * taps + os.c), sizeof *g);
    assert_non_null(g);
    for (int n = 0; n < os.n; n++)
        for (int oh = 0; oh < os.h; oh++)
            for (int ow = 0; ow < os.w; ow++)
                for (int o = 0; o < os.c; o++) {
                    double d = dy[nhwc(os, n, o, oh, ow)];
                    g[os.c * taps + o] += d;
                    for (int c = 0; c < is.c; c++)
                        for (int kh = 0; kh < a->kernel[0]; kh++)
                            for (int kw = 0; kw < a->kernel[1]; kw++) {
                                int ih = oh * a->stride[0] - a->padding[0] + kh * a->dilation[0];
                                int iw = ow * a->stride[1] - a->padding[1] + kw * a->dilation[1];
                                if (ih < 0 || ih >= is.h || iw < 0 || iw >= is.w)
                                    continue;
                                int64_t t = ((int64_t)c * a->kernel[0] + kh) * a->kernel[1] + kw;
                                g[o * taps + t] += d * x[nhwc(is, n, c, ih, iw)];
                            }
                }
    return g;
}

/* The weight gradient by im2col and OpenBLAS (backend/cpu/im2col.c): by
 * default for one input channel (the tutorial's conv1), forced here on
 * three; strides, padding, dilation, with and without a bias, with and
 * without the input gradient, on 1 and 3 threads: the weight and bias
 * gradients against a double reference (1e-4 of the largest), added to
 * what the gradients held, and every gradient against finite differences.
 * Forced off (ICH_CPU_LAYOUT=nhwc), oneDNN's kernels give the same. */
static void test_conv_im2col_weights(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        {{3, 12, 11, 1}, 7, 5, 5, 1, 1, 0, 0, 1, 1, 1}, /* the tutorial's conv1 */
        {{2, 13, 12, 1}, 9, 4, 3, 2, 1, 1, 2, 1, 1, 0}, /* stride, padding, no bias */
        {{2, 11, 10, 1}, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1}, /* dilation 2 */
        {{2, 9, 8, 3}, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1},   /* ichnet's stem, forced */
    };
    const char *was = getenv("ICH_CPU_LAYOUT");
    char *saved = was ? strdup(was) : NULL;
    for (int threads = 1; threads <= 3; threads += 2)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int layout = 0; layout < 2; layout++) {
                const conv_case *c = &cases[i];
                ich_set_threads(threads);
                setenv("ICH_CPU_LAYOUT", layout ? "nhwc" : "auto", 1);
                ich_cpu_conv_force_im2col(c->in.c > 1);
                ich_layer *layer = make_layer("conv", conv_args(c), &c->in);
                randomise_params(layer);
                float *x = frand(ich_shape_count(c->in), -1, 1);
                float *dy = frand(ich_shape_count(layer->out), -1, 1);
                float *y = run_forward(layer, &x, 1);
                ich_param *w = &layer->params[0], *b = c->bias ? &layer->params[1] : NULL;
                int64_t taps = param_count(w) / c->out;
                for (int64_t j = 0; j < param_count(w); j++)
                    w->grad[j] = 0.5f;
                for (int o = 0; b && o < c->out; o++)
                    b->grad[o] = -0.25f;
                float *grad_out = fcopy(dy, ich_shape_count(layer->out));
                float *dx = fzeros(ich_shape_count(c->in));
                const float *ins[1] = {x};
                float *grad_in[1] = {dx};
                if (layer->ops->backward(layer, ins, NULL, grad_out, i % 2 ? NULL : grad_in))
                    fail_msg("backward: %s", ich_last_error());
                assert_int_equal(ich_cpu_conv_im2col_runs(layer), layout ? 0 : 1);
                double *ref = ref_conv_weight_grad(x, dy, layer), largest = 0, worst = 0;
                for (int64_t j = 0; j < c->out * (taps + 1); j++)
                    largest = fmax(largest, fabs(ref[j]));
                for (int64_t j = 0; j < param_count(w); j++)
                    worst = fmax(worst, fabs(w->grad[j] - 0.5 - ref[j]));
                for (int o = 0; b && o < c->out; o++)
                    worst = fmax(worst, fabs(b->grad[o] + 0.25 - ref[c->out * taps + o]));
                if (worst > 1e-4 * largest)
                    fail_msg("case %zu layout %d threads %d: weight gradient off by %g of %g", i,
                             layout, threads, worst, largest);
                grad_check(layer, &x, 1e-2, 30);
                free(ref);
                free(dx);
                free(grad_out);
                free(y);
                free(dy);
                free(x);
                free_layer(layer);
            }
    ich_cpu_conv_force_im2col(0);
    ich_set_threads(0);
    if (saved)
        setenv("ICH_CPU_LAYOUT", saved, 1);
    else
        unsetenv("ICH_CPU_LAYOUT");
    free(saved);
}

/* Grouped and depthwise convolution (args.groups; 0 is read as 1):
 * PyTorch's weight shape [OUT, IN/G, KH, KW], forward against the naive
 * grouped reference with and without a fused ReLU, every gradient against
 * finite differences, and groups that do not divide the channels refused. */
static void test_conv_groups(void **state)
{
    (void)state;
    static const struct {
        conv_case c;
        int groups;
    } cases[] = {
        {{{2, 7, 6, 4}, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 2},   /* 2 groups */
        {{{1, 9, 8, 6}, 6, 3, 3, 2, 2, 1, 1, 1, 1, 0}, 6},   /* depthwise, stride 2 */
        {{{3, 8, 8, 3}, 6, 5, 5, 1, 1, 2, 2, 1, 1, 1}, 3},   /* depthwise, 2 per channel */
        {{{2, 9, 9, 16}, 16, 3, 3, 1, 1, 2, 2, 2, 2, 1}, 16}, /* depthwise, dilation 2 */
        {{{2, 9, 9, 12}, 8, 1, 1, 2, 2, 0, 0, 1, 1, 0}, 4},  /* strided grouped 1x1 */
        {{{2, 7, 6, 3}, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 0},   /* 0: read as 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *c = &cases[i].c;
        int groups = cases[i].groups > 0 ? cases[i].groups : 1;
        for (int relu = 0; relu < 2; relu++) {
            ich_layer_args a = conv_args(c);
            a.groups = cases[i].groups;
            a.fuse_relu = relu;
            ich_layer *layer = make_layer("conv", a, &c->in);
            assert_int_equal(layer->args.groups, groups);
            assert_int_equal(layer->params[0].ndim, 4);
            assert_int_equal(layer->params[0].dims[0], c->out);
            assert_int_equal(layer->params[0].dims[1], c->in.c / groups);
            assert_int_equal(layer->params[0].dims[2], c->k0);
            assert_int_equal(layer->params[0].dims[3], c->k1);
            randomise_params(layer);
            float *x = frand_away(ich_shape_count(c->in), 0.05);
            for (int training = 0; training < 2; training++) {
                float *y = run_forward(layer, &x, training);
                double *ref = ref_conv(x, c->in, layer, layer->out);
                char what[64];
                snprintf(what, sizeof what, "grouped conv case %zu relu %d", i, relu);
                expect_close_nchw(y, ref, layer->out, 1e-4, what);
                free(y);
                free(ref);
            }
            if (!relu)
                grad_check(layer, &x, 1e-2, 40);
            free(x);
            free_layer(layer);
        }
    }
    /* groups that do not divide the input or the output channels */
    static const int bad[][3] = {{4, 6, 4}, {4, 6, 3}, {6, 4, 4}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ich_shape in = shp(1, 5, 5, bad[i][0]);
        ich_layer_args a = {0};
        a.out = bad[i][1];
        a.kernel[0] = a.kernel[1] = 3;
        a.groups = bad[i][2];
        ich_layer layer = {0};
        layer.ops = be()->layer("conv");
        layer.args = a;
        snprintf(layer.name, sizeof layer.name, "bad");
        ich_shape out;
        assert_int_equal(layer.ops->create(&layer, &in, &out), ICH_ERR_SHAPE);
        assert_non_null(strstr(ich_last_error(), "groups"));
        assert_null(layer.state);
    }
}

/* Gradients accumulate into param->grad; frozen parameters are untouched. */
static void test_conv_grad_accumulates(void **state)
{
    (void)state;
    const conv_case *c = &conv_cases[1];
    ich_layer *layer = make_layer("conv", conv_args(c), &c->in);
    randomise_params(layer);
    float *x = frand(ich_shape_count(c->in), -1, 1);
    int64_t oc = ich_shape_count(layer->out), wc = param_count(&layer->params[0]);
    float *g = frand(oc, -1, 1);
    float *dx = fzeros(ich_shape_count(c->in));
    const float *ins[1] = {x};
    float *y = run_forward(layer, &x, 1);
    assert_int_equal(layer->ops->backward(layer, ins, NULL, g, &dx), ICH_OK);
    float *once = fcopy(layer->params[0].grad, wc);
    float bias_once = layer->params[1].grad[0];
    assert_int_equal(layer->ops->backward(layer, ins, NULL, g, &dx), ICH_OK);
    for (int64_t j = 0; j < wc; j++)
        assert_float_equal(layer->params[0].grad[j], 2 * once[j], 1e-4 * (1 + fabsf(once[j])));
    assert_float_equal(layer->params[1].grad[0], 2 * bias_once, 1e-4 * (1 + fabsf(bias_once)));
    /* frozen: no change; grad_in still computed (overwritten, not added) */
    layer->params[0].frozen = layer->params[1].frozen = 1;
    float *before = fcopy(layer->params[0].grad, wc);
    float *dx_before = fcopy(dx, ich_shape_count(c->in));
    assert_int_equal(layer->ops->backward(layer, ins, NULL, g, &dx), ICH_OK);
    assert_memory_equal(before, layer->params[0].grad, (size_t)wc * 4);
    for (int64_t j = 0; j < ich_shape_count(c->in); j++)
        assert_float_equal(dx[j], dx_before[j], 1e-5);
    free(before);
    free(dx_before);
    free(once);
    free(y);
    free(g);
    free(dx);
    free(x);
    free_layer(layer);
}

/* Fused conv+ReLU = conv then ReLU, forward and backward. */
static void check_conv_fused_relu(const conv_case *c)
{
    ich_layer_args a = conv_args(c);
    ich_layer *plain = make_layer("conv", a, &c->in);
    a.fuse_relu = 1;
    ich_layer *fused = make_layer("conv", a, &c->in);
    ich_layer *relu = make_layer("relu", (ich_layer_args){0}, &plain->out);
    randomise_params(plain);
    for (int p = 0; p < plain->nparams; p++) {
        memcpy(fused->params[p].data, plain->params[p].data,
               (size_t)param_count(&plain->params[p]) * 4);
        fused->params[p].version++;
    }
    float *x = frand(ich_shape_count(c->in), -1, 1);
    int64_t oc = ich_shape_count(plain->out), ic = ich_shape_count(c->in);
    float *y_plain = run_forward(plain, &x, 1);
    float *y_relu = run_forward(relu, &y_plain, 1);
    float *y_fused = run_forward(fused, &x, 1);
    int positives = 0;
    for (int64_t j = 0; j < oc; j++) {
        assert_float_equal(y_fused[j], y_relu[j], 1e-5);
        positives += y_fused[j] > 0;
    }
    assert_true(positives > 0 && positives < oc);
    float *g = frand(oc, -1, 1), *g_copy = fcopy(g, oc);
    float *g_mid = fzeros(oc), *dx_plain = fzeros(ic), *dx_fused = fzeros(ic);
    const float *ins[1] = {x};
    assert_int_equal(relu->ops->backward(relu, NULL, y_relu, g, &g_mid), ICH_OK);
    assert_int_equal(plain->ops->backward(plain, ins, NULL, g_mid, &dx_plain), ICH_OK);
    assert_int_equal(fused->ops->backward(fused, ins, NULL, g_copy, &dx_fused), ICH_OK);
    for (int64_t j = 0; j < ic; j++)
        assert_float_equal(dx_fused[j], dx_plain[j], 1e-5);
    for (int64_t j = 0; j < param_count(&plain->params[0]); j++)
        assert_float_equal(fused->params[0].grad[j], plain->params[0].grad[j], 1e-4);
    free(x);
    free(y_plain);
    free(y_relu);
    free(y_fused);
    free(g);
    free(g_copy);
    free(g_mid);
    free(dx_plain);
    free(dx_fused);
    free_layer(plain);
    free_layer(fused);
    free_layer(relu);
}

static void test_conv_fused_relu(void **state)
{
    (void)state;
    check_conv_fused_relu(&conv_cases[3]);
    /* big enough (> 2^18 outputs) for the multi-threaded mask and ReLU */
    const conv_case big = {{1, 70, 70, 4}, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    ich_set_threads(2);
    check_conv_fused_relu(&big);
    ich_set_threads(0);
}

/* Fused batchnorm+ReLU = batchnorm then ReLU, forward and backward. */
static void test_batchnorm_fused_relu(void **state)
{
    (void)state;
    ich_shape in = shp(3, 5, 4, 6);
    int64_t count = ich_shape_count(in);
    ich_layer_args a = {0};
    a.eps = 1e-5f;
    a.momentum = 0.1f;
    ich_layer *plain = make_layer("batchnorm", a, &in);
    a.fuse_relu = 1;
    ich_layer *fused = make_layer("batchnorm", a, &in);
    ich_layer *relu = make_layer("relu", (ich_layer_args){0}, &in);
    randomise_params(plain);
    for (int p = 0; p < plain->nparams; p++) {
        size_t bytes = (size_t)param_count(&plain->params[p]) *
                       (plain->params[p].dtype == ICH_DTYPE_I64 ? 8 : 4);
        memcpy(fused->params[p].data, plain->params[p].data, bytes);
    }
    float *x = frand(count, -1, 1);
    float *y_plain = run_forward(plain, &x, 1);
    float *y_relu = run_forward(relu, &y_plain, 1);
    float *y_fused = run_forward(fused, &x, 1);
    for (int64_t j = 0; j < count; j++)
        assert_float_equal(y_fused[j], y_relu[j], 1e-5);
    float *g = frand(count, -1, 1), *g_copy = fcopy(g, count);
    float *g_mid = fzeros(count), *dx_plain = fzeros(count), *dx_fused = fzeros(count);
    const float *ins[1] = {x};
    assert_int_equal(relu->ops->backward(relu, NULL, y_relu, g, &g_mid), ICH_OK);
    assert_int_equal(plain->ops->backward(plain, ins, NULL, g_mid, &dx_plain), ICH_OK);
    assert_int_equal(fused->ops->backward(fused, ins, NULL, g_copy, &dx_fused), ICH_OK);
    for (int64_t j = 0; j < count; j++)
        assert_float_equal(dx_fused[j], dx_plain[j], 1e-4);
    for (int64_t j = 0; j < in.c; j++) {
        assert_float_equal(fused->params[0].grad[j], plain->params[0].grad[j], 1e-4);
        assert_float_equal(fused->params[1].grad[j], plain->params[1].grad[j], 1e-4);
    }
    free(x);
    free(y_plain);
    free(y_relu);
    free(y_fused);
    free(g);
    free(g_copy);
    free(g_mid);
    free(dx_plain);
    free(dx_fused);
    free_layer(plain);
    free_layer(fused);
    free_layer(relu);
}

/* A weight change with a version bump changes the output (the reordered
 * weight cache is refreshed). */
static void test_conv_weight_cache(void **state)
{
    (void)state;
    const conv_case *c = &conv_cases[0];
    ich_layer *layer = make_layer("conv", conv_args(c), &c->in);
    randomise_params(layer);
    float *x = frand(ich_shape_count(c->in), -1, 1);
    float *y1 = run_forward(layer, &x, 0);
    float *w = layer->params[0].data;
    for (int64_t j = 0; j < param_count(&layer->params[0]); j++)
        w[j] *= -2.0f;
    layer->params[0].version++;
    float *y2 = run_forward(layer, &x, 0);
    double *ref = ref_conv(x, c->in, layer, layer->out);
    expect_close_nchw(y2, ref, layer->out, 1e-4, "conv after a weight change");
    assert_true(memcmp(y1, y2, (size_t)ich_shape_count(layer->out) * 4) != 0);
    free(ref);
    free(y1);
    free(y2);
    free(x);
    free_layer(layer);
}

/* resize() to another batch size: forward and backward still right. */
static void test_resize(void **state)
{
    (void)state;
    const conv_case *c = &conv_cases[1];
    ich_layer *layer = make_layer("conv", conv_args(c), &c->in);
    randomise_params(layer);
    float *x = frand(ich_shape_count(c->in), -1, 1);
    float *y = run_forward(layer, &x, 1);
    free(y);
    free(x);
    for (int n = 1; n <= 5; n += 4) {
        ich_shape in = c->in, out;
        in.n = n;
        assert_int_equal(layer->ops->resize(layer, &in, &out), ICH_OK);
        assert_int_equal(out.n, n);
        assert_int_equal(layer->out.n, n);
        x = frand(ich_shape_count(in), -1, 1);
        y = run_forward(layer, &x, 1);
        double *ref = ref_conv(x, in, layer, out);
        expect_close_nchw(y, ref, out, 1e-4, "conv after resize");
        grad_check(layer, &x, 1e-2, 10);
        free(ref);
        free(y);
        free(x);
    }
    free_layer(layer);

    /* the other kinds with state follow a resize too */
    const char *kinds[] = {"maxpool", "batchnorm", "linear", "dropout"};
    for (size_t k = 0; k < 4; k++) {
        ich_layer_args a = {0};
        a.kernel[0] = a.kernel[1] = 2;
        a.out = 3;
        a.bias = 1;
        a.p = 0.5f;
        ich_shape in = shp(2, 4, 4, 3), out;
        ich_layer *l = make_layer(kinds[k], a, &in);
        randomise_params(l);
        in.n = 3;
        assert_int_equal(l->ops->resize(l, &in, &out), ICH_OK);
        assert_int_equal(out.n, 3);
        x = frand_distinct(ich_shape_count(in));
        grad_check(l, &x, 1e-2, 10);
        free(x);
        free_layer(l);
    }
}

static void test_linear(void **state)
{
    (void)state;
    struct {
        ich_shape in;
        int out, bias, relu;
    } cases[] = {
        {{1, 1, 1, 7}, 5, 1, 0},
        {{3, 1, 1, 12}, 4, 0, 0},
        {{2, 2, 3, 2}, 6, 1, 1}, /* a non-flat input: h*w*c features in memory order */
    };
    for (size_t i = 0; i < 3; i++) {
        ich_layer_args a = {0};
        a.out = cases[i].out;
        a.bias = cases[i].bias;
        a.fuse_relu = cases[i].relu;
        ich_shape in = cases[i].in;
        ich_layer *layer = make_layer("linear", a, &in);
        randomise_params(layer);
        int64_t k = (int64_t)in.h * in.w * in.c;
        assert_int_equal(layer->params[0].dims[0], a.out);
        assert_int_equal(layer->params[0].dims[1], k);
        assert_int_equal(layer->out.c, a.out);
        assert_int_equal(layer->out.h, 1);
        float *x = frand(ich_shape_count(in), -1, 1);
        float *y = run_forward(layer, &x, 0);
        const float *w = layer->params[0].data;
        for (int n = 0; n < in.n; n++)
            for (int o = 0; o < a.out; o++) {
                double sum = a.bias ? ((float *)layer->params[1].data)[o] : 0.0;
                for (int64_t j = 0; j < k; j++)
                    sum += (double)w[o * k + j] * x[n * k + j];
                if (a.fuse_relu && sum < 0)
                    sum = 0;
                assert_float_equal(y[n * a.out + o], sum, 1e-4 * (1 + fabs(sum)));
            }
        free(y);
        if (!a.fuse_relu)
            grad_check(layer, &x, 1e-2, 30);
        free(x);
        free_layer(layer);
    }
}

static void test_relu(void **state)
{
    (void)state;
    ich_shape in = shp(3, 5, 4, 3);
    ich_layer *layer = make_layer("relu", (ich_layer_args){0}, &in);
    assert_true(layer->ops->in_place);
    assert_true(layer->ops->needs_output);
    float *x = frand_away(ich_shape_count(in), 0.05);
    float *y = run_forward(layer, &x, 1);
    for (int64_t j = 0; j < ich_shape_count(in); j++)
        assert_float_equal(y[j], x[j] > 0 ? x[j] : 0, 0);
    free(y);
    grad_check(layer, &x, 1e-2, 60);
    /* in place */
    float *copy = fcopy(x, ich_shape_count(in));
    const float *ins[1] = {copy};
    assert_int_equal(layer->ops->forward(layer, ins, copy, 0), ICH_OK);
    for (int64_t j = 0; j < ich_shape_count(in); j++)
        assert_float_equal(copy[j], x[j] > 0 ? x[j] : 0, 0);
    free(copy);
    free(x);
    free_layer(layer);
}

static void test_pools(void **state)
{
    (void)state;
    struct {
        ich_shape in;
        int k0, k1, s0, s1, p0, p1;
    } cases[] = {
        {{1, 8, 8, 3}, 2, 2, 0, 0, 0, 0},  /* the tutorial's 2x2 */
        {{3, 7, 9, 2}, 2, 2, 2, 2, 0, 0},  /* odd sizes (floor) */
        {{2, 9, 8, 4}, 3, 3, 2, 2, 1, 1},  /* padding, overlap */
        {{1, 6, 7, 17}, 3, 2, 1, 2, 1, 0}, /* stride 1, 17 channels */
    };
    for (int average = 0; average < 2; average++)
        for (size_t i = 0; i < 4; i++) {
            ich_layer_args a = {0};
            a.kernel[0] = cases[i].k0;
            a.kernel[1] = cases[i].k1;
            a.stride[0] = cases[i].s0;
            a.stride[1] = cases[i].s1;
            a.padding[0] = cases[i].p0;
            a.padding[1] = cases[i].p1;
            ich_shape in = cases[i].in;
            ich_layer *layer = make_layer(average ? "avgpool" : "maxpool", a, &in);
            assert_false(layer->ops->needs_input);
            assert_false(layer->ops->needs_output);
            float *x = frand_distinct(ich_shape_count(in));
            for (int training = 0; training < 2; training++) {
                float *y = run_forward(layer, &x, training);
                double *ref = ref_pool(x, in, &layer->args, layer->out, average);
                expect_close_nchw(y, ref, layer->out, 1e-6, average ? "avgpool" : "maxpool");
                free(y);
                free(ref);
            }
            grad_check(layer, &x, 1e-2, 60);
            free(x);
            free_layer(layer);
        }
}

/* Issue 16: primitives are compiled only when used. Inference (two
 * evaluation forwards) builds no backward primitive, and pooling, batch
 * norm, layer norm and the activations build exactly one forward primitive
 * (not the training one beside the inference one); the first backward
 * then builds the backward ones. Counted by the backend
 * (ich_cpu_primitives_built). */
static void test_inference_builds_no_backward(void **state)
{
    (void)state;
    static const struct {
        const char *kind;
        int one_forward; /* exactly one forward primitive for inference */
    } cases[] = {{"maxpool", 1}, {"avgpool", 1}, {"batchnorm", 1}, {"layernorm", 1},
                 {"silu", 1},    {"gelu", 1},    {"sigmoid", 1},   {"conv", 0},
                 {"pointwise_linear", 0}};
    ich_shape in = shp(2, 6, 6, 8);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ich_layer_args a = {.eps = 1e-5f, .momentum = 0.1f, .kernel = {2, 2},
                            .out = 4, .bias = 1};
        int64_t fwd0, bwd0, fwd1, bwd1, fwd2, bwd2;
        ich_cpu_primitives_built(&fwd0, &bwd0);
        ich_layer *layer = make_layer(cases[i].kind, a, &in);
        randomise_params(layer);
        float *x = frand_distinct(ich_shape_count(in));
        for (int pass = 0; pass < 2; pass++)
            free(run_forward(layer, &x, 0));
        ich_cpu_primitives_built(&fwd1, &bwd1);
        if (bwd1 != bwd0 || (cases[i].one_forward && fwd1 - fwd0 != 1) || fwd1 == fwd0)
            fail_msg("%s: inference built %lld forward and %lld backward primitives",
                     cases[i].kind, (long long)(fwd1 - fwd0), (long long)(bwd1 - bwd0));
        float *y = run_forward(layer, &x, 1);
        float *g = frand(ich_shape_count(layer->out), -1, 1);
        float *dx = fzeros(ich_shape_count(in));
        const float *ins[1] = {x};
        float *grads[1] = {dx};
        if (layer->ops->backward(layer, ins, y, g, grads) != ICH_OK)
            fail_msg("backward %s: %s", cases[i].kind, ich_last_error());
        ich_cpu_primitives_built(&fwd2, &bwd2);
        if (bwd2 == bwd1)
            fail_msg("%s: backward built no backward primitive", cases[i].kind);
        free(y);
        free(g);
        free(dx);
        free(x);
        free_layer(layer);
    }
}

static void test_gap(void **state)
{
    (void)state;
    ich_shape in = shp(3, 5, 4, 6);
    ich_layer *layer = make_layer("gap", (ich_layer_args){0}, &in);
    assert_int_equal(layer->out.h, 1);
    assert_int_equal(layer->out.w, 1);
    assert_int_equal(layer->out.c, 6);
    float *x = frand(ich_shape_count(in), -1, 1);
    float *y = run_forward(layer, &x, 0);
    for (int n = 0; n < in.n; n++)
        for (int c = 0; c < in.c; c++) {
            double sum = 0;
            for (int h = 0; h < in.h; h++)
                for (int w = 0; w < in.w; w++)
                    sum += x[nhwc(in, n, c, h, w)];
            assert_float_equal(y[n * in.c + c], sum / (in.h * in.w), 1e-6);
        }
    free(y);
    grad_check(layer, &x, 1e-2, 60);
    free(x);
    free_layer(layer);
}

/* Batch norm forward in NCHW, double: batch statistics or running ones. */
static double *ref_batchnorm(const float *x_nhwc, ich_shape s, ich_layer *layer, int training)
{
    float *x = to_nchw(x_nhwc, s);
    double *y = calloc((size_t)ich_shape_count(s), sizeof(double));
    assert_non_null(y);
    const float *g = param(layer, "weight")->data, *b = param(layer, "bias")->data;
    const float *rm = param(layer, "running_mean")->data, *rv = param(layer, "running_var")->data;
    int64_t m = (int64_t)s.n * s.h * s.w;
    for (int c = 0; c < s.c; c++) {
        double mean = 0, var = 0;
        for (int n = 0; n < s.n; n++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    mean += x[nchw(s, n, c, h, w)];
        mean /= (double)m;
        for (int n = 0; n < s.n; n++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) {
                    double d = x[nchw(s, n, c, h, w)] - mean;
                    var += d * d;
                }
        var /= (double)m;
        if (!training) {
            mean = rm[c];
            var = rv[c];
        }
        for (int n = 0; n < s.n; n++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) {
                    int64_t j = nchw(s, n, c, h, w);
                    double v = (x[j] - mean) / sqrt(var + 1e-5) * g[c] + b[c];
                    y[j] = layer->args.fuse_relu && v < 0 ? 0 : v;
                }
    }
    free(x);
    return y;
}

static void test_batchnorm(void **state)
{
    (void)state;
    ich_shape shapes[] = {shp(3, 4, 5, 3), shp(1, 3, 3, 2), shp(4, 1, 1, 5)};
    for (size_t i = 0; i < 3; i++) {
        for (int relu = 0; relu < 2; relu++) {
            ich_layer_args a = {0};
            a.eps = 1e-5f;
            a.momentum = 0.1f;
            a.fuse_relu = relu;
            ich_shape in = shapes[i];
            ich_layer *layer = make_layer("batchnorm", a, &in);
            assert_int_equal(layer->nparams, 5);
            assert_non_null(param(layer, "num_batches_tracked"));
            assert_int_equal(param(layer, "num_batches_tracked")->dtype, ICH_DTYPE_I64);
            assert_null(param(layer, "running_mean")->grad);
            randomise_params(layer);
            float *x = frand(ich_shape_count(in), -1, 2);
            for (int training = 0; training < 2; training++) {
                float *y = run_forward(layer, &x, training);
                double *ref = ref_batchnorm(x, in, layer, training);
                expect_close_nchw(y, ref, in, 1e-4, "batchnorm");
                free(y);
                free(ref);
            }
            if (!relu)
                grad_check(layer, &x, 1e-2, 40);
            free(x);
            free_layer(layer);
        }
    }
    /* eval-mode backward: a fixed affine map */
    ich_shape in = shp(2, 3, 3, 4);
    ich_layer_args a = {0};
    a.eps = 1e-5f;
    a.momentum = 0.1f;
    ich_layer *layer = make_layer("batchnorm", a, &in);
    randomise_params(layer);
    float *x = frand(ich_shape_count(in), -1, 1);
    float *y = run_forward(layer, &x, 0);
    float *g = frand(ich_shape_count(in), -1, 1), *dx = fzeros(ich_shape_count(in));
    const float *ins[1] = {x};
    assert_int_equal(layer->ops->backward(layer, ins, NULL, g, &dx), ICH_OK);
    const float *gamma = param(layer, "weight")->data, *rv = param(layer, "running_var")->data;
    for (int64_t j = 0; j < ich_shape_count(in); j++) {
        int c = (int)(j % in.c);
        assert_float_equal(dx[j], g[j] * gamma[c] / sqrt(rv[c] + 1e-5), 1e-5);
    }
    free(x);
    free(y);
    free(g);
    free(dx);
    free_layer(layer);
}

/* Running statistics after two training steps, PyTorch's formula. */
static void test_batchnorm_running_stats(void **state)
{
    (void)state;
    ich_shape in = shp(3, 4, 2, 3);
    ich_layer_args a = {0};
    a.eps = 1e-5f;
    a.momentum = 0.25f;
    ich_layer *layer = make_layer("batchnorm", a, &in);
    randomise_params(layer);
    float *rm = param(layer, "running_mean")->data, *rv = param(layer, "running_var")->data;
    double want_m[3], want_v[3];
    for (int c = 0; c < 3; c++) {
        want_m[c] = rm[c];
        want_v[c] = rv[c];
    }
    int64_t m = (int64_t)in.n * in.h * in.w;
    for (int step = 0; step < 2; step++) {
        float *x = frand(ich_shape_count(in), -3, 5);
        for (int c = 0; c < 3; c++) {
            double mean = 0, ss = 0;
            for (int64_t r = 0; r < m; r++)
                mean += x[r * 3 + c];
            mean /= (double)m;
            for (int64_t r = 0; r < m; r++)
                ss += (x[r * 3 + c] - mean) * (x[r * 3 + c] - mean);
            want_m[c] = 0.75 * want_m[c] + 0.25 * mean;
            want_v[c] = 0.75 * want_v[c] + 0.25 * ss / (double)(m - 1);
        }
        float *y = run_forward(layer, &x, 1);
        free(y);
        free(x);
    }
    for (int c = 0; c < 3; c++) {
        assert_float_equal(rm[c], want_m[c], 1e-5 * (1 + fabs(want_m[c])));
        assert_float_equal(rv[c], want_v[c], 1e-5 * (1 + fabs(want_v[c])));
    }
    assert_int_equal(*(int64_t *)param(layer, "num_batches_tracked")->data, 2);
    /* eval does not touch them */
    float *x = frand(ich_shape_count(in), -1, 1);
    float *y = run_forward(layer, &x, 0);
    assert_float_equal(rm[0], want_m[0], 1e-5 * (1 + fabs(want_m[0])));
    assert_int_equal(*(int64_t *)param(layer, "num_batches_tracked")->data, 2);
    free(x);
    free(y);
    free_layer(layer);
}

static void test_dropout(void **state)
{
    (void)state;
    ich_shape in = shp(4, 10, 10, 25);
    int64_t count = ich_shape_count(in);
    ich_layer_args a = {0};
    a.p = 0.3f;
    ich_layer *layer = make_layer("dropout", a, &in);
    ich_layer *twin = make_layer("dropout", a, &in);
    float *x = frand_away(count, 0.01);
    /* eval: identity */
    float *y = run_forward(layer, &x, 0);
    assert_memory_equal(y, x, (size_t)count * 4);
    free(y);
    /* train: zeros or x / (1 - p), about p dropped */
    y = run_forward(layer, &x, 1);
    int64_t dropped = 0;
    for (int64_t j = 0; j < count; j++) {
        if (y[j] == 0.0f)
            dropped++;
        else
            assert_float_equal(y[j], x[j] / 0.7f, 1e-6 * (1 + fabsf(x[j])));
    }
    assert_true(fabs((double)dropped / count - 0.3) < 0.03);
    /* same seed and step: same mask; the next step: another mask */
    float *y_twin = run_forward(twin, &x, 1);
    assert_memory_equal(y, y_twin, (size_t)count * 4);
    float *y_next = run_forward(layer, &x, 1);
    assert_true(memcmp(y_next, y, (size_t)count * 4) != 0);
    /* backward uses the mask of the last forward */
    float *g = frand_away(count, 0.01), *dx = fzeros(count);
    assert_int_equal(layer->ops->backward(layer, NULL, NULL, g, &dx), ICH_OK);
    for (int64_t j = 0; j < count; j++) {
        if (y_next[j] == 0.0f)
            assert_true(dx[j] == 0.0f);
        else
            assert_float_equal(dx[j], g[j] / 0.7f, 1e-6 * (1 + fabsf(g[j])));
    }
    /* another seed: another mask */
    twin->seed = 7;
    twin->step = 0;
    float *y_other = run_forward(twin, &x, 1);
    assert_true(memcmp(y_other, y, (size_t)count * 4) != 0);
    free(y_other);
    free(y);
    free(y_twin);
    free(y_next);
    free(g);
    free(dx);
    /* gradient check at a fixed step */
    ich_shape small = shp(2, 3, 3, 4);
    ich_layer *l = make_layer("dropout", a, &small);
    float *xs = frand(ich_shape_count(small), -1, 1);
    grad_check(l, &xs, 1e-2, 72);
    free(xs);
    free_layer(l);
    free(x);
    free_layer(layer);
    free_layer(twin);
}

static void test_flatten(void **state)
{
    (void)state;
    ich_shape in = shp(3, 4, 5, 6);
    ich_layer *layer = make_layer("flatten", (ich_layer_args){0}, &in);
    assert_int_equal(layer->out.c, 120);
    assert_int_equal(layer->out.h, 1);
    float *x = frand(ich_shape_count(in), -1, 1);
    float *y = run_forward(layer, &x, 0);
    /* PyTorch's flatten of NCHW is the NCHW buffer itself */
    float *want = to_nchw(x, in);
    assert_memory_equal(y, want, (size_t)ich_shape_count(in) * 4);
    free(want);
    free(y);
    grad_check(layer, &x, 1e-2, 60);
    free(x);
    free_layer(layer);
}

static void test_add_concat(void **state)
{
    (void)state;
    ich_shape in[2] = {shp(2, 3, 4, 5), shp(2, 3, 4, 5)};
    ich_layer *add = make_layer("add", (ich_layer_args){0}, in);
    assert_int_equal(add->ops->inputs, 2);
    float *x[2] = {frand(120, -1, 1), frand(120, -1, 1)};
    float *y = run_forward(add, x, 0);
    for (int j = 0; j < 120; j++)
        assert_float_equal(y[j], x[0][j] + x[1][j], 0);
    free(y);
    grad_check(add, x, 1e-2, 40);
    free_layer(add);
    free(x[0]);
    free(x[1]);

    ich_shape cin[2] = {shp(2, 3, 4, 5), shp(2, 3, 4, 2)};
    ich_layer *cat = make_layer("concat", (ich_layer_args){0}, cin);
    assert_int_equal(cat->out.c, 7);
    x[0] = frand(120, -1, 1);
    x[1] = frand(48, -1, 1);
    y = run_forward(cat, x, 0);
    ich_shape os = cat->out;
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 7; c++)
            for (int h = 0; h < 3; h++)
                for (int w = 0; w < 4; w++) {
                    float want =
                        c < 5 ? x[0][nhwc(cin[0], n, c, h, w)] : x[1][nhwc(cin[1], n, c - 5, h, w)];
                    assert_float_equal(y[nhwc(os, n, c, h, w)], want, 0);
                }
    free(y);
    grad_check(cat, x, 1e-2, 40);
    free_layer(cat);
    free(x[0]);
    free(x[1]);
}

static void test_errors(void **state)
{
    (void)state;
    const ich_backend *b = be();
    assert_int_equal(b->interface_version, ICH_BACKEND_INTERFACE_VERSION);
    assert_string_equal(b->name, "cpu");
    assert_int_equal(ich_backend_select("cpu"), ICH_OK);
    assert_ptr_equal(ich_backend_current(), b);
    assert_null(b->layer("nosuch"));
    assert_null(b->layer(NULL));
    const char *kinds[] = {"conv",      "linear",  "relu",    "maxpool", "avgpool", "gap",
                           "batchnorm", "dropout", "flatten", "add",     "concat",
                           "layernorm", "layerscale", "droppath"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const ich_layer_ops *ops = b->layer(kinds[i]);
        assert_non_null(ops);
        assert_string_equal(ops->kind, kinds[i]);
    }

    ich_layer layer = {0};
    ich_shape out, in = shp(1, 3, 3, 2);
    snprintf(layer.name, sizeof layer.name, "bad");
    /* kernel larger than the input */
    layer.ops = b->layer("conv");
    layer.args.out = 4;
    layer.args.kernel[0] = layer.args.kernel[1] = 5;
    assert_int_equal(layer.ops->create(&layer, &in, &out), ICH_ERR_SHAPE);
    assert_non_null(strstr(ich_last_error(), "bad"));
    /* no output channels */
    layer.args.out = 0;
    layer.args.kernel[0] = layer.args.kernel[1] = 1;
    assert_int_equal(layer.ops->create(&layer, &in, &out), ICH_ERR_INVALID_ARGUMENT);
    /* add of different shapes */
    ich_shape two[2] = {shp(1, 3, 3, 2), shp(1, 3, 3, 3)};
    layer.ops = b->layer("add");
    assert_int_equal(layer.ops->create(&layer, two, &out), ICH_ERR_SHAPE);
    two[1] = shp(1, 2, 3, 2);
    layer.ops = b->layer("concat");
    assert_int_equal(layer.ops->create(&layer, two, &out), ICH_ERR_SHAPE);
    /* dropout probability outside [0, 1] */
    layer.ops = b->layer("dropout");
    layer.args.p = 1.5f;
    assert_int_equal(layer.ops->create(&layer, &in, &out), ICH_ERR_INVALID_ARGUMENT);
    /* pooling: padding above half the kernel */
    layer.ops = b->layer("maxpool");
    layer.args.kernel[0] = layer.args.kernel[1] = 2;
    layer.args.padding[0] = 2;
    assert_int_equal(layer.ops->create(&layer, &in, &out), ICH_ERR_INVALID_ARGUMENT);
    /* backward before a training forward */
    ich_layer *mp = make_layer("maxpool", (ich_layer_args){.kernel = {2, 2}}, &in);
    float g[2] = {1, 1}, dx[18];
    float *dxs[1] = {dx};
    assert_int_equal(mp->ops->backward(mp, NULL, NULL, g, dxs), ICH_ERR_INVALID_ARGUMENT);
    free_layer(mp);
}

/* Layer norm (issue 14) against a naive double loop; its input gradient
 * sums to 0 over each row; parameter gradients accumulate and skip frozen
 * ones. Layer scale's gradient; drop path drops whole samples, backward
 * with the same mask, identity in evaluation, p = 1 refused. */
static void test_norm_layers(void **state)
{
    (void)state;
    ich_shape in = shp(2, 3, 4, 5);
    const int64_t count = ich_shape_count(in), rows = count / in.c;
    float *x = malloc(count * sizeof *x), *y = malloc(count * sizeof *y);
    float *g = malloc(count * sizeof *g), *dx = malloc(count * sizeof *dx);
    assert_true(x && y && g && dx);
    for (int64_t i = 0; i < count; i++) {
        x[i] = (float)(2 * urand() - 1) + (float)(i % 3);
        g[i] = (float)(2 * urand() - 1);
    }
    const float *xs[1] = {x};
    float *dxs[1] = {dx};

    ich_layer *ln = make_layer("layernorm", (ich_layer_args){.eps = 1e-3f}, &in);
    assert_int_equal(ln->nparams, 2);
    assert_string_equal(ln->params[0].name, "weight");
    assert_string_equal(ln->params[1].name, "bias");
    randomise_params(ln);
    const float *w = ln->params[0].data, *b = ln->params[1].data;
    assert_int_equal(ln->ops->forward(ln, xs, y, 1), ICH_OK);
    for (int64_t r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int c = 0; c < in.c; c++)
            mean += x[r * in.c + c] / (double)in.c;
        for (int c = 0; c < in.c; c++)
            var += (x[r * in.c + c] - mean) * (x[r * in.c + c] - mean) / in.c;
        for (int c = 0; c < in.c; c++) {
            double want = (x[r * in.c + c] - mean) / sqrt(var + 1e-3) * w[c] + b[c];
            assert_true(fabs(y[r * in.c + c] - want) < 1e-5 * (1 + fabs(want)));
        }
    }
    assert_int_equal(ln->ops->backward(ln, xs, NULL, g, dxs), ICH_OK);
    for (int64_t r = 0; r < rows; r++) {
        double sum = 0, scale = 0;
        for (int c = 0; c < in.c; c++) {
            sum += dx[r * in.c + c];
            scale += fabs(dx[r * in.c + c]);
        }
        assert_true(fabs(sum) < 1e-5 * (1 + scale));
    }
    double dbias0 = 0;
    for (int64_t r = 0; r < rows; r++)
        dbias0 += g[r * in.c];
    float first = ln->params[1].grad[0];
    assert_true(fabs(first - dbias0) < 1e-5 * (1 + fabs(dbias0)));
    ln->params[0].frozen = 1;
    float wgrad0 = ln->params[0].grad[0];
    assert_int_equal(ln->ops->backward(ln, xs, NULL, g, dxs), ICH_OK);
    assert_true(fabs(ln->params[1].grad[0] - 2 * first) < 1e-5 * (1 + fabs(first)));
    assert_true(ln->params[0].grad[0] == wgrad0);
    free_layer(ln);

    ich_layer *ls = make_layer("layerscale", (ich_layer_args){0}, &in);
    assert_int_equal(ls->nparams, 1);
    assert_string_equal(ls->params[0].name, "layer_scale");
    assert_int_equal(ls->params[0].ndim, 3);
    randomise_params(ls);
    assert_int_equal(ls->ops->forward(ls, xs, y, 1), ICH_OK);
    const float *gamma = ls->params[0].data;
    assert_true(y[7] == x[7] * gamma[7 % in.c]);
    assert_int_equal(ls->ops->backward(ls, xs, NULL, g, dxs), ICH_OK);
    double dgamma1 = 0;
    for (int64_t r = 0; r < rows; r++)
        dgamma1 += (double)g[r * in.c + 1] * x[r * in.c + 1];
    assert_true(fabs(ls->params[0].grad[1] - dgamma1) < 1e-5 * (1 + fabs(dgamma1)));
    assert_true(dx[6] == g[6] * gamma[6 % in.c]);
    free_layer(ls);

    ich_shape many = shp(64, 2, 1, 3);
    const int64_t per = 6;
    float *ones = malloc(64 * per * sizeof *ones), *out = malloc(64 * per * sizeof *out);
    float *back = malloc(64 * per * sizeof *back);
    assert_true(ones && out && back);
    for (int64_t i = 0; i < 64 * per; i++)
        ones[i] = 1.0f + (float)(i % 5);
    const float *os[1] = {ones};
    float *bs[1] = {back};
    ich_layer *dp = make_layer("droppath", (ich_layer_args){.p = 0.25f}, &many);
    assert_int_equal(dp->ops->forward(dp, os, out, 1), ICH_OK);
    assert_int_equal(dp->step, 1);
    assert_int_equal(dp->ops->backward(dp, NULL, NULL, ones, bs), ICH_OK);
    int dropped = 0;
    for (int n = 0; n < 64; n++) {
        int zero = out[n * per] == 0.0f;
        dropped += zero;
        for (int64_t i = 0; i < per; i++) {
            float want = zero ? 0.0f : ones[n * per + i] / 0.75f;
            assert_true(fabsf(out[n * per + i] - want) <= 1e-6f * want);
            assert_true(back[n * per + i] == out[n * per + i]); /* the same mask */
        }
    }
    assert_true(dropped > 4 && dropped < 32);
    assert_int_equal(dp->ops->forward(dp, os, out, 0), ICH_OK);
    assert_memory_equal(out, ones, 64 * per * sizeof *out);
    free_layer(dp);
    ich_layer bad = {0};
    snprintf(bad.name, sizeof bad.name, "bad");
    bad.ops = be()->layer("droppath");
    bad.args.p = 1.0f;
    ich_shape o;
    assert_int_equal(bad.ops->create(&bad, &many, &o), ICH_ERR_INVALID_ARGUMENT);
    free(ones);
    free(out);
    free(back);
    free(x);
    free(y);
    free(g);
    free(dx);
}

/* Backend utilities: aligned memory, gemm, threads. */
static void test_backend_table(void **state)
{
    (void)state;
    const ich_backend *b = be();
    float *p = b->alloc(100);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    b->free(p);
    b->free(NULL);
    float src[3] = {1, 2, 3}, dst[3];
    assert_int_equal(b->to_device(dst, src, sizeof src), ICH_OK);
    assert_memory_equal(dst, src, sizeof src);
    /* C (2x2) = 2 * A^T (2x3 from 3x2) * B (3x2) + 1 * C */
    float a[6] = {1, 2, 3, 4, 5, 6}, bm[6] = {1, 0, 0, 1, 1, 1}, c[4] = {1, 1, 1, 1};
    b->gemm(1, 0, 2, 2, 3, 2.0f, a, 2, bm, 2, 1.0f, c, 2);
    /* A^T = [[1,3,5],[2,4,6]]; A^T B = [[6,8],[8,10]] */
    assert_float_equal(c[0], 13, 1e-6);
    assert_float_equal(c[1], 17, 1e-6);
    assert_float_equal(c[2], 17, 1e-6);
    assert_float_equal(c[3], 21, 1e-6);
    ich_set_threads(1);
    assert_int_equal(b->threads(), 1);
    ich_set_threads(0);
    assert_true(b->threads() >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_table),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_norm_layers),
        cmocka_unit_test(test_conv_forward),
        cmocka_unit_test(test_conv_backward),
        cmocka_unit_test(test_conv_groups),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_conv_chunked_backward),
        cmocka_unit_test(test_conv_backward_data_as_forward),
        cmocka_unit_test(test_conv_im2col_weights),
        cmocka_unit_test(test_conv_grad_accumulates),
        cmocka_unit_test(test_conv_fused_relu),
        cmocka_unit_test(test_conv_weight_cache),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_inference_builds_no_backward),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_batchnorm_running_stats),
        cmocka_unit_test(test_batchnorm_fused_relu),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_add_concat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
