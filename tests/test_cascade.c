/* Tests of the cascade model (issue 14 item 4, model side): the "cascade"
 * preset with a backbone per stage, the stage queries and running one
 * stage at a time (ich_model_set_active_stage): the active stage's logits
 * and gradients are those of a both-stage pass bit for bit, the other
 * stage's logits are 0, its parameters get no gradient, its batch-norm
 * statistics and droppath steps do not move, its activations take no
 * memory. (The torchvision names of the
 * stages are checked in bindings/python/tests/test_cascade.py.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ich/model.h"
#include "nn/model_internal.h" /* white box: the activation memory's high-water mark */
#include "test_util.h"

/* The first "cascade" preset, as it was written before the stages became
 * options: its checkpoints carry this spec. */
#define OLD_SMALL_STAGE(n)                                                                  \
    "conv 16 3 stride 2 pad 1 nobias, batchnorm, relu, maxpool 2, "                        \
    "conv 32 3 pad 1 nobias, batchnorm, relu, maxpool 2, "                                 \
    "conv 64 3 pad 1 nobias, batchnorm, relu, gap, linear " #n
static const char OLD_CASCADE[] = "input 3x256x256, cascade(any: " OLD_SMALL_STAGE(1)
                                  " | subtype: " OLD_SMALL_STAGE(5) ")";

/* A cascade with a shared trunk before it, batch norm in both stages,
 * droppath in the subtype stage and a residual block in the "any" one. */
static const char TRUNKED[] =
    "input 2x12x12, conv 4 3, relu, cascade(any: conv 4 3, batchnorm, relu, "
    "residual(conv 4 3 pad 1, batchnorm), gap, linear 1 | subtype: conv 6 3 pad 1, "
    "batchnorm, relu, droppath 0.3, maxpool 2, gap, linear 5)";

static ich_model *make(const char *spec)
{
    ich_model *m = NULL;
    ich_status st = ich_model_create(spec, &m);
    if (st)
        fprintf(stderr, "%s\n", ich_last_error());
    assert_int_equal(st, ICH_OK);
    return m;
}

static ich_model *preset(const char *name)
{
    ich_model *m = NULL;
    ich_status st = ich_model_create_preset(name, &m);
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

static ich_tensor_view tensor(const ich_model *m, int32_t i)
{
    ich_tensor_view v = {.size = sizeof v};
    assert_int_equal(ich_model_tensor(m, i, &v), ICH_OK);
    return v;
}

static size_t tensor_bytes(const ich_tensor_view *v)
{
    return (size_t)v->count * (v->type == ICH_TENSOR_I64 ? 8 : 4);
}

/* Give every float tensor (running statistics too) other values than the
 * default init, so that batch norm's affine and statistics matter. */
static void randomize(ich_model *m, uint32_t seed)
{
    for (int32_t i = 0; i < ich_model_tensor_count(m); i++) {
        ich_tensor_view v = tensor(m, i);
        if (v.type != ICH_TENSOR_F32)
            continue;
        float *r = random_floats((size_t)v.count, seed + (uint32_t)i);
        int variance = strstr(v.name, "running_var") != NULL;
        for (int64_t k = 0; k < v.count; k++)
            ((float *)v.data)[k] = variance ? 0.5f + fabsf(r[k]) : 0.5f * r[k];
        free(r);
    }
    ich_model_tensor_changed(m, -1);
}

/* Copy every tensor of `from` into `to` (the same spec). */
static void copy_tensors(const ich_model *from, ich_model *to)
{
    assert_int_equal(ich_model_tensor_count(from), ich_model_tensor_count(to));
    for (int32_t i = 0; i < ich_model_tensor_count(from); i++) {
        ich_tensor_view a = tensor(from, i), b = tensor(to, i);
        memcpy(b.data, a.data, tensor_bytes(&a));
    }
    ich_model_tensor_changed(to, -1);
}

/* 0 (any), 1 (subtypes) or -1 (neither) for a tensor name. */
static int stage_of(const ich_model *m, const char *name)
{
    for (int s = 0; s < 2; s++) {
        const char *prefix = NULL;
        assert_int_equal(ich_model_cascade_stage(m, s, &prefix, NULL, NULL), ICH_OK);
        if (!strncmp(name, prefix, strlen(prefix)))
            return s;
    }
    return -1;
}

static void test_preset_options(void **state)
{
    (void)state;
    /* the plain preset before is "cascade any small subtype small", spec for spec */
    ich_model *old = make(OLD_CASCADE), *small = preset("Cascade any small subtype SMALL");
    assert_string_equal(ich_model_spec(old), ich_model_spec(small));
    assert_int_equal(ich_model_tensor_count(small), 40);
    ich_model_free(old);
    ich_model_free(small);

    /* the defaults: efficientnet_v2_m for "any", convnext_tiny for the
     * subtypes, 3x256x256, within the limits of ich/model.h */
    ich_model *m = preset("cascade");
    int32_t c, h, w;
    ich_model_input_shape(m, &c, &h, &w);
    assert_true(c == 3 && h == 256 && w == 256);
    assert_int_equal(ich_model_outputs(m), 6);
    assert_int_equal(ich_model_cascade_stages(m), 2);
    assert_true(ich_model_find_tensor(m, "any.features.0.0.weight") >= 0);
    assert_true(ich_model_find_tensor(m, "any.features.8.0.weight") >= 0); /* v2_m's head conv */
    assert_true(ich_model_find_tensor(m, "any.classifier.1.bias") >= 0);
    assert_true(ich_model_find_tensor(m, "subtype.features.0.0.weight") >= 0);
    assert_true(ich_model_find_tensor(m, "subtype.features.5.8.layer_scale") >= 0);
    assert_true(ich_model_find_tensor(m, "subtype.classifier.2.bias") >= 0);
    int64_t floats[2] = {0, 0};
    for (int32_t i = 0; i < ich_model_tensor_count(m); i++) {
        ich_tensor_view v = tensor(m, i);
        int s = stage_of(m, v.name);
        assert_true(s >= 0); /* no tensor outside the two stages */
        floats[s] += v.type == ICH_TENSOR_F32 && v.trainable ? v.count : 0;
    }
    /* torchvision: efficientnet_v2_m(num_classes=1) 52,859,637 parameters,
     * convnext_tiny(num_classes=5) 27,823,973 */
    assert_int_equal(floats[0], 52859637);
    assert_int_equal(floats[1], 27823973);
    ich_tensor_view head = tensor(m, ich_model_find_tensor(m, "subtype.classifier.2.weight"));
    assert_true(head.dims[0] == 5 && head.dims[1] == 768);
    ich_model_free(m);

    /* any stage preset that takes "outputs", and the input option */
    m = preset("cascade any ichnet subtype tutorial input 1x128x96");
    ich_model_input_shape(m, &c, &h, &w);
    assert_true(c == 1 && h == 128 && w == 96);
    assert_true(ich_model_find_tensor(m, "any.res4.shortcut.conv1.weight") >= 0);
    head = tensor(m, ich_model_find_tensor(m, "subtype.fc2.weight"));
    assert_true(head.dims[0] == 5 && head.dims[1] == 50);
    ich_model_free(m);
    m = preset("cascade subtype resnet18 any efficientnet_v2_s input 3x64x64");
    assert_true(ich_model_find_tensor(m, "subtype.layer4.1.bn2.running_var") >= 0);
    assert_true(ich_model_find_tensor(m, "any.features.6.14.block.2.fc1.weight") >= 0);
    ich_model_free(m);

    static const char *const bad[] = {
        "cascade any", "cascade any foo", "cascade any cascade", "cascade outputs 6",
        "cascade input 3x256", "cascade any small any small", "cascade subtype small x",
        "cascade input 3x8x8", /* too small for convnext */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        m = NULL;
        ich_status st = ich_model_create_preset(bad[i], &m);
        assert_true(st == ICH_ERR_INVALID_ARGUMENT || st == ICH_ERR_SHAPE);
        assert_null(m);
        assert_non_null(ich_last_error());
    }
    assert_int_equal(ich_model_create_preset("cascade any foo", &m), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "unknown stage \"foo\""));
}

static void test_stage_queries(void **state)
{
    (void)state;
    ich_model *m = make(TRUNKED);
    const char *prefix = NULL;
    int32_t first = -1, count = -1;
    assert_int_equal(ich_model_cascade_stages(m), 2);
    assert_int_equal(ich_model_cascade_stage(m, 0, &prefix, &first, &count), ICH_OK);
    assert_string_equal(prefix, "any.");
    assert_true(first == 0 && count == 1);
    assert_int_equal(ich_model_cascade_stage(m, 1, &prefix, &first, &count), ICH_OK);
    assert_string_equal(prefix, "subtype.");
    assert_true(first == 1 && count == 5);
    assert_int_equal(ich_model_cascade_stage(m, 1, NULL, NULL, NULL), ICH_OK);
    assert_int_equal(ich_model_cascade_stage(m, 2, &prefix, NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_cascade_stage(m, -1, NULL, NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_active_stage(m), -1);
    assert_int_equal(ich_model_set_active_stage(m, 2), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_active_stage(m, -2), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_active_stage(m, 1), ICH_OK);
    assert_int_equal(ich_model_active_stage(m), 1);
    ich_model_free(m);
    /* unnamed branches: their numbered prefixes; a wider "any" branch is
     * refused when the model is built */
    m = make("input 1x4x4, flatten, cascade(linear 1 | linear 3)");
    assert_int_equal(ich_model_cascade_stage(m, 1, &prefix, &first, &count), ICH_OK);
    assert_string_equal(prefix, "cascade1.branch2.");
    assert_true(first == 1 && count == 3);
    ich_model_free(m);

    /* not a cascade: no stages, refused */
    m = make("input 1x4x4, flatten, concat(a: linear 1 | b: linear 5)");
    assert_int_equal(ich_model_cascade_stages(m), 0);
    assert_int_equal(ich_model_cascade_stage(m, 0, &prefix, NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_active_stage(m, 0), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_active_stage(m, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_active_stage(m, -1), ICH_OK); /* a no-op */
    assert_int_equal(ich_model_active_stage(m), -1);
    ich_model_free(m);
    assert_int_equal(ich_model_cascade_stages(NULL), 0);
    assert_int_equal(ich_model_cascade_stage(NULL, 0, NULL, NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_active_stage(NULL, -1), ICH_ERR_INVALID_ARGUMENT);
}

/* Evaluation mode: with one stage on, its logits are the both-stage ones
 * bit for bit and the other stage's are 0; predict still gates. */
static void check_eval(const char *spec, int32_t n)
{
    ich_model *m = make(spec);
    randomize(m, 7);
    int32_t c, h, w;
    ich_model_input_shape(m, &c, &h, &w);
    size_t count = (size_t)n * 6, pixels = (size_t)n * c * h * w;
    float *x = random_floats(pixels, 3), *both = malloc(count * sizeof(float)),
          *one = malloc(count * sizeof(float)), *prob = malloc(count * sizeof(float));
    assert_int_equal(ich_model_forward(m, x, n, both, count), ICH_OK);
    for (int s = 0; s < 2; s++) {
        assert_int_equal(ich_model_set_active_stage(m, s), ICH_OK);
        for (int pass = 0; pass < 2; pass++) { /* the second with the buffers reused */
            memset(one, 0x7f, count * sizeof(float));
            assert_int_equal(ich_model_forward(m, x, n, one, count), ICH_OK);
            for (size_t k = 0; k < count; k++) {
                int stage = k % 6 == 0 ? 0 : 1;
                if (stage == s)
                    assert_memory_equal(&one[k], &both[k], sizeof(float));
                else
                    assert_true(one[k] == 0.0f);
            }
        }
        /* predict gates: stage 1 alone has P(any) = sigmoid(0) = 0.5,
         * which zeroes every subtype */
        assert_int_equal(ich_model_predict(m, x, n, 0.0f, prob, count), ICH_OK);
        for (int32_t b = 0; b < n; b++) {
            float p_any = 1.0f / (1.0f + expf(-both[6 * b]));
            assert_float_equal(prob[6 * b], s == 0 ? p_any : 0.5f, 1e-6);
            /* stage 0 alone: subtype logits 0, P = 0.5 where "any" fires */
            float want = s == 0 && p_any > 0.5f ? 0.5f : 0.0f;
            for (int k = 1; k < 6; k++)
                assert_true(prob[6 * b + k] == want);
        }
    }
    /* both again: the same logits as at first */
    assert_int_equal(ich_model_set_active_stage(m, -1), ICH_OK);
    assert_int_equal(ich_model_forward(m, x, n, one, count), ICH_OK);
    assert_memory_equal(one, both, count * sizeof(float));
    free(x);
    free(both);
    free(one);
    free(prob);
    ich_model_free(m);
}

static void test_eval_one_stage(void **state)
{
    (void)state;
    check_eval(TRUNKED, 3);
    check_eval(OLD_CASCADE, 2);
}

/* Training mode: model `a` runs both stages and gets d loss / d logits with
 * the other stage's columns zeroed; model `b` (same weights) runs stage s
 * alone and gets the full gradient (the other stage's columns must be
 * ignored). Active logits, every gradient of the trunk and the active
 * stage, batch-norm statistics and droppath steps agree bit for bit; the
 * other stage's gradients stay 0 and its statistics unchanged. */
static void check_train(const char *spec, int32_t n, int stage)
{
    ich_model *a = make(spec), *b = make(spec), *start = make(spec);
    randomize(a, 11);
    copy_tensors(a, b);
    copy_tensors(a, start);
    int32_t c, h, w;
    ich_model_input_shape(a, &c, &h, &w);
    size_t count = (size_t)n * 6, pixels = (size_t)n * c * h * w;
    float *x = random_floats(pixels, 5), *la = malloc(count * sizeof(float)),
          *lb = malloc(count * sizeof(float)), *g = random_floats(count, 6),
          *ga = malloc(count * sizeof(float));
    for (size_t k = 0; k < count; k++)
        ga[k] = ((k % 6 == 0) == (stage == 0)) ? g[k] : 0.0f;
    ich_model_set_training(a, 1);
    ich_model_set_training(b, 1);
    assert_int_equal(ich_model_set_active_stage(b, stage), ICH_OK);
    for (int step = 0; step < 2; step++) { /* gradients accumulate over two */
        assert_int_equal(ich_model_forward(a, x, n, la, count), ICH_OK);
        assert_int_equal(ich_model_forward(b, x, n, lb, count), ICH_OK);
        for (size_t k = 0; k < count; k++) {
            if ((k % 6 == 0) == (stage == 0))
                assert_memory_equal(&la[k], &lb[k], sizeof(float));
            else
                assert_true(lb[k] == 0.0f);
        }
        assert_int_equal(ich_model_backward(a, ga, count), ICH_OK);
        assert_int_equal(ich_model_backward(b, g, count), ICH_OK);
    }
    int checked[2] = {0, 0};
    for (int32_t i = 0; i < ich_model_tensor_count(a); i++) {
        ich_tensor_view ta = tensor(a, i), tb = tensor(b, i), t0 = tensor(start, i);
        int s = stage_of(a, ta.name);
        if (s == 1 - stage) {
            /* the stage that is off: nothing moved */
            assert_memory_equal(tb.data, t0.data, tensor_bytes(&tb));
            if (tb.grad)
                for (int64_t k = 0; k < tb.count; k++)
                    assert_true(tb.grad[k] == 0.0f);
            checked[0]++;
        } else {
            /* the active stage and the trunk: as the both-stage pass */
            assert_memory_equal(tb.data, ta.data, tensor_bytes(&tb));
            if (tb.grad)
                assert_memory_equal(tb.grad, ta.grad, (size_t)tb.count * sizeof(float));
            checked[1]++;
        }
    }
    assert_true(checked[0] > 0 && checked[1] > 0);
    /* the running statistics of the stage that is off did not move; the
     * others did (so the comparison above means something) */
    int moved = 0;
    for (int32_t i = 0; i < ich_model_tensor_count(a); i++) {
        ich_tensor_view ta = tensor(a, i), t0 = tensor(start, i);
        if (strstr(ta.name, "running_mean") && stage_of(a, ta.name) == stage)
            moved += memcmp(ta.data, t0.data, tensor_bytes(&ta)) != 0;
    }
    assert_true(moved > 0);
    /* droppath steps: the subtype stage's advance only when it runs */
    const char *steps_b = ich_model_metadata(b, "ich.steps");
    if (steps_b)
        assert_string_equal(steps_b, stage == 1 ? ich_model_metadata(a, "ich.steps") : "0");
    /* switching the stage drops a training forward's activations */
    assert_int_equal(ich_model_forward(b, x, n, lb, count), ICH_OK);
    assert_int_equal(ich_model_set_active_stage(b, 1 - stage), ICH_OK);
    assert_int_equal(ich_model_backward(b, g, count), ICH_ERR_INVALID_ARGUMENT);
    free(x);
    free(la);
    free(lb);
    free(g);
    free(ga);
    ich_model_free(a);
    ich_model_free(b);
    ich_model_free(start);
}

static void test_train_one_stage(void **state)
{
    (void)state;
    for (int s = 0; s < 2; s++) {
        check_train(TRUNKED, 4, s);
        check_train(OLD_CASCADE, 2, s);
    }
}

/* Freezing by the stage's prefix and running one stage combine; a trunk
 * before the cascade learns through the active stage. */
static void test_frozen_and_active_stage(void **state)
{
    (void)state;
    ich_model *m = make(TRUNKED);
    const char *prefix;
    ich_model_cascade_stage(m, 1, &prefix, NULL, NULL);
    int32_t matched = 0;
    assert_int_equal(ich_model_freeze(m, prefix, 1, &matched), ICH_OK);
    assert_true(matched > 0);
    assert_int_equal(ich_model_set_active_stage(m, 1), ICH_OK);
    ich_model_set_training(m, 1);
    float *x = random_floats(2 * 2 * 12 * 12, 8), logits[12], g[12];
    for (int k = 0; k < 12; k++)
        g[k] = 1.0f;
    assert_int_equal(ich_model_forward(m, x, 2, logits, 12), ICH_OK);
    assert_int_equal(ich_model_backward(m, g, 12), ICH_OK);
    double trunk = 0;
    for (int32_t i = 0; i < ich_model_tensor_count(m); i++) {
        ich_tensor_view v = tensor(m, i);
        for (int64_t k = 0; v.grad && k < v.count; k++) {
            if (stage_of(m, v.name) >= 0)
                assert_true(v.grad[k] == 0.0f);
            else
                trunk += fabs(v.grad[k]);
        }
    }
    assert_true(trunk > 0); /* the trunk learns through the subtype stage */
    free(x);
    ich_model_free(m);
}

/* The stage that is off allocates nothing: the activation memory's
 * high-water mark of a training forward and backward with only the small
 * "any" stage on is that of the "any" stage alone, far below both. */
static size_t high_water(int stage, const char *spec)
{
    ich_model *m = make(spec);
    assert_int_equal(ich_model_set_active_stage(m, stage), ICH_OK);
    ich_model_set_training(m, 1);
    float *x = random_floats(2 * 3 * 64 * 64, 4), logits[12], g[12];
    for (int k = 0; k < 12; k++)
        g[k] = 1.0f;
    assert_int_equal(ich_model_forward(m, x, 2, logits, sizeof logits / sizeof *logits), ICH_OK);
    assert_int_equal(ich_model_backward(m, g, sizeof g / sizeof *g), ICH_OK);
    size_t bytes = m->high_water;
    free(x);
    ich_model_free(m);
    return bytes;
}

static void test_inactive_stage_memory(void **state)
{
    (void)state;
    static const char spec[] =
        "input 3x64x64, cascade(any: conv 4 3 stride 4, relu, gap, linear 1 | subtype: "
        "conv 64 3 pad 1, batchnorm, relu, conv 64 3 pad 1, batchnorm, relu, gap, linear 5)";
    size_t both = high_water(-1, spec), any = high_water(0, spec), sub = high_water(1, spec);
    /* input 2x3x64x64 floats = 96 KiB; the subtype stage keeps ~4 MiB */
    assert_true(any < 4 * 2 * 3 * 64 * 64 * sizeof(float));
    assert_true(any * 8 < both);
    assert_true(sub < both && sub * 10 > both * 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preset_options),
        cmocka_unit_test(test_stage_queries),
        cmocka_unit_test(test_eval_one_stage),
        cmocka_unit_test(test_train_one_stage),
        cmocka_unit_test(test_frozen_and_active_stage),
        cmocka_unit_test(test_inactive_stage_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
