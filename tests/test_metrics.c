/* Tests for <ich/metrics.h>: a hand-computed case, AUC against a naive
 * pair-counting reference on random data with ties, batching invariance,
 * undefined classes, losses (BCE clamped like torch, RSNA weighted log
 * loss), logits, the seeded bootstrap and the errors. The comparisons with
 * scikit-learn are in bindings/python/tests/test_metrics.py. */
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

#define NEAR(a, b, tol) assert_true(fabs((double)(a) - (double)(b)) <= (tol))

static ich_metrics *make(const char *const *names, int32_t classes, int logits)
{
    ich_metrics *m = NULL;
    assert_int_equal(ich_metrics_create(names, classes, logits, &m), ICH_OK);
    assert_non_null(m);
    return m;
}

static ich_metrics_class_result class_of(ich_metrics *m, int32_t c)
{
    ich_metrics_class_result r = {.size = sizeof r};
    assert_int_equal(ich_metrics_class(m, c, &r), ICH_OK);
    return r;
}

static ich_metrics_summary_result summary_of(ich_metrics *m)
{
    ich_metrics_summary_result s = {.size = sizeof s};
    assert_int_equal(ich_metrics_summary(m, &s), ICH_OK);
    return s;
}

/* One class, six samples:
 *   score 0.9  0.8  0.8  0.4  0.3  0.1
 *   label 1    1    0    1    0    0      P = 3, N = 3
 * Distinct thresholds (tp, fp): 0.9 (1,0), 0.8 (2,1), 0.4 (3,1), 0.3 (3,2),
 * 0.1 (3,3). ROC: (0,0) (0,1/3) (1/3,2/3) (1/3,1) (2/3,1) (1,1).
 * AUC by pairs: the 0.9 positive beats 3 negatives, the 0.8 positive ties
 * one (0.5) and beats two, the 0.4 positive beats two: 7.5 / 9 = 5/6.
 * AP: 0.9 R 1/3 P 1; 0.8 R 2/3 P 2/3; 0.4 R 1 P 3/4:
 *     1/3 + 1/3 * 2/3 + 1/3 * 3/4 = 29/36.
 * At 0.5: predicted 0.9, 0.8, 0.8: tp 2 fp 1 fn 1 tn 2: accuracy 4/6,
 * precision = recall = specificity = 2/3, F1 = 4 / (4 + 1 + 1) = 2/3.
 * Youden J per threshold: 1/3, 1/3, 2/3, 1/3, 0: best 0.4 with J = 2/3,
 * where tp 3 fp 1 fn 0 tn 2. */
static const float hand_scores[6] = {0.9f, 0.8f, 0.8f, 0.4f, 0.3f, 0.1f};
static const float hand_labels[6] = {1, 1, 0, 1, 0, 0};

static void test_hand_computed(void **state)
{
    (void)state;
    const char *names[] = {"x"};
    ich_metrics *m = make(names, 1, 0);
    assert_int_equal(ich_metrics_update(m, hand_scores, hand_labels, 6, 1), ICH_OK);
    assert_int_equal(ich_metrics_compute(m, NULL), ICH_OK);
    ich_metrics_class_result r = class_of(m, 0);
    assert_int_equal(r.positives, 3);
    assert_int_equal(r.negatives, 3);
    NEAR(r.auc, 5.0 / 6.0, 1e-15);
    NEAR(r.average_precision, 29.0 / 36.0, 1e-15);
    assert_int_equal(r.at_half.tn, 2);
    assert_int_equal(r.at_half.fp, 1);
    assert_int_equal(r.at_half.fn, 1);
    assert_int_equal(r.at_half.tp, 2);
    NEAR(r.at_half.accuracy, 4.0 / 6.0, 1e-15);
    NEAR(r.at_half.precision, 2.0 / 3.0, 1e-15);
    NEAR(r.at_half.recall, 2.0 / 3.0, 1e-15);
    NEAR(r.at_half.specificity, 2.0 / 3.0, 1e-15);
    NEAR(r.at_half.f1, 2.0 / 3.0, 1e-15);
    assert_true(r.defined & ICH_METRIC_YOUDEN);
    NEAR(r.youden_threshold, 0.4f, 0);
    NEAR(r.youden_j, 2.0 / 3.0, 1e-15);
    assert_int_equal(r.at_youden.tp, 3);
    assert_int_equal(r.at_youden.fp, 1);
    assert_int_equal(r.at_youden.fn, 0);
    assert_int_equal(r.at_youden.tn, 2);

    assert_int_equal(r.roc_points, 6);
    double fpr[6], tpr[6], thr[6];
    assert_int_equal(ich_metrics_roc(m, 0, fpr, tpr, thr, 6), ICH_OK);
    const double efpr[6] = {0, 0, 1.0 / 3, 1.0 / 3, 2.0 / 3, 1};
    const double etpr[6] = {0, 1.0 / 3, 2.0 / 3, 1, 1, 1};
    const float ethr[6] = {0, 0.9f, 0.8f, 0.4f, 0.3f, 0.1f};
    assert_true(isinf(thr[0]) && thr[0] > 0);
    for (int i = 0; i < 6; i++) {
        NEAR(fpr[i], efpr[i], 1e-15);
        NEAR(tpr[i], etpr[i], 1e-15);
        if (i > 0)
            NEAR(thr[i], ethr[i], 0);
    }
    assert_int_equal(ich_metrics_roc(m, 0, fpr, tpr, thr, 5), ICH_ERR_SHAPE);

    /* BCE: mean of -log(p) for positives and -log(1 - p) for negatives. */
    double bce = 0;
    for (int i = 0; i < 6; i++)
        bce -= hand_labels[i] ? log((double)hand_scores[i]) : log(1.0 - (double)hand_scores[i]);
    ich_metrics_summary_result s = summary_of(m);
    NEAR(s.bce, bce / 6, 1e-12);
    NEAR(s.rsna_log_loss, bce / 6, 1e-12); /* one class of weight 1 */
    NEAR(s.accuracy_overall, 4.0 / 6.0, 1e-15);
    NEAR(s.macro_auc, 5.0 / 6.0, 1e-15);
    assert_int_equal(s.samples, 6);
    ich_metrics_free(m);
}

/* Two classes "any" (weight 2) and "b" (weight 1), two rows:
 *   row 1: p = (0.5, 0.5), y = (1, 0): every element costs ln 2, so the
 *          row's weighted loss is (2 ln2 + ln2) / 3 = ln 2;
 *   row 2: p = (1, 0), y = (0, 0): "any" is clipped to 1 - 1e-15 and costs
 *          -log(1 - (1 - 1e-15)) (about 34.54), "b" costs -log(1 - 1e-15)
 *          (about 1e-15): (2 * 34.54 + 0) / 3.
 * BCE (torch): the p = 1, y = 0 element has log(0) clamped at -100, so the
 * mean over 4 elements is (2 ln2 + 100 + 0) / 4. */
static void test_losses(void **state)
{
    (void)state;
    const char *names[] = {"Any", "b"};
    ich_metrics *m = make(names, 2, 0);
    const float p[4] = {0.5f, 0.5f, 1.0f, 0.0f}, y[4] = {1, 0, 0, 0};
    assert_int_equal(ich_metrics_update(m, p, y, 2, 2), ICH_OK);
    assert_int_equal(ich_metrics_compute(m, NULL), ICH_OK);
    ich_metrics_summary_result s = summary_of(m);
    double clipped = 1.0 - 1e-15;
    double row2 = (2 * -log1p(-clipped) + -log1p(-1e-15)) / 3;
    NEAR(s.rsna_log_loss, (log(2.0) + row2) / 2, 1e-12);
    NEAR(s.bce, (2 * log(2.0) + 100.0) / 4, 1e-12);
    /* p > 0.5 predicts 1: row 1 predicts (0, 0) vs (1, 0); row 2 (1, 0) vs
     * (0, 0): 2 of 4 */
    NEAR(s.accuracy_overall, 0.5, 0);
    /* class "b" has no positives: AUC, AP, recall, Youden undefined (NaN) */
    ich_metrics_class_result b = class_of(m, 1);
    assert_false(b.defined & (ICH_METRIC_AUC | ICH_METRIC_AVERAGE_PRECISION |
                              ICH_METRIC_YOUDEN | ICH_METRIC_AUC_CI));
    assert_true(isnan(b.auc) && isnan(b.average_precision) && isnan(b.auc_low));
    assert_false(b.at_half.defined & ICH_METRIC_RECALL);
    assert_true(isnan(b.at_half.recall));
    assert_true(b.at_half.defined & ICH_METRIC_SPECIFICITY);
    NEAR(b.at_half.specificity, 1.0, 0); /* 0.5 and 0 both predict 0 */
    /* macro means skip undefined classes: "any" has one positive and one
     * negative, the negative scored higher: AUC 0 */
    NEAR(s.macro_auc, 0.0, 0);
    ich_metrics_free(m);
}

/* Logits: the same ranking as the probabilities and BCEWithLogits. */
static void test_logits(void **state)
{
    (void)state;
    const char *names[] = {"x"};
    ich_metrics *m = make(names, 1, 1);
    float logits[6];
    double bce = 0;
    for (int i = 0; i < 6; i++) {
        double p = hand_scores[i];
        logits[i] = (float)log(p / (1 - p));
        double x = logits[i], yy = hand_labels[i];
        bce += fmax(x, 0) - x * yy + log1p(exp(-fabs(x)));
    }
    assert_int_equal(ich_metrics_update(m, logits, hand_labels, 6, 1), ICH_OK);
    assert_int_equal(ich_metrics_compute(m, NULL), ICH_OK);
    ich_metrics_class_result r = class_of(m, 0);
    NEAR(r.auc, 5.0 / 6.0, 1e-15);
    assert_int_equal(r.at_half.tp, 2);
    NEAR(summary_of(m).bce, bce / 6, 1e-12);
    /* logits may be any finite value, probabilities must lie in [0, 1] */
    const float big[1] = {5.0f}, one[1] = {1};
    assert_int_equal(ich_metrics_update(m, big, one, 1, 1), ICH_OK);
    ich_metrics_free(m);
}

/* The decision rule at 0.5 (metrics.h): p > 0.5 predicts 1, so p = 0.5 is
 * negative and the next float above is positive; a logit of 1e-8, whose
 * float32 probability 1 / (1 + expf(-x)) is exactly 0.5, is negative too
 * (though > 0), and 1e-6 (probability 0.50000025) is positive. */
static void test_decision_boundary(void **state)
{
    (void)state;
    const char *names[] = {"x"};
    const float probs[4] = {0.5f, nextafterf(0.5f, 1.0f), 0.5f, nextafterf(0.5f, 1.0f)};
    const float labels[4] = {0, 0, 1, 1};
    ich_metrics *m = make(names, 1, 0);
    assert_int_equal(ich_metrics_update(m, probs, labels, 4, 1), ICH_OK);
    assert_int_equal(ich_metrics_compute(m, NULL), ICH_OK);
    ich_metrics_class_result r = class_of(m, 0);
    assert_int_equal(r.at_half.tn, 1);
    assert_int_equal(r.at_half.fp, 1);
    assert_int_equal(r.at_half.fn, 1);
    assert_int_equal(r.at_half.tp, 1);
    NEAR(summary_of(m).accuracy_overall, 0.5, 0);
    ich_metrics_free(m);

    const float logits[4] = {1e-8f, 1e-6f, -1e-8f, 0.0f}, zeros[4] = {0};
    assert_true(1.0f / (1.0f + expf(-logits[0])) == 0.5f);
    assert_true(1.0f / (1.0f + expf(-logits[1])) > 0.5f);
    m = make(names, 1, 1);
    assert_int_equal(ich_metrics_update(m, logits, zeros, 4, 1), ICH_OK);
    assert_int_equal(ich_metrics_compute(m, NULL), ICH_OK);
    r = class_of(m, 0);
    assert_int_equal(r.at_half.fp, 1);
    assert_int_equal(r.at_half.tn, 3);
    NEAR(summary_of(m).accuracy_overall, 0.75, 0);
    ich_metrics_free(m);
}

static void random_data(float *p, float *y, int64_t n, int32_t k, unsigned seed, int decimals)
{
    srand(seed);
    double scale = decimals == 1 ? 10 : 100;
    for (int64_t i = 0; i < n * k; i++) {
        y[i] = (float)(rand() % 3 == 0);
        double u = rand() / (double)RAND_MAX;
        u = 0.6 * u + 0.4 * y[i] * (rand() / (double)RAND_MAX); /* informative */
        p[i] = (float)(round(fmin(u, 1.0) * scale) / scale);
    }
}

/* Pair counting: P(score_pos > score_neg) + 0.5 P(tie). */
static double naive_auc(const float *p, const float *y, int64_t n, int32_t k, int32_t c)
{
    double wins = 0, pairs = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            if (!(y[i * k + c] >= 0.5f) || y[j * k + c] >= 0.5f)
                continue;
            pairs++;
            float a = p[i * k + c], b = p[j * k + c];
            wins += a > b ? 1.0 : a == b ? 0.5 : 0.0;
        }
    return wins / pairs;
}

static void test_auc_naive_and_batches(void **state)
{
    (void)state;
    enum { N = 700, K = 6 };
    float *p = malloc(N * K * sizeof *p), *y = malloc(N * K * sizeof *y);
    assert_non_null(p);
    assert_non_null(y);
    for (int decimals = 1; decimals <= 2; decimals++) {
        random_data(p, y, N, K, 7u + (unsigned)decimals, decimals);
        ich_metrics *whole = make(NULL, 0, 0), *parts = make(NULL, 6, 0);
        assert_int_equal(ich_metrics_update(whole, p, y, N, K), ICH_OK);
        for (int64_t at = 0, step = 1; at < N; at += step, step = step * 2 + 1) {
            int64_t count = at + step > N ? N - at : step;
            assert_int_equal(ich_metrics_update(parts, p + at * K, y + at * K, count, K), ICH_OK);
        }
        assert_int_equal(ich_metrics_update(parts, p, y, 0, K), ICH_OK); /* empty batch */
        assert_int_equal(ich_metrics_samples(parts), N);
        ich_metrics_options o;
        ich_metrics_options_init(&o);
        o.bootstrap = 50;
        assert_int_equal(ich_metrics_compute(whole, &o), ICH_OK);
        assert_int_equal(ich_metrics_compute(parts, &o), ICH_OK);
        for (int32_t c = 0; c < K; c++) {
            ich_metrics_class_result a = class_of(whole, c), b = class_of(parts, c);
            NEAR(a.auc, naive_auc(p, y, N, K, c), 1e-12);
            assert_memory_equal(&a, &b, sizeof a);
        }
        ich_metrics_summary_result sa = summary_of(whole), sb = summary_of(parts);
        assert_memory_equal(&sa, &sb, sizeof sa);
        assert_string_equal(ich_metrics_class_name(whole, 0), "any");
        assert_string_equal(ich_metrics_class_name(whole, 5), "subdural");
        ich_metrics_free(whole);
        ich_metrics_free(parts);
    }
    free(p);
    free(y);
}

static void test_bootstrap(void **state)
{
    (void)state;
    enum { N = 400, K = 6 };
    float *p = malloc(N * K * sizeof *p), *y = malloc(N * K * sizeof *y);
    assert_non_null(p);
    assert_non_null(y);
    random_data(p, y, N, K, 3, 2);
    ich_metrics *m = make(NULL, 0, 0);
    assert_int_equal(ich_metrics_update(m, p, y, N, K), ICH_OK);
    ich_metrics_options o;
    ich_metrics_options_init(&o);
    assert_int_equal(o.bootstrap, 1000);
    o.seed = 11;
    ich_metrics_class_result first[K], again[K];
    assert_int_equal(ich_metrics_compute(m, &o), ICH_OK);
    for (int c = 0; c < K; c++)
        first[c] = class_of(m, c);
    assert_int_equal(ich_metrics_compute(m, &o), ICH_OK);
    for (int c = 0; c < K; c++) {
        again[c] = class_of(m, c);
        assert_true(first[c].defined & ICH_METRIC_AUC_CI);
        assert_true(first[c].auc_low < first[c].auc && first[c].auc < first[c].auc_high);
        /* the standard error of an AUC from 400 samples is a few hundredths */
        assert_true(first[c].auc_high - first[c].auc_low > 0.02);
        assert_true(first[c].auc_high - first[c].auc_low < 0.3);
    }
    assert_memory_equal(first, again, sizeof first);
    o.seed = 12;
    assert_int_equal(ich_metrics_compute(m, &o), ICH_OK);
    assert_true(class_of(m, 0).auc_low != first[0].auc_low ||
                class_of(m, 0).auc_high != first[0].auc_high);
    o.bootstrap = 0;
    assert_int_equal(ich_metrics_compute(m, &o), ICH_OK);
    assert_false(class_of(m, 0).defined & ICH_METRIC_AUC_CI);
    assert_true(isnan(class_of(m, 0).auc_low));
    free(p);
    free(y);
    ich_metrics_free(m);
}

static void test_errors(void **state)
{
    (void)state;
    ich_metrics *m = NULL;
    assert_int_equal(ich_metrics_create(NULL, 3, 0, &m), ICH_ERR_INVALID_ARGUMENT);
    assert_null(m);
    assert_int_equal(ich_metrics_create(NULL, 0, 0, NULL), ICH_ERR_INVALID_ARGUMENT);
    const char *bad[] = {"a", ""};
    assert_int_equal(ich_metrics_create(bad, 2, 0, &m), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_create(bad, 65, 0, &m), ICH_ERR_INVALID_ARGUMENT);
    ich_metrics_free(NULL);

    const char *names[] = {"x"};
    m = make(names, 1, 0);
    ich_metrics_class_result r = {.size = sizeof r};
    ich_metrics_summary_result s = {.size = sizeof s};
    assert_int_equal(ich_metrics_compute(m, NULL), ICH_ERR_INVALID_ARGUMENT); /* no rows */
    assert_int_equal(ich_metrics_class(m, 0, &r), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_summary(m, &s), ICH_ERR_INVALID_ARGUMENT);
    float nan_score[1] = {NAN}, big[1] = {1.5f}, neg[1] = {-0.1f}, ok[1] = {0.5f};
    float label2[1] = {2}, nan_label[1] = {NAN}, one[1] = {1};
    assert_int_equal(ich_metrics_update(m, nan_score, one, 1, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_update(m, big, one, 1, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_update(m, neg, one, 1, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_update(m, ok, label2, 1, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_update(m, ok, nan_label, 1, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_update(m, ok, one, 1, 2), ICH_ERR_SHAPE);
    assert_int_equal(ich_metrics_update(m, NULL, one, 1, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_update(m, ok, one, -1, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_samples(m), 0); /* nothing was added */
    /* soft label 0.6 counts as positive (>= 0.5); 0.6 predicts 1 (> 0.5) */
    float soft[1] = {0.6f};
    assert_int_equal(ich_metrics_update(m, soft, soft, 1, 1), ICH_OK);
    ich_metrics_options o;
    ich_metrics_options_init(&o);
    o.confidence = 1.0;
    assert_int_equal(ich_metrics_compute(m, &o), ICH_ERR_INVALID_ARGUMENT);
    o.confidence = 0.95;
    o.bootstrap = -1;
    assert_int_equal(ich_metrics_compute(m, &o), ICH_ERR_INVALID_ARGUMENT);
    o.bootstrap = 10;
    o.size = 4;
    assert_int_equal(ich_metrics_compute(m, &o), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_metrics_compute(m, NULL), ICH_OK);
    r = class_of(m, 0);
    assert_int_equal(r.positives, 1);
    assert_int_equal(r.at_half.tp, 1);
    assert_false(r.defined & ICH_METRIC_AUC); /* no negatives */
    assert_int_equal(ich_metrics_class(m, 1, &r), ICH_ERR_INVALID_ARGUMENT);
    r.size = 8;
    assert_int_equal(ich_metrics_class(m, 0, &r), ICH_ERR_INVALID_ARGUMENT);
    /* an update invalidates the results until the next compute */
    assert_int_equal(ich_metrics_update(m, ok, one, 1, 1), ICH_OK);
    r.size = sizeof r;
    assert_int_equal(ich_metrics_class(m, 0, &r), ICH_ERR_INVALID_ARGUMENT);
    ich_metrics_reset(m);
    assert_int_equal(ich_metrics_samples(m), 0);
    assert_int_equal(ich_metrics_classes(m), 1);
    ich_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_losses),
        cmocka_unit_test(test_logits),
        cmocka_unit_test(test_decision_boundary),
        cmocka_unit_test(test_auc_naive_and_batches),
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
