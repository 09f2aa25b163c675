/* Evaluation in slices of the batch (ICH_INFER_MEMORY, libich/nn/model.c):
 * a forward with training off whose activations would exceed the budget
 * runs in equal passes, giving the whole batch's logits with a lower
 * activation high-water mark (the model's own count of the bytes it holds
 * at once), without rebuilding primitives on later calls; training is
 * never sliced. White-box: reads the model's batch size and high-water
 * mark and the CPU backend's primitive count. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/cpu/cpu.h"
#include "ich/model.h"
#include "nn/model_internal.h"

/* 1x128x128 input: the first convolution's and batch norm's outputs are
 * 1 MiB per image each and live at once, so a budget of 5 MiB allows 2
 * images per pass. Batch norm with running statistics away from 0/1
 * and dropout make evaluation differ from training. */
static const char SPEC[] =
    "input 1x128x128, conv 16 3 pad 1, batchnorm, relu, maxpool 2, "
    "residual(conv 16 3 pad 1 nobias, batchnorm, relu, conv 16 3 pad 1), relu, "
    "conv 8 3 stride 2, batchnorm, relu, gap, dropout 0.5, linear 5";
enum { N = 7, OUTPUTS = 5, IMAGE = 128 * 128 };

static float *random_floats(size_t n, uint32_t seed)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) / 16777216.0 * 2.0 - 1.0);
    }
    return x;
}

/* The model of SPEC with its running statistics drawn from `seed`. */
static ich_model *make(uint32_t seed)
{
    ich_model *m = NULL;
    assert_int_equal(ich_model_create(SPEC, &m), ICH_OK);
    for (int32_t t = 0; t < ich_model_tensor_count(m); t++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_model_tensor(m, t, &v), ICH_OK);
        int mean = strstr(v.name, "running_mean") != NULL;
        if (!mean && !strstr(v.name, "running_var"))
            continue;
        float *r = random_floats((size_t)v.count, seed + (uint32_t)t);
        for (int64_t k = 0; k < v.count; k++)
            ((float *)v.data)[k] = mean ? 0.3f * r[k] : 0.6f + 0.4f * r[k];
        free(r);
    }
    ich_model_tensor_changed(m, -1);
    return m;
}

static void set_budget(const char *mib)
{
    assert_int_equal(setenv("ICH_INFER_MEMORY", mib, 1), 0);
}

/* An evaluation forward of N images under `budget`; the model's batch
 * size and activation high-water mark after it. */
static void eval_forward(const char *budget, float *logits, int32_t *batch, size_t *high)
{
    ich_model *m = make(3);
    float *x = random_floats((size_t)N * IMAGE, 7);
    set_budget(budget);
    assert_int_equal(ich_model_set_training(m, 0), ICH_OK);
    assert_int_equal(ich_model_forward(m, x, N, logits, N * OUTPUTS), ICH_OK);
    *batch = m->batch;
    *high = m->high_water;
    free(x);
    ich_model_free(m);
}

/* Sliced logits against the whole batch's: bit for bit where oneDNN runs
 * its direct kernels (AVX2 and newer), within 1e-6 of the largest below. */
static void expect_same_logits(const float *sliced, const float *whole)
{
    const dnnl_cpu_isa_t avx2 = dnnl_cpu_isa_avx2;
    if ((dnnl_get_effective_cpu_isa() & avx2) == avx2) {
        assert_memory_equal(sliced, whole, N * OUTPUTS * sizeof(float));
        return;
    }
    double largest = 0, worst = 0;
    for (int k = 0; k < N * OUTPUTS; k++) {
        largest = fmax(largest, fabs(whole[k]));
        worst = fmax(worst, fabs((double)sliced[k] - whole[k]));
    }
    if (worst > 1e-6 * largest)
        fail_msg("sliced logits off by %g of %g", worst, largest);
}

/* 5 MiB: passes of 2 images, the last one (images 5 and 6) overlapping
 * the one before. The logits are those of the whole batch; the high-water
 * mark is that of 2 images instead of 7. Bit for bit on oneDNN's direct
 * kernels (AVX2 and newer): every image's arithmetic is the same whatever
 * the batch (each convolution's output sums over channels and kernel
 * positions only, the linear layer's over features). Below AVX2
 * (ONEDNN_MAX_CPU_ISA=SSE41) oneDNN's gemm-based kernels cut their sums
 * by the batch's size: the same within float rounding. */
static void test_slices_give_the_whole_batch(void **state)
{
    (void)state;
    float whole[N * OUTPUTS], sliced[N * OUTPUTS];
    int32_t whole_batch, sliced_batch;
    size_t whole_high, sliced_high;
    eval_forward("0", whole, &whole_batch, &whole_high);
    eval_forward("5", sliced, &sliced_batch, &sliced_high);
    print_message("high-water: whole batch %zu bytes, slices of %d: %zu bytes\n", whole_high,
                  (int)sliced_batch, sliced_high);
    assert_int_equal(whole_batch, N);
    assert_int_equal(sliced_batch, 2);
    assert_true(sliced_high * 2 < whole_high); /* 4 against 14 MiB (the arena; sanitizer builds cache blocks) */
    assert_true(sliced_high <= (size_t)5 << 20);
    for (int k = 0; k < N * OUTPUTS; k++)
        assert_true(isfinite(whole[k]));
    expect_same_logits(sliced, whole);
    /* a budget above the whole batch's needs changes nothing */
    eval_forward("1000", sliced, &sliced_batch, &sliced_high);
    assert_int_equal(sliced_batch, N);
    assert_memory_equal(sliced, whole, sizeof whole);
    unsetenv("ICH_INFER_MEMORY");
}

/* Unset, the CPU's default is 8 MiB in passes of at least 4 images:
 * SPEC's 2 MiB per image (asked without running) run whole up to 4
 * images, then in equal passes of 4 or fewer (5 as 3 + 3, overlapping);
 * a small network's batch stays whole. An explicit budget is the plain
 * rule, down to one image a pass. */
static void test_default_slices(void **state)
{
    (void)state;
    ich_model *m = make(2);
    int32_t slice = 0;
    set_budget(""); /* empty: unset */
    assert_int_equal(ich_model_infer_slice(m, 4, &slice), ICH_OK);
    assert_int_equal(slice, 4);
    assert_int_equal(ich_model_infer_slice(m, 5, &slice), ICH_OK);
    assert_int_equal(slice, 3);
    assert_int_equal(ich_model_infer_slice(m, 16, &slice), ICH_OK);
    assert_int_equal(slice, 4);
    assert_int_equal(ich_model_infer_slice(m, 1000, &slice), ICH_OK);
    assert_int_equal(slice, 4);
    set_budget("3"); /* explicit: below 4 images a pass */
    assert_int_equal(ich_model_infer_slice(m, 16, &slice), ICH_OK);
    assert_int_equal(slice, 1);
    set_budget("5");
    assert_int_equal(ich_model_infer_slice(m, 7, &slice), ICH_OK);
    assert_int_equal(slice, 2);
    set_budget("1"); /* below one image: one at a time */
    assert_int_equal(ich_model_infer_slice(m, 7, &slice), ICH_OK);
    assert_int_equal(slice, 1);
    set_budget("0");
    assert_int_equal(ich_model_infer_slice(m, 1000, &slice), ICH_OK);
    assert_int_equal(slice, 1000);
    ich_model_free(m);

    set_budget("");
    assert_int_equal(ich_model_create("input 3x32x32, conv 8 3, relu, gap, linear 2", &m), ICH_OK);
    float *x = random_floats(16 * 3 * 32 * 32, 12), logits[32];
    assert_int_equal(ich_model_forward(m, x, 16, logits, 32), ICH_OK);
    assert_int_equal(m->batch, 16);
    free(x);
    ich_model_free(m);
    unsetenv("ICH_INFER_MEMORY");
}

/* Equal slices keep one batch size: the second sliced forward builds no
 * primitive (an odd-sized last slice would rebuild every layer's twice per
 * call). */
static void test_second_call_builds_no_primitive(void **state)
{
    (void)state;
    ich_model *m = make(4);
    float *x = random_floats((size_t)N * IMAGE, 8), first[N * OUTPUTS], again[N * OUTPUTS];
    set_budget("5");
    assert_int_equal(ich_model_set_training(m, 0), ICH_OK);
    assert_int_equal(ich_model_forward(m, x, N, first, N * OUTPUTS), ICH_OK);
    int64_t fwd0, bwd0, fwd1, bwd1;
    ich_cpu_primitives_built(&fwd0, &bwd0);
    assert_int_equal(ich_model_forward(m, x, N, again, N * OUTPUTS), ICH_OK);
    ich_cpu_primitives_built(&fwd1, &bwd1);
    assert_int_equal(fwd1, fwd0);
    assert_int_equal(bwd1, bwd0);
    assert_memory_equal(again, first, sizeof first);
    /* ich_model_predict slices the same way */
    float prob[N * OUTPUTS];
    assert_int_equal(ich_model_predict(m, x, N, 0.5f, prob, N * OUTPUTS), ICH_OK);
    for (int k = 0; k < N * OUTPUTS; k++)
        assert_float_equal(prob[k], 1.0f / (1.0f + expf(-first[k])), 1e-6);
    assert_int_equal(m->batch, 2);
    unsetenv("ICH_INFER_MEMORY");
    free(x);
    ich_model_free(m);
}

/* A training forward and backward (batch statistics, dropout) with the
 * smallest budget equal those without one: training is never sliced. */
static void train_step(const char *budget, float *logits, float *grad, int32_t *batch)
{
    ich_model *m = make(5);
    float *x = random_floats((size_t)N * IMAGE, 9), *g = random_floats(N * OUTPUTS, 10);
    set_budget(budget);
    assert_int_equal(ich_model_set_training(m, 1), ICH_OK);
    assert_int_equal(ich_model_forward(m, x, N, logits, N * OUTPUTS), ICH_OK);
    *batch = m->batch;
    assert_int_equal(ich_model_backward(m, g, N * OUTPUTS), ICH_OK);
    ich_tensor_view v = {.size = sizeof v};
    assert_int_equal(ich_model_tensor(m, 0, &v), ICH_OK); /* the first convolution's weight */
    assert_int_equal(v.count, 16 * 9);
    memcpy(grad, v.grad, 16 * 9 * sizeof *grad);
    free(x);
    free(g);
    ich_model_free(m);
}

static void test_training_is_not_sliced(void **state)
{
    (void)state;
    float logits[2][N * OUTPUTS], grad[2][16 * 9];
    int32_t batch[2];
    train_step("0", logits[0], grad[0], &batch[0]);
    train_step("1", logits[1], grad[1], &batch[1]);
    assert_int_equal(batch[0], N);
    assert_int_equal(batch[1], N);
    assert_memory_equal(logits[1], logits[0], sizeof logits[0]);
    assert_memory_equal(grad[1], grad[0], sizeof grad[0]);
    unsetenv("ICH_INFER_MEMORY");
}

static void test_bad_budget_is_refused(void **state)
{
    (void)state;
    ich_model *m = make(6);
    float *x = random_floats(IMAGE, 11), logits[OUTPUTS];
    const char *bad[] = {"-1", "12x", "lots", "1e3", "99999999999999999999"};
    assert_int_equal(ich_model_set_training(m, 0), ICH_OK);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        set_budget(bad[i]);
        assert_int_equal(ich_model_forward(m, x, 1, logits, OUTPUTS), ICH_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(ich_last_error(), "ICH_INFER_MEMORY"));
    }
    unsetenv("ICH_INFER_MEMORY");
    assert_int_equal(ich_model_forward(m, x, 1, logits, OUTPUTS), ICH_OK);
    free(x);
    ich_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_give_the_whole_batch),
        cmocka_unit_test(test_default_slices),
        cmocka_unit_test(test_second_call_builds_no_primitive),
        cmocka_unit_test(test_training_is_not_sliced),
        cmocka_unit_test(test_bad_budget_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
