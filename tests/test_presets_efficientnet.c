/* White-box tests of nn/presets_efficientnet.c: the EfficientNetV2-S and
 * -M generators write specs that parse, build, and give torchvision 0.14's
 * state_dict (tensor counts, parameter counts and sample names/shapes of
 * torchvision.models.efficientnet_v2_s/_m(num_classes=6)); their
 * stochastic-depth probabilities are torchvision's; bad sizes are refused.
 *
 * `test_presets_efficientnet --write-specs DIR C H W OUTPUTS` writes the
 * two specs as DIR/efficientnet_v2_s.spec and DIR/efficientnet_v2_m.spec
 * for bindings/python/tests/test_presets_efficientnet.py, which compares
 * the networks with torchvision's (names, shapes, logits, gradients). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "nn/presets.h"
#include "nn/spec.h"

static const struct {
    const char *name;
    ich_preset_fn make;
    int32_t tensors;      /* len(state_dict()) with num_classes=6 */
    int64_t parameters;   /* sum(p.numel() for p in parameters()) */
    const char *head;     /* the head conv's name */
    int droppaths;        /* residual blocks with p > 0 (the others never use theirs) */
    const char *last;     /* the last block */
    int64_t dw4, se4, se4_in, head_in; /* features.4's depthwise and SE widths, head input */
} NETS[] = {
    {"efficientnet_v2_s", ich_preset_efficientnet_v2_s, 782, 20185174, "features.7.0.weight", 34,
     "features.6.14 = residual(", 256, 32, 512, 256},
    {"efficientnet_v2_m", ich_preset_efficientnet_v2_m, 1120, 52866042, "features.8.0.weight", 50,
     "features.7.4 = residual(", 320, 40, 640, 512},
};

static char *make_spec(ich_preset_fn make, int32_t c, int32_t h, int32_t w, int32_t outputs)
{
    ich_buf buf = {0};
    ich_status st = make(&buf, c, h, w, outputs);
    if (st) {
        ich_buf_free(&buf);
        fail_msg("generator: %s", ich_last_error());
    }
    return buf.data;
}

static const ich_tensor_view *find(ich_model *m, const char *name, ich_tensor_view *view)
{
    int32_t i = ich_model_find_tensor(m, name);
    if (i < 0)
        fail_msg("no tensor %s", name);
    memset(view, 0, sizeof *view);
    view->size = sizeof *view;
    assert_int_equal(ich_model_tensor(m, i, view), ICH_OK);
    return view;
}

static void assert_dims(ich_model *m, const char *name, int ndim, int64_t d0, int64_t d1,
                        int64_t d2, int64_t d3)
{
    ich_tensor_view v;
    find(m, name, &v);
    int64_t want[4] = {d0, d1, d2, d3};
    assert_int_equal(v.ndim, ndim);
    for (int i = 0; i < ndim; i++)
        if (v.dims[i] != want[i])
            fail_msg("%s: dim %d is %lld, expected %lld", name, i, (long long)v.dims[i],
                     (long long)want[i]);
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_state_dict(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof NETS / sizeof *NETS; k++) {
        char *spec = make_spec(NETS[k].make, 3, 64, 64, 6);
        spec_seq seq;
        if (ich_spec_parse(spec, &seq))
            fail_msg("%s: %s", NETS[k].name, ich_last_error());
        ich_spec_free(&seq);
        ich_model *m = NULL;
        if (ich_model_create(spec, &m))
            fail_msg("%s: %s", NETS[k].name, ich_last_error());
        assert_int_equal(ich_model_tensor_count(m), NETS[k].tensors);
        int64_t parameters = 0;
        for (int32_t i = 0; i < ich_model_tensor_count(m); i++) {
            ich_tensor_view v = {.size = sizeof v};
            assert_int_equal(ich_model_tensor(m, i, &v), ICH_OK);
            if (v.trainable)
                parameters += v.count;
        }
        assert_int_equal(parameters, NETS[k].parameters);
        assert_int_equal(ich_model_outputs(m), 6);
        assert_dims(m, "features.0.0.weight", 4, 24, 3, 3, 3);
        assert_dims(m, "features.0.1.num_batches_tracked", 0, 0, 0, 0, 0);
        assert_dims(m, "features.1.0.block.0.0.weight", 4, 24, 24, 3, 3);
        assert_dims(m, "features.2.0.block.0.0.weight", 4, 96, 24, 3, 3);
        assert_dims(m, "features.2.0.block.1.0.weight", 4, 48, 96, 1, 1);
        assert_dims(m, "features.4.0.block.1.0.weight", 4, NETS[k].dw4, 1, 3, 3);
        assert_dims(m, "features.4.1.block.2.fc1.weight", 4, NETS[k].se4, NETS[k].se4_in, 1, 1);
        assert_dims(m, NETS[k].head, 4, 1280, NETS[k].head_in, 1, 1);
        assert_dims(m, "classifier.1.weight", 2, 6, 1280, 0, 0);
        assert_dims(m, "classifier.1.bias", 1, 6, 0, 0, 0);
        /* the canonical spec keeps every name and each block's droppath */
        const char *canonical = ich_model_spec(m);
        assert_int_equal(count(canonical, "stochastic_depth = droppath"), NETS[k].droppaths);
        assert_non_null(strstr(canonical, NETS[k].last));
        assert_int_equal(count(canonical, "batchnorm eps 0.001"),
                         count(canonical, "batchnorm"));
        ich_model_free(m);
        free(spec);
    }
}

/* p = 0.2 * block / total, torchvision's arithmetic */
static void test_stochastic_depth(void **state)
{
    (void)state;
    char *s = make_spec(ich_preset_efficientnet_v2_s, 3, 64, 64, 6);
    /* 40 blocks: features.1.1 is block 1 (p 0.005), features.6.14 the last
     * (0.195); features.1.0 (p 0) has none */
    assert_non_null(strstr(s, "features.1.1 = residual("));
    assert_non_null(strstr(s, "stochastic_depth = droppath 0.005)"));
    assert_non_null(strstr(s, "stochastic_depth = droppath 0.195)"));
    assert_null(strstr(s, "droppath 0)"));
    assert_non_null(strstr(s, "classifier.0 = dropout 0.2,"));
    free(s);
    s = make_spec(ich_preset_efficientnet_v2_m, 3, 64, 64, 6);
    /* 57 blocks: 0.2 / 57 = 0.0035087719298245615 */
    assert_non_null(strstr(s, "stochastic_depth = droppath 0.00350877193)"));
    assert_non_null(strstr(s, "stochastic_depth = droppath 0.19649122807017547") ||
                    strstr(s, "stochastic_depth = droppath 0.196491228)"));
    assert_non_null(strstr(s, "classifier.0 = dropout 0.3,"));
    free(s);
}

static void test_options(void **state)
{
    (void)state;
    char *s = make_spec(ich_preset_efficientnet_v2_s, 1, 96, 80, 1);
    ich_model *m = NULL;
    if (ich_model_create(s, &m))
        fail_msg("%s", ich_last_error());
    int32_t c, h, w;
    assert_int_equal(ich_model_input_shape(m, &c, &h, &w), ICH_OK);
    assert_int_equal(c, 1);
    assert_int_equal(h, 96);
    assert_int_equal(w, 80);
    assert_int_equal(ich_model_outputs(m), 1);
    assert_dims(m, "features.0.0.weight", 4, 24, 1, 3, 3);
    ich_model_free(m);
    free(s);
    const int32_t bad[][4] = {{0, 64, 64, 6}, {3, 0, 64, 6}, {3, 64, -1, 6}, {3, 64, 64, 0},
                              {5000, 64, 64, 6}, {3, 20000, 64, 6}, {3, 64, 64, 70000}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        for (size_t k = 0; k < sizeof NETS / sizeof *NETS; k++) {
            ich_buf buf = {0};
            assert_int_equal(NETS[k].make(&buf, bad[i][0], bad[i][1], bad[i][2], bad[i][3]),
                             ICH_ERR_INVALID_ARGUMENT);
            assert_non_null(strstr(ich_last_error(), NETS[k].name));
            ich_buf_free(&buf);
        }
}

static int write_specs(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s --write-specs DIR C H W OUTPUTS\n", argv[0]);
        return 2;
    }
    for (size_t k = 0; k < sizeof NETS / sizeof *NETS; k++) {
        ich_buf buf = {0};
        if (NETS[k].make(&buf, atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]))) {
            fprintf(stderr, "%s: %s\n", NETS[k].name, ich_last_error());
            return 1;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.spec", argv[2], NETS[k].name);
        FILE *f = fopen(path, "w");
        if (!f || fputs(buf.data, f) < 0 || fclose(f)) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
        ich_buf_free(&buf);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--write-specs"))
        return write_specs(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_dict),
        cmocka_unit_test(test_stochastic_depth),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
