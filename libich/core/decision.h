/* Internal: the one rule that turns a score into a predicted label.
 *
 * Both source documents predict positive when sigmoid(logit) > 0.5. In
 * exact arithmetic that is logit > 0, but in float32 the sigmoid of a tiny
 * positive logit (below about 3e-8) rounds to exactly 0.5, so "logit > 0"
 * and "p > 0.5" disagree there. libich therefore defines the prediction
 * from the float32 probability that ich_model_predict() reports,
 * p = 1 / (1 + expf(-logit)): positive when p > 0.5, so p = 0.5 is
 * negative. Metrics at 0.5, training accuracy, the cascade gate and the
 * report all use these functions, so they can never disagree.
 *
 * Label truth (a label is positive when >= 0.5) and the ROC/Youden
 * thresholds (scikit-learn's p >= t) are different conventions and do not
 * use this rule. */
#ifndef ICH_INTERNAL_DECISION_H
#define ICH_INTERNAL_DECISION_H

#include <math.h>

/* The probability of a logit, as ich_model_predict() computes it. */
static inline float ich_sigmoidf(float logit)
{
    return 1.0f / (1.0f + expf(-logit));
}

/* The decision rule on a probability: strictly above 0.5. */
static inline int ich_predicts_positive(float probability)
{
    return probability > 0.5f;
}

/* The same rule on a logit, through its float32 probability. */
static inline int ich_logit_predicts_positive(float logit)
{
    return ich_predicts_positive(ich_sigmoidf(logit));
}

#endif
