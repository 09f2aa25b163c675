/* Evaluation metrics (include/ich/metrics.h): accumulate scores and labels,
 * then per-class ROC/PR statistics, thresholded counts, losses and a
 * bootstrap interval of the AUC. Rankings are worked out once per class
 * (sorted by score, ties broken by row so the order is deterministic); the
 * bootstrap reuses that order with per-row multiplicities, so a resample
 * costs O(n) instead of a sort. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/decision.h"
#include "core/error.h"
#include "core/options.h"
#include "core/rng.h"
#include "ich/labels.h"
#include "ich/metrics.h"

#define RSNA_EPS 1e-15

struct ich_metrics {
    int32_t classes;
    int logits;
    char *names[ICH_METRICS_MAX_CLASSES];
    double *probs;   /* n x classes, sigmoid applied for logits */
    unsigned char *positive; /* n x classes: predicted positive by core/decision.h,
                                from the float32 score as given (a logit's
                                double sigmoid can exceed 0.5 where its
                                float32 probability is exactly 0.5) */
    float *labels;   /* n x classes */
    int64_t n, cap;
    double bce_sum;  /* sum of element BCE, in row order */
    double rsna_sum; /* sum of per-row weighted log loss */
    int computed;
    ich_metrics_class_result result[ICH_METRICS_MAX_CLASSES];
    double *roc[ICH_METRICS_MAX_CLASSES]; /* 3 x roc_points: fpr, tpr, thr */
    ich_metrics_summary_result summary;
};

void (ich_metrics_options_init)(ich_metrics_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_metrics_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->bootstrap = 1000;
    options->seed = 0;
    options->confidence = 0.95;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_metrics_options, confidence));
}

static void drop_results(ich_metrics *m)
{
    for (int32_t c = 0; c < m->classes; c++) {
        free(m->roc[c]);
        m->roc[c] = NULL;
    }
    m->computed = 0;
}

ich_status ich_metrics_create(const char *const *names, int32_t classes, int logits,
                              ich_metrics **out)
{
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_metrics_create: out is NULL");
    *out = NULL;
    if (!names && classes == 0)
        classes = ICH_LABEL_COUNT;
    if (classes < 1 || classes > ICH_METRICS_MAX_CLASSES)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_metrics_create: %d classes (1..%d)",
                        (int)classes, ICH_METRICS_MAX_CLASSES);
    if (!names && classes != ICH_LABEL_COUNT)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_metrics_create: names needed for %d classes", (int)classes);
    ich_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_metrics_create: out of memory");
    m->classes = classes;
    m->logits = logits != 0;
    for (int32_t c = 0; c < classes; c++) {
        const char *name = names ? names[c] : ich_label_name(c);
        if (!name || !*name) {
            ich_metrics_free(m);
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_metrics_create: name %d is empty",
                            (int)c);
        }
        m->names[c] = strdup(name);
        if (!m->names[c]) {
            ich_metrics_free(m);
            return ich_fail(ICH_ERR_NO_MEMORY, "ich_metrics_create: out of memory");
        }
    }
    *out = m;
    return ICH_OK;
}

void ich_metrics_free(ich_metrics *m)
{
    if (!m)
        return;
    drop_results(m);
    for (int32_t c = 0; c < m->classes; c++)
        free(m->names[c]);
    free(m->probs);
    free(m->positive);
    free(m->labels);
    free(m);
}

void ich_metrics_reset(ich_metrics *m)
{
    if (!m)
        return;
    drop_results(m);
    m->n = 0;
    m->bce_sum = 0.0;
    m->rsna_sum = 0.0;
}

int64_t ich_metrics_samples(const ich_metrics *m) { return m ? m->n : 0; }
int32_t ich_metrics_classes(const ich_metrics *m) { return m ? m->classes : 0; }

const char *ich_metrics_class_name(const ich_metrics *m, int32_t index)
{
    if (!m || index < 0 || index >= m->classes)
        return NULL;
    return m->names[index];
}

static ich_status check_rows(const ich_metrics *m, const float *scores, const float *labels,
                             int64_t n)
{
    int64_t count = n * m->classes;
    for (int64_t i = 0; i < count; i++) {
        float s = scores[i], y = labels[i];
        if (!isfinite(s) || (!m->logits && (s < 0.0f || s > 1.0f)))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_metrics_update: row %lld column %d: score %g is %s",
                            (long long)(i / m->classes), (int)(i % m->classes), (double)s,
                            isfinite(s) ? "outside [0, 1]" : "not finite");
        if (!isfinite(y) || y < 0.0f || y > 1.0f)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_metrics_update: row %lld column %d: label %g is not in [0, 1]",
                            (long long)(i / m->classes), (int)(i % m->classes), (double)y);
    }
    return ICH_OK;
}

static ich_status grow(ich_metrics *m, int64_t need)
{
    if (need <= m->cap)
        return ICH_OK;
    int64_t cap = m->cap ? m->cap : 256;
    while (cap < need)
        cap *= 2;
    double *p = realloc(m->probs, (size_t)cap * m->classes * sizeof *p);
    if (!p)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_metrics_update: out of memory");
    m->probs = p;
    unsigned char *d = realloc(m->positive, (size_t)cap * m->classes);
    if (!d)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_metrics_update: out of memory");
    m->positive = d;
    float *y = realloc(m->labels, (size_t)cap * m->classes * sizeof *y);
    if (!y)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_metrics_update: out of memory");
    m->labels = y;
    m->cap = cap;
    return ICH_OK;
}

/* torch.nn.BCELoss: logs clamped at -100. */
static double bce_prob(double p, double y)
{
    double lp = p > 0.0 ? fmax(log(p), -100.0) : -100.0;
    double lq = p < 1.0 ? fmax(log1p(-p), -100.0) : -100.0;
    return -(y * lp + (1.0 - y) * lq);
}

/* torch.nn.BCEWithLogitsLoss, the stable form. */
static double bce_logit(double x, double y)
{
    return fmax(x, 0.0) - x * y + log1p(exp(-fabs(x)));
}

static double class_weight(const ich_metrics *m, int32_t c)
{
    return strcasecmp(m->names[c], "any") == 0 ? 2.0 : 1.0;
}

ich_status ich_metrics_update(ich_metrics *m, const float *scores, const float *labels,
                              int64_t n, int32_t columns)
{
    if (!m || ((!scores || !labels) && n > 0) || n < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_metrics_update: NULL or negative n");
    if (columns != m->classes)
        return ich_fail(ICH_ERR_SHAPE, "ich_metrics_update: %d columns, expected %d",
                        (int)columns, (int)m->classes);
    if (n > INT64_MAX / 4 / ICH_METRICS_MAX_CLASSES - m->n)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_metrics_update: too many rows");
    ich_status st = check_rows(m, scores, labels, n);
    if (st == ICH_OK)
        st = grow(m, m->n + n);
    if (st != ICH_OK)
        return st;
    drop_results(m);
    double wsum = 0.0;
    for (int32_t c = 0; c < m->classes; c++)
        wsum += class_weight(m, c);
    for (int64_t r = 0; r < n; r++) {
        double rsna = 0.0;
        for (int32_t c = 0; c < m->classes; c++) {
            int64_t i = r * m->classes + c;
            double s = scores[i], y = labels[i];
            double p = m->logits ? 1.0 / (1.0 + exp(-s)) : s;
            m->bce_sum += m->logits ? bce_logit(s, y) : bce_prob(p, y);
            double pc = fmin(fmax(p, RSNA_EPS), 1.0 - RSNA_EPS);
            rsna += class_weight(m, c) * -(y * log(pc) + (1.0 - y) * log1p(-pc));
            m->probs[(m->n + r) * m->classes + c] = p;
            m->positive[(m->n + r) * m->classes + c] =
                m->logits ? ich_logit_predicts_positive(scores[i])
                          : ich_predicts_positive(scores[i]);
            m->labels[(m->n + r) * m->classes + c] = labels[i];
        }
        m->rsna_sum += rsna / wsum;
    }
    m->n += n;
    return ICH_OK;
}

/* ---- Per class ------------------------------------------------------------ */

typedef struct sort_item {
    double score;
    int64_t row;
} sort_item;

static int by_score_desc(const void *a, const void *b)
{
    const sort_item *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* The confusion matrix and ratios of class c: at the threshold t with
 * scikit-learn's p >= t (Youden), or with t = 0.5 and `half` set at the
 * decision rule p > 0.5 (core/decision.h). */
static ich_metrics_at at_threshold(const ich_metrics *m, int32_t c, double t, int half)
{
    ich_metrics_at a = {.size = sizeof a, .threshold = t};
    for (int64_t r = 0; r < m->n; r++) {
        int64_t i = r * m->classes + c;
        int pred = half ? m->positive[i] : m->probs[i] >= t;
        int pos = m->labels[r * m->classes + c] >= 0.5f;
        a.tp += pred && pos;
        a.fp += pred && !pos;
        a.fn += !pred && pos;
        a.tn += !pred && !pos;
    }
    a.accuracy = a.precision = a.recall = a.specificity = a.f1 = NAN;
    if (m->n > 0) {
        a.accuracy = (double)(a.tp + a.tn) / (double)m->n;
        a.defined |= ICH_METRIC_ACCURACY;
    }
    if (a.tp + a.fp > 0) {
        a.precision = (double)a.tp / (double)(a.tp + a.fp);
        a.defined |= ICH_METRIC_PRECISION;
    }
    if (a.tp + a.fn > 0) {
        a.recall = (double)a.tp / (double)(a.tp + a.fn);
        a.defined |= ICH_METRIC_RECALL;
    }
    if (a.tn + a.fp > 0) {
        a.specificity = (double)a.tn / (double)(a.tn + a.fp);
        a.defined |= ICH_METRIC_SPECIFICITY;
    }
    if (2 * a.tp + a.fp + a.fn > 0) {
        a.f1 = 2.0 * (double)a.tp / (double)(2 * a.tp + a.fp + a.fn);
        a.defined |= ICH_METRIC_F1;
    }
    return a;
}

/* AUC by the trapezoid rule over distinct scores, with row weights w (NULL:
 * 1 each) so that the bootstrap can reuse the sorted order. Exact in
 * integers: twice the area in units of 1/(P*N). NaN when P or N is 0. */
static double weighted_auc(const sort_item *items, const float *labels, int32_t stride,
                           int64_t n, const int64_t *w)
{
    int64_t tp = 0, fp = 0, tp_prev = 0, fp_prev = 0;
    double area2 = 0.0;
    for (int64_t k = 0; k < n; k++) {
        int64_t row = items[k].row, weight = w ? w[row] : 1;
        if (labels[row * stride] >= 0.5f)
            tp += weight;
        else
            fp += weight;
        if (k + 1 == n || items[k + 1].score != items[k].score) {
            area2 += (double)(fp - fp_prev) * (double)(tp + tp_prev);
            tp_prev = tp;
            fp_prev = fp;
        }
    }
    if (tp == 0 || fp == 0)
        return NAN;
    return area2 / (2.0 * (double)tp * (double)fp);
}

/* Walk the distinct thresholds: ROC points (with a first point at +inf),
 * Youden's best threshold and the average precision. */
static ich_status roc_and_ap(ich_metrics *m, int32_t c, const sort_item *items)
{
    ich_metrics_class_result *res = &m->result[c];
    const float *labels = m->labels + c;
    int64_t n = m->n, distinct = 0;
    for (int64_t k = 0; k < n; k++)
        distinct += k + 1 == n || items[k + 1].score != items[k].score;
    int64_t points = distinct + 1;
    double *roc = malloc((size_t)points * 3 * sizeof *roc);
    if (!roc)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_metrics_compute: out of memory");
    double *fpr = roc, *tpr = roc + points, *thr = roc + 2 * points;
    double P = (double)res->positives, N = (double)res->negatives;
    fpr[0] = tpr[0] = 0.0;
    thr[0] = INFINITY;
    int64_t tp = 0, fp = 0, j = 1;
    double ap = 0.0, recall_prev = 0.0, best_j = 0.0;
    int64_t best = 0;
    for (int64_t k = 0; k < n; k++) {
        if (labels[items[k].row * m->classes] >= 0.5f)
            tp++;
        else
            fp++;
        if (k + 1 < n && items[k + 1].score == items[k].score)
            continue;
        fpr[j] = N > 0 ? (double)fp / N : NAN;
        tpr[j] = P > 0 ? (double)tp / P : NAN;
        thr[j] = items[k].score;
        if (P > 0) {
            double recall = (double)tp / P;
            ap += (recall - recall_prev) * ((double)tp / (double)(tp + fp));
            recall_prev = recall;
        }
        if (P > 0 && N > 0 && tpr[j] - fpr[j] > best_j) {
            best_j = tpr[j] - fpr[j];
            best = j;
        }
        j++;
    }
    if (N == 0)
        fpr[0] = NAN;
    if (P == 0)
        tpr[0] = NAN;
    m->roc[c] = roc;
    res->roc_points = points;
    res->average_precision = P > 0 ? ap : NAN;
    if (P > 0)
        res->defined |= ICH_METRIC_AVERAGE_PRECISION;
    res->youden_threshold = res->youden_j = NAN;
    res->at_youden = (ich_metrics_at){.size = sizeof res->at_youden, .threshold = NAN};
    res->at_youden.accuracy = res->at_youden.precision = res->at_youden.recall = NAN;
    res->at_youden.specificity = res->at_youden.f1 = NAN;
    if (P > 0 && N > 0) {
        res->youden_threshold = thr[best];
        res->youden_j = best_j;
        res->at_youden = at_threshold(m, c, thr[best], 0);
        res->defined |= ICH_METRIC_YOUDEN;
    }
    return ICH_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile's default (linear interpolation) of sorted v. */
static double percentile(const double *v, int64_t n, double q)
{
    double pos = q * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos);
    int64_t hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - (double)lo) * (v[hi] - v[lo]);
}

/* Percentile bootstrap of every class's AUC: resample b draws n rows with
 * the stream (seed, b, 0), the same rows for every class. */
static ich_status bootstrap(ich_metrics *m, sort_item *const *sorted,
                            const ich_metrics_options *o)
{
    int64_t n = m->n, B = o->bootstrap;
    int64_t *w = malloc((size_t)n * sizeof *w);
    double *aucs = malloc((size_t)B * m->classes * sizeof *aucs);
    int64_t valid[ICH_METRICS_MAX_CLASSES] = {0};
    if (!w || !aucs) {
        free(w);
        free(aucs);
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_metrics_compute: out of memory");
    }
    for (int64_t b = 0; b < B; b++) {
        memset(w, 0, (size_t)n * sizeof *w);
        ich_rng rng = ich_rng_init(o->seed, (uint64_t)b, 0);
        for (int64_t i = 0; i < n; i++)
            w[ich_rng_below(&rng, (uint64_t)n)]++;
        for (int32_t c = 0; c < m->classes; c++) {
            if (!(m->result[c].defined & ICH_METRIC_AUC))
                continue;
            double auc = weighted_auc(sorted[c], m->labels + c, m->classes, n, w);
            if (!isnan(auc))
                aucs[c * B + valid[c]++] = auc;
        }
    }
    double tail = (1.0 - o->confidence) / 2.0;
    for (int32_t c = 0; c < m->classes; c++) {
        ich_metrics_class_result *res = &m->result[c];
        res->auc_low = res->auc_high = NAN;
        if (valid[c] < 2)
            continue;
        qsort(aucs + c * B, (size_t)valid[c], sizeof *aucs, cmp_double);
        res->auc_low = percentile(aucs + c * B, valid[c], tail);
        res->auc_high = percentile(aucs + c * B, valid[c], 1.0 - tail);
        res->defined |= ICH_METRIC_AUC_CI;
    }
    free(w);
    free(aucs);
    return ICH_OK;
}

static ich_status compute_class(ich_metrics *m, int32_t c, sort_item *items)
{
    ich_metrics_class_result *res = &m->result[c];
    memset(res, 0, sizeof *res);
    res->size = sizeof *res;
    for (int64_t r = 0; r < m->n; r++) {
        items[r].score = m->probs[r * m->classes + c];
        items[r].row = r;
        if (m->labels[r * m->classes + c] >= 0.5f)
            res->positives++;
        else
            res->negatives++;
    }
    qsort(items, (size_t)m->n, sizeof *items, by_score_desc);
    res->at_half = at_threshold(m, c, 0.5, 1);
    res->auc = weighted_auc(items, m->labels + c, m->classes, m->n, NULL);
    if (!isnan(res->auc))
        res->defined |= ICH_METRIC_AUC;
    res->auc_low = res->auc_high = NAN;
    return roc_and_ap(m, c, items);
}

static void compute_summary(ich_metrics *m)
{
    ich_metrics_summary_result *s = &m->summary;
    memset(s, 0, sizeof *s);
    s->size = sizeof *s;
    s->samples = m->n;
    s->classes = m->classes;
    int64_t correct = 0;
    for (int64_t i = 0; i < m->n * m->classes; i++)
        correct += m->positive[i] == (m->labels[i] >= 0.5f);
    s->accuracy_overall = (double)correct / (double)(m->n * m->classes);
    s->bce = m->bce_sum / (double)(m->n * m->classes);
    s->rsna_log_loss = m->rsna_sum / (double)m->n;
    s->defined = ICH_METRIC_ACCURACY | ICH_METRIC_BCE | ICH_METRIC_RSNA_LOG_LOSS;
    double sums[3] = {0}; /* auc, ap, f1 */
    int counts[3] = {0};
    for (int32_t c = 0; c < m->classes; c++) {
        const ich_metrics_class_result *r = &m->result[c];
        if (r->defined & ICH_METRIC_AUC)
            sums[0] += r->auc, counts[0]++;
        if (r->defined & ICH_METRIC_AVERAGE_PRECISION)
            sums[1] += r->average_precision, counts[1]++;
        if (r->at_half.defined & ICH_METRIC_F1)
            sums[2] += r->at_half.f1, counts[2]++;
    }
    s->macro_auc = counts[0] ? sums[0] / counts[0] : NAN;
    s->macro_average_precision = counts[1] ? sums[1] / counts[1] : NAN;
    s->macro_f1 = counts[2] ? sums[2] / counts[2] : NAN;
    s->defined |= (counts[0] ? ICH_METRIC_AUC : 0u) |
                  (counts[1] ? ICH_METRIC_AVERAGE_PRECISION : 0u) |
                  (counts[2] ? ICH_METRIC_F1 : 0u);
}

ich_status ich_metrics_compute(ich_metrics *m, const ich_metrics_options *options)
{
    ich_metrics_options o;
    ich_metrics_options_init(&o);
    if (!m)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_metrics_compute: metrics is NULL");
    ich_status merged = ich_options_merge(&o, sizeof o, options,
                                          ICH_OPTIONS_V1_SIZE(ich_metrics_options, confidence),
                                          "ich_metrics_compute");
    if (merged != ICH_OK)
        return merged;
    if (o.bootstrap < 0 || o.bootstrap > 1000000 || !(o.confidence > 0.0 && o.confidence < 1.0))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_metrics_compute: bootstrap %d (0..1000000), confidence %g (0..1)",
                        (int)o.bootstrap, o.confidence);
    if (m->n == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_metrics_compute: no samples");
    drop_results(m);
    sort_item *sorted[ICH_METRICS_MAX_CLASSES] = {0};
    ich_status st = ICH_OK;
    for (int32_t c = 0; c < m->classes && st == ICH_OK; c++) {
        sorted[c] = malloc((size_t)m->n * sizeof **sorted);
        st = sorted[c] ? compute_class(m, c, sorted[c])
                       : ich_fail(ICH_ERR_NO_MEMORY, "ich_metrics_compute: out of memory");
    }
    if (st == ICH_OK && o.bootstrap > 0)
        st = bootstrap(m, sorted, &o);
    for (int32_t c = 0; c < m->classes; c++)
        free(sorted[c]);
    if (st != ICH_OK) {
        drop_results(m);
        return st;
    }
    compute_summary(m);
    m->computed = 1;
    return ICH_OK;
}

static ich_status check_computed(const ich_metrics *m, int32_t index, const char *fn)
{
    if (!m || !m->computed)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: call ich_metrics_compute() first", fn);
    if (index < 0 || index >= m->classes)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: class %d out of range", fn, (int)index);
    return ICH_OK;
}

ich_status ich_metrics_class(const ich_metrics *m, int32_t index, ich_metrics_class_result *out)
{
    ich_status st = check_computed(m, index, "ich_metrics_class");
    if (st != ICH_OK)
        return st;
    return ich_options_write(out, &m->result[index], sizeof m->result[index],
                             ICH_OPTIONS_V1_SIZE(ich_metrics_class_result, defined),
                             "ich_metrics_class");
}

ich_status ich_metrics_summary(const ich_metrics *m, ich_metrics_summary_result *out)
{
    ich_status st = check_computed(m, 0, "ich_metrics_summary");
    if (st != ICH_OK)
        return st;
    return ich_options_write(out, &m->summary, sizeof m->summary,
                             ICH_OPTIONS_V1_SIZE(ich_metrics_summary_result, defined),
                             "ich_metrics_summary");
}

ich_status ich_metrics_roc(const ich_metrics *m, int32_t index, double *fpr, double *tpr,
                           double *thresholds, int64_t capacity)
{
    ich_status st = check_computed(m, index, "ich_metrics_roc");
    if (st != ICH_OK)
        return st;
    int64_t points = m->result[index].roc_points;
    if (capacity < points)
        return ich_fail(ICH_ERR_SHAPE, "ich_metrics_roc: capacity %lld < %lld points",
                        (long long)capacity, (long long)points);
    const double *roc = m->roc[index];
    if (fpr)
        memcpy(fpr, roc, (size_t)points * sizeof *fpr);
    if (tpr)
        memcpy(tpr, roc + points, (size_t)points * sizeof *tpr);
    if (thresholds)
        memcpy(thresholds, roc + 2 * points, (size_t)points * sizeof *thresholds);
    return ICH_OK;
}
