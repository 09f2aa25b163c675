/* White-box tests of nn/presets_convnext.c: the ConvNeXt generators write
 * specs that build, with torchvision 0.14's tensor count, parameter count
 * and a few of its names and shapes; sizes they cannot take are refused.
 *
 * With a folder argument (or ICH_PRESET_SPEC_DIR) the test also writes
 * each generated spec there (convnext_tiny.spec: 3x64x64 input, 6 outputs;
 * convnext_small.spec: the same) for bindings/python/tests/
 * test_presets_convnext.py, which compares them with torchvision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/fileutil.h"
#include "ich/ich.h"
#include "nn/presets.h"

static const char *g_spec_dir;

static ich_model *build(ich_preset_fn fn, int32_t c, int32_t h, int32_t w, int32_t outputs)
{
    ich_buf buf = {0};
    assert_int_equal(fn(&buf, c, h, w, outputs), ICH_OK);
    ich_model *m = NULL;
    ich_status st = ich_model_create(buf.data, &m);
    if (st)
        fail_msg("%s", ich_last_error());
    ich_buf_free(&buf);
    return m;
}

static void check_tensor(const ich_model *m, const char *name, int32_t ndim, int64_t d0,
                         int64_t d1, int64_t d2, int64_t d3)
{
    int32_t index = ich_model_find_tensor(m, name);
    if (index < 0)
        fail_msg("no tensor %s", name);
    ich_tensor_view v = {.size = sizeof v};
    assert_int_equal(ich_model_tensor(m, index, &v), ICH_OK);
    int64_t want[4] = {d0, d1, d2, d3};
    assert_int_equal(v.ndim, ndim);
    for (int d = 0; d < ndim; d++)
        assert_int_equal(v.dims[d], want[d]);
}

static int64_t parameter_count(const ich_model *m)
{
    int64_t total = 0;
    for (int32_t i = 0; i < ich_model_tensor_count(m); i++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_model_tensor(m, i, &v), ICH_OK);
        total += v.count;
    }
    return total;
}

static void write_spec(const char *name, ich_preset_fn fn)
{
    if (!g_spec_dir)
        return;
    ich_buf buf = {0};
    assert_int_equal(fn(&buf, 3, 64, 64, 6), ICH_OK);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.spec", g_spec_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(buf.data, 1, buf.length, f), buf.length);
    assert_int_equal(fclose(f), 0);
    ich_buf_free(&buf);
}

/* torchvision.models.convnext_tiny(num_classes=6): 182 tensors, 27,824,742
 * values; convnext_small: 344 and 49,459,302 (counted with torchvision). */
static void test_convnext_tiny(void **state)
{
    (void)state;
    ich_model *m = build(ich_preset_convnext_tiny, 3, 64, 64, 6);
    assert_int_equal(ich_model_tensor_count(m), 182);
    assert_int_equal(parameter_count(m), 27824742);
    check_tensor(m, "features.0.0.weight", 4, 96, 3, 4, 4);
    check_tensor(m, "features.0.1.weight", 1, 96, 0, 0, 0);
    check_tensor(m, "features.1.0.block.0.weight", 4, 96, 1, 7, 7);
    check_tensor(m, "features.1.0.block.2.bias", 1, 96, 0, 0, 0);
    check_tensor(m, "features.1.0.block.3.weight", 2, 384, 96, 0, 0);
    check_tensor(m, "features.1.0.block.5.weight", 2, 96, 384, 0, 0);
    check_tensor(m, "features.1.2.layer_scale", 3, 96, 1, 1, 0);
    check_tensor(m, "features.5.8.layer_scale", 3, 384, 1, 1, 0);
    check_tensor(m, "features.6.1.weight", 4, 768, 384, 2, 2);
    check_tensor(m, "classifier.0.weight", 1, 768, 0, 0, 0);
    check_tensor(m, "classifier.2.weight", 2, 6, 768, 0, 0);
    assert_int_equal(ich_model_outputs(m), 6);
    ich_model_free(m);
    /* one channel, another size and number of outputs */
    m = build(ich_preset_convnext_tiny, 1, 32, 45, 1);
    check_tensor(m, "features.0.0.weight", 4, 96, 1, 4, 4);
    check_tensor(m, "classifier.2.bias", 1, 1, 0, 0, 0);
    ich_model_free(m);
    write_spec("convnext_tiny", ich_preset_convnext_tiny);
}

static void test_convnext_small(void **state)
{
    (void)state;
    ich_model *m = build(ich_preset_convnext_small, 3, 64, 64, 6);
    assert_int_equal(ich_model_tensor_count(m), 344);
    assert_int_equal(parameter_count(m), 49459302);
    check_tensor(m, "features.5.26.block.3.weight", 2, 1536, 384, 0, 0);
    check_tensor(m, "features.7.2.layer_scale", 3, 768, 1, 1, 0);
    ich_model_free(m);
    write_spec("convnext_small", ich_preset_convnext_small);
}

/* Stochastic depth: p = P * i / (blocks - 1), no droppath in the first
 * block, torchvision's P in the last. */
static void test_stochastic_depth(void **state)
{
    (void)state;
    ich_buf buf = {0};
    assert_int_equal(ich_preset_convnext_tiny(&buf, 3, 64, 64, 6), ICH_OK);
    assert_null(strstr(buf.data, "features.1 = residual(0.block.0 = conv 96 7 pad 3 groups 96, "
                                 "0.block.2 = layernorm2d, 0.block.3 = linear 384 pointwise, "
                                 "0.block.4 = gelu, 0.block.5 = linear 96 pointwise, "
                                 "0 = layerscale, 0.stochastic_depth"));
    assert_non_null(strstr(buf.data, "1.stochastic_depth = droppath 0.00588235294"));
    assert_non_null(strstr(buf.data, "2.stochastic_depth = droppath 0.1)"));
    ich_buf_free(&buf);
    assert_int_equal(ich_preset_convnext_small(&buf, 3, 64, 64, 6), ICH_OK);
    assert_non_null(strstr(buf.data, "2.stochastic_depth = droppath 0.4)"));
    ich_buf_free(&buf);
}

static void test_refusals(void **state)
{
    (void)state;
    ich_buf buf = {0};
    assert_int_equal(ich_preset_convnext_tiny(&buf, 3, 31, 64, 6), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "at least 32"));
    assert_int_equal(ich_preset_convnext_tiny(&buf, 0, 64, 64, 6), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_preset_convnext_small(&buf, 3, 64, 64, 0), ICH_ERR_INVALID_ARGUMENT);
    ich_buf_free(&buf);
}

int main(int argc, char **argv)
{
    g_spec_dir = argc > 1 ? argv[1] : getenv("ICH_PRESET_SPEC_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convnext_tiny),
        cmocka_unit_test(test_convnext_small),
        cmocka_unit_test(test_stochastic_depth),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
