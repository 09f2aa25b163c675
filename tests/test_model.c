/* Tests of ich_model: the spec grammar and its errors, the canonical spec,
 * presets' tensor names and shapes, forward against a naive reference,
 * parameter gradients against finite differences, freezing, batch size
 * changes, metadata and the cascade's gating. (Comparisons with PyTorch
 * are in bindings/python/tests/test_model.py.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <dnnl.h>

#include <cmocka.h>

#include "ich/model.h"
#include "ich/optim.h"
#include "test_util.h"

static ich_model *make(const char *spec)
{
    ich_model *m = NULL;
    ich_status st = ich_model_create(spec, &m);
    if (st)
        fprintf(stderr, "%s\n", ich_last_error());
    assert_int_equal(st, ICH_OK);
    return m;
}

static float *random_floats(size_t n, uint32_t seed)
{
    float *x = malloc(n * sizeof *x);
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) / 16777216.0 * 2.0 - 1.0);
    }
    return x;
}

static ich_tensor_view view_of(ich_model *m, const char *name)
{
    ich_tensor_view v = {.size = sizeof v};
    int32_t i = ich_model_find_tensor(m, name);
    assert_true(i >= 0);
    assert_int_equal(ich_model_tensor(m, i, &v), ICH_OK);
    return v;
}

static void test_spec_errors(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        const char *words[2];
    } cases[] = {
        {"conv 4 3, flatten, linear 2", {"item 1", "input"}},
        {"input 1x8x8, conv 4", {"item 2", "kernel"}},
        {"input 1x8x8, conv 4 3 strde 2", {"item 2", "strde"}},
        {"input 1x8x8, wobble", {"wobble", "position 13"}},
        {"input 1x8x8,, flatten", {"item 2", "empty"}},
        {"input 1x8x8, dropout 2, flatten, linear 2", {"item 2", "probability"}},
        {"input 1x8x8, residual(relu; relu), flatten, linear 2", {"shortcut", "item"}},
        {"input 1x8x8, concat(relu), flatten, linear 2", {"two branches", "item 2"}},
        {"input 1x8x8, residual(relu, flatten, linear 2", {"missing ')'", "item"}},
        {"input 1x8x8, flatten, linear 2, input 1x8x8", {"first item only", "position"}},
        {"", {"empty", "spec"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ich_model *m = (ich_model *)1;
        assert_int_equal(ich_model_create(cases[i].spec, &m), ICH_ERR_INVALID_ARGUMENT);
        assert_null(m);
        for (int w = 0; w < 2; w++) {
            if (!strstr(ich_last_error(), cases[i].words[w]))
                fail_msg("spec \"%s\": message \"%s\" lacks \"%s\"", cases[i].spec,
                         ich_last_error(), cases[i].words[w]);
        }
    }
    ich_model *m = NULL;
    assert_int_equal(ich_model_create("input 1x8x8, conv 4 9, flatten, linear 2", &m),
                     ICH_ERR_SHAPE);
    assert_non_null(strstr(ich_last_error(), "conv1"));
    assert_int_equal(ich_model_create("input 1x8x8, conv 4 3, linear 2", &m), ICH_ERR_SHAPE);
    assert_int_equal(ich_model_create("input 1x8x8, conv 4 3", &m), ICH_ERR_SHAPE);
    assert_int_equal(ich_model_create("input 1x8x8, a = linear 2, a = linear 2", &m) != ICH_OK,
                     1);
    assert_int_equal(ich_model_create(NULL, &m), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_create("input 1x8x8, flatten, linear 2", NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_create_preset("nope", &m), ICH_ERR_NOT_FOUND);
    assert_non_null(strstr(ich_last_error(), "ichnet"));
}

static void test_spec_canonical(void **state)
{
    (void)state;
    const char *spec = "input 2x12x10\nconv 4 3x5 stride 2 pad 1x2 nobias,bn eps 0.001, relu,"
                       " stem = conv 4 1, residual(conv 4 3 pad 1, batchnorm; shortcut: avgpool 1),"
                       " concat(left: conv 2 1 | maxpool 3 stride 1 pad 1), gap, dropout 0.25, "
                       "head = fc 3";
    ich_model *m = make(spec);
    const char *canonical = ich_model_spec(m);
    assert_string_equal(canonical,
                        "input 2x12x10, conv 4 3x5 stride 2 pad 1x2 nobias, batchnorm eps 0.001, "
                        "relu, stem = conv 4 1, residual(conv 4 3 pad 1, batchnorm; shortcut: "
                        "avgpool 1), concat(left: conv 2 1 | maxpool 3 stride 1 pad 1), gap, "
                        "dropout 0.25, head = linear 3");
    ich_model *again = make(canonical);
    assert_string_equal(ich_model_spec(again), canonical);
    assert_int_equal(ich_model_tensor_count(again), ich_model_tensor_count(m));
    assert_string_equal(ich_model_metadata(m, "ich.spec"), canonical);
    ich_tensor_view v = view_of(m, "conv1.weight");
    assert_int_equal(v.ndim, 4);
    assert_int_equal(v.dims[0], 4);
    assert_int_equal(v.dims[1], 2);
    assert_int_equal(v.dims[2], 3);
    assert_int_equal(v.dims[3], 5);
    assert_int_equal(ich_model_find_tensor(m, "conv1.bias"), -1); /* nobias */
    v = view_of(m, "res1.bn1.num_batches_tracked");
    assert_int_equal(v.type, ICH_TENSOR_I64);
    assert_int_equal(v.trainable, 0);
    view_of(m, "left.conv1.weight");
    v = view_of(m, "head.weight");
    assert_int_equal(v.dims[0], 3);
    assert_int_equal(v.dims[1], 6); /* 4 + 2 channels after gap */
    assert_int_equal(ich_model_outputs(m), 3);
    int32_t c, h, w;
    assert_int_equal(ich_model_input_shape(m, &c, &h, &w), ICH_OK);
    assert_true(c == 2 && h == 12 && w == 10);
    ich_model_free(again);
    ich_model_free(m);
}

static void test_presets(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int tensors;
        int c, h;
        const char *tensor;
        int64_t dims[4];
    } presets[] = {
        {"tutorial", 12, 1, 512, "fc1.weight", {50, 72 * 28 * 28, 0, 0}},
        {"ichnet", 74, 3, 256, "res4.shortcut.conv1.weight", {128, 64, 1, 1}},
        {"Cascade any small subtype small", 40, 3, 256, "subtype.fc1.weight", {5, 64, 0, 0}},
    };
    for (size_t i = 0; i < 3; i++) {
        ich_model *m = NULL;
        assert_int_equal(ich_model_create_preset(presets[i].name, &m), ICH_OK);
        assert_int_equal(ich_model_tensor_count(m), presets[i].tensors);
        assert_int_equal(ich_model_outputs(m), 6);
        int32_t c, h;
        ich_model_input_shape(m, &c, &h, NULL);
        assert_int_equal(c, presets[i].c);
        assert_int_equal(h, presets[i].h);
        ich_tensor_view v = view_of(m, presets[i].tensor);
        for (int d = 0; d < v.ndim; d++)
            assert_int_equal(v.dims[d], presets[i].dims[d]);
        /* PyTorch's default init: |w| <= 1/sqrt(fan_in) and spread out */
        double bound = 1.0 / sqrt((double)(v.count / v.dims[0])), top = 0;
        for (int64_t k = 0; k < v.count; k++)
            top = fmax(top, fabs(((float *)v.data)[k]));
        assert_true(top <= bound * (1 + 1e-6) && top > 0.9 * bound);
        ich_model_free(m);
    }
}

/* Naive reference of "input 2x5x5, conv 3 3 pad 1 stride 2, relu, flatten,
 * linear 2" in NCHW. */
static void naive_forward(const float *x, const float *cw, const float *cb, const float *lw,
                          const float *lb, float *out)
{
    float act[3 * 3 * 3];
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                double s = cb[o];
                for (int c = 0; c < 2; c++)
                    for (int u = 0; u < 3; u++)
                        for (int v = 0; v < 3; v++) {
                            int r = 2 * i + u - 1, q = 2 * j + v - 1;
                            if (r >= 0 && r < 5 && q >= 0 && q < 5)
                                s += (double)cw[((o * 2 + c) * 3 + u) * 3 + v] * x[(c * 5 + r) * 5 + q];
                        }
                act[(o * 3 + i) * 3 + j] = s > 0 ? (float)s : 0.0f;
            }
    for (int k = 0; k < 2; k++) {
        double s = lb[k];
        for (int f = 0; f < 27; f++)
            s += (double)lw[k * 27 + f] * act[f];
        out[k] = (float)s;
    }
}

static void test_forward_naive(void **state)
{
    (void)state;
    ich_model *m = make("input 2x5x5, conv 3 3 stride 2 pad 1, relu, flatten, linear 2");
    assert_int_equal(ich_model_init_weights(m, 7), ICH_OK);
    float *x = random_floats(2 * 2 * 25, 3), out[4], want[4];
    assert_int_equal(ich_model_forward(m, x, 2, out, 4), ICH_OK);
    ich_tensor_view cw = view_of(m, "conv1.weight"), cb = view_of(m, "conv1.bias"),
                    lw = view_of(m, "fc1.weight"), lb = view_of(m, "fc1.bias");
    for (int b = 0; b < 2; b++)
        naive_forward(x + b * 50, cw.data, cb.data, lw.data, lb.data, want + 2 * b);
    for (int k = 0; k < 4; k++)
        assert_float_equal(out[k], want[k], 1e-5);
    /* wrong sizes and arguments */
    assert_int_equal(ich_model_forward(m, x, 2, out, 3), ICH_ERR_SHAPE);
    assert_int_equal(ich_model_forward(m, x, 0, out, 0), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_forward(NULL, x, 2, out, 4), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_backward(m, out, 4), ICH_ERR_INVALID_ARGUMENT); /* eval pass */
    /* a different seed gives different weights */
    float before = ((float *)cw.data)[0];
    ich_model_init_weights(m, 8);
    assert_true(((float *)cw.data)[0] != before);
    free(x);
    ich_model_free(m);
}

/* Grouped and depthwise convolution ("conv ... groups G"): the grammar and
 * its errors, the canonical text, PyTorch's weight shape [OUT, IN/G, KH,
 * KW], forward against a naive grouped convolution, and PyTorch's default
 * initialisation bound 1/sqrt(IN/G * KH * KW). (Gradients against
 * PyTorch: tests/sweep, the gconv and dwconv groups.) */
static void naive_grouped(const float *x, int c_in, int side, const float *w, const float *b,
                          int c_out, int k, int stride, int pad, int groups, float *out)
{
    int side_out = (side + 2 * pad - k) / stride + 1, cg = c_in / groups;
    for (int o = 0; o < c_out; o++)
        for (int i = 0; i < side_out; i++)
            for (int j = 0; j < side_out; j++) {
                int g = o / (c_out / groups);
                double s = b ? b[o] : 0.0;
                for (int c = 0; c < cg; c++)
                    for (int u = 0; u < k; u++)
                        for (int v = 0; v < k; v++) {
                            int r = stride * i + u - pad, q = stride * j + v - pad;
                            if (r >= 0 && r < side && q >= 0 && q < side)
                                s += (double)w[((o * cg + c) * k + u) * k + v] *
                                     x[((g * cg + c) * side + r) * side + q];
                        }
                out[(o * side_out + i) * side_out + j] = (float)s;
            }
}

static void test_grouped_conv(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        ich_status status;
        const char *words[2];
    } errors[] = {
        {"input 4x8x8, conv 6 3 groups 4, flatten", ICH_ERR_SHAPE, {"conv1", "groups 4"}},
        {"input 4x8x8, conv 6 3 groups 3, flatten", ICH_ERR_SHAPE, {"input channels (4)", "(6)"}},
        {"input 4x8x8, conv 8 3 groups 0, flatten", ICH_ERR_INVALID_ARGUMENT, {"item 2", "groups"}},
        {"input 4x8x8, conv 8 3 groups 2x3, flatten", ICH_ERR_INVALID_ARGUMENT,
         {"item 2", "one number"}},
        {"input 4x8x8, conv 8 3 groups, flatten", ICH_ERR_INVALID_ARGUMENT, {"item 2", "groups"}},
        {"input 4x8x8, conv 8 3 groups 70000, flatten", ICH_ERR_INVALID_ARGUMENT,
         {"too large", "groups"}},
        {"input 4x8x8, flatten, linear 4 groups 2", ICH_ERR_INVALID_ARGUMENT,
         {"unknown option", "groups"}},
        {"input 4x8x8, maxpool 2 groups 2, flatten", ICH_ERR_INVALID_ARGUMENT,
         {"unknown option", "groups"}},
    };
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++) {
        ich_model *m = (ich_model *)1;
        assert_int_equal(ich_model_create(errors[i].spec, &m), errors[i].status);
        assert_null(m);
        for (int w = 0; w < 2; w++)
            if (!strstr(ich_last_error(), errors[i].words[w]))
                fail_msg("spec \"%s\": message \"%s\" lacks \"%s\"", errors[i].spec,
                         ich_last_error(), errors[i].words[w]);
    }

    /* canonical text: groups 1 is the default and not printed */
    ich_model *m = make("input 4x9x9, conv 8 3 pad 1 groups 4 nobias, conv 8 3 groups 1, "
                        "dw = conv 16 3 stride 2 groups 8, flatten");
    assert_string_equal(ich_model_spec(m), "input 4x9x9, conv 8 3 pad 1 groups 4 nobias, "
                                           "conv 8 3, dw = conv 16 3 stride 2 groups 8, flatten");
    static const struct {
        const char *name;
        int64_t dims[4];
    } shapes[] = {{"conv1.weight", {8, 1, 3, 3}}, {"conv2.weight", {8, 8, 3, 3}},
                  {"dw.weight", {16, 1, 3, 3}}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        ich_tensor_view v = view_of(m, shapes[i].name);
        assert_int_equal(v.ndim, 4);
        for (int d = 0; d < 4; d++)
            assert_int_equal(v.dims[d], shapes[i].dims[d]);
    }
    assert_int_equal(ich_model_find_tensor(m, "conv1.bias"), -1);
    assert_int_equal(view_of(m, "dw.bias").dims[0], 16);
    /* PyTorch's bound: 1/sqrt(fan_in), fan_in = IN/G * KH * KW (1/3 for the
     * depthwise conv, 1/sqrt(72) for the plain one); the draws reach it */
    assert_int_equal(ich_model_init_weights(m, 5), ICH_OK);
    static const struct {
        const char *name;
        double fan_in;
    } bounds[] = {{"conv1.weight", 9}, {"conv2.weight", 72}, {"dw.weight", 9}, {"dw.bias", 9}};
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        ich_tensor_view v = view_of(m, bounds[i].name);
        double bound = 1.0 / sqrt(bounds[i].fan_in), largest = 0;
        for (int64_t k = 0; k < v.count; k++)
            largest = fmax(largest, fabs(((const float *)v.data)[k]));
        if (!(largest <= bound && largest > (v.count > 16 ? 0.8 : 0.5) * bound))
            fail_msg("%s: largest |value| %g, bound %g", bounds[i].name, largest, bound);
    }
    ich_model_free(m);

    /* forward against a naive grouped convolution: 2 groups of 3 input
     * channels, and depthwise with 2 filters per channel */
    static const struct {
        const char *spec;
        int c_in, c_out, k, stride, pad, groups;
    } nets[] = {
        {"input 6x7x7, conv 4 3 stride 2 pad 1 groups 2, flatten", 6, 4, 3, 2, 1, 2},
        {"input 3x7x7, conv 6 5 pad 2 groups 3 nobias, flatten", 3, 6, 5, 1, 2, 3},
    };
    for (size_t i = 0; i < sizeof nets / sizeof *nets; i++) {
        m = make(nets[i].spec);
        assert_int_equal(ich_model_init_weights(m, 9 + i), ICH_OK);
        int side_out = (7 + 2 * nets[i].pad - nets[i].k) / nets[i].stride + 1;
        size_t per_image = (size_t)nets[i].c_out * side_out * side_out;
        float *x = random_floats((size_t)2 * nets[i].c_in * 49, 17 + i);
        float *out = malloc(2 * per_image * sizeof *out), *want = malloc(per_image * sizeof *want);
        assert_int_equal(ich_model_forward(m, x, 2, out, 2 * per_image), ICH_OK);
        ich_tensor_view w = view_of(m, "conv1.weight");
        int32_t b = ich_model_find_tensor(m, "conv1.bias");
        for (int n = 0; n < 2; n++) {
            naive_grouped(x + (size_t)n * nets[i].c_in * 49, nets[i].c_in, 7, w.data,
                          b >= 0 ? view_of(m, "conv1.bias").data : NULL, nets[i].c_out, nets[i].k,
                          nets[i].stride, nets[i].pad, nets[i].groups, want);
            for (size_t k = 0; k < per_image; k++)
                assert_float_equal(out[n * per_image + k], want[k], 1e-5);
        }
        free(x);
        free(out);
        free(want);
        ich_model_free(m);
    }
}

/* loss = sum(weights * logits) in double */
static double loss_of(ich_model *m, const float *x, int n, const float *weights, int outputs)
{
    float logits[64];
    assert_int_equal(ich_model_forward(m, x, n, logits, (size_t)n * outputs), ICH_OK);
    double s = 0;
    for (int k = 0; k < n * outputs; k++)
        s += (double)weights[k] * logits[k];
    return s;
}

static void test_finite_differences(void **state)
{
    (void)state;
    /* Every parametrised layer kind plus pools, residual, concat, gap. */
    ich_model *m = make("input 2x8x8, conv 4 3 pad 1, batchnorm, relu, maxpool 2, "
                        "residual(conv 4 3 pad 1 nobias, batchnorm, relu, conv 4 3 pad 1; "
                        "shortcut: conv 4 1), relu, concat(conv 2 1 | avgpool 3 stride 1 pad 1), "
                        "conv 3 2 stride 2, flatten, linear 5, relu, linear 3");
    ich_model_init_weights(m, 11);
    ich_model_set_training(m, 1);
    const int n = 3, outputs = 3;
    float *x = random_floats((size_t)n * 2 * 64, 5);
    float *w = random_floats((size_t)n * outputs, 6);
    float logits[9];
    ich_model_zero_grad(m);
    assert_int_equal(ich_model_forward(m, x, n, logits, 9), ICH_OK);
    assert_int_equal(ich_model_backward(m, w, 9), ICH_OK);
    int checked = 0, bad = 0;
    for (int32_t t = 0; t < ich_model_tensor_count(m); t++) {
        ich_tensor_view v = {.size = sizeof v};
        ich_model_tensor(m, t, &v);
        if (!v.trainable)
            continue;
        double gmax = 0;
        for (int64_t k = 0; k < v.count; k++)
            gmax = fmax(gmax, fabs(v.grad[k]));
        for (int64_t k = 0; k < v.count; k += 1 + v.count / 6) {
            float *p = (float *)v.data + k, old = *p;
            const float h = 2e-3f;
            *p = old + h;
            ich_model_tensor_changed(m, t);
            double up = loss_of(m, x, n, w, outputs);
            *p = old - h;
            ich_model_tensor_changed(m, t);
            double down = loss_of(m, x, n, w, outputs);
            *p = old;
            ich_model_tensor_changed(m, t);
            double fd = (up - down) / (2.0 * h);
            checked++;
            if (fabs(fd - v.grad[k]) > 2e-2 * fmax(gmax, 1e-2) + 1e-3) {
                bad++;
                fprintf(stderr, "%s[%lld]: finite difference %g, backward %g\n", v.name,
                        (long long)k, fd, v.grad[k]);
            }
        }
    }
    assert_true(checked > 60);
    assert_true(bad <= 2); /* a ReLU kink may fall between the two probes */
    free(x);
    free(w);
    ich_model_free(m);
}

/* Issue 14: silu, gelu, sigmoid and the scale block (squeeze-and-
 * excitation): the grammar, its errors, names, and every parameter
 * gradient against finite differences (smooth layers: no kinks). */
static void test_activations_and_scale(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        const char *words[2];
    } errors[] = {
        {"input 4x8x8, scale(gap | conv 4 1), flatten, linear 2", {"item 2", "separator"}},
        {"input 4x8x8, scale(a: gap, conv 4 1), flatten, linear 2", {"unlabelled", "item"}},
        {"input 4x8x8, scale(), flatten, linear 2", {"scale block needs layers", "item 2"}},
        {"input 4x8x8, silu 2, flatten, linear 2", {"unknown option", "silu"}},
    };
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++) {
        ich_model *m = (ich_model *)1;
        assert_int_equal(ich_model_create(errors[i].spec, &m), ICH_ERR_INVALID_ARGUMENT);
        assert_null(m);
        for (int w = 0; w < 2; w++)
            if (!strstr(ich_last_error(), errors[i].words[w]))
                fail_msg("spec \"%s\": message \"%s\" lacks \"%s\"", errors[i].spec,
                         ich_last_error(), errors[i].words[w]);
    }
    ich_model *bad = NULL;
    /* the body must give one value per channel of x */
    assert_int_equal(ich_model_create("input 4x8x8, scale(gap, conv 3 1), flatten, linear 2",
                                      &bad), ICH_ERR_SHAPE);
    assert_non_null(strstr(ich_last_error(), "scale1"));
    assert_int_equal(ich_model_create("input 4x8x8, scale(conv 4 1), flatten, linear 2", &bad),
                     ICH_ERR_SHAPE);
    assert_null(bad);

    const char *spec = "input 4x6x6,conv 6 3 pad 1, gelu, se = scale(gap, fc1 = conv 2 1, silu,"
                       " fc2 = conv 6 1, sigmoid), scale(gap, conv 6 1, sigmoid), silu, "
                       "flatten, linear 3";
    ich_model *m = make(spec);
    const char *canonical = ich_model_spec(m);
    assert_string_equal(canonical,
                        "input 4x6x6, conv 6 3 pad 1, gelu, se = scale(gap, fc1 = conv 2 1, "
                        "silu, fc2 = conv 6 1, sigmoid), scale(gap, conv 6 1, sigmoid), silu, "
                        "flatten, linear 3");
    ich_model *again = make(canonical);
    assert_string_equal(ich_model_spec(again), canonical);
    ich_model_free(again);
    /* torchvision's SqueezeExcitation names */
    ich_tensor_view v = view_of(m, "se.fc1.weight");
    assert_true(v.ndim == 4 && v.dims[0] == 2 && v.dims[1] == 6 && v.dims[2] == 1);
    v = view_of(m, "se.fc2.bias");
    assert_int_equal(v.dims[0], 6);
    view_of(m, "scale2.conv1.weight"); /* numbered per kind, named ones too */

    ich_model_init_weights(m, 3);
    ich_model_set_training(m, 1);
    const int n = 2, outputs = 3;
    float *x = random_floats((size_t)n * 4 * 36, 8);
    float *w = random_floats((size_t)n * outputs, 9);
    float logits[6];
    ich_model_zero_grad(m);
    assert_int_equal(ich_model_forward(m, x, n, logits, 6), ICH_OK);
    assert_int_equal(ich_model_backward(m, w, 6), ICH_OK);
    int checked = 0, wrong = 0;
    for (int32_t t = 0; t < ich_model_tensor_count(m); t++) {
        ich_tensor_view p = {.size = sizeof p};
        ich_model_tensor(m, t, &p);
        double gmax = 0;
        for (int64_t k = 0; k < p.count; k++)
            gmax = fmax(gmax, fabs(p.grad[k]));
        for (int64_t k = 0; k < p.count; k += 1 + p.count / 5) {
            float *value = (float *)p.data + k, old = *value;
            const float h = 2e-3f;
            *value = old + h;
            ich_model_tensor_changed(m, t);
            double up = loss_of(m, x, n, w, outputs);
            *value = old - h;
            ich_model_tensor_changed(m, t);
            double down = loss_of(m, x, n, w, outputs);
            *value = old;
            ich_model_tensor_changed(m, t);
            double fd = (up - down) / (2.0 * h);
            checked++;
            if (fabs(fd - p.grad[k]) > 1e-2 * fmax(gmax, 1e-2) + 1e-4) {
                wrong++;
                fprintf(stderr, "%s[%lld]: finite difference %g, backward %g\n", p.name,
                        (long long)k, fd, p.grad[k]);
            }
        }
    }
    assert_true(checked > 30);
    assert_int_equal(wrong, 0);
    free(x);
    free(w);
    ich_model_free(m);
}

static void test_freeze_and_zero_grad(void **state)
{
    (void)state;
    ich_model *m = make("input 1x6x6, conv 2 3, relu, flatten, fc = linear 2");
    ich_model_set_training(m, 1);
    int32_t matched = -1;
    assert_int_equal(ich_model_freeze(m, "conv", 1, &matched), ICH_OK);
    assert_int_equal(matched, 2);
    assert_int_equal(ich_model_freeze(m, "nothing", 1, &matched), ICH_ERR_NOT_FOUND);
    assert_int_equal(matched, 0);
    float *x = random_floats(72, 1), logits[4], g[4] = {1, -1, 0.5f, 2};
    ich_model_zero_grad(m);
    ich_model_forward(m, x, 2, logits, 4);
    assert_int_equal(ich_model_backward(m, g, 4), ICH_OK);
    ich_tensor_view cw = view_of(m, "conv1.weight"), fw = view_of(m, "fc.weight");
    assert_int_equal(cw.frozen, 1);
    double conv_sum = 0, fc_sum = 0;
    for (int64_t k = 0; k < cw.count; k++)
        conv_sum += fabs(cw.grad[k]);
    for (int64_t k = 0; k < fw.count; k++)
        fc_sum += fabs(fw.grad[k]);
    assert_true(conv_sum == 0 && fc_sum > 0);
    assert_int_equal(ich_model_freeze(m, NULL, 0, &matched), ICH_OK);
    assert_int_equal(matched, 4);
    assert_int_equal(ich_model_zero_grad(m), ICH_OK);
    for (int64_t k = 0; k < fw.count; k++)
        assert_true(fw.grad[k] == 0);
    assert_int_equal(ich_model_backward(m, g, 4), ICH_ERR_INVALID_ARGUMENT); /* used up */
    free(x);
    ich_model_free(m);
}

static void test_batch_change_and_predict(void **state)
{
    (void)state;
    ich_model *m = make("input 1x6x6, cascade(any: flatten, linear 1 | sub: conv 2 3, gap, linear 5)");
    float *x = random_floats(4 * 36, 9), all[24], one[6], prob[24];
    assert_int_equal(ich_model_forward(m, x, 4, all, 24), ICH_OK);
    assert_int_equal(ich_model_forward(m, x + 2 * 36, 1, one, 6), ICH_OK);
    for (int k = 0; k < 6; k++)
        assert_float_equal(one[k], all[12 + k], 1e-6);
    /* gate at the median "any" probability: two samples fire */
    float p_any[4];
    for (int b = 0; b < 4; b++)
        p_any[b] = 1.0f / (1.0f + expf(-all[6 * b]));
    float sorted[4];
    memcpy(sorted, p_any, sizeof sorted);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (sorted[j] < sorted[i]) {
                float t = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = t;
            }
    float threshold = (sorted[1] + sorted[2]) / 2;
    assert_int_equal(ich_model_predict(m, x, 4, threshold, prob, 24), ICH_OK);
    for (int b = 0; b < 4; b++) {
        assert_float_equal(prob[6 * b], p_any[b], 1e-6);
        for (int k = 1; k < 6; k++) {
            float want = p_any[b] >= threshold ? 1.0f / (1.0f + expf(-all[6 * b + k])) : 0.0f;
            assert_float_equal(prob[6 * b + k], want, 1e-6);
        }
    }
    /* a plain model is not gated */
    ich_model *plain = make("input 1x6x6, flatten, linear 6");
    float logits[24];
    ich_model_forward(plain, x, 4, logits, 24);
    ich_model_predict(plain, x, 4, 0.99f, prob, 24);
    for (int k = 0; k < 24; k++)
        assert_float_equal(prob[k], 1.0f / (1.0f + expf(-logits[k])), 1e-6);
    free(x);
    ich_model_free(plain);
    ich_model_free(m);
}

static void test_metadata_and_dropout_steps(void **state)
{
    (void)state;
    ich_model *m = make("input 1x4x4, flatten, dropout 0.5, linear 3");
    assert_int_equal(ich_model_set_metadata(m, "ich.labels", "any,epidural"), ICH_OK);
    assert_string_equal(ich_model_metadata(m, "ich.labels"), "any,epidural");
    assert_string_equal(ich_model_metadata(m, "ich.steps"), "0");
    assert_string_equal(ich_model_metadata(m, "ich.seed"), "0");
    assert_int_equal(ich_model_set_metadata(m, "ich.spec", "something else"), ICH_OK);
    assert_string_equal(ich_model_metadata(m, "ich.spec"), ich_model_spec(m));
    int32_t count = ich_model_metadata_count(m);
    assert_true(count >= 4);
    assert_null(ich_model_metadata_key(m, count));
    float *x = random_floats(32, 2), a[6], b[6], c[6];
    ich_model_set_training(m, 1);
    ich_model_forward(m, x, 2, a, 6);
    ich_model_forward(m, x, 2, b, 6);
    assert_string_equal(ich_model_metadata(m, "ich.steps"), "2");
    assert_true(memcmp(a, b, sizeof a) != 0);
    /* restoring the step replays the same mask (bit-exact resume) */
    assert_int_equal(ich_model_set_metadata(m, "ich.steps", "1"), ICH_OK);
    ich_model_forward(m, x, 2, c, 6);
    assert_memory_equal(b, c, sizeof b);
    assert_int_equal(ich_model_set_metadata(m, "ich.steps", "1,2"), ICH_ERR_FORMAT);
    assert_int_equal(ich_model_set_metadata(m, "ich.seed", "x"), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_metadata(m, "ich.labels", NULL), ICH_OK);
    assert_null(ich_model_metadata(m, "ich.labels"));
    assert_int_equal(ich_model_set_metadata(m, NULL, "x"), ICH_ERR_INVALID_ARGUMENT);
    free(x);
    ich_model_free(m);
    ich_model_free(NULL);
}

/* The builder writes the spec grammar: the tutorial built call by call is
 * the tutorial preset, blocks nest, and misuse is refused. */
static void test_builder(void **state)
{
    (void)state;
    ich_model_builder *b = NULL;
    assert_int_equal(ich_model_builder_create(1, 512, 512, &b), ICH_OK);
    const int32_t out[] = {50, 120, 100, 72}, kernel[] = {5, 5, 5, 4};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ich_model_builder_conv(b, NULL, out[i], kernel[i], 1, 0), ICH_OK);
        assert_int_equal(ich_model_builder_layer(b, NULL, "relu"), ICH_OK);
        assert_int_equal(ich_model_builder_pool(b, "maxpool", 2, 2, 0), ICH_OK);
    }
    assert_int_equal(ich_model_builder_layer(b, NULL, "flatten"), ICH_OK);
    assert_int_equal(ich_model_builder_linear(b, NULL, 50), ICH_OK);
    assert_int_equal(ich_model_builder_layer(b, NULL, "relu"), ICH_OK);
    assert_int_equal(ich_model_builder_linear(b, NULL, 6), ICH_OK);
    ich_model *built = NULL, *preset = NULL;
    assert_int_equal(ich_model_builder_build(b, &built), ICH_OK);
    assert_int_equal(ich_model_create_preset("tutorial", &preset), ICH_OK);
    assert_string_equal(ich_model_spec(built), ich_model_spec(preset));
    ich_model_free(built);
    ich_model_free(preset);
    ich_model_builder_free(b);

    /* a residual block with a shortcut, a concat of two branches, names */
    assert_int_equal(ich_model_builder_create(3, 16, 16, &b), ICH_OK);
    assert_int_equal(ich_model_builder_conv(b, "stem", 8, 3, 1, 1), ICH_OK);
    assert_int_equal(ich_model_builder_begin(b, "residual"), ICH_OK);
    assert_int_equal(ich_model_builder_conv(b, NULL, 16, 3, 2, 1), ICH_OK);
    assert_int_equal(ich_model_builder_layer(b, NULL, "batchnorm"), ICH_OK);
    assert_int_equal(ich_model_builder_next(b), ICH_OK);
    assert_int_equal(ich_model_builder_conv(b, NULL, 16, 1, 2, 0), ICH_OK);
    assert_int_equal(ich_model_builder_next(b), ICH_ERR_INVALID_ARGUMENT); /* one shortcut */
    assert_int_equal(ich_model_builder_end(b), ICH_OK);
    assert_int_equal(ich_model_builder_begin(b, "concat"), ICH_OK);
    assert_int_equal(ich_model_builder_item(b, "conv 4 3 pad 1 dilation 1 nobias"), ICH_OK);
    assert_int_equal(ich_model_builder_next(b), ICH_OK);
    assert_int_equal(ich_model_builder_pool(b, "avgpool", 3, 1, 1), ICH_OK);
    assert_int_equal(ich_model_builder_build(b, &built), ICH_ERR_INVALID_ARGUMENT); /* open */
    assert_null(built);
    assert_int_equal(ich_model_builder_end(b), ICH_OK);
    assert_int_equal(ich_model_builder_layer(b, NULL, "gap"), ICH_OK);
    assert_int_equal(ich_model_builder_dropout(b, 0.25), ICH_OK);
    assert_int_equal(ich_model_builder_linear(b, "head", 6), ICH_OK);
    assert_int_equal(ich_model_builder_build(b, &built), ICH_OK);
    assert_int_equal(ich_model_outputs(built), 6);
    assert_true(ich_model_find_tensor(built, "stem.weight") >= 0);
    assert_true(ich_model_find_tensor(built, "res1.shortcut.conv1.weight") >= 0);
    assert_true(ich_model_find_tensor(built, "head.bias") >= 0);
    assert_true(ich_model_find_tensor(built, "cat1.branch1.conv1.bias") < 0); /* nobias */
    ich_model_free(built);

    /* misuse */
    assert_int_equal(ich_model_builder_end(b), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_builder_begin(b, "loop"), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_builder_layer(b, NULL, "softmax"), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_builder_conv(b, "a b", 4, 3, 1, 0), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_builder_conv(b, NULL, 0, 3, 1, 0), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_builder_dropout(b, 1.0), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_builder_item(b, "relu, relu"), ICH_ERR_INVALID_ARGUMENT);
    ich_model_builder_free(b);
    assert_int_equal(ich_model_builder_create(0, 4, 4, &b), ICH_ERR_INVALID_ARGUMENT);
    assert_null(b);
    /* a spec error surfaces at build time, as from ich_model_create() */
    assert_int_equal(ich_model_builder_create(1, 4, 4, &b), ICH_OK);
    assert_int_equal(ich_model_builder_conv(b, NULL, 4, 9, 1, 0), ICH_OK); /* 9 > 4 */
    assert_int_equal(ich_model_builder_build(b, &built), ICH_ERR_SHAPE);
    ich_model_builder_free(b);
}

/* ich_model_input_window(): the recipe from the metadata, checked against
 * a naive windowing of a small slice, and each way it can be wrong. */
static void test_input_window(void **state)
{
    (void)state;
    ich_model *m = NULL;
    ich_window *w = NULL;
    assert_int_equal(ich_model_create("input 2x4x4, flatten, linear 6", &m), ICH_OK);
    assert_int_equal(ich_model_input_window(m, &w), ICH_ERR_NOT_FOUND); /* no recipe: no guess */
    assert_non_null(strstr(ich_last_error(), "no input recipe"));
    assert_null(w);
    assert_int_equal(ich_model_set_metadata(m, "ich.windows", "brain,40/400"), ICH_OK);
    assert_int_equal(ich_model_set_metadata(m, "ich.mean", "0.5,0.25"), ICH_OK);
    assert_int_equal(ich_model_set_metadata(m, "ich.std", "2,4"), ICH_OK);
    assert_int_equal(ich_model_input_window(m, &w), ICH_OK);
    assert_int_equal(ich_window_count(w), 2);
    float hu[16], out[32];
    for (int i = 0; i < 16; i++)
        hu[i] = -100.0f + 20.0f * (float)i;
    assert_int_equal(ich_window_apply_f32(w, hu, 4, 4, out, 32), ICH_OK);
    const float lo[2] = {0.0f, -160.0f}, width[2] = {80.0f, 400.0f};
    const float mean[2] = {0.5f, 0.25f}, std[2] = {2.0f, 4.0f};
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 16; i++) {
            float v = fminf(fmaxf((hu[i] - lo[c]) / width[c], 0.0f), 1.0f);
            assert_float_equal(out[c * 16 + i], (v - mean[c]) / std[c], 1e-6);
        }
    ich_window_free(w);
    /* the size: resized from 8x8 to the model's 4x4 */
    assert_int_equal(ich_model_set_metadata(m, "ich.size", "4"), ICH_OK);
    assert_int_equal(ich_model_input_window(m, &w), ICH_OK);
    int32_t channels, rows, columns;
    assert_int_equal(ich_window_output_shape(w, 8, 8, &channels, &rows, &columns), ICH_OK);
    assert_true(channels == 2 && rows == 4 && columns == 4);
    ich_window_free(w);
    static const struct { const char *key, *value; ich_status want; } bad[] = {
        {"ich.size", "5", ICH_ERR_SHAPE},          {"ich.size", "four", ICH_ERR_FORMAT},
        {"ich.mean", "0.5,x", ICH_ERR_FORMAT},     {"ich.mean", "1,2,3", ICH_ERR_FORMAT},
        {"ich.windows", "nosuch", ICH_ERR_NOT_FOUND},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *keep = ich_model_metadata(m, bad[i].key);
        char saved[64];
        snprintf(saved, sizeof saved, "%s", keep ? keep : "");
        assert_int_equal(ich_model_set_metadata(m, bad[i].key, bad[i].value), ICH_OK);
        assert_int_equal(ich_model_input_window(m, &w), bad[i].want);
        assert_null(w);
        assert_non_null(strstr(ich_last_error(), bad[i].value));
        assert_int_equal(ich_model_set_metadata(m, bad[i].key, keep ? saved : NULL), ICH_OK);
    }
    assert_int_equal(ich_model_input_window(NULL, &w), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_input_window(m, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_model_free(m);
}

/* ich_model_set_input_window() / ich_model_set_labels(): stored as the
 * documented metadata, checked against the model, read back. */
static void test_set_input_window_and_labels(void **state)
{
    (void)state;
    ich_model *m = NULL;
    ich_window *w = NULL, *back = NULL;
    assert_int_equal(ich_model_create("input 1x8x8, flatten, linear 3", &m), ICH_OK);
    assert_int_equal(ich_window_from_string("windows=none;mode=minmax;size=8x8;"
                                            "resize=antialias;quantize=1;mean=0.38;std=0.236;"
                                            "neighbors=0", &w), ICH_OK);
    /* an older checkpoint's keys are replaced, not left to contradict */
    assert_int_equal(ich_model_set_metadata(m, "ich.windows", "brain"), ICH_OK);
    assert_int_equal(ich_model_set_input_window(m, w), ICH_OK);
    assert_null(ich_model_metadata(m, "ich.windows"));
    assert_string_equal(ich_model_metadata(m, "ich.recipe"),
                        "windows=none;mode=minmax;size=8x8;resize=antialias;quantize=1;"
                        "mean=0.38;std=0.236;neighbors=0");
    assert_int_equal(ich_model_input_window(m, &back), ICH_OK);
    float hu[100], a[64], b[64];
    for (int i = 0; i < 100; i++)
        hu[i] = (float)((i * 37) % 100);
    assert_int_equal(ich_window_apply_f32(w, hu, 10, 10, a, 64), ICH_OK);
    assert_int_equal(ich_window_apply_f32(back, hu, 10, 10, b, 64), ICH_OK);
    assert_memory_equal(a, b, sizeof a);
    ich_window_free(back);
    /* a recipe that does not make the model's input */
    assert_int_equal(ich_window_set_size(w, 9, 9, ICH_RESIZE_BILINEAR), ICH_OK);
    assert_int_equal(ich_model_set_input_window(m, w), ICH_ERR_SHAPE);
    assert_non_null(strstr(ich_last_error(), "9x9"));
    assert_int_equal(ich_window_set_size(w, 8, 8, ICH_RESIZE_BILINEAR), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "brain,bone"), ICH_OK);
    assert_int_equal(ich_model_set_input_window(m, w), ICH_ERR_SHAPE);
    /* a malformed stored recipe */
    assert_int_equal(ich_model_set_metadata(m, "ich.recipe", "windows=brain"), ICH_OK);
    assert_int_equal(ich_model_input_window(m, &back), ICH_ERR_FORMAT);
    assert_null(back);
    assert_int_equal(ich_model_set_input_window(NULL, w), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_input_window(m, NULL), ICH_ERR_INVALID_ARGUMENT);
    /* labels */
    const char *names[] = {"any", "subdural", "epidural"};
    assert_int_equal(ich_model_set_labels(m, names, 3), ICH_OK);
    assert_string_equal(ich_model_metadata(m, "ich.labels"), "any,subdural,epidural");
    assert_int_equal(ich_model_set_labels(m, names, 2), ICH_ERR_SHAPE);
    const char *comma[] = {"any", "a,b", "c"}, *empty[] = {"any", "", "c"},
               *null[] = {"any", NULL, "c"};
    assert_int_equal(ich_model_set_labels(m, comma, 3), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_labels(m, empty, 3), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_labels(m, null, 3), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "label 1"));
    assert_string_equal(ich_model_metadata(m, "ich.labels"), "any,subdural,epidural");
    assert_int_equal(ich_model_set_labels(NULL, names, 3), ICH_ERR_INVALID_ARGUMENT);
    ich_window_free(w);
    ich_model_free(m);
}

/* Minor page faults of this process so far (all threads). */
static long minor_faults(void)
{
    struct rusage u;
    assert_int_equal(getrusage(RUSAGE_SELF, &u), 0);
    return u.ru_minflt;
}

/* A steady training step maps no fresh memory: the activation and gradient
 * buffers of step 1 are reused at the same places, so steps 3..5 fault in
 * (almost) no pages. Counted, not timed: the first step's faults (tens of
 * megabytes of activations: thousands) against the later ones (a cache that
 * freed and refetched blocks took hundreds per step). */
static void test_steady_steps_fault_in_no_pages(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* sanitizer builds keep the plain buffer cache (nn/model.c): ASan sees each block */
#endif
    /* Below AVX2 oneDNN convolves through its gemm, which allocates its
     * packing buffers itself on every call (glibc may map them afresh):
     * faults that libich's buffers do not cause and cannot prevent. */
    const dnnl_cpu_isa_t avx2 = dnnl_cpu_isa_avx2;
    if ((dnnl_get_effective_cpu_isa() & avx2) != avx2) {
        print_message("oneDNN's kernels are below AVX2 here: gemm convolutions, skipped\n");
        skip();
    }
    /* Count 4 KiB pages whatever the machine's transparent huge pages do
     * (the arena asks for them: one fault would then map 2 MiB). */
    assert_int_equal(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), 0);
    ich_model *m = NULL;
    assert_int_equal(ich_model_create_preset("ichnet", &m), ICH_OK);
    int32_t c = 0, h = 0, w = 0;
    ich_model_input_shape(m, &c, &h, &w);
    const int n = 8, outputs = ich_model_outputs(m);
    size_t count = (size_t)n * c * h * w;
    float *images = malloc(count * sizeof *images);
    float *targets = malloc((size_t)n * outputs * sizeof *targets);
    float *logits = malloc((size_t)n * outputs * sizeof *logits);
    float *grad = malloc((size_t)n * outputs * sizeof *grad);
    assert_non_null(images);
    assert_non_null(targets);
    assert_non_null(logits);
    assert_non_null(grad);
    uint32_t x = 12345;
    for (size_t i = 0; i < count; i++) {
        x = x * 1664525u + 1013904223u;
        images[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
    }
    for (int i = 0; i < n * outputs; i++)
        targets[i] = (float)(i % 3 == 0);
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
    ich_optimizer *opt = NULL;
    assert_int_equal(ich_optimizer_create(m, &o, &opt), ICH_OK);
    assert_int_equal(ich_model_set_training(m, 1), ICH_OK);
    long faults[6];
    faults[0] = minor_faults();
    for (int step = 1; step <= 5; step++) {
        float loss = 0;
        assert_int_equal(ich_model_forward(m, images, n, logits, (size_t)n * outputs), ICH_OK);
        assert_int_equal(ich_loss_bce_with_logits(logits, targets, n, outputs, NULL, NULL, &loss,
                                                  grad),
                         ICH_OK);
        assert_int_equal(ich_model_backward(m, grad, (size_t)n * outputs), ICH_OK);
        assert_int_equal(ich_optimizer_step(opt), ICH_OK);
        assert_int_equal(ich_model_zero_grad(m), ICH_OK);
        faults[step] = minor_faults();
    }
    long first = faults[1] - faults[0], steady = faults[5] - faults[2];
    print_message("page faults: step 1 %ld, steps 3..5 %ld\n", first, steady);
    assert_true(first > 1000); /* the measurement sees the activations */
    assert_true(steady <= 64 + first / 100);
    ich_optimizer_free(opt);
    ich_model_free(m);
    free(images);
    free(targets);
    free(logits);
    free(grad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_builder),
        cmocka_unit_test(test_spec_canonical),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_forward_naive),
        cmocka_unit_test(test_grouped_conv),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_activations_and_scale),
        cmocka_unit_test(test_freeze_and_zero_grad),
        cmocka_unit_test(test_batch_change_and_predict),
        cmocka_unit_test(test_metadata_and_dropout_steps),
        cmocka_unit_test(test_input_window),
        cmocka_unit_test(test_set_input_window_and_labels),
        cmocka_unit_test(test_steady_steps_fault_in_no_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
