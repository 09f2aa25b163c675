/*
 * libich training pieces: the loss, optimizers, learning-rate schedules,
 * early stopping, gradient clipping and checkpoints with optimizer state.
 *
 * The loss is BCE-with-logits averaged over every element (PyTorch's
 * BCEWithLogitsLoss(reduction="mean")), with optional per-class positive
 * weights (pos_weight) and per-element weights. Adam, AdamW and SGD with
 * momentum follow PyTorch 1.13's torch.optim semantics exactly (bias
 * correction, where eps is added, decoupled vs L2 weight decay, dampening,
 * Nesterov), so the same weights, gradients and settings give the same
 * updated weights within float rounding.
 *
 * Threads: an optimizer, schedule or early-stopping object is used by one
 * thread at a time, with its model.
 */
#ifndef ICH_OPTIM_H
#define ICH_OPTIM_H

#include "ich/core.h"
#include "ich/model.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ich_labels;

/* ---- Loss --------------------------------------------------------------- */

/** BCE-with-logits, mean over n x classes elements:
 *    l = -w * [p_c * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x))]
 *  with p_c = pos_weight[c] (1 when pos_weight is NULL) and w = weight[i]
 *  (1 when weight is NULL; n x classes values, e.g. a mask). Computed in a
 *  numerically stable form. *loss receives the mean; `grad` (may be NULL;
 *  n x classes) receives d loss / d logits. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, n or classes < 1, non-finite input). */
ICH_API ich_status ich_loss_bce_with_logits(const float *logits, const float *targets, int32_t n,
                                            int32_t classes, const float *pos_weight,
                                            const float *weight, float *loss, float *grad);

/** "Balanced" positive weights from a label table: pos_weight[c] =
 *  negatives[c] / positives[c] (1 when a class has no positives or no
 *  negatives), for the `count` = ich_labels_columns() classes. Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_SHAPE. */
ICH_API ich_status ich_class_weights_balanced(const struct ich_labels *labels,
                                              float *pos_weight, int32_t count);

/* ---- Optimizers --------------------------------------------------------- */

typedef enum ich_optimizer_kind {
    ICH_OPTIM_SGD = 0,
    ICH_OPTIM_ADAM = 1,
    ICH_OPTIM_ADAMW = 2
} ich_optimizer_kind;

/** Optimizer settings. Set `size`; ich_optimizer_options_init() fills
 *  PyTorch's defaults for the kind. */
typedef struct ich_optimizer_options {
    size_t size;
    int32_t kind;          /**< ich_optimizer_kind */
    double lr;             /**< SGD: no default in PyTorch, here 0.01; Adam(W): 1e-3 */
    double beta1, beta2;   /**< Adam(W): 0.9, 0.999 */
    double eps;            /**< Adam(W): 1e-8 */
    double weight_decay;   /**< Adam, SGD: 0 (L2, added to the gradient); AdamW: 0.01 (decoupled) */
    double momentum;       /**< SGD: 0 */
    double dampening;      /**< SGD: 0 */
    int32_t nesterov;      /**< SGD: 0 */
} ich_optimizer_options;

/** Fill `options` with the defaults of `kind` (and its size). */
ICH_API void ich_optimizer_options_init(ich_optimizer_options *options, ich_optimizer_kind kind);

/** An optimizer over a model's parameters (opaque). */
typedef struct ich_optimizer ich_optimizer;

/** Create an optimizer for the trainable parameters of `model` (which must
 *  outlive it). Frozen parameters are skipped at each step (their state is
 *  kept). Errors: ICH_ERR_INVALID_ARGUMENT (bad settings), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_optimizer_create(ich_model *model, const ich_optimizer_options *options,
                                        ich_optimizer **out);

/** Free an optimizer. NULL is a no-op. */
ICH_API void ich_optimizer_free(ich_optimizer *optimizer);

/** One update of every unfrozen parameter from its gradient. */
ICH_API ich_status ich_optimizer_step(ich_optimizer *optimizer);

/** The learning rate now, and setting it (schedules do). */
ICH_API double ich_optimizer_lr(const ich_optimizer *optimizer);
ICH_API ich_status ich_optimizer_set_lr(ich_optimizer *optimizer, double lr);

/** Steps taken so far. */
ICH_API int64_t ich_optimizer_steps(const ich_optimizer *optimizer);

/** The optimizer's state as tensors (Adam: "optimizer.<param>.exp_avg" and
 *  ".exp_avg_sq"; SGD with momentum: ".momentum_buffer"), for checkpoints.
 *  Views as ich_model_tensor(). */
ICH_API int32_t ich_optimizer_state_count(const ich_optimizer *optimizer);
ICH_API ich_status ich_optimizer_state(const ich_optimizer *optimizer, int32_t index,
                                       ich_tensor_view *view);

/** The settings and counters (kind, lr, betas, eps, weight decay,
 *  momentum, steps) as one line of text, and restoring them from it (the
 *  kind must match). Errors: ICH_ERR_FORMAT (malformed text),
 *  ICH_ERR_INVALID_ARGUMENT (another kind). */
ICH_API const char *ich_optimizer_config(const ich_optimizer *optimizer);
ICH_API ich_status ich_optimizer_restore_config(ich_optimizer *optimizer, const char *config);

/** Clip the gradients of the unfrozen parameters so that their global L2
 *  norm is at most max_norm (PyTorch's clip_grad_norm_). *total_norm (may
 *  be NULL) receives the norm before clipping. */
ICH_API ich_status ich_clip_grad_norm(ich_model *model, double max_norm, double *total_norm);

/* ---- Learning-rate schedules -------------------------------------------- */

typedef enum ich_schedule_kind {
    ICH_SCHEDULE_PLATEAU = 0, /**< ReduceLROnPlateau: factor, patience, min_lr, mode */
    ICH_SCHEDULE_STEP = 1,    /**< StepLR: every step_size epochs lr *= gamma */
    ICH_SCHEDULE_COSINE = 2   /**< CosineAnnealingLR: t_max epochs down to min_lr */
} ich_schedule_kind;

typedef struct ich_schedule_options {
    size_t size;
    int32_t kind;        /**< ich_schedule_kind */
    double factor;       /**< plateau: 0.1 */
    int32_t patience;    /**< plateau: 10 */
    double threshold;    /**< plateau: 1e-4 (relative, as PyTorch's default "rel") */
    double min_lr;       /**< plateau, cosine: 0 */
    int32_t maximize;    /**< plateau: 0 (metric is a loss: lower is better) */
    int32_t step_size;   /**< step: 10 */
    double gamma;        /**< step: 0.1 */
    int32_t t_max;       /**< cosine: 10 */
} ich_schedule_options;

ICH_API void ich_schedule_options_init(ich_schedule_options *options, ich_schedule_kind kind);

typedef struct ich_schedule ich_schedule;

/** A schedule driving `optimizer`'s learning rate. */
ICH_API ich_status ich_schedule_create(ich_optimizer *optimizer,
                                       const ich_schedule_options *options, ich_schedule **out);
ICH_API void ich_schedule_free(ich_schedule *schedule);

/** End of an epoch: update the learning rate (plateau uses `metric`, the
 *  others ignore it). */
ICH_API ich_status ich_schedule_step(ich_schedule *schedule, double metric);

/** State as text and restoring it (for resuming). */
ICH_API const char *ich_schedule_config(const ich_schedule *schedule);
ICH_API ich_status ich_schedule_restore_config(ich_schedule *schedule, const char *config);

/* ---- Early stopping ----------------------------------------------------- */

typedef struct ich_early_stopping ich_early_stopping;

/** Stop after `patience` epochs without an improvement of more than
 *  min_delta (absolute) in the metric (lower is better unless maximize). */
ICH_API ich_status ich_early_stopping_create(int32_t patience, double min_delta, int maximize,
                                             ich_early_stopping **out);
ICH_API void ich_early_stopping_free(ich_early_stopping *early);

/** Record an epoch's metric; *improved is 1 when it is the best so far,
 *  *stop is 1 when training should stop. */
ICH_API ich_status ich_early_stopping_update(ich_early_stopping *early, double metric,
                                             int *improved, int *stop);

/** The best metric so far and its epoch (0-based; -1 before any). */
ICH_API double ich_early_stopping_best(const ich_early_stopping *early, int64_t *epoch);

/** State as text and restoring it (for resuming). */
ICH_API const char *ich_early_stopping_config(const ich_early_stopping *early);
ICH_API ich_status ich_early_stopping_restore_config(ich_early_stopping *early,
                                                     const char *config);

/* ---- Checkpoints with training state ------------------------------------ */

/** Save the model (as ich_model_save()) plus the optimizer's state tensors
 *  and its config (metadata "ich.optimizer"), and `extra` metadata pairs
 *  (keys[i], values[i], count of them; e.g. the schedule and early-stopping
 *  configs, the epoch). Atomic and fsynced. Errors as ich_model_save(). */
ICH_API ich_status ich_checkpoint_save(const char *path, const ich_model *model,
                                       const ich_optimizer *optimizer, const char *const *keys,
                                       const char *const *values, int32_t count);

/** Load a checkpoint into an existing model and optimizer (same spec, same
 *  kind) so that training continues exactly where it stopped. The extra
 *  metadata is readable afterwards with ich_model_metadata(). Errors as
 *  ich_model_load(). */
ICH_API ich_status ich_checkpoint_load(const char *path, ich_model *model,
                                       ich_optimizer *optimizer);

#ifdef __cplusplus
}
#endif
#endif /* ICH_OPTIM_H */
