/* Tests for <ich/optim.h>: BCE-with-logits against a double-precision naive
 * formula and finite differences, balanced class weights, Adam / AdamW /
 * SGD against a reference written from PyTorch's update rules, frozen
 * parameters, optimizer state views, gradient clipping, the schedules
 * against hand-computed sequences, early stopping and the config text
 * round trips. (bindings/python/tests/test_optim.py compares with torch.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

#define TINY_SPEC "input 1x1x4, flatten, linear 3"

static float uniform(uint32_t *state, float lo, float hi)
{
    return lo + (hi - lo) * (float)(tu_rand(state) >> 8) / 16777216.0f;
}

/* ---- Loss --------------------------------------------------------------- */

/* log(sigmoid(x)) in double, stable for any x. */
static double log_sigmoid(double x)
{
    return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

/* The header's formula, element by element, in double. */
static double naive_bce(const float *x, const float *y, int n, int classes, const float *pw,
                        const float *w)
{
    double sum = 0;
    for (int i = 0; i < n * classes; i++) {
        double p = pw ? pw[i % classes] : 1.0;
        double l = -(p * y[i] * log_sigmoid(x[i]) + (1.0 - y[i]) * log_sigmoid(-(double)x[i]));
        sum += (w ? w[i] : 1.0) * l;
    }
    return sum / (n * classes);
}

static void assert_close(double got, double want, double rel, double abs_tol)
{
    double tol = abs_tol + rel * fabs(want);
    if (!(fabs(got - want) <= tol)) {
        print_error("got %.17g, want %.17g (tolerance %g)\n", got, want, tol);
        fail();
    }
}

static void test_loss_matches_naive(void **state)
{
    (void)state;
    enum { N = 5, C = 6 };
    uint32_t rng = 12345;
    float x[N * C], y[N * C], w[N * C], pw[C], grad[N * C];
    for (int i = 0; i < N * C; i++) {
        x[i] = uniform(&rng, -8, 8);
        y[i] = (i % 3 == 0) ? uniform(&rng, 0, 1) : (float)(tu_rand(&rng) & 1); /* soft too */
        w[i] = uniform(&rng, 0, 2);
    }
    for (int c = 0; c < C; c++)
        pw[c] = uniform(&rng, 0.5f, 5);
    const float *pws[2] = {NULL, pw};
    const float *ws[2] = {NULL, w};
    for (int a = 0; a < 2; a++) {
        for (int b = 0; b < 2; b++) {
            float loss = -1;
            assert_int_equal(ich_loss_bce_with_logits(x, y, N, C, pws[a], ws[b], &loss, grad),
                             ICH_OK);
            assert_close(loss, naive_bce(x, y, N, C, pws[a], ws[b]), 2e-6, 1e-7);
            /* the gradient against central differences of the double loss */
            for (int i = 0; i < N * C; i++) {
                float saved = x[i];
                double h = 1e-3;
                x[i] = (float)(saved + h);
                double hp = (double)x[i] - saved;
                double up = naive_bce(x, y, N, C, pws[a], ws[b]);
                x[i] = (float)(saved - h);
                double hm = saved - (double)x[i];
                double down = naive_bce(x, y, N, C, pws[a], ws[b]);
                x[i] = saved;
                assert_close(grad[i], (up - down) / (hp + hm), 1e-3, 1e-7);
            }
        }
    }
    /* loss without a gradient */
    float loss2 = -1;
    assert_int_equal(ich_loss_bce_with_logits(x, y, N, C, pw, NULL, &loss2, NULL), ICH_OK);
    assert_close(loss2, naive_bce(x, y, N, C, pw, NULL), 2e-6, 1e-7);
}

static void test_loss_extreme_logits(void **state)
{
    (void)state;
    float x[8] = {100, -100, 100, -100, 88.5f, -88.5f, 0, 1e-3f};
    float y[8] = {1, 1, 0, 0, 0, 1, 1, 0};
    float pw[2] = {3, 0.5f};
    float grad[8];
    for (int a = 0; a < 2; a++) {
        const float *p = a ? pw : NULL;
        float loss = -1;
        assert_int_equal(ich_loss_bce_with_logits(x, y, 4, 2, p, NULL, &loss, grad), ICH_OK);
        assert_true(isfinite(loss));
        assert_close(loss, naive_bce(x, y, 4, 2, p, NULL), 1e-6, 1e-6);
        for (int i = 0; i < 8; i++)
            assert_true(isfinite(grad[i]));
        /* x = 100, y = 1: sigmoid is 1, nothing to learn */
        assert_close(grad[0], 0, 0, 1e-30);
        /* x = -100, y = 1: d/dx = -p_c / N (N = 8) */
        assert_close(grad[1], -(a ? pw[1] : 1.0) / 8, 1e-6, 0);
        /* x = 100, y = 0: d/dx = 1 / N */
        assert_close(grad[2], 1.0 / 8, 1e-6, 0);
    }
    /* one element: loss 100 exactly (x = 100, y = 0) */
    float loss = 0;
    float big = 100, zero = 0;
    assert_int_equal(ich_loss_bce_with_logits(&big, &zero, 1, 1, NULL, NULL, &loss, NULL), ICH_OK);
    assert_close(loss, 100.0, 1e-7, 0);
}

static void test_loss_errors(void **state)
{
    (void)state;
    float x[2] = {0, 1}, y[2] = {0, 1}, loss, grad[2];
    assert_int_equal(ich_loss_bce_with_logits(NULL, y, 1, 2, NULL, NULL, &loss, grad),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_loss_bce_with_logits(x, NULL, 1, 2, NULL, NULL, &loss, grad),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_loss_bce_with_logits(x, y, 1, 2, NULL, NULL, NULL, grad),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_loss_bce_with_logits(x, y, 0, 2, NULL, NULL, &loss, grad),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_loss_bce_with_logits(x, y, 1, 0, NULL, NULL, &loss, grad),
                     ICH_ERR_INVALID_ARGUMENT);
    x[1] = NAN;
    assert_int_equal(ich_loss_bce_with_logits(x, y, 1, 2, NULL, NULL, &loss, grad),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "logits[1]"));
    x[1] = 1;
    float pw[2] = {1, INFINITY};
    assert_int_equal(ich_loss_bce_with_logits(x, y, 1, 2, pw, NULL, &loss, grad),
                     ICH_ERR_INVALID_ARGUMENT);
    float w[2] = {NAN, 1};
    assert_int_equal(ich_loss_bce_with_logits(x, y, 1, 2, NULL, w, &loss, grad),
                     ICH_ERR_INVALID_ARGUMENT);
}

static void test_class_weights(void **state)
{
    (void)state;
    const char *names[3] = {"a", "b", "c"};
    ich_labels *labels = NULL;
    assert_int_equal(ich_labels_create(names, 3, &labels), ICH_OK);
    /* a: 1 of 5 positive -> 4; b: 2 of 5 (0.5 counts) -> 1.5; c: none -> 1 */
    const float rows[5][3] = {{1, 0, 0}, {0, 0.5f, 0}, {0, 1, 0}, {0, 0, 0}, {0, 0.2f, 0}};
    for (int r = 0; r < 5; r++) {
        char id[16];
        snprintf(id, sizeof id, "img%d", r);
        assert_int_equal(ich_labels_add(labels, id, rows[r], NULL), ICH_OK);
    }
    float pw[3] = {0};
    assert_int_equal(ich_class_weights_balanced(labels, pw, 3), ICH_OK);
    assert_true(pw[0] == 4.0f);
    assert_true(pw[1] == 1.5f);
    assert_true(pw[2] == 1.0f);
    assert_int_equal(ich_class_weights_balanced(labels, pw, 2), ICH_ERR_SHAPE);
    assert_int_equal(ich_class_weights_balanced(NULL, pw, 3), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_class_weights_balanced(labels, NULL, 3), ICH_ERR_INVALID_ARGUMENT);
    /* every row positive: no negatives -> 1 */
    const float all[3] = {1, 1, 1};
    ich_labels *pos = NULL;
    assert_int_equal(ich_labels_create(names, 3, &pos), ICH_OK);
    assert_int_equal(ich_labels_add(pos, "x", all, NULL), ICH_OK);
    assert_int_equal(ich_class_weights_balanced(pos, pw, 3), ICH_OK);
    assert_true(pw[0] == 1.0f && pw[1] == 1.0f && pw[2] == 1.0f);
    ich_labels_free(pos);
    ich_labels_free(labels);
}

/* ---- Optimizers on a tiny model ----------------------------------------- */

typedef struct tiny {
    ich_model *model;
    int32_t index[2];     /* fc1.weight, fc1.bias */
    ich_tensor_view view[2];
} tiny;

static void tiny_open(tiny *t, uint32_t seed)
{
    assert_int_equal(ich_model_create(TINY_SPEC, &t->model), ICH_OK);
    const char *names[2] = {"fc1.weight", "fc1.bias"};
    for (int k = 0; k < 2; k++) {
        t->index[k] = ich_model_find_tensor(t->model, names[k]);
        assert_true(t->index[k] >= 0);
        t->view[k] = (ich_tensor_view){.size = sizeof(ich_tensor_view)};
        assert_int_equal(ich_model_tensor(t->model, t->index[k], &t->view[k]), ICH_OK);
        assert_int_equal(t->view[k].type, ICH_TENSOR_F32);
        assert_non_null(t->view[k].grad);
        float *data = t->view[k].data;
        for (int64_t i = 0; i < t->view[k].count; i++)
            data[i] = uniform(&seed, -1, 1);
    }
    assert_int_equal(t->view[0].count, 12);
    assert_int_equal(t->view[1].count, 3);
    ich_model_tensor_changed(t->model, -1);
}

static void tiny_set_grads(tiny *t, uint32_t *rng, float scale)
{
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < t->view[k].count; i++)
            t->view[k].grad[i] = uniform(rng, -scale, scale);
}

/* PyTorch's update rules, one element at a time, written from
 * torch/optim/{adam,adamw,sgd}.py and its CPU kernels: a Python float
 * meets a float tensor as a float; add(alpha) and addcmul are fused. */
typedef struct ref_state {
    float m[12], v[12];
    int64_t step;
} ref_state;

static void ref_adam(const ich_optimizer_options *o, float *p, const float *g, int64_t n,
                     ref_state *s)
{
    s->step++;
    double bc1 = 1 - pow(o->beta1, (double)s->step);
    double bc2 = 1 - pow(o->beta2, (double)s->step);
    float step_size = (float)-(o->lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    for (int64_t i = 0; i < n; i++) {
        float grad = g[i];
        if (o->kind == ICH_OPTIM_ADAMW)
            p[i] = p[i] * (float)(1 - o->lr * o->weight_decay);
        else if (o->weight_decay != 0)
            grad = fmaf(p[i], (float)o->weight_decay, grad);
        s->m[i] = fmaf(grad, (float)(1 - o->beta1), s->m[i] * (float)o->beta1);
        s->v[i] = fmaf((float)(1 - o->beta2) * grad, grad, s->v[i] * (float)o->beta2);
        float denom = sqrtf(s->v[i]) / bc2_sqrt + (float)o->eps;
        p[i] = p[i] + step_size * s->m[i] / denom;
    }
}

static void ref_sgd(const ich_optimizer_options *o, float *p, const float *g, int64_t n,
                    ref_state *s)
{
    for (int64_t i = 0; i < n; i++) {
        float d = g[i];
        if (o->weight_decay != 0)
            d = fmaf(p[i], (float)o->weight_decay, d);
        if (o->momentum != 0) {
            s->m[i] = s->step == 0 ? d
                                   : fmaf(d, (float)(1 - o->dampening), s->m[i] * (float)o->momentum);
            d = o->nesterov ? fmaf(s->m[i], (float)o->momentum, d) : s->m[i];
        }
        p[i] = fmaf(d, (float)-o->lr, p[i]);
    }
    s->step++;
}

static void run_optimizer_case(const ich_optimizer_options *o)
{
    tiny t;
    tiny_open(&t, 777);
    float ref_p[2][12];
    ref_state ref_s[2];
    memset(ref_s, 0, sizeof ref_s);
    for (int k = 0; k < 2; k++)
        memcpy(ref_p[k], t.view[k].data, (size_t)t.view[k].count * sizeof(float));
    ich_optimizer *opt = NULL;
    assert_int_equal(ich_optimizer_create(t.model, o, &opt), ICH_OK);
    uint32_t rng = 99;
    for (int step = 0; step < 5; step++) {
        tiny_set_grads(&t, &rng, step == 2 ? 10.0f : 0.5f);
        for (int k = 0; k < 2; k++) {
            if (o->kind == ICH_OPTIM_SGD)
                ref_sgd(o, ref_p[k], t.view[k].grad, t.view[k].count, &ref_s[k]);
            else
                ref_adam(o, ref_p[k], t.view[k].grad, t.view[k].count, &ref_s[k]);
        }
        assert_int_equal(ich_optimizer_step(opt), ICH_OK);
        for (int k = 0; k < 2; k++) {
            const float *got = t.view[k].data;
            for (int64_t i = 0; i < t.view[k].count; i++) {
                if (got[i] != ref_p[k][i]) {
                    print_error("kind %d step %d tensor %d [%lld]: %.9g != %.9g\n", o->kind, step,
                                k, (long long)i, got[i], ref_p[k][i]);
                    fail();
                }
            }
        }
    }
    assert_int_equal(ich_optimizer_steps(opt), 5);
    /* the state views hold the reference's moments */
    int per = o->kind == ICH_OPTIM_SGD ? (o->momentum != 0 ? 2 : 0) : 3;
    assert_int_equal(ich_optimizer_state_count(opt), 2 * per);
    for (int32_t s = 0; s < 2 * per; s++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_optimizer_state(opt, s, &v), ICH_OK);
        int k = s / per, which = s % per;
        assert_non_null(v.name);
        assert_true(strncmp(v.name, "optimizer.fc1.", 14) == 0);
        if (which == per - 1) {
            assert_string_equal(strrchr(v.name, '.'), ".step");
            assert_int_equal(v.type, ICH_TENSOR_I64);
            assert_int_equal(*(int64_t *)v.data, 5);
            continue;
        }
        assert_int_equal(v.type, ICH_TENSOR_F32);
        assert_int_equal(v.count, t.view[k].count);
        assert_int_equal(v.ndim, t.view[k].ndim);
        const float *want = which == 0 ? ref_s[k].m : ref_s[k].v;
        assert_memory_equal(v.data, want, (size_t)v.count * sizeof(float));
        const char *suffix = o->kind == ICH_OPTIM_SGD ? ".momentum_buffer"
                                                      : (which == 0 ? ".exp_avg" : ".exp_avg_sq");
        assert_string_equal(strrchr(v.name, '.'), suffix);
    }
    ich_tensor_view v = {.size = sizeof v};
    assert_int_equal(ich_optimizer_state(opt, 2 * per, &v), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_optimizer_state(opt, -1, &v), ICH_ERR_INVALID_ARGUMENT);
    ich_optimizer_free(opt);
    ich_model_free(t.model);
}

static void test_optimizers_match_reference(void **state)
{
    (void)state;
    ich_optimizer_options o;
    /* Adam: defaults, then L2 weight decay and other betas */
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
    assert_true(o.lr == 1e-3 && o.beta1 == 0.9 && o.beta2 == 0.999 && o.eps == 1e-8 &&
                o.weight_decay == 0);
    run_optimizer_case(&o);
    o.weight_decay = 0.1;
    o.beta1 = 0.8;
    o.beta2 = 0.99;
    o.lr = 0.01;
    run_optimizer_case(&o);
    /* AdamW: decoupled decay */
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAMW);
    assert_true(o.weight_decay == 0.01);
    run_optimizer_case(&o);
    o.weight_decay = 0.5;
    o.lr = 0.05;
    run_optimizer_case(&o);
    /* SGD: plain, momentum with dampening and decay, Nesterov */
    ich_optimizer_options_init(&o, ICH_OPTIM_SGD);
    assert_true(o.lr == 0.01 && o.momentum == 0);
    run_optimizer_case(&o);
    o.momentum = 0.9;
    o.dampening = 0.1;
    o.weight_decay = 0.01;
    run_optimizer_case(&o);
    o.dampening = 0;
    o.nesterov = 1;
    run_optimizer_case(&o);
}

/* Adam's first step moves every weight by about lr against its gradient's
 * sign: a check of the formula that does not share the reference's code. */
static void test_adam_first_step_size(void **state)
{
    (void)state;
    tiny t;
    tiny_open(&t, 5);
    float before[12];
    memcpy(before, t.view[0].data, sizeof before);
    uint32_t rng = 3;
    tiny_set_grads(&t, &rng, 1.0f);
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
    o.lr = 0.1;
    ich_optimizer *opt = NULL;
    assert_int_equal(ich_optimizer_create(t.model, &o, &opt), ICH_OK);
    assert_int_equal(ich_optimizer_step(opt), ICH_OK);
    const float *after = t.view[0].data;
    for (int i = 0; i < 12; i++) {
        double g = t.view[0].grad[i];
        double want = before[i] - 0.1 * g / (fabs(g) + 1e-8);
        assert_close(after[i], want, 1e-6, 1e-6);
    }
    ich_optimizer_free(opt);
    ich_model_free(t.model);
}

static void test_frozen_parameters(void **state)
{
    (void)state;
    tiny t;
    tiny_open(&t, 11);
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
    o.lr = 0.1;
    ich_optimizer *opt = NULL;
    assert_int_equal(ich_optimizer_create(t.model, &o, &opt), ICH_OK);
    int32_t matched = 0;
    assert_int_equal(ich_model_freeze(t.model, "fc1.bias", 1, &matched), ICH_OK);
    assert_int_equal(matched, 1);
    float bias[3], weight[12];
    memcpy(bias, t.view[1].data, sizeof bias);
    memcpy(weight, t.view[0].data, sizeof weight);
    uint32_t rng = 8;
    tiny_set_grads(&t, &rng, 1.0f);
    assert_int_equal(ich_optimizer_step(opt), ICH_OK);
    assert_int_equal(ich_optimizer_step(opt), ICH_OK);
    assert_memory_equal(t.view[1].data, bias, sizeof bias);
    assert_memory_not_equal(t.view[0].data, weight, sizeof weight);
    /* the bias's state stayed at step 0; after unfreezing its first step is
     * a first Adam step: lr against the gradient's sign */
    ich_tensor_view v = {.size = sizeof v};
    assert_int_equal(ich_optimizer_state(opt, 5, &v), ICH_OK);
    assert_string_equal(v.name, "optimizer.fc1.bias.step");
    assert_int_equal(*(int64_t *)v.data, 0);
    assert_int_equal(ich_optimizer_state(opt, 2, &v), ICH_OK);
    assert_string_equal(v.name, "optimizer.fc1.weight.step");
    assert_int_equal(*(int64_t *)v.data, 2);
    assert_int_equal(ich_model_freeze(t.model, "fc1.bias", 0, NULL), ICH_OK);
    assert_int_equal(ich_optimizer_step(opt), ICH_OK);
    for (int i = 0; i < 3; i++) {
        double g = t.view[1].grad[i];
        assert_close(((float *)t.view[1].data)[i], bias[i] - 0.1 * g / (fabs(g) + 1e-8), 1e-6,
                     1e-6);
    }
    assert_int_equal(ich_optimizer_steps(opt), 3);
    ich_optimizer_free(opt);
    ich_model_free(t.model);
}

static void test_optimizer_errors(void **state)
{
    (void)state;
    tiny t;
    tiny_open(&t, 1);
    ich_optimizer *opt = (ich_optimizer *)1;
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
    assert_int_equal(ich_optimizer_create(NULL, &o, &opt), ICH_ERR_INVALID_ARGUMENT);
    assert_null(opt);
    assert_int_equal(ich_optimizer_create(t.model, &o, NULL), ICH_ERR_INVALID_ARGUMENT);
    const struct {
        int kind;
        double lr, beta1, beta2, eps, wd, momentum, dampening;
        int nesterov;
    } bad[] = {
        {ICH_OPTIM_ADAM, -1, 0.9, 0.999, 1e-8, 0, 0, 0, 0},
        {ICH_OPTIM_ADAM, 1e-3, 1.0, 0.999, 1e-8, 0, 0, 0, 0},
        {ICH_OPTIM_ADAMW, 1e-3, 0.9, -0.1, 1e-8, 0, 0, 0, 0},
        {ICH_OPTIM_ADAM, 1e-3, 0.9, 0.999, -1, 0, 0, 0, 0},
        {ICH_OPTIM_ADAM, NAN, 0.9, 0.999, 1e-8, 0, 0, 0, 0},
        {ICH_OPTIM_SGD, 0.1, 0, 0, 0, -1, 0, 0, 0},
        {ICH_OPTIM_SGD, 0.1, 0, 0, 0, 0, -0.5, 0, 0},
        {ICH_OPTIM_SGD, 0.1, 0, 0, 0, 0, 0, 0, 1},   /* nesterov without momentum */
        {ICH_OPTIM_SGD, 0.1, 0, 0, 0, 0, 0.9, 0.1, 1}, /* nesterov with dampening */
        {7, 0.1, 0.9, 0.999, 1e-8, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
        o.kind = bad[i].kind;
        o.lr = bad[i].lr;
        o.beta1 = bad[i].beta1;
        o.beta2 = bad[i].beta2;
        o.eps = bad[i].eps;
        o.weight_decay = bad[i].wd;
        o.momentum = bad[i].momentum;
        o.dampening = bad[i].dampening;
        o.nesterov = bad[i].nesterov;
        assert_int_equal(ich_optimizer_create(t.model, &o, &opt), ICH_ERR_INVALID_ARGUMENT);
    }
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
    o.size = 4;
    assert_int_equal(ich_optimizer_create(t.model, &o, &opt), ICH_ERR_INVALID_ARGUMENT);
    /* NULL options: Adam's defaults */
    assert_int_equal(ich_optimizer_create(t.model, NULL, &opt), ICH_OK);
    assert_true(ich_optimizer_lr(opt) == 1e-3);
    assert_int_equal(ich_optimizer_set_lr(opt, -0.5), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_optimizer_set_lr(opt, 0.25), ICH_OK);
    assert_true(ich_optimizer_lr(opt) == 0.25);
    ich_tensor_view v = {.size = 8};
    assert_int_equal(ich_optimizer_state(opt, 0, &v), ICH_ERR_INVALID_ARGUMENT);
    ich_optimizer_free(opt);
    ich_optimizer_free(NULL);
    assert_int_equal(ich_optimizer_step(NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_optimizer_steps(NULL), 0);
    ich_model_free(t.model);
}

static void test_optimizer_config_round_trip(void **state)
{
    (void)state;
    tiny t;
    tiny_open(&t, 21);
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, ICH_OPTIM_SGD);
    o.lr = 0.1 / 3; /* not a short decimal: %.17g must carry it exactly */
    o.momentum = 0.9;
    o.dampening = 0.05;
    o.weight_decay = 1e-4;
    ich_optimizer *a = NULL, *b = NULL, *adam = NULL;
    assert_int_equal(ich_optimizer_create(t.model, &o, &a), ICH_OK);
    uint32_t rng = 4;
    for (int i = 0; i < 3; i++) {
        tiny_set_grads(&t, &rng, 1.0f);
        assert_int_equal(ich_optimizer_step(a), ICH_OK);
    }
    char config[512];
    snprintf(config, sizeof config, "%s", ich_optimizer_config(a));
    assert_non_null(strstr(config, "kind=sgd"));
    o.lr = 0.5;
    o.dampening = 0;
    assert_int_equal(ich_optimizer_create(t.model, &o, &b), ICH_OK);
    assert_int_equal(ich_optimizer_restore_config(b, config), ICH_OK);
    assert_true(ich_optimizer_lr(b) == 0.1 / 3);
    assert_int_equal(ich_optimizer_steps(b), 3);
    assert_string_equal(ich_optimizer_config(b), config);
    /* errors: another kind, malformed text, a missing key, a bad value */
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
    assert_int_equal(ich_optimizer_create(t.model, &o, &adam), ICH_OK);
    assert_int_equal(ich_optimizer_restore_config(adam, config), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_optimizer_restore_config(b, "garbage"), ICH_ERR_FORMAT);
    assert_int_equal(ich_optimizer_restore_config(b, "kind=sgd lr=0.1"), ICH_ERR_FORMAT);
    char broken[600];
    snprintf(broken, sizeof broken, "%s", config);
    char *lr = strstr(broken, "lr=");
    lr[3] = 'x';
    assert_int_equal(ich_optimizer_restore_config(b, broken), ICH_ERR_FORMAT);
    snprintf(broken, sizeof broken, "%s", config);
    memcpy(strstr(broken, "lr=") + 3, "-", 1);
    assert_int_equal(ich_optimizer_restore_config(b, broken), ICH_ERR_FORMAT);
    /* a failed restore changed nothing */
    assert_string_equal(ich_optimizer_config(b), config);
    char *adam_config = strdup(ich_optimizer_config(adam));
    assert_int_equal(ich_optimizer_restore_config(adam, adam_config), ICH_OK);
    assert_string_equal(ich_optimizer_config(adam), adam_config);
    free(adam_config);
    assert_int_equal(ich_optimizer_restore_config(NULL, config), ICH_ERR_INVALID_ARGUMENT);
    ich_optimizer_free(a);
    ich_optimizer_free(b);
    ich_optimizer_free(adam);
    ich_model_free(t.model);
}

/* ---- Gradient clipping -------------------------------------------------- */

static void test_clip_grad_norm(void **state)
{
    (void)state;
    tiny t;
    tiny_open(&t, 2);
    uint32_t rng = 17;
    tiny_set_grads(&t, &rng, 2.0f);
    float grads[15];
    memcpy(grads, t.view[0].grad, 12 * sizeof(float));
    memcpy(grads + 12, t.view[1].grad, 3 * sizeof(float));
    double sum = 0;
    for (int i = 0; i < 15; i++)
        sum += (double)grads[i] * grads[i];
    double norm = sqrt(sum);
    /* a large max_norm leaves the gradients alone */
    double total = -1;
    assert_int_equal(ich_clip_grad_norm(t.model, norm * 2, &total), ICH_OK);
    assert_close(total, norm, 1e-12, 0);
    assert_memory_equal(t.view[0].grad, grads, 12 * sizeof(float));
    /* a small one scales them by max_norm / (norm + 1e-6), in float */
    assert_int_equal(ich_clip_grad_norm(t.model, 1.0, &total), ICH_OK);
    float coef = 1.0f / ((float)norm + 1e-6f);
    for (int i = 0; i < 12; i++)
        assert_true(t.view[0].grad[i] == grads[i] * coef);
    sum = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < t.view[k].count; i++)
            sum += (double)t.view[k].grad[i] * t.view[k].grad[i];
    assert_close(sqrt(sum), 1.0, 1e-5, 0);
    /* frozen parameters neither count nor change */
    tiny_set_grads(&t, &rng, 2.0f);
    memcpy(grads, t.view[1].grad, 3 * sizeof(float));
    sum = 0;
    for (int i = 0; i < 12; i++)
        sum += (double)t.view[0].grad[i] * t.view[0].grad[i];
    assert_int_equal(ich_model_freeze(t.model, "fc1.bias", 1, NULL), ICH_OK);
    assert_int_equal(ich_clip_grad_norm(t.model, 0.5, &total), ICH_OK);
    assert_close(total, sqrt(sum), 1e-12, 0);
    assert_memory_equal(t.view[1].grad, grads, 3 * sizeof(float));
    assert_int_equal(ich_clip_grad_norm(t.model, 0, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_clip_grad_norm(t.model, NAN, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_clip_grad_norm(NULL, 1, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_model_free(t.model);
}

/* ---- Schedules ---------------------------------------------------------- */

typedef struct sched_env {
    tiny t;
    ich_optimizer *opt;
} sched_env;

static void env_open(sched_env *e, double lr)
{
    tiny_open(&e->t, 3);
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, ICH_OPTIM_SGD);
    o.lr = lr;
    assert_int_equal(ich_optimizer_create(e->t.model, &o, &e->opt), ICH_OK);
}

static void env_close(sched_env *e)
{
    ich_optimizer_free(e->opt);
    ich_model_free(e->t.model);
}

static void test_plateau(void **state)
{
    (void)state;
    sched_env e;
    env_open(&e, 1.0);
    ich_schedule_options o;
    ich_schedule_options_init(&o, ICH_SCHEDULE_PLATEAU);
    assert_true(o.factor == 0.1 && o.patience == 10 && o.threshold == 1e-4 && o.min_lr == 0);
    o.factor = 0.5;
    o.patience = 2;
    o.threshold = 0.1;
    o.min_lr = 0.2;
    ich_schedule *s = NULL;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_OK);
    /* worked by hand: better means < best * 0.9; a reduction after 3 bad
     * epochs; 0.25 -> max(0.125, 0.2); then 0.2 stays (no change > 1e-8) */
    const double metric[14] = {10, 9.5, 9.2, 9.1, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8};
    const double want[14] = {1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2};
    for (int i = 0; i < 14; i++) {
        assert_int_equal(ich_schedule_step(s, metric[i]), ICH_OK);
        if (ich_optimizer_lr(e.opt) != want[i]) {
            print_error("epoch %d: lr %.17g, want %.17g\n", i + 1, ich_optimizer_lr(e.opt),
                        want[i]);
            fail();
        }
    }
    ich_schedule_free(s);
    /* maximize: better means > best * 1.1 */
    assert_int_equal(ich_optimizer_set_lr(e.opt, 1.0), ICH_OK);
    o.maximize = 1;
    o.patience = 1;
    o.min_lr = 0;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_OK);
    const double acc[6] = {0.5, 0.54, 0.53, 0.7, 0.6, 0.5};
    const double want_max[6] = {1, 1, 0.5, 0.5, 0.5, 0.25};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ich_schedule_step(s, acc[i]), ICH_OK);
        assert_true(ich_optimizer_lr(e.opt) == want_max[i]);
    }
    ich_schedule_free(s);
    env_close(&e);
}

static void test_step_and_cosine(void **state)
{
    (void)state;
    sched_env e;
    env_open(&e, 0.1);
    ich_schedule_options o;
    ich_schedule_options_init(&o, ICH_SCHEDULE_STEP);
    o.step_size = 3;
    o.gamma = 0.5;
    ich_schedule *s = NULL;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_OK);
    const double want[10] = {0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(ich_schedule_step(s, NAN), ICH_OK);
        assert_true(ich_optimizer_lr(e.opt) == want[i]);
    }
    ich_schedule_free(s);
    /* cosine: the closed form min + (base - min) (1 + cos(pi e / T)) / 2,
     * periodic past t_max as PyTorch's, over 30 epochs */
    const double base = 0.1, min_lr = 0.001;
    assert_int_equal(ich_optimizer_set_lr(e.opt, base), ICH_OK);
    ich_schedule_options_init(&o, ICH_SCHEDULE_COSINE);
    o.t_max = 10;
    o.min_lr = min_lr;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_OK);
    for (int epoch = 1; epoch <= 30; epoch++) {
        assert_int_equal(ich_schedule_step(s, 0), ICH_OK);
        double closed = min_lr + (base - min_lr) * (1 + cos(M_PI * epoch / 10)) / 2;
        assert_close(ich_optimizer_lr(e.opt), closed, 1e-12, 0);
    }
    ich_schedule_free(s);
    env_close(&e);
}

static void test_schedule_config_and_errors(void **state)
{
    (void)state;
    const int kinds[3] = {ICH_SCHEDULE_PLATEAU, ICH_SCHEDULE_STEP, ICH_SCHEDULE_COSINE};
    for (int k = 0; k < 3; k++) {
        sched_env a, b;
        env_open(&a, 0.3);
        env_open(&b, 0.3);
        ich_schedule_options o;
        ich_schedule_options_init(&o, kinds[k]);
        o.patience = 1;
        o.step_size = 2;
        o.t_max = 7;
        o.min_lr = 1e-3;
        ich_schedule *sa = NULL, *sb = NULL;
        assert_int_equal(ich_schedule_create(a.opt, &o, &sa), ICH_OK);
        const double metric[12] = {5, 4, 4.5, 4.2, 4.1, 3, 3.5, 3.4, 3.3, 2, 2, 2};
        for (int i = 0; i < 5; i++)
            assert_int_equal(ich_schedule_step(sa, metric[i]), ICH_OK);
        /* b: another schedule of the kind with other settings, restored from
         * a's text and its optimizer's; both go on identically */
        o.patience = 4;
        o.t_max = 3;
        o.step_size = 5;
        assert_int_equal(ich_optimizer_set_lr(b.opt, 0.7), ICH_OK);
        assert_int_equal(ich_schedule_create(b.opt, &o, &sb), ICH_OK);
        char *text = strdup(ich_schedule_config(sa));
        assert_int_equal(ich_schedule_restore_config(sb, text), ICH_OK);
        assert_string_equal(ich_schedule_config(sb), text);
        assert_int_equal(ich_optimizer_restore_config(b.opt, ich_optimizer_config(a.opt)), ICH_OK);
        for (int i = 5; i < 12; i++) {
            assert_int_equal(ich_schedule_step(sa, metric[i]), ICH_OK);
            assert_int_equal(ich_schedule_step(sb, metric[i]), ICH_OK);
            assert_true(ich_optimizer_lr(a.opt) == ich_optimizer_lr(b.opt));
        }
        /* errors: another kind, malformed */
        ich_schedule_options other;
        ich_schedule_options_init(&other, kinds[(k + 1) % 3]);
        ich_schedule *sc = NULL;
        assert_int_equal(ich_schedule_create(b.opt, &other, &sc), ICH_OK);
        assert_int_equal(ich_schedule_restore_config(sc, text), ICH_ERR_INVALID_ARGUMENT);
        assert_int_equal(ich_schedule_restore_config(sb, "kind=step"), k == 1 ? ICH_ERR_FORMAT
                                                                             : ICH_ERR_INVALID_ARGUMENT);
        assert_int_equal(ich_schedule_restore_config(sb, ""), ICH_ERR_FORMAT);
        free(text);
        ich_schedule_free(sa);
        ich_schedule_free(sb);
        ich_schedule_free(sc);
        env_close(&a);
        env_close(&b);
    }
    /* bad settings */
    sched_env e;
    env_open(&e, 0.1);
    ich_schedule *s = (ich_schedule *)1;
    ich_schedule_options o;
    ich_schedule_options_init(&o, ICH_SCHEDULE_PLATEAU);
    o.factor = 1.0;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_ERR_INVALID_ARGUMENT);
    assert_null(s);
    ich_schedule_options_init(&o, ICH_SCHEDULE_PLATEAU);
    o.patience = -1;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_ERR_INVALID_ARGUMENT);
    ich_schedule_options_init(&o, ICH_SCHEDULE_STEP);
    o.step_size = 0;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_ERR_INVALID_ARGUMENT);
    ich_schedule_options_init(&o, ICH_SCHEDULE_COSINE);
    o.t_max = 0;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_ERR_INVALID_ARGUMENT);
    o.t_max = 5;
    o.min_lr = -1;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_ERR_INVALID_ARGUMENT);
    o.min_lr = 0;
    o.kind = 9;
    assert_int_equal(ich_schedule_create(e.opt, &o, &s), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_schedule_create(NULL, &o, &s), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_schedule_step(NULL, 0), ICH_ERR_INVALID_ARGUMENT);
    ich_schedule_free(NULL);
    env_close(&e);
}

/* ---- Early stopping ----------------------------------------------------- */

static void expect_update(ich_early_stopping *e, double metric, int improved, int stop)
{
    int got_improved = -1, got_stop = -1;
    assert_int_equal(ich_early_stopping_update(e, metric, &got_improved, &got_stop), ICH_OK);
    assert_int_equal(got_improved, improved);
    assert_int_equal(got_stop, stop);
}

static void test_early_stopping(void **state)
{
    (void)state;
    ich_early_stopping *e = NULL;
    int64_t epoch = 7;
    assert_int_equal(ich_early_stopping_create(2, 0.1, 0, &e), ICH_OK);
    assert_true(isnan(ich_early_stopping_best(e, &epoch)));
    assert_int_equal(epoch, -1);
    expect_update(e, 1.0, 1, 0);
    expect_update(e, 0.95, 0, 0);  /* better by less than min_delta */
    /* resume half-way from the text */
    ich_early_stopping *r = NULL;
    assert_int_equal(ich_early_stopping_create(9, 0, 1, &r), ICH_OK);
    char *text = strdup(ich_early_stopping_config(e));
    assert_int_equal(ich_early_stopping_restore_config(r, text), ICH_OK);
    assert_string_equal(ich_early_stopping_config(r), text);
    free(text);
    ich_early_stopping *both[2] = {e, r};
    for (int k = 0; k < 2; k++) {
        expect_update(both[k], 0.85, 1, 0);
        expect_update(both[k], NAN, 0, 0);
        expect_update(both[k], 0.8, 0, 1);
        assert_true(ich_early_stopping_best(both[k], &epoch) == 0.85);
        assert_int_equal(epoch, 2);
    }
    ich_early_stopping_free(e);
    ich_early_stopping_free(r);
    /* maximize, patience 0: the first epoch without improvement stops */
    assert_int_equal(ich_early_stopping_create(0, 0, 1, &e), ICH_OK);
    expect_update(e, 0.5, 1, 0);
    expect_update(e, 0.6, 1, 0);
    expect_update(e, 0.6, 0, 1);
    assert_true(ich_early_stopping_best(e, &epoch) == 0.6);
    assert_int_equal(epoch, 1);
    assert_int_equal(ich_early_stopping_restore_config(e, "patience=1"), ICH_ERR_FORMAT);
    assert_int_equal(ich_early_stopping_restore_config(
                         e, "patience=1 min_delta=0 maximize=0 best=1 best_epoch=5 epoch=3 "
                            "bad_epochs=0"),
                     ICH_ERR_FORMAT);
    ich_early_stopping_free(e);
    ich_early_stopping_free(NULL);
    assert_int_equal(ich_early_stopping_create(-1, 0, 0, &e), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_early_stopping_create(1, -0.1, 0, &e), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_early_stopping_create(1, 0, 0, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_early_stopping_update(NULL, 1, NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_matches_naive),
        cmocka_unit_test(test_loss_extreme_logits),
        cmocka_unit_test(test_loss_errors),
        cmocka_unit_test(test_class_weights),
        cmocka_unit_test(test_optimizers_match_reference),
        cmocka_unit_test(test_adam_first_step_size),
        cmocka_unit_test(test_frozen_parameters),
        cmocka_unit_test(test_optimizer_errors),
        cmocka_unit_test(test_optimizer_config_round_trip),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_plateau),
        cmocka_unit_test(test_step_and_cosine),
        cmocka_unit_test(test_schedule_config_and_errors),
        cmocka_unit_test(test_early_stopping),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
