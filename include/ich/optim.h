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
 *  (1 when weight is NULL; n x classes values, e.g. a mask). Computed in
 *  PyTorch's numerically stable form, float32 op by op (no overflow for
 *  any finite logit; targets may be soft). *loss receives the mean
 *  (summed in double); `grad` (may be NULL; n x classes) receives
 *  d loss / d logits = ((p_c y + 1 - y) sigmoid(x) - p_c y) w / (n classes).
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL, n or classes < 1, a non-finite
 *  logit, target or weight: the message names it). */
ICH_API ich_status ich_loss_bce_with_logits(const float *logits, const float *targets, int32_t n,
                                            int32_t classes, const float *pos_weight,
                                            const float *weight, float *loss, float *grad);

/** "Balanced" positive weights from a label table (a value >= 0.5 is a
 *  positive, as ich_labels_positives() counts): pos_weight[c] =
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
    /* ABI: first version up to `nesterov`, 76 bytes on LP64 (today's layout). */
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

/** Fill `options` with the defaults of `kind` (and its size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_optimizer_options_init(ich_optimizer_options *options, ich_optimizer_kind kind);
#define ich_optimizer_options_init(options, kind) \
    ich_optimizer_options_init(ICH_SIZED(options), kind)

/** An optimizer over a model's parameters (opaque). */
typedef struct ich_optimizer ich_optimizer;

/** Create an optimizer for the trainable parameters of `model` (which must
 *  outlive it); NULL options mean Adam's defaults. Its state (zeros, as
 *  PyTorch's lazily created state starts) is allocated here. Frozen
 *  parameters and parameters without a gradient are skipped at each step:
 *  their state, including their own step count (Adam's bias correction),
 *  is kept, as PyTorch skips parameters whose .grad is None. Settings are
 *  checked as PyTorch does (lr, eps, weight decay, momentum >= 0; betas in
 *  [0, 1); Nesterov needs momentum > 0 and dampening 0). Errors:
 *  ICH_ERR_INVALID_ARGUMENT (bad settings), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_optimizer_create(ich_model *model, const ich_optimizer_options *options,
                                        ich_optimizer **out);

/** Free an optimizer. NULL is a no-op. */
ICH_API void ich_optimizer_free(ich_optimizer *optimizer);

/** One update of every unfrozen parameter from its gradient, with
 *  PyTorch's `_single_tensor_adam/adamw/sgd` formulas in float32 (its
 *  fused multiply-adds included): the same weights and gradients give
 *  the same weights bit for bit. Calls ich_model_tensor_changed() for each
 *  updated parameter. */
ICH_API ich_status ich_optimizer_step(ich_optimizer *optimizer);

/** The learning rate now (0 for NULL), and setting it (schedules do;
 *  ICH_ERR_INVALID_ARGUMENT unless finite and >= 0). */
ICH_API double ich_optimizer_lr(const ich_optimizer *optimizer);
/** Set the learning rate (see above). */
ICH_API ich_status ich_optimizer_set_lr(ich_optimizer *optimizer, double lr);

/** Steps taken so far (0 for NULL). */
ICH_API int64_t ich_optimizer_steps(const ich_optimizer *optimizer);

/** The optimizer's state as tensors, for checkpoints, per trainable
 *  parameter in the model's order: Adam(W): "optimizer.<param>.exp_avg",
 *  ".exp_avg_sq" (float32, the parameter's shape) and ".step" (int64,
 *  shape [1]: this parameter's updates); SGD with momentum:
 *  ".momentum_buffer" and ".step"; plain SGD: none. Views as
 *  ich_model_tensor() (name, type, dims, data; grad NULL): writing `data`
 *  restores the state. Valid while the optimizer lives. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (index out of range, view->size too small). */
ICH_API int32_t ich_optimizer_state_count(const ich_optimizer *optimizer);
/** View of state tensor `index` (see above). */
ICH_API ich_status ich_optimizer_state(const ich_optimizer *optimizer, int32_t index,
                                       ich_tensor_view *view);

/** The settings and counters as one line of text ("kind=adam lr=0.001
 *  beta1=0.9 ... nesterov=0 steps=12", doubles with %.17g so that they
 *  read back exactly; valid until the next call), and restoring them from
 *  it: every key must be present, the kind and whether momentum is used
 *  (the state layout) must match; on error nothing changes. Errors:
 *  ICH_ERR_FORMAT (malformed text, a missing key, a bad value),
 *  ICH_ERR_INVALID_ARGUMENT (another kind or state layout). */
ICH_API const char *ich_optimizer_config(const ich_optimizer *optimizer);
/** Restore what ich_optimizer_config() gave (see above). */
ICH_API ich_status ich_optimizer_restore_config(ich_optimizer *optimizer, const char *config);

/** Clip the gradients of the unfrozen parameters so that their global L2
 *  norm is at most max_norm (PyTorch's clip_grad_norm_: the gradients are
 *  multiplied by max_norm / (norm + 1e-6) in float when that is below 1).
 *  *total_norm (may be NULL) receives the norm before clipping (summed in
 *  double). A non-finite norm is logged as a warning and nothing is
 *  clipped. Errors: ICH_ERR_INVALID_ARGUMENT (NULL model, max_norm not
 *  positive and finite). */
ICH_API ich_status ich_clip_grad_norm(ich_model *model, double max_norm, double *total_norm);

/* ---- Learning-rate schedules -------------------------------------------- */

typedef enum ich_schedule_kind {
    ICH_SCHEDULE_PLATEAU = 0, /**< ReduceLROnPlateau: factor, patience, min_lr, mode */
    ICH_SCHEDULE_STEP = 1,    /**< StepLR: every step_size epochs lr *= gamma */
    ICH_SCHEDULE_COSINE = 2   /**< CosineAnnealingLR: t_max epochs down to min_lr */
} ich_schedule_kind;

typedef struct ich_schedule_options {
    /* ABI: first version up to `t_max`, 68 bytes on LP64 (today's layout). */
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

/** Fill `options` with PyTorch's defaults (listed above) and `kind`.
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_schedule_options_init(ich_schedule_options *options, ich_schedule_kind kind);
#define ich_schedule_options_init(options, kind) ich_schedule_options_init(ICH_SIZED(options), kind)

typedef struct ich_schedule ich_schedule;

/** A schedule driving `optimizer`'s learning rate (which must outlive it),
 *  with PyTorch 1.13's semantics and arithmetic, so the learning rates
 *  equal torch's scheduler's: plateau is ReduceLROnPlateau with
 *  threshold_mode "rel", cooldown 0 and eps 1e-8 (a reduction smaller than
 *  1e-8 is skipped); step and cosine use torch's recursive get_lr() from
 *  the optimizer's current lr (cosine goes back up after t_max, as torch's
 *  does). The learning rate at creation is the base. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (factor outside (0, 1), negative patience,
 *  threshold or min_lr, step_size or t_max < 1, gamma <= 0). */
ICH_API ich_status ich_schedule_create(ich_optimizer *optimizer,
                                       const ich_schedule_options *options, ich_schedule **out);
/** Free a schedule. NULL is a no-op. */
ICH_API void ich_schedule_free(ich_schedule *schedule);

/** End of an epoch: update the learning rate (plateau uses `metric`, a NaN
 *  counting as no improvement; the others ignore it). */
ICH_API ich_status ich_schedule_step(ich_schedule *schedule, double metric);

/** Settings and state as one line of text (valid until the next call)
 *  and restoring them from it (the kind must match: else
 *  ICH_ERR_INVALID_ARGUMENT; malformed: ICH_ERR_FORMAT). The optimizer's
 *  lr is restored by ich_optimizer_restore_config(). */
ICH_API const char *ich_schedule_config(const ich_schedule *schedule);
/** Restore what ich_schedule_config() gave (see above). */
ICH_API ich_status ich_schedule_restore_config(ich_schedule *schedule, const char *config);

/* ---- Early stopping ----------------------------------------------------- */

typedef struct ich_early_stopping ich_early_stopping;

/** Stop after `patience` epochs without an improvement of more than
 *  min_delta (absolute) in the metric (lower is better unless maximize);
 *  patience 0 stops at the first epoch without one. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (negative patience or min_delta). */
ICH_API ich_status ich_early_stopping_create(int32_t patience, double min_delta, int maximize,
                                             ich_early_stopping **out);
/** Free it. NULL is a no-op. */
ICH_API void ich_early_stopping_free(ich_early_stopping *early);

/** Record an epoch's metric; *improved (may be NULL) is 1 when it beats
 *  the best so far by more than min_delta (then it becomes the best: save
 *  the weights to restore them later), *stop (may be NULL) is 1 when
 *  `patience` epochs in a row did not. A NaN metric never improves. */
ICH_API ich_status ich_early_stopping_update(ich_early_stopping *early, double metric,
                                             int *improved, int *stop);

/** The best metric so far (NaN before any) and its epoch (0-based; -1
 *  before any; `epoch` may be NULL). */
ICH_API double ich_early_stopping_best(const ich_early_stopping *early, int64_t *epoch);

/** Settings and state as one line of text (valid until the next call)
 *  and restoring them from it. Errors: ICH_ERR_FORMAT. */
ICH_API const char *ich_early_stopping_config(const ich_early_stopping *early);
/** Restore what ich_early_stopping_config() gave (see above). */
ICH_API ich_status ich_early_stopping_restore_config(ich_early_stopping *early,
                                                     const char *config);

/* ---- Checkpoints with training state ------------------------------------ */

/** Save the model (as ich_model_save()) plus the optimizer's state tensors
 *  (named as ich_optimizer_state() names them, "optimizer.<param>.<state>")
 *  and its config (metadata "ich.optimizer"), and `extra` metadata pairs
 *  (keys[i], values[i], count of them; e.g. the schedule and early-stopping
 *  configs, the epoch), which override the model's entries of the same key.
 *  Atomic and fsynced. Errors as ich_model_save(), and
 *  ICH_ERR_INVALID_ARGUMENT for a NULL pair or a reserved key ("format",
 *  "ich.spec", "ich.optimizer"). */
ICH_API ich_status ich_checkpoint_save(const char *path, const ich_model *model,
                                       const ich_optimizer *optimizer, const char *const *keys,
                                       const char *const *values, int32_t count);

/** Load a checkpoint into an existing model and optimizer (same spec, same
 *  kind) so that training continues exactly where it stopped: model
 *  tensors, optimizer state and config, and the metadata (the extra pairs
 *  are readable afterwards with ich_model_metadata()). All or nothing: on
 *  any error the model, its metadata and the optimizer are unchanged.
 *  Errors as ich_model_load(), and ICH_ERR_FORMAT (no "ich.optimizer": not
 *  a checkpoint; a malformed config), ICH_ERR_INVALID_ARGUMENT (the config
 *  is for another optimizer kind), ICH_ERR_NOT_FOUND (a state tensor of
 *  this optimizer is missing, e.g. SGD's momentum in an Adam checkpoint). */
ICH_API ich_status ich_checkpoint_load(const char *path, ich_model *model,
                                       ich_optimizer *optimizer);

#ifdef __cplusplus
}
#endif
#endif /* ICH_OPTIM_H */
