/* The loss: BCE-with-logits (PyTorch's formula, float32 op by op) and the
 * "balanced" positive class weights. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "ich/labels.h"
#include "ich/optim.h"
#include "optim/optim_internal.h"

ICH_NO_FP_CONTRACT

static ich_status check_finite(const float *values, size_t count, const char *what)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(values[i]))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_loss_bce_with_logits: %s[%zu] = %g is not finite", what, i,
                            (double)values[i]);
    return ICH_OK;
}

/* One element of PyTorch 1.13's binary_cross_entropy_with_logits, rounded
 * to float after every tensor op as torch does:
 *   m = max(-x, 0)
 *   l = (1 - y) * x + log_weight * (log(exp(-m) + exp(-x - m)) + m)
 * with log_weight = (p - 1) * y + 1, or without pos_weight
 *   l = (1 - y) * x + m + log(exp(-m) + exp(-x - m)).
 * exp(-m) and exp(-x - m) are at most 1, so no logit overflows. */
static float bce_element(float x, float y, const float *pos_weight)
{
    float m = -x > 0.0f ? -x : 0.0f;
    float log_sum = logf(expf(-m) + expf(-x - m));
    float linear = (1.0f - y) * x;
    if (!pos_weight)
        return (linear + m) + log_sum;
    float log_weight = (*pos_weight - 1.0f) * y + 1.0f;
    return linear + log_weight * (log_sum + m);
}

/* d loss / d x of one element for reduction "mean" over `count` elements
 * (PyTorch's binary_cross_entropy_with_logits_backward with grad 1):
 *   ((p*y + 1 - y) * sigmoid(x) - p*y) * w / count. */
static float bce_gradient(float x, float y, const float *pos_weight, float count)
{
    float sigmoid = 1.0f / (1.0f + expf(-x));
    float g;
    if (pos_weight) {
        float t = *pos_weight * y;
        g = ((t + 1.0f) - y) * sigmoid - t;
    } else {
        g = sigmoid - y;
    }
    return g / count;
}

ich_status ich_loss_bce_with_logits(const float *logits, const float *targets, int32_t n,
                                    int32_t classes, const float *pos_weight,
                                    const float *weight, float *loss, float *grad)
{
    const char *fn = "ich_loss_bce_with_logits";
    if (!logits || !targets || !loss)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL logits, targets or loss", fn);
    if (n < 1 || classes < 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: %d samples x %d classes: both must be >= 1",
                        fn, n, classes);
    size_t count = (size_t)n * (size_t)classes;
    ich_status st = check_finite(logits, count, "logits");
    if (st == ICH_OK)
        st = check_finite(targets, count, "targets");
    if (st == ICH_OK && pos_weight)
        st = check_finite(pos_weight, (size_t)classes, "pos_weight");
    if (st == ICH_OK && weight)
        st = check_finite(weight, count, "weight");
    if (st != ICH_OK)
        return st;

    /* torch sums the float elements with a cascade of float partial sums;
     * a double sum is at least as exact and differs by float rounding. */
    double sum = 0.0;
    float fcount = (float)count;
    for (size_t i = 0; i < count; i++) {
        const float *p = pos_weight ? &pos_weight[i % (size_t)classes] : NULL;
        float l = bce_element(logits[i], targets[i], p);
        if (weight)
            l *= weight[i];
        sum += l;
        if (grad) {
            float g = bce_gradient(logits[i], targets[i], p, 1.0f);
            if (weight)
                g *= weight[i];
            grad[i] = g / fcount;
        }
    }
    *loss = (float)(sum / (double)count);
    return ICH_OK;
}

ich_status ich_class_weights_balanced(const ich_labels *labels, float *pos_weight, int32_t count)
{
    const char *fn = "ich_class_weights_balanced";
    if (!labels || !pos_weight)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL labels or pos_weight", fn);
    int32_t columns = ich_labels_columns(labels);
    if (count != columns)
        return ich_fail(ICH_ERR_SHAPE, "%s: count is %d but the table has %d label columns", fn,
                        count, columns);
    if (columns < 1 || columns > ICH_LABELS_MAX_COLUMNS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: the table has %d label columns", fn,
                        columns);
    int64_t positives[ICH_LABELS_MAX_COLUMNS];
    ich_status st = ich_labels_positives(labels, positives, columns);
    if (st != ICH_OK)
        return st;
    int64_t rows = ich_labels_rows(labels);
    for (int32_t c = 0; c < columns; c++) {
        int64_t negatives = rows - positives[c];
        pos_weight[c] = positives[c] > 0 && negatives > 0
                            ? (float)((double)negatives / (double)positives[c])
                            : 1.0f;
    }
    return ICH_OK;
}
