/*
 * libich training driver: epochs over a dataset with validation, a
 * learning-rate schedule, early stopping, checkpoints and progress.
 *
 * The step API is the model's and the optimizer's own calls, the
 * tutorial's loop written in C (examples/tutorial/ shows it):
 *
 *   ich_model_set_training(model, 1);
 *   ich_model_zero_grad(model);
 *   ich_model_forward(model, images, n, logits, n * outputs);
 *   ich_loss_bce_with_logits(logits, labels, n, outputs, pos_weight, NULL, &loss, grad);
 *   ich_model_backward(model, grad, n * outputs);
 *   ich_optimizer_step(optimizer);
 *
 * ich_train() runs that loop for you, epoch after epoch:
 *
 *   for each epoch e (0, 1, ...):
 *     warm-up (e < warmup_epochs): only the `warmup_trainable` parameters
 *       learn, the others are frozen; afterwards the model's own frozen
 *       flags are back;
 *     training: the model in training mode, the dataset's batches of epoch e
 *       (shuffled by (seed, e), so a resumed run sees the same batches);
 *       per batch: zero_grad, forward, BCE-with-logits (pos_weight; for a
 *       cascade model the subtype terms masked by the "any" label), backward,
 *       gradient clipping, optimizer step; the progress callback;
 *     validation (when a validation dataset is given): evaluation mode, the
 *       same loss, no updates;
 *     the schedule steps on the monitored loss (the validation loss, or the
 *       training loss without validation); early stopping records it;
 *     checkpoints: last.safetensors every epoch, best.safetensors when the
 *       monitored loss improved; history.csv;
 *   with early stopping, the model ends with the best epoch's weights.
 *
 * Accuracy is element-wise over the n x labels matrix: a logit predicts 1
 * when its float32 probability 1 / (1 + expf(-logit)) is > 0.5, the rule
 * of the metrics at 0.5 (metrics.h); that is logit > 0 except for logits
 * below about 3e-8, whose probability rounds to 0.5 and which predict 0.
 * A label is positive when >= 0.5. For a cascade model a subtype counts as
 * predicted only where "any" is predicted too, as ich_model_predict() does.
 *
 * Checkpoints are ich_checkpoint_save() files (model, optimizer state) with
 * these metadata entries besides the model's own:
 *   "ich.epoch"          epochs completed (1 after the first)
 *   "ich.history"        the history so far, as history.csv holds it
 *   "ich.schedule"       ich_schedule_config() ("" without a schedule)
 *   "ich.early_stopping" ich_early_stopping_config() ("" without)
 *   "ich.metrics"        the epoch's row as JSON
 * Resuming (options.resume) loads such a file into the model and the
 * optimizer, restores the schedule, early stopping and history, and goes on
 * at the next epoch: with one thread and a fixed seed, 2 epochs in one run
 * give the same weights, bit for bit, as 1 epoch, then a resumed run to 2.
 *
 * Cascade models (ich_model_cascade_stages() == 2: stage one "any", stage
 * two the subtypes, each its own branch) are trained in their stages' turn
 * by default (options.staged -1 or 1), the RSNA pipeline's recipe:
 *
 *   stage one: ich_model_set_active_stage(model, 0): only the "any" branch
 *     runs; the loss is the BCE of the "any" column alone over every image;
 *   stage two: active stage 1: the subtype columns alone, on the images
 *     whose "any" label is positive only (ich_dataset_set_positive_only()
 *     on the training and validation datasets; a validation set without
 *     positives is not used in that stage);
 *   each stage, for its stage_epochs (or `epochs`): the first warmup_epochs
 *     with only the stage's head learning (the last parameterised layer
 *     under the stage's prefix, e.g. "any.classifier.1.", unless
 *     warmup_trainable says), then the whole stage at finetune_lr_factor x
 *     the stage's starting learning rate (the optimizer's at the start of
 *     the run) with a fresh schedule; parameters outside the stage stay
 *     frozen (the model's own frozen flags apply within it; frozen layers'
 *     batch-norm running statistics still follow the data in training
 *     mode, as with any warm-up, PyTorch's requires_grad=False); class weights
 *     (pos_weight or balanced, the latter counted over the stage's images)
 *     over the stage's columns; the schedule, early stopping and the best
 *     weights start afresh with the stage's learning rate; early stopping
 *     ends the stage (not the run); with restore_best the stage ends with
 *     its best epoch's weights (with or without early stopping).
 *   Epochs are numbered on through both stages; each history row records
 *   its stage (ich_epoch_stats.stage, the "stage" column of history.csv,
 *   which only staged runs have); ich_history_best_epoch() is the best of
 *   the last stage (losses of different stages are not comparable); the
 *   progress reports say the stage. best.safetensors is written when the
 *   stage's monitored loss improves, so in stage two it holds stage one's
 *   best "any" branch too. The checkpoints hold both stages (one model)
 *   and the metadata "ich.stage" = "stage=S start=E lr=LR" (the stage of
 *   the next epoch, its first epoch, the starting learning rate): resuming
 *   goes on in that stage, in it, as the uninterrupted run would.
 *   The model ends with both stages active (-1), the datasets with the
 *   restriction they had.
 * options.staged = 0 trains a cascade as before: both branches in every
 * step, the subtype terms masked by the "any" label (cascade_mask).
 *
 * Distributed training (<ich/dist.h>): in a process an MPI launcher
 * started as one of N ranks (mpirun -np N, srun), ich_train() trains
 * data-parallel. Every rank calls it with the same arguments: the same
 * model (spec and seed), optimizer, datasets over the same images and
 * labels (same batch size, seed and augmentation), and options.
 *   - Each epoch's order is the one a single process uses (shuffled by
 *     (seed, epoch)); the training dataset's batch_size is the global
 *     batch, and each batch of n samples is split over the ranks: rank r
 *     takes the samples [ceil(r n / N), ceil((r + 1) n / N)).
 *   - After each rank's backward pass, one allreduce sums the ranks'
 *     gradients, each scaled by its share (n_r / n), so that every rank
 *     steps with the gradient of the mean loss over the whole global batch,
 *     as one process does (a short last batch, an uneven split or images
 *     that failed to load count exactly); clipping and the optimizer step
 *     then run alike on every rank. The allreduce runs once, after the
 *     backward pass, not in buckets overlapped with it.
 *   - The weights start as rank 0's (a fresh run; a resumed one from the
 *     checkpoint every rank read, compared), and every epoch ends with a
 *     checksum of each rank's weights and buffers compared with rank 0's:
 *     a difference fails the run (ICH_ERR_INTERNAL, naming the ranks).
 *   - Validation: each rank evaluates its share of every batch; the loss
 *     and accuracy sums are summed over the ranks, so the history, the
 *     schedule and early stopping see the union, identically on every
 *     rank.
 *   - Rank 0 alone writes checkpoint_dir (checkpoints, written atomically
 *     as always, and history.csv) and calls the progress callback (the
 *     validation pass reports once, at its end, with the union's
 *     figures). Every rank returns the same history.
 *   - Resuming: every rank reads the resume file (put it where every
 *     machine sees it); the number of ranks may differ from the run that
 *     wrote it.
 *   - Batch norm: each rank normalises with its own share's batch
 *     statistics (PyTorch DistributedDataParallel's default, not
 *     SyncBatchNorm), and after each step every rank takes rank 0's
 *     running statistics (DDP's broadcast_buffers). With batch norm the
 *     weights are therefore DDP's, not those of one process with the same
 *     global batch; without it they are one process's up to rounding.
 *   - Randomness: augmentation is drawn per image from (seed, epoch, row),
 *     the same on any number of ranks; dropout and stochastic depth draw
 *     their masks by a sample's place in the rank's share, so their masks
 *     differ from those one process draws for the same images (equally
 *     random, not the same).
 *   - Failures: a rank whose ich_train() fails returns the error and, at
 *     its exit, ends every rank (ich_dist_mark_failed()); stopping it from
 *     the progress callback (rank 0) does the same. A rank that dies is
 *     noticed by the launcher, which ends the others; one that hangs ends
 *     them after ICH_DIST_TIMEOUT seconds (default 300). The finished
 *     checkpoints stay whole.
 * A process launched as several ranks whose communicator cannot start
 * fails ich_train() with the reason (<ich/dist.h>). ich_evaluate() is not
 * distributed: each rank evaluates the whole dataset.
 *
 * Threads: ich_train() runs on the calling thread (the kernels use
 * ich_set_threads() threads, the datasets their workers); the model,
 * optimizer and datasets must not be used elsewhere meanwhile. A history is
 * used by one thread at a time.
 */
#ifndef ICH_TRAIN_H
#define ICH_TRAIN_H

#include "ich/core.h"
#include "ich/dataset.h"
#include "ich/model.h"
#include "ich/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- History ------------------------------------------------------------ */

/** One epoch of a training run. Set `size` to sizeof(ich_epoch_stats)
 *  before ich_history_get(). */
typedef struct ich_epoch_stats {
    /* ABI: first version up to `seconds`, 64 bytes on LP64 (today's layout). */
    size_t size;
    int32_t epoch;         /**< 0-based */
    double train_loss;     /**< mean loss over the epoch's training samples */
    double train_accuracy; /**< element-wise, p > 0.5 predicts 1 */
    double val_loss;       /**< NaN without validation */
    double val_accuracy;   /**< NaN without validation */
    double lr;             /**< learning rate used in the epoch */
    double seconds;        /**< wall time of the epoch, validation included */
    /* Later fields (sizes above the first version's): */
    int32_t stage;         /**< a staged cascade run's stage of the epoch (0 "any",
                                1 subtypes), -1 otherwise */
} ich_epoch_stats;

/** The per-epoch history of a run (opaque). */
typedef struct ich_history ich_history;

/** Free a history. NULL is a no-op. */
ICH_API void ich_history_free(ich_history *history);

/** Number of epochs in the history (0 for NULL). */
ICH_API int32_t ich_history_length(const ich_history *history);

/** Row `index` (0 .. length-1) into `stats` (its `size` set by the caller).
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL, index out of range, size too
 *  small). */
ICH_API ich_status ich_history_get(const ich_history *history, int32_t index,
                                   ich_epoch_stats *stats);

/** The epoch with the lowest monitored loss (validation loss when there is
 *  one, else training loss; in a staged run among the last stage's epochs),
 *  -1 for an empty history; and whether the run
 *  ended by early stopping (ich_history_stopped_early(): 1 or 0). */
ICH_API int32_t ich_history_best_epoch(const ich_history *history);
/** 1 when early stopping ended the run (see above). */
ICH_API int ich_history_stopped_early(const ich_history *history);

/** Write the history as CSV, atomically: the header
 *  "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds" (and
 *  ",stage" when the run was staged) and one row per epoch (val_* empty
 *  without validation). Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_IO. */
ICH_API ich_status ich_history_write_csv(const ich_history *history, const char *path);

/* ---- Progress ----------------------------------------------------------- */

/** What a progress report is about. */
typedef enum ich_train_phase {
    ICH_TRAIN_PHASE_TRAIN = 0,    /**< after a training batch */
    ICH_TRAIN_PHASE_VALIDATE = 1, /**< after a validation batch */
    ICH_TRAIN_PHASE_EPOCH = 2     /**< the epoch is over: `stats` holds its row */
} ich_train_phase;

/** A progress report (valid during the callback only). */
typedef struct ich_train_progress {
    /* ABI: first version up to `stats`, 72 bytes on LP64 (today's layout). */
    size_t size;          /**< sizeof(ich_train_progress) of the library */
    int32_t phase;        /**< ich_train_phase */
    int32_t epoch;        /**< 0-based */
    int32_t epochs;       /**< the run's total (options.epochs) */
    int64_t batch;        /**< batches done in this phase, 1 .. batches */
    int64_t batches;      /**< batches of this phase in the epoch */
    double loss;          /**< running mean loss of the phase so far */
    double accuracy;      /**< running element-wise accuracy */
    double elapsed;       /**< seconds since the epoch began */
    const ich_epoch_stats *stats; /**< phase EPOCH only, else NULL */
    /* Later fields (a caller's callback reads them only when `size` says
     * they are there): */
    int32_t stage;        /**< a staged cascade run's stage (0 "any", 1 subtypes),
                               -1 otherwise */
    int32_t stages;       /**< 2 in a staged cascade run, else 0 */
} ich_train_progress;

/** Called after every batch and at the end of every epoch, on the thread
 *  that called ich_train(). Return 0 to go on, non-zero to stop: ich_train()
 *  then returns ICH_ERR_CANCELLED (the checkpoints of finished epochs
 *  stay). */
typedef int (*ich_train_progress_fn)(void *user, const ich_train_progress *progress);

/* ---- Training ----------------------------------------------------------- */

/** Options of ich_train(). Set `size` to sizeof(ich_train_options);
 *  ich_train_options_init() fills the defaults given here. */
typedef struct ich_train_options {
    /* ABI: first version up to `progress_user`, 120 bytes on LP64. */
    size_t size;
    int32_t epochs;               /**< total epochs of the run, counting those a
                                       resumed checkpoint already did (default 10);
                                       staged: the epochs of each stage unless
                                       stage_epochs says */
    const float *pos_weight;      /**< positive weight per label (as many as the
                                       model's outputs, in their order); NULL: 1
                                       each (default) */
    int32_t balanced;             /**< 1: pos_weight from the training labels with
                                       ich_class_weights_balanced() (default 0) */
    double clip_norm;             /**< > 0: clip the global gradient L2 norm to it
                                       (ich_clip_grad_norm()); default 0: off */
    const ich_schedule_options *schedule; /**< NULL: ReduceLROnPlateau with factor
                                       0.1, patience 3, the rest PyTorch's */
    int32_t constant_lr;          /**< 1: no schedule at all (default 0) */
    int32_t patience;             /**< early stopping after this many epochs without
                                       improvement; 0: off (default) */
    double min_delta;             /**< improvement needed (absolute; default 0) */
    int32_t restore_best;         /**< with early stopping, end with the weights of
                                       the best epoch (default 1) */
    int32_t warmup_epochs;        /**< first epochs with the model mostly frozen
                                       (default 0); staged: the first epochs of
                                       each stage */
    const char *warmup_trainable; /**< during warm-up only the parameters whose
                                       names start with this prefix learn (e.g.
                                       "fc2."); NULL: those of the last layer (the
                                       last parameter's name up to its last '.'),
                                       for a cascade the last layer of each stage
                                       (staged: of the stage trained) */
    int32_t cascade_mask;         /**< -1 (default): mask the subtype loss by the
                                       "any" label for cascade models (spec with a
                                       "cascade" block); 1: always; 0: never */
    const char *checkpoint_dir;   /**< folder for best.safetensors,
                                       last.safetensors and history.csv (created);
                                       NULL: none (default) */
    const char *resume;           /**< checkpoint to continue from; NULL: a fresh
                                       run (default) */
    ich_train_progress_fn progress; /**< NULL: none */
    void *progress_user;
    /* Later fields: a cascade model's stages (see "Cascade models" above). */
    int32_t staged;               /**< -1 (default): train a cascade model's stages in
                                       turn, any other model as before; 0: joint
                                       training of a cascade (both stages in every
                                       step, the cascade_mask loss: the behaviour
                                       before staging); 1: staged, refused for a
                                       model without stages */
    int32_t stage_epochs[2];      /**< staged: epochs of stage one ("any") and stage
                                       two (subtypes); 0 (default): `epochs` each;
                                       -1: skip the stage (e.g. train stage two of a
                                       model whose stage one is trained) */
    double finetune_lr_factor;    /**< staged, with warm-up: after a stage's
                                       warm-up epochs the learning rate becomes this
                                       times the stage's starting rate (default 0.1;
                                       1 keeps it; > 0) */
} ich_train_options;

/** Fill `options` with the defaults (and its size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_train_options_init(ich_train_options *options);
#define ich_train_options_init(options) ich_train_options_init(ICH_SIZED(options))

/** Train `model` with `optimizer` (created for that model) on the batches
 *  of `train`, validating on `val` (may be NULL), as this header's
 *  introduction describes. The datasets' sample shape must equal the
 *  model's input shape. Their label columns are matched to the model's
 *  labels by name (labels.h, "Matching a model's labels") when the model
 *  has names: its "ich.labels" (when resuming, the checkpoint's, which
 *  loading it puts in the model), or, when resuming, the six RSNA labels
 *  for a 6-output model without them; each batch's labels are then put in the
 *  model's output order (the datasets are not changed). A model without
 *  names (a new one) takes the training dataset's columns in their order,
 *  so only their count must equal its outputs. The model is
 *  left in evaluation mode. *history (may be NULL) receives the run's
 *  history (with a resumed run's earlier epochs first); free it with
 *  ich_history_free(). options may be NULL for the defaults. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, bad option), ICH_ERR_CANCELLED (the
 *  progress callback returned non-zero, or the thread's cancel check,
 *  ich_set_cancel_check(), did within a batch), ICH_ERR_SHAPE
 *  (model and dataset do not fit: the message gives both shapes, or the
 *  dataset's label columns and the model's labels),
 *  ICH_ERR_NOT_FOUND (warm-up prefix matches nothing; resume file missing),
 *  ICH_ERR_IO (checkpoints), ICH_ERR_FORMAT (a resume file without training
 *  state, or one of a staged run resumed joint or the reverse), and those
 *  of the model, optimizer and dataset calls; staged: ICH_ERR_INVALID_ARGUMENT
 *  also for staged = 1 on a model without stages, and for training data
 *  without any "any"-positive image for stage two; distributed runs
 *  ("Distributed training" above): those of ich_dist_describe() when the
 *  communicator cannot start, ICH_ERR_INTERNAL when the ranks' weights
 *  differ, ICH_ERR_IO when MPI fails. */
ICH_API ich_status ich_train(ich_model *model, ich_optimizer *optimizer, ich_dataset *train,
                             ich_dataset *val, const ich_train_options *options,
                             ich_history **history);

/** Evaluate `model` on every batch of `dataset` (epoch 0 order, evaluation
 *  mode): *loss (may be NULL) the mean BCE-with-logits loss with pos_weight
 *  (NULL: 1 each) and the cascade mask as ich_train()'s joint training
 *  applies it (mask -1, 0, 1 as options.cascade_mask), *accuracy (may be
 *  NULL) the element-wise accuracy. For a cascade model the loss comes from
 *  the logits of ich_model_forward(), which are not gated (only
 *  ich_model_predict() gates the subtypes by P(any)), over all columns: the
 *  "any" term of every image and the subtype terms of the images whose
 *  "any" label is positive; the model's active stage is used as it is set
 *  (ich_train() leaves -1, both). The accuracy gates: a subtype counts as
 *  predicted only where "any" is predicted too. The label columns are matched as ich_train() matches them
 *  without resuming: by name when the model has "ich.labels" (pos_weight is
 *  in the model's output order). Errors as ich_train(). */
ICH_API ich_status ich_evaluate(ich_model *model, ich_dataset *dataset, const float *pos_weight,
                                int32_t cascade_mask, double *loss, double *accuracy);

/** ich_evaluate() that reports after every batch: `progress` (may be NULL:
 *  ich_evaluate() itself) is called on the calling thread with phase
 *  ICH_TRAIN_PHASE_VALIDATE, epoch 0 of 1, the batch count and the running
 *  loss and accuracy. Returning non-zero stops the pass: ICH_ERR_CANCELLED,
 *  and *loss and *accuracy are left as they were. Errors as ich_evaluate(). */
ICH_API ich_status ich_evaluate_with_progress(ich_model *model, ich_dataset *dataset,
                                              const float *pos_weight, int32_t cascade_mask,
                                              ich_train_progress_fn progress,
                                              void *progress_user, double *loss,
                                              double *accuracy);

#ifdef __cplusplus
}
#endif
#endif /* ICH_TRAIN_H */
