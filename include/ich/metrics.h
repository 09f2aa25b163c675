/*
 * libich metrics: evaluation of multi-label probabilities against labels.
 *
 * An ich_metrics accumulates scores (probabilities, or logits turned into
 * probabilities with the sigmoid) and labels batch by batch, then
 * ich_metrics_compute() works out, per class: the confusion matrix,
 * accuracy, precision, recall (sensitivity), specificity and F1 at the
 * threshold 0.5 and at the best threshold by Youden's J, ROC-AUC, average
 * precision, the ROC curve and a bootstrap confidence interval of the AUC;
 * and over all classes: the element-wise accuracy, the mean binary cross
 * entropy and the RSNA competition's weighted log loss.
 *
 * Two conventions, kept apart on purpose:
 *   - the prediction (the confusion matrix, accuracy, precision, recall,
 *     specificity and F1 "at 0.5", and the overall accuracy): positive when
 *     the probability p > 0.5, so p = 0.5 exactly is negative. This is the
 *     rule of both source documents (sigmoid(logit) > 0.5), of training
 *     accuracy (train.h) and of the cascade gate (ich_model_predict()).
 *     For logits, p is the float32 sigmoid ich_model_predict() reports
 *     (a logit below about 3e-8 gives p = 0.5 exactly, so negative, though
 *     logit > 0);
 *   - the ROC curve and Youden's threshold t: positive when p >= t, as
 *     scikit-learn's roc_curve (at_youden uses it).
 *
 * Definitions (they match scikit-learn 1.2, with y_pred = p > 0.5 for the
 * metrics at 0.5):
 *   - a label y is positive when y >= 0.5 (labels must lie in [0, 1]; soft
 *     labels are kept as they are for the losses);
 *   - ROC-AUC: the trapezoid rule over the ROC points of all distinct
 *     scores, so tied scores count one half (roc_auc_score);
 *   - average precision: sum over distinct thresholds, from high to low, of
 *     (R_k - R_k-1) * P_k, no interpolation (average_precision_score);
 *   - ROC curve: roc_curve(drop_intermediate=False): the first point is
 *     (0, 0) at threshold +infinity (scikit-learn 1.2 writes max + 1 there),
 *     then one point per distinct score, from high to low;
 *   - Youden's J = TPR - FPR; the best threshold is the first (highest) ROC
 *     threshold that maximises it;
 *   - BCE: mean over all elements of -(y log p + (1-y) log(1-p)) with each
 *     log clamped at -100 as torch.nn.BCELoss does; with logits the stable
 *     form of BCEWithLogitsLoss;
 *   - RSNA log loss: per sample sum_c w_c bce_c / sum_c w_c with w = 2 for a
 *     class named "any" (ignoring case) and 1 for the others, p clipped to
 *     [1e-15, 1 - 1e-15], averaged over samples;
 *   - AUC confidence interval: percentile bootstrap, resamples of all
 *     samples drawn with the seeded libich generator; resamples where a
 *     class has no positive or no negative are skipped for that class.
 *
 * Undefined values (a ratio with a zero denominator; AUC, average precision
 * and Youden's threshold of a class without positives or without
 * negatives) are NaN and their bit in the struct's `defined` field is 0:
 * write them as "undefined", never as NaN.
 *
 * Results are deterministic: the same inputs, in any batching, and the same
 * seed give the same numbers. A handle is used by one thread at a time.
 */
#ifndef ICH_METRICS_H
#define ICH_METRICS_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most classes (columns) a metrics handle may have. */
#define ICH_METRICS_MAX_CLASSES 64

/** A metrics accumulator (opaque). */
typedef struct ich_metrics ich_metrics;

/** Bits of the `defined` fields below. */
enum {
    ICH_METRIC_ACCURACY = 1u << 0,
    ICH_METRIC_PRECISION = 1u << 1,
    ICH_METRIC_RECALL = 1u << 2,
    ICH_METRIC_SPECIFICITY = 1u << 3,
    ICH_METRIC_F1 = 1u << 4,
    ICH_METRIC_AUC = 1u << 5,
    ICH_METRIC_AVERAGE_PRECISION = 1u << 6,
    ICH_METRIC_YOUDEN = 1u << 7,
    ICH_METRIC_AUC_CI = 1u << 8,
    ICH_METRIC_BCE = 1u << 9,
    ICH_METRIC_RSNA_LOG_LOSS = 1u << 10
};

/** Counts and ratios at one threshold. NaN (bit 0 in `defined`) where the
 *  denominator is 0.
 *
 *  ABI: it has a size like every public struct (the library sets it to
 *  sizeof(ich_metrics_at)), so a copy taken on its own says which version it holds. But
 *  ich_metrics_class_result embeds two of them by value, so appending a
 *  field here would move every field after `at_half` and break programs
 *  built against this header: its layout is therefore frozen for good. We
 *  chose that over redesigning the enclosing struct (pointers, or a getter
 *  per threshold) because the by-value copies keep ich_metrics_class()
 *  one call with nothing to free; a value wanted per threshold later goes
 *  into a new struct appended at the end of ich_metrics_class_result. */
typedef struct ich_metrics_at {
    /* ABI: first version up to `defined`, 92 bytes on LP64 (today's layout). */
    size_t size;            /**< sizeof(ich_metrics_at), set by the library */
    double threshold;
    int64_t tn, fp, fn, tp; /**< confusion matrix [[tn, fp], [fn, tp]] */
    double accuracy;        /**< (tp + tn) / n */
    double precision;       /**< tp / (tp + fp) */
    double recall;          /**< tp / (tp + fn), the sensitivity */
    double specificity;     /**< tn / (tn + fp) */
    double f1;              /**< 2 tp / (2 tp + fp + fn) */
    uint32_t defined;       /**< ICH_METRIC_ACCURACY ... ICH_METRIC_F1 */
} ich_metrics_at;

/** Results of one class (set size = sizeof before ich_metrics_class()). */
typedef struct ich_metrics_class_result {
    /* ABI: first version up to `defined`, 276 bytes on LP64 (today's layout). */
    size_t size;
    int64_t positives, negatives; /**< labels >= 0.5 and < 0.5 */
    ich_metrics_at at_half;       /**< at 0.5: predicted when p > 0.5 */
    ich_metrics_at at_youden;     /**< at youden_threshold, predicted when p >=
                                       youden_threshold (NaNs if undefined) */
    double youden_threshold;      /**< ICH_METRIC_YOUDEN; may be +inf */
    double youden_j;              /**< ICH_METRIC_YOUDEN */
    double auc;                   /**< ICH_METRIC_AUC */
    double auc_low, auc_high;     /**< ICH_METRIC_AUC_CI */
    double average_precision;     /**< ICH_METRIC_AVERAGE_PRECISION */
    int64_t roc_points;           /**< for ich_metrics_roc() */
    uint32_t defined;             /**< ICH_METRIC_AUC, _AVERAGE_PRECISION, _YOUDEN, _AUC_CI */
} ich_metrics_class_result;

/** Results over all classes (set size = sizeof before ich_metrics_summary()). */
typedef struct ich_metrics_summary_result {
    /* ABI: first version up to `defined`, 76 bytes on LP64 (today's layout). */
    size_t size;
    int64_t samples;          /**< rows given to update */
    int32_t classes;
    double accuracy_overall;  /**< element-wise accuracy, p > 0.5 predicts 1 (ICH_METRIC_ACCURACY) */
    double bce;               /**< mean BCE over all elements (ICH_METRIC_BCE) */
    double rsna_log_loss;     /**< ICH_METRIC_RSNA_LOG_LOSS */
    double macro_auc;         /**< mean AUC of the classes where it is defined (ICH_METRIC_AUC) */
    double macro_average_precision; /**< likewise (ICH_METRIC_AVERAGE_PRECISION) */
    double macro_f1;          /**< mean F1 at 0.5 where defined (ICH_METRIC_F1) */
    uint32_t defined;
} ich_metrics_summary_result;

/** Options of ich_metrics_compute(); ich_metrics_options_init() fills the
 *  defaults given here. */
typedef struct ich_metrics_options {
    /* ABI: first version up to `confidence`, 32 bytes on LP64 (today's layout). */
    size_t size;
    int32_t bootstrap;  /**< AUC bootstrap resamples; 0: no interval (default 1000) */
    uint64_t seed;      /**< bootstrap seed (default 0) */
    double confidence;  /**< interval level in (0, 1) (default 0.95) */
} ich_metrics_options;

/** Fill `options` with the defaults (sets size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_metrics_options_init(ich_metrics_options *options);
#define ich_metrics_options_init(options) ich_metrics_options_init(ICH_SIZED(options))

/** Create an accumulator for `classes` columns named `names` (copied,
 *  non-empty), or the six RSNA labels (ich_label_name()) when names is NULL
 *  and classes is 0 or 6. `logits`: nonzero when update() gets logits, 0 for
 *  probabilities. Free it with ich_metrics_free(). Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_metrics_create(const char *const *names, int32_t classes, int logits,
                                      ich_metrics **out);

/** Free an accumulator. NULL is a no-op. */
ICH_API void ich_metrics_free(ich_metrics *metrics);

/** Forget all samples (keeps classes and names). */
ICH_API void ich_metrics_reset(ich_metrics *metrics);

/** Add `n` rows: `scores` and `labels` are row-major n x `columns` (copied;
 *  columns must equal the class count). Scores must be finite, and in
 *  [0, 1] for probabilities; labels finite and in [0, 1]. Nothing is added
 *  on error. Errors: ICH_ERR_INVALID_ARGUMENT (NULL, NaN, out of range),
 *  ICH_ERR_SHAPE (columns), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_metrics_update(ich_metrics *metrics, const float *scores,
                                      const float *labels, int64_t n, int32_t columns);

/** Rows added so far (0 for NULL). */
ICH_API int64_t ich_metrics_samples(const ich_metrics *metrics);

/** Number of classes (0 for NULL). */
ICH_API int32_t ich_metrics_classes(const ich_metrics *metrics);

/** Name of class `index` (owned by the handle); NULL when out of range. */
ICH_API const char *ich_metrics_class_name(const ich_metrics *metrics, int32_t index);

/** Compute every metric from the rows added so far (options may be NULL:
 *  defaults); the getters below read the results until the next update,
 *  reset or compute. Errors: ICH_ERR_INVALID_ARGUMENT (no rows, bad
 *  options), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_metrics_compute(ich_metrics *metrics, const ich_metrics_options *options);

/** Copy the results of class `index` into `*out` (out->size set by the
 *  caller; only out->size bytes are written, see <ich/core.h>). Errors:
 *  ICH_ERR_INVALID_ARGUMENT (not computed, bad index, size below the first
 *  version's). */
ICH_API ich_status ich_metrics_class(const ich_metrics *metrics, int32_t index,
                                     ich_metrics_class_result *out);

/** Copy the results over all classes (out->size set by the caller, as
 *  ich_metrics_class()). Errors: ICH_ERR_INVALID_ARGUMENT. */
ICH_API ich_status ich_metrics_summary(const ich_metrics *metrics,
                                       ich_metrics_summary_result *out);

/** Copy the ROC curve of class `index`: out->roc_points values into each of
 *  fpr, tpr and thresholds (any may be NULL), `capacity` the room in each.
 *  Errors: ICH_ERR_INVALID_ARGUMENT (not computed, bad index),
 *  ICH_ERR_SHAPE (capacity too small). */
ICH_API ich_status ich_metrics_roc(const ich_metrics *metrics, int32_t index, double *fpr,
                                   double *tpr, double *thresholds, int64_t capacity);

#ifdef __cplusplus
}
#endif
#endif /* ICH_METRICS_H */
