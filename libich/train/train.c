/* The training driver: epochs of forward, loss, backward and optimizer
 * steps over a dataset, with validation, a schedule, early stopping,
 * warm-up, checkpoints and resuming (see include/ich/train.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/decision.h"
#include "core/error.h"
#include "core/options.h"
#include "data/dataset_internal.h"
#include "dist/comm.h"
#include "nn/label_match.h"
#include "nn/safetensors.h"
#include "nn/model_internal.h"
#include "train/dist_train.h"
#include "train/train_internal.h"

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void (ich_train_options_init)(ich_train_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_train_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->epochs = 10;
    options->restore_best = 1;
    options->cascade_mask = -1;
    options->staged = -1;
    options->finetune_lr_factor = 0.1;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_train_options, progress_user));
}

/* ---- The loss of one batch ---------------------------------------------- */

/* What every pass needs: the model's shape, the loss settings, buffers. */
typedef struct loss_setup {
    ich_model *model;
    int32_t outputs;
    const float *pos_weight; /* NULL: 1 */
    int cascade;             /* mask the subtype terms by the "any" label */
    int32_t any;             /* the "any" column */
    int32_t first, count;    /* the columns the loss covers: 0 and outputs, or a
                                cascade stage's (staged training) */
    float *images, *labels, *logits, *grad, *mask;
    float *part_logits, *part_labels, *part_grad; /* a stage's columns */
    int32_t capacity;        /* samples the buffers hold */
    size_t sample_floats;
    ich_train_dist *dist;    /* ich_train() over several ranks; NULL: one process */
} loss_setup;

/* A dataset's label columns in the model's output order: row[c] of a batch
 * the model sees is the dataset's column map[c] (nn/label_match.h). */
typedef struct label_map {
    int permute; /* 0: the dataset's order is the model's */
    int32_t map[ICH_LABELS_MAX_COLUMNS];
} label_map;

/* Put each of the n label rows in the model's order. */
static void apply_map(const label_map *m, float *labels, int32_t n, int32_t outputs)
{
    float row[ICH_LABELS_MAX_COLUMNS];
    for (int32_t i = 0; m && m->permute && i < n; i++) {
        float *y = labels + (size_t)i * outputs;
        for (int32_t c = 0; c < outputs; c++)
            row[c] = y[m->map[c]];
        memcpy(y, row, (size_t)outputs * sizeof *y);
    }
}

static double sums_loss(const pass_sums *s)
{
    return s->samples ? s->loss / (double)s->samples : NAN;
}

static double sums_accuracy(const pass_sums *s)
{
    return s->elements ? (double)s->correct / (double)s->elements : NAN;
}

/* A spec holds a "cascade" block when the word "cascade" is followed by
 * "(" (the spec grammar's cascade item). */
static int spec_is_cascade(const char *spec)
{
    for (const char *p = spec ? strstr(spec, "cascade") : NULL; p; p = strstr(p + 1, "cascade")) {
        if (p > spec && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '.'))
            continue;
        const char *q = p + strlen("cascade");
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '(')
            return 1;
    }
    return 0;
}

/* The cascade's per-element weights: the "any" term always counts, the
 * subtype terms only where the sample's "any" label is 1. */
static void cascade_mask(const loss_setup *s, const float *labels, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        float any = labels[(size_t)i * s->outputs + s->any] >= 0.5f ? 1.0f : 0.0f;
        for (int32_t c = 0; c < s->outputs; c++)
            s->mask[(size_t)i * s->outputs + c] = c == s->any ? 1.0f : any;
    }
}

/* Element-wise right predictions (the float32 probability > 0.5 predicts 1,
 * the rule of core/decision.h that the metrics use too; for a cascade a
 * subtype only where "any" is predicted too). */
static int64_t count_correct(const loss_setup *s, const float *logits, const float *labels,
                             int32_t n)
{
    int64_t correct = 0;
    for (int32_t i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * s->outputs, *y = labels + (size_t)i * s->outputs;
        int any_fires = ich_logit_predicts_positive(x[s->any]);
        for (int32_t c = 0; c < s->outputs; c++) {
            int predicted = ich_logit_predicts_positive(x[c]) &&
                            (!s->cascade || c == s->any || any_fires);
            correct += predicted == (y[c] >= 0.5f);
        }
    }
    return correct;
}

/* The loss of a stage's columns [first, first + count) alone: their mean
 * BCE (pos_weight's entries of those columns), the gradient 0 in the other
 * columns, and the element-wise accuracy over those columns (no gating:
 * the other stage's logits are 0 while one stage trains). */
static ich_status stage_loss(const loss_setup *s, int32_t n, float *grad, pass_sums *sums)
{
    const int32_t k = s->count;
    for (int32_t i = 0; i < n; i++)
        for (int32_t c = 0; c < k; c++) {
            s->part_logits[(size_t)i * k + c] = s->logits[(size_t)i * s->outputs + s->first + c];
            s->part_labels[(size_t)i * k + c] = s->labels[(size_t)i * s->outputs + s->first + c];
        }
    float loss = 0;
    ich_status st = ich_loss_bce_with_logits(s->part_logits, s->part_labels, n, k,
                                             s->pos_weight ? s->pos_weight + s->first : NULL,
                                             NULL, &loss, grad ? s->part_grad : NULL);
    if (st)
        return st;
    if (grad) {
        memset(grad, 0, (size_t)n * s->outputs * sizeof *grad);
        for (int32_t i = 0; i < n; i++)
            for (int32_t c = 0; c < k; c++)
                grad[(size_t)i * s->outputs + s->first + c] = s->part_grad[(size_t)i * k + c];
    }
    sums->loss += (double)loss * n;
    sums->samples += n;
    for (size_t e = 0; e < (size_t)n * k; e++)
        sums->correct += ich_logit_predicts_positive(s->part_logits[e]) ==
                         (s->part_labels[e] >= 0.5f);
    sums->elements += (int64_t)n * k;
    return ICH_OK;
}

/* Loss (and its gradient when `grad`) of n samples, added to `sums`. */
static ich_status batch_loss(const loss_setup *s, int32_t n, float *grad, pass_sums *sums)
{
    if (s->count < s->outputs)
        return stage_loss(s, n, grad, sums);
    if (s->cascade)
        cascade_mask(s, s->labels, n);
    float loss = 0;
    ich_status st = ich_loss_bce_with_logits(s->logits, s->labels, n, s->outputs, s->pos_weight,
                                             s->cascade ? s->mask : NULL, &loss, grad);
    if (st)
        return st;
    sums->loss += (double)loss * n;
    sums->samples += n;
    sums->correct += count_correct(s, s->logits, s->labels, n);
    sums->elements += (int64_t)n * s->outputs;
    return ICH_OK;
}

/* ---- Setting up: shapes, buffers ---------------------------------------- */

/* The dataset fits the model's input, and its label columns are matched
 * to the model's labels by name when the model has names ("ich.labels", or
 * the RSNA six when `assume_rsna`); without names, by count only, as a new
 * model takes the dataset's labels as they come. */
static ich_status check_fit(ich_model *model, ich_dataset *ds, const char *which,
                            int assume_rsna, label_map *lm)
{
    int32_t mc = 0, mr = 0, mw = 0, dc = 0, dr = 0, dw = 0, dl = 0;
    ich_status st = ich_model_input_shape(model, &mc, &mr, &mw);
    if (!st)
        st = ich_dataset_sample_shape(ds, &dc, &dr, &dw, &dl);
    if (st)
        return st;
    if (mc != dc || mr != dr || mw != dw)
        return ich_fail(ICH_ERR_SHAPE,
                        "ich_train: the model's input is %dx%dx%d (channels x rows x columns) "
                        "but the %s dataset's samples are %dx%dx%d: make the dataset's window "
                        "recipe (windows, size) match the model",
                        mc, mr, mw, which, dc, dr, dw);
    char source[64];
    snprintf(source, sizeof source, "ich_train: the %s dataset", which);
    int named = 0;
    st = ich_labels_map_if_named(ich_dataset_labels(ds), model, source, assume_rsna, lm->map,
                                 &named);
    lm->permute = 0;
    for (int32_t c = 0; !st && c < dl; c++)
        lm->permute |= lm->map[c] != c;
    return st;
}

static void setup_free(loss_setup *s)
{
    if (s->images)
        ich_model_host_free(s->model, s->images);
    free(s->labels);
    free(s->logits);
    free(s->grad);
    free(s->mask);
    free(s->part_logits);
    free(s->part_labels);
    free(s->part_grad);
    memset(s, 0, sizeof *s);
}

/* Buffers for batches of up to `capacity` samples. */
static ich_status setup_init(loss_setup *s, ich_model *model, ich_dataset *ds,
                             const label_map *lm, int32_t capacity, const float *pos_weight,
                             int32_t mask_option)
{
    memset(s, 0, sizeof *s);
    s->model = model;
    s->outputs = ich_model_outputs(model);
    s->first = 0;
    s->count = s->outputs;
    s->pos_weight = pos_weight;
    s->cascade = mask_option < 0 ? spec_is_cascade(ich_model_spec(model)) : mask_option != 0;
    int32_t any = ich_labels_find_column(ich_dataset_labels(ds), "any");
    s->any = any >= 0 && any < s->outputs ? any : 0;
    for (int32_t c = 0; lm->permute && any >= 0 && c < s->outputs; c++)
        if (lm->map[c] == any)
            s->any = c; /* the model's column of the dataset's "any" */
    s->capacity = capacity;
    int32_t channels = 0, rows = 0, columns = 0;
    ich_dataset_sample_shape(ds, &channels, &rows, &columns, NULL);
    s->sample_floats = (size_t)channels * (size_t)rows * (size_t)columns;
    size_t outs = (size_t)capacity * (size_t)s->outputs;
    /* pinned on a GPU: each batch goes to the device as a plain DMA */
    s->images = ich_model_host_alloc(model, (size_t)capacity * s->sample_floats * sizeof(float));
    s->labels = malloc(outs * sizeof(float));
    s->logits = malloc(outs * sizeof(float));
    s->grad = malloc(outs * sizeof(float));
    s->mask = malloc(outs * sizeof(float));
    s->part_logits = malloc(outs * sizeof(float));
    s->part_labels = malloc(outs * sizeof(float));
    s->part_grad = malloc(outs * sizeof(float));
    if (!s->images || !s->labels || !s->logits || !s->grad || !s->mask || !s->part_logits ||
        !s->part_labels || !s->part_grad) {
        setup_free(s);
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_train: out of memory for batches of %d",
                        capacity);
    }
    return ICH_OK;
}

/* ---- One pass over a dataset --------------------------------------------- */

typedef struct pass_report {
    ich_train_progress_fn fn;
    void *user;
    int32_t epoch, epochs;
    double start;     /* the epoch's start */
    const char *what; /* the public call, for the message */
    int32_t stage, stages; /* a staged run's stage and 2, else -1 and 0 */
} pass_report;

static ich_status report(const pass_report *r, int phase, int64_t batch, int64_t batches,
                         const pass_sums *sums, const ich_epoch_stats *stats)
{
    if (!r || !r->fn)
        return ICH_OK;
    ich_train_progress p = {sizeof p,       phase, r->epoch, r->epochs, batch, batches,
                            sums_loss(sums), sums_accuracy(sums), seconds_now() - r->start,
                            stats,          r->stage, r->stages};
    if (r->fn(r->user, &p))
        return ich_fail(ICH_ERR_CANCELLED, "%s: cancelled by the progress callback in epoch %d",
                        r->what, r->epoch);
    return ICH_OK;
}

static void sums_add(pass_sums *to, const pass_sums *from)
{
    to->loss += from->loss;
    to->samples += from->samples;
    to->correct += from->correct;
    to->elements += from->elements;
}

/* One optimisation step on the batch in s->images / s->labels (over
 * several ranks: this rank's share of the global batch, n may be 0; the
 * step's gradients are the global batch's: train/dist_train.h). */
static ich_status train_step(loss_setup *s, ich_optimizer *optimizer, int32_t n, double clip,
                             const char *what, pass_sums *sums)
{
    size_t outs = (size_t)n * s->outputs;
    pass_sums step = {0};
    int64_t global = n;
    ich_status st = ich_model_zero_grad(s->model);
    if (!st && n > 0)
        st = ich_model_forward(s->model, s->images, n, s->logits, outs);
    if (!st && n > 0)
        st = batch_loss(s, n, s->grad, &step);
    if (!st && n > 0)
        st = ich_model_backward(s->model, s->grad, outs);
    if (!st && s->dist)
        st = ich_train_dist_reduce_step(s->dist, s->model, n, &step, &global, what);
    sums_add(sums, &step);
    if (st || global == 0)
        return st; /* every sample of the global batch failed to load: no step */
    if (clip > 0)
        st = ich_clip_grad_norm(s->model, clip, NULL);
    if (!st)
        st = ich_optimizer_step(optimizer);
    return st;
}

/* Every batch of `ds` in epoch `epoch`: a training pass when `optimizer`
 * is set, else an evaluation pass. */
static ich_status run_pass(loss_setup *s, ich_dataset *ds, const label_map *lm, int64_t epoch,
                           ich_optimizer *optimizer, double clip, const pass_report *r,
                           pass_sums *sums)
{
    memset(sums, 0, sizeof *sums);
    int training = optimizer != NULL;
    ich_status st = ich_model_set_training(s->model, training);
    if (!st)
        st = ich_dataset_start_epoch(ds, epoch);
    int64_t batches = ich_dataset_batches(ds), batch = 0;
    size_t image_count = (size_t)ich_dataset_batch_size(ds) * s->sample_floats;
    size_t label_count = (size_t)ich_dataset_batch_size(ds) * s->outputs;
    /* Over several ranks the datasets are sharded: each rank takes every
     * batch, an empty share too, so that the ranks stay in step. */
    const int sharded = s->dist != NULL;
    char what[96];
    while (!st && (!sharded || batch < batches)) {
        int32_t n = 0;
        st = ich_dataset_next_batch(ds, s->images, image_count, s->labels, label_count, &n, NULL);
        if (st || (n == 0 && !sharded))
            break;
        apply_map(lm, s->labels, n, s->outputs);
        batch++;
        if (training) {
            snprintf(what, sizeof what, "gradients of epoch %lld, batch %lld",
                     (long long)epoch + 1, (long long)batch);
            st = train_step(s, optimizer, n, clip, what, sums);
        } else if (n > 0) {
            st = ich_model_forward(s->model, s->images, n, s->logits, (size_t)n * s->outputs);
            if (!st)
                st = batch_loss(s, n, NULL, sums);
        }
        if (!st && (training || !sharded))
            st = report(r, training ? ICH_TRAIN_PHASE_TRAIN : ICH_TRAIN_PHASE_VALIDATE, batch,
                        batches, sums, NULL);
    }
    if (!st && sharded && !training)
        st = ich_train_dist_reduce_sums(s->dist, sums, "validation sums");
    if (!st && sharded && !training)
        st = report(r, ICH_TRAIN_PHASE_VALIDATE, batch, batches, sums, NULL);
    if (!st && sums->samples == 0)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_train: epoch %lld gave no samples "
                      "(every image failed to load?)", (long long)epoch);
    return st;
}

/* ---- Freezing for the warm-up --------------------------------------------- */

/* The model's own frozen flags (per tensor), to come back to after warm-up. */
static ich_status save_frozen(ich_model *model, int32_t **out)
{
    int32_t count = ich_model_tensor_count(model);
    int32_t *flags = calloc(count > 0 ? (size_t)count : 1, sizeof *flags);
    if (!flags)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_train: out of memory");
    for (int32_t i = 0; i < count; i++) {
        ich_tensor_view v = {.size = sizeof v};
        if (ich_model_tensor(model, i, &v) == ICH_OK)
            flags[i] = v.frozen;
    }
    *out = flags;
    return ICH_OK;
}

static ich_status restore_frozen(ich_model *model, const int32_t *flags)
{
    int32_t count = ich_model_tensor_count(model);
    for (int32_t i = 0; i < count; i++) {
        ich_tensor_view v = {.size = sizeof v};
        ich_status st = ich_model_tensor(model, i, &v);
        if (st)
            return st;
        if (v.trainable && v.frozen != flags[i] &&
            (st = ich_model_freeze(model, v.name, flags[i], NULL)))
            return st;
    }
    return ICH_OK;
}

static int starts_with(const char *name, const char *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* The default warm-up prefix: the layer of the last parameter whose name
 * starts with `under` ("" for the model's last: "fc2."; "any." for a
 * cascade stage's head, e.g. "any.classifier.1."). */
static ich_status last_layer_prefix(ich_model *model, const char *under, char *prefix,
                                    size_t size)
{
    for (int32_t i = ich_model_tensor_count(model) - 1; i >= 0; i--) {
        ich_tensor_view v = {.size = sizeof v};
        if (ich_model_tensor(model, i, &v) || !v.trainable || !starts_with(v.name, under))
            continue;
        const char *dot = strrchr(v.name, '.');
        size_t len = dot ? (size_t)(dot - v.name) + 1 : strlen(v.name);
        if (len >= size)
            break;
        memcpy(prefix, v.name, len);
        prefix[len] = '\0';
        return ICH_OK;
    }
    return ich_fail(ICH_ERR_NOT_FOUND, "ich_train: the model has no parameters%s%s to warm up",
                    *under ? " under " : "", under);
}

/* Warm-up: freeze everything, then let the prefixes' parameters learn. */
static ich_status freeze_for_warmup(ich_model *model, char (*prefixes)[256], int count)
{
    ich_status st = ich_model_freeze(model, "", 1, NULL);
    for (int k = 0; !st && k < count; k++) {
        int32_t matched = 0;
        st = ich_model_freeze(model, prefixes[k], 0, &matched);
        if (st == ICH_ERR_NOT_FOUND || (!st && matched == 0))
            return ich_fail(ICH_ERR_NOT_FOUND,
                            "ich_train: warm-up prefix \"%s\" matches no parameter of the model",
                            prefixes[k]);
    }
    return st;
}

/* ---- Best weights in memory ---------------------------------------------- */

typedef struct snapshot {
    void **data;
    int32_t count;
    int valid;
} snapshot;

static size_t tensor_bytes(const ich_tensor_view *v)
{
    return (size_t)v->count * (v->type == ICH_TENSOR_I64 ? sizeof(int64_t) : sizeof(float));
}

static void snapshot_free(snapshot *s)
{
    for (int32_t i = 0; s->data && i < s->count; i++)
        free(s->data[i]);
    free(s->data);
    memset(s, 0, sizeof *s);
}

static ich_status snapshot_take(snapshot *s, const ich_model *model)
{
    int32_t count = ich_model_tensor_count(model);
    if (!s->data) {
        s->data = calloc(count > 0 ? (size_t)count : 1, sizeof *s->data);
        if (!s->data)
            return ich_fail(ICH_ERR_NO_MEMORY, "ich_train: out of memory for the best weights");
        s->count = count;
    }
    for (int32_t i = 0; i < count; i++) {
        ich_tensor_view v = {.size = sizeof v};
        ich_status st = ich_model_tensor(model, i, &v);
        if (st)
            return st;
        if (!s->data[i] && !(s->data[i] = malloc(tensor_bytes(&v) ? tensor_bytes(&v) : 1)))
            return ich_fail(ICH_ERR_NO_MEMORY, "ich_train: out of memory for the best weights");
        memcpy(s->data[i], v.data, tensor_bytes(&v));
    }
    s->valid = 1;
    return ICH_OK;
}

static ich_status snapshot_restore(const snapshot *s, ich_model *model)
{
    for (int32_t i = 0; i < s->count; i++) {
        ich_tensor_view v = {.size = sizeof v};
        ich_status st = ich_model_tensor(model, i, &v);
        if (st)
            return st;
        memcpy(v.data, s->data[i], tensor_bytes(&v));
    }
    ich_model_tensor_changed(model, -1);
    return ICH_OK;
}

/* ---- The run --------------------------------------------------------------- */

typedef struct trainer {
    ich_model *model;
    ich_optimizer *optimizer;
    ich_dataset *train, *val;
    ich_train_options o;
    loss_setup loss;
    label_map train_map, val_map;
    float *pos_weight;       /* owned copy, or NULL */
    ich_schedule *schedule;
    ich_early_stopping *early;
    ich_history *history;
    snapshot best;
    int32_t *user_frozen;
    char warmup_prefix[2][256]; /* one, or a cascade's two heads (joint) */
    int warmup_count;
    int32_t first_epoch;     /* 0, or the epochs a resumed checkpoint did */
    char *best_path, *last_path, *csv_path;

    /* Staged training of a cascade (train.h, "Cascade models"). */
    int staged;
    int32_t stage, stage_start;  /* the stage and its first epoch */
    int32_t stage_len[2];        /* epochs of each stage */
    const char *stage_prefix[2]; /* "any.", "subtype." */
    int32_t stage_first[2], stage_count[2]; /* their logit columns */
    char head_prefix[2][256];    /* each stage's warm-up prefix */
    char any_train[256], any_val[256]; /* the datasets' "any" columns */
    char *caller_train, *caller_val; /* the datasets' restrictions on entry */
    int restricted;              /* the datasets' restrictions were changed */
    double base_lr;              /* each stage's starting learning rate */
    float *stage_weight;         /* pos_weight of the stage (model order) */
    int use_val;                 /* the stage validates (positives in val) */
    double stage_best;           /* the stage's best monitored loss */
    int32_t stage_best_epoch;    /* -1: none yet */
    int finished;                /* the last stage is over */
    int entering;                /* the next epoch begins a stage */
    int32_t next_stage, next_start; /* the next epoch's, for "ich.stage" */
    ich_train_dist dist;         /* the ranks of a distributed run (1: one process) */
    int sharded;                 /* the datasets are sharded over the ranks */
} trainer;

static void trainer_free(trainer *t)
{
    setup_free(&t->loss);
    free(t->pos_weight);
    ich_schedule_free(t->schedule);
    ich_early_stopping_free(t->early);
    ich_history_free(t->history);
    snapshot_free(&t->best);
    free(t->user_frozen);
    free(t->stage_weight);
    free(t->caller_train);
    free(t->caller_val);
    free(t->best_path);
    free(t->last_path);
    free(t->csv_path);
    ich_train_dist_free(&t->dist);
}

static ich_status check_options(const ich_train_options *o)
{
    if (o->epochs < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_train: epochs is %d (>= 0)", o->epochs);
    if (!(o->clip_norm >= 0) || isinf(o->clip_norm))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_train: clip_norm must be >= 0 and finite");
    if (o->patience < 0 || o->warmup_epochs < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_train: patience and warmup_epochs must be >= 0");
    if (!(o->min_delta >= 0) || isinf(o->min_delta))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_train: min_delta must be >= 0 and finite");
    if (o->staged < -1 || o->staged > 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_train: staged is %d (-1, 0 or 1)",
                        o->staged);
    if (o->stage_epochs[0] < -1 || o->stage_epochs[1] < -1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_train: stage_epochs must be >= -1 (-1: skip the stage)");
    if (!(o->finetune_lr_factor > 0) || isinf(o->finetune_lr_factor))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_train: finetune_lr_factor is %g (must be > 0 and finite)",
                        o->finetune_lr_factor);
    return ICH_OK;
}

/* Positive weights: the caller's, or balanced from the training labels. */
static ich_status init_pos_weight(trainer *t)
{
    int32_t outputs = ich_model_outputs(t->model);
    if (!t->o.balanced && !t->o.pos_weight)
        return ICH_OK;
    t->pos_weight = malloc((size_t)outputs * sizeof(float));
    if (!t->pos_weight)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_train: out of memory");
    if (t->o.balanced) {
        float w[ICH_LABELS_MAX_COLUMNS];
        ich_status st = ich_class_weights_balanced(ich_dataset_labels(t->train), w, outputs);
        for (int32_t c = 0; !st && c < outputs; c++)
            t->pos_weight[c] = w[t->train_map.map[c]]; /* in the model's order */
        return st;
    }
    for (int32_t c = 0; c < outputs; c++)
        if (!(t->o.pos_weight[c] > 0) || isinf(t->o.pos_weight[c]))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_train: pos_weight[%d] = %g (must be > 0 and finite)", c,
                            (double)t->o.pos_weight[c]);
    memcpy(t->pos_weight, t->o.pos_weight, (size_t)outputs * sizeof(float));
    return ICH_OK;
}

static ich_status init_schedule(trainer *t)
{
    if (t->o.constant_lr)
        return ICH_OK;
    ich_schedule_options plateau;
    const ich_schedule_options *so = t->o.schedule;
    if (!so) {
        ich_schedule_options_init(&plateau, ICH_SCHEDULE_PLATEAU);
        plateau.factor = 0.1;
        plateau.patience = 3;
        so = &plateau;
    }
    return ich_schedule_create(t->optimizer, so, &t->schedule);
}

static ich_status init_paths(trainer *t)
{
    const char *dir = t->o.checkpoint_dir;
    if (!dir || t->dist.rank != 0)
        return ICH_OK; /* rank 0 alone writes checkpoints and the history */
    ich_status st = ich_make_dirs(dir);
    if (st)
        return st;
    t->best_path = ich_path_join(dir, "best.safetensors");
    t->last_path = ich_path_join(dir, "last.safetensors");
    t->csv_path = ich_path_join(dir, "history.csv");
    if (!t->best_path || !t->last_path || !t->csv_path)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_train: out of memory");
    return ICH_OK;
}

/* ---- Staged training of a cascade ------------------------------------------ */

static ich_status fresh_schedule(trainer *t)
{
    ich_schedule_free(t->schedule);
    t->schedule = NULL;
    return init_schedule(t);
}

/* The stage's positive weights (in the model's order; only its columns
 * count): the caller's, or balanced over its columns counted on the stage's
 * training images (every row for "any", the "any"-positive rows for the
 * subtypes), as ich_class_weights_balanced() counts. */
static ich_status stage_pos_weight(trainer *t)
{
    int32_t outputs = ich_model_outputs(t->model);
    t->loss.pos_weight = NULL;
    if (!t->o.balanced && !t->o.pos_weight)
        return ICH_OK;
    if (!t->stage_weight && !(t->stage_weight = malloc((size_t)outputs * sizeof(float))))
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_train: out of memory");
    for (int32_t c = 0; c < outputs; c++)
        t->stage_weight[c] = t->pos_weight ? t->pos_weight[c] : 1.0f;
    t->loss.pos_weight = t->stage_weight;
    if (!t->o.balanced)
        return ICH_OK;
    const ich_labels *labels = ich_dataset_labels(t->train);
    int32_t any = t->train_map.map[t->stage_first[0]], first = t->stage_first[t->stage];
    int64_t rows = ich_labels_rows(labels);
    for (int32_t c = first; c < first + t->stage_count[t->stage]; c++) {
        int32_t column = t->train_map.map[c];
        int64_t positives = 0, negatives = 0;
        for (int64_t r = 0; r < rows; r++) {
            const float *y = ich_labels_values(labels, r);
            if (t->stage == 1 && !(y[any] >= 0.5f))
                continue;
            if (y[column] >= 0.5f)
                positives++;
            else
                negatives++;
        }
        t->stage_weight[c] = positives > 0 && negatives > 0
                                 ? (float)((double)negatives / (double)positives)
                                 : 1.0f;
    }
    return ICH_OK;
}

/* Enter stage t->stage: only its branch runs, the datasets give its images
 * (stage two: the "any"-positive ones), the loss covers its columns with
 * its class weights; `fresh`: also its starting learning rate, a fresh
 * schedule, early stopping and best weights (not when a resumed checkpoint
 * is in the middle of the stage: those came from it). */
static ich_status enter_stage(trainer *t, int fresh)
{
    const int32_t s = t->stage;
    ich_status st = ich_model_set_active_stage(t->model, s);
    t->restricted = 1;
    if (!st)
        st = ich_dataset_set_positive_only(t->train, s == 1 ? t->any_train : NULL);
    if (!st && t->val)
        st = ich_dataset_set_positive_only(t->val, s == 1 ? t->any_val : NULL);
    if (st)
        return st;
    if (ich_dataset_length(t->train) == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_train: the training dataset has no image whose \"%s\" label is "
                        "positive: the cascade's stage two (subtypes) has nothing to learn from",
                        t->any_train);
    t->use_val = t->val && ich_dataset_length(t->val) > 0;
    if (t->val && !t->use_val)
        ich_log(ICH_LOG_WARNING, "ich_train: the validation dataset has no image whose \"%s\" "
                                 "label is positive: stage two monitors its training loss",
                t->any_val);
    t->loss.first = t->stage_first[s];
    t->loss.count = t->stage_count[s];
    t->loss.cascade = 0;
    st = stage_pos_weight(t);
    if (!st && fresh) {
        st = ich_optimizer_set_lr(t->optimizer, t->base_lr);
        if (!st)
            st = fresh_schedule(t);
        if (!st && t->early) {
            ich_early_stopping_free(t->early);
            t->early = NULL;
            st = ich_early_stopping_create(t->o.patience, t->o.min_delta, 0, &t->early);
        }
        t->best.valid = 0;
        t->stage_best_epoch = -1;
    }
    if (!st)
        ich_log(ICH_LOG_INFO, "ich_train: stage %d/2 (%s) from epoch %d, %lld images", s + 1,
                s == 0 ? "any" : "subtypes", t->stage_start + 1,
                (long long)ich_dataset_length(t->train));
    return st;
}

/* The start of epoch `epoch` of the stage: parameters outside the stage
 * frozen; during warm-up only the stage's head learns, afterwards the
 * stage's parameters with the model's own flags; the first fine-tuning
 * epoch sets the learning rate to the factor x the starting rate, with a
 * fresh schedule. */
static ich_status stage_epoch_begin(trainer *t, int32_t epoch)
{
    const int32_t k = epoch - t->stage_start;
    const int warm = k < t->o.warmup_epochs;
    const char *head = t->o.warmup_trainable ? t->o.warmup_trainable : t->head_prefix[t->stage];
    const char *prefix = t->stage_prefix[t->stage];
    ich_status st = ICH_OK;
    if (t->o.warmup_epochs > 0 && k == t->o.warmup_epochs) {
        st = ich_optimizer_set_lr(t->optimizer, t->base_lr * t->o.finetune_lr_factor);
        if (!st)
            st = fresh_schedule(t);
    }
    int32_t count = ich_model_tensor_count(t->model), learning = 0;
    for (int32_t i = 0; !st && i < count; i++) {
        ich_tensor_view v = {.size = sizeof v};
        st = ich_model_tensor(t->model, i, &v);
        if (st || !v.trainable)
            continue;
        int frozen = !starts_with(v.name, prefix) ? 1
                     : warm                        ? !starts_with(v.name, head)
                                                   : t->user_frozen[i];
        learning += !frozen;
        if (v.frozen != frozen)
            st = ich_model_freeze(t->model, v.name, frozen, NULL);
    }
    if (!st && warm && learning == 0)
        st = ich_fail(ICH_ERR_NOT_FOUND,
                      "ich_train: warm-up prefix \"%s\" matches no parameter of the cascade's "
                      "stage %d (\"%s\")", head, t->stage + 1, prefix);
    return st;
}

/* The stage's best monitored loss so far, from the history (resuming). */
static void stage_best_from_history(trainer *t)
{
    t->stage_best_epoch = -1;
    for (int32_t i = 0; i < t->history->count; i++) {
        const ich_epoch_stats *r = &t->history->rows[i];
        double metric = isnan(r->val_loss) ? r->train_loss : r->val_loss;
        if (r->stage == t->stage && r->epoch >= t->stage_start &&
            (t->stage_best_epoch < 0 || metric < t->stage_best)) {
            t->stage_best = metric;
            t->stage_best_epoch = r->epoch;
        }
    }
}

/* Where the stages live, their heads, the datasets' "any" columns. */
static ich_status stages_setup(trainer *t)
{
    int cascade = ich_model_cascade_stages(t->model) == 2;
    if (t->o.staged == 1 && !cascade)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_train: staged = 1 but the model is not a cascade (its spec does "
                        "not end with \"cascade(any: ... | subtype: ...)\")");
    t->staged = cascade && t->o.staged != 0;
    ich_status st = ICH_OK;
    for (int32_t s = 0; cascade && !st && s < 2; s++) {
        st = ich_model_cascade_stage(t->model, s, &t->stage_prefix[s], &t->stage_first[s],
                                     &t->stage_count[s]);
        if (!st)
            st = last_layer_prefix(t->model, t->stage_prefix[s], t->head_prefix[s],
                                   sizeof t->head_prefix[s]);
        if (!st)
            t->stage_len[s] = t->o.stage_epochs[s] > 0    ? t->o.stage_epochs[s]
                              : t->o.stage_epochs[s] == 0 ? t->o.epochs
                                                          : 0;
    }
    if (st || !t->staged)
        return st;
    snprintf(t->any_train, sizeof t->any_train, "%s",
             ich_labels_column_name(ich_dataset_labels(t->train),
                                    t->train_map.map[t->stage_first[0]]));
    if (t->val)
        snprintf(t->any_val, sizeof t->any_val, "%s",
                 ich_labels_column_name(ich_dataset_labels(t->val),
                                        t->val_map.map[t->stage_first[0]]));
    if (t->stage_len[1] > 0) {
        /* stage two needs positives: say so before stage one trains */
        const ich_labels *labels = ich_dataset_labels(t->train);
        int32_t any = t->train_map.map[t->stage_first[0]];
        int64_t positives = 0;
        for (int64_t r = 0; r < ich_labels_rows(labels); r++)
            positives += ich_labels_values(labels, r)[any] >= 0.5f;
        if (positives == 0)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_train: the training dataset has no image whose \"%s\" label "
                            "is positive: the cascade's stage two (subtypes) would have nothing "
                            "to learn from", t->any_train);
    }
    const char *train_r = ich_dataset_positive_only(t->train);
    const char *val_r = t->val ? ich_dataset_positive_only(t->val) : NULL;
    if ((train_r && !(t->caller_train = strdup(train_r))) ||
        (val_r && !(t->caller_val = strdup(val_r))))
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_train: out of memory");
    t->base_lr = ich_optimizer_lr(t->optimizer);
    t->stage = t->stage_len[0] > 0 ? 0 : 1;
    t->stage_start = 0;
    t->next_stage = t->stage;
    t->next_start = 0;
    return ICH_OK;
}

/* "ich.stage" of a checkpoint: the next epoch's stage, its first epoch,
 * the starting learning rate. */
static ich_status parse_stage(trainer *t, const char *text, const char *path)
{
    int stage = -1, start = -1, used = 0;
    double lr = NAN;
    if (!text || sscanf(text, "stage=%d start=%d lr=%lf%n", &stage, &start, &lr, &used) != 3 ||
        text[used] || stage < 0 || stage > 1 || start < 0 || !(lr >= 0) || isinf(lr))
        return ich_fail(ICH_ERR_FORMAT, "%s: bad \"ich.stage\" metadata \"%s\"", path,
                        text ? text : "");
    t->stage = stage;
    t->stage_start = start;
    t->next_stage = stage;
    t->next_start = start;
    t->base_lr = lr;
    return ICH_OK;
}

/* Take a training-state entry out of the model's metadata (it was loaded
 * with the checkpoint; the next checkpoints write it anew). */
static char *take_metadata(ich_model *model, const char *key)
{
    const char *value = ich_model_metadata(model, key);
    char *copy = value ? strdup(value) : NULL;
    if (value)
        ich_model_set_metadata(model, key, NULL);
    return copy;
}

static ich_status resume_from(trainer *t, const char *path)
{
    struct stat info;
    if (stat(path, &info) != 0)
        return ich_fail(ICH_ERR_NOT_FOUND, "%s: cannot open the checkpoint to resume from: %s",
                        path, strerror(errno));
    ich_status st = ich_checkpoint_load(path, t->model, t->optimizer);
    if (st)
        return st;
    char *epoch = take_metadata(t->model, "ich.epoch");
    char *history = take_metadata(t->model, "ich.history");
    char *schedule = take_metadata(t->model, "ich.schedule");
    char *early = take_metadata(t->model, "ich.early_stopping");
    free(take_metadata(t->model, "ich.metrics"));
    char *stage = take_metadata(t->model, "ich.stage");
    char *end = NULL;
    long done = epoch ? strtol(epoch, &end, 10) : -1;
    if (!epoch || *end || done < 0 || done > INT32_MAX || !history)
        st = ich_fail(ICH_ERR_FORMAT,
                      "%s: not a training checkpoint (no \"ich.epoch\" or \"ich.history\" "
                      "metadata); to start from its weights, load it as a model instead",
                      path);
    if (!st)
        st = ich_history_parse(t->history, history, path);
    if (!st && t->history->count != done)
        st = ich_fail(ICH_ERR_FORMAT, "%s: \"ich.history\" has %d epochs, \"ich.epoch\" says %ld",
                      path, t->history->count, done);
    if (!st && t->schedule && schedule && *schedule)
        st = ich_schedule_restore_config(t->schedule, schedule);
    if (!st && t->early && early && *early)
        st = ich_early_stopping_restore_config(t->early, early);
    if (!st && t->staged != (stage != NULL))
        st = ich_fail(ICH_ERR_FORMAT,
                      stage ? "%s: a checkpoint of a cascade's staged training: resume it staged "
                              "(options.staged -1 or 1, not 0; ich-train without --joint)"
                            : "%s: not a checkpoint of a cascade's staged training (no "
                              "\"ich.stage\"): resume it with joint training (options.staged 0, "
                              "ich-train --joint)",
                      path);
    if (!st && stage)
        st = parse_stage(t, stage, path);
    free(stage);
    t->first_epoch = (int32_t)done;
    free(epoch);
    free(history);
    free(schedule);
    free(early);
    return st;
}

static ich_status save_checkpoint(trainer *t, const char *path, const ich_epoch_stats *row)
{
    ich_buf epoch = {0}, history = {0}, metrics = {0}, stage = {0};
    ich_buf_printf(&epoch, "%d", row->epoch + 1);
    if (t->staged)
        ich_buf_printf(&stage, "stage=%d start=%d lr=%.17g", t->next_stage, t->next_start,
                       t->base_lr);
    ich_history_to_csv(t->history, &history);
    ich_epoch_stats_json(row, &metrics);
    ich_status st = ICH_OK;
    if (epoch.failed || history.failed || metrics.failed || stage.failed)
        st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    const char *keys[] = {"ich.epoch", "ich.history", "ich.schedule", "ich.early_stopping",
                          "ich.metrics", "ich.stage"};
    const char *values[] = {epoch.data, history.data,
                            t->schedule ? ich_schedule_config(t->schedule) : "",
                            t->early ? ich_early_stopping_config(t->early) : "",
                            metrics.data, stage.data};
    if (!st)
        st = ich_checkpoint_save(path, t->model, t->optimizer, keys, values, t->staged ? 6 : 5);
    ich_buf_free(&stage);
    ich_buf_free(&epoch);
    ich_buf_free(&history);
    ich_buf_free(&metrics);
    return st;
}

/* Load the best epoch's weights from a best.safetensors beside the resumed
 * checkpoint (or in the checkpoint folder), when they are not in memory. */
static ich_status restore_best_from_file(trainer *t)
{
    char *candidates[2] = {NULL, NULL};
    if (t->best_path)
        candidates[0] = strdup(t->best_path);
    if (t->o.resume) {
        const char *slash = strrchr(t->o.resume, '/');
        char *dir = slash ? strndup(t->o.resume, (size_t)(slash - t->o.resume)) : strdup(".");
        candidates[1] = dir ? ich_path_join(dir, "best.safetensors") : NULL;
        free(dir);
    }
    ich_status st = ICH_ERR_NOT_FOUND;
    for (int i = 0; i < 2 && st == ICH_ERR_NOT_FOUND; i++) {
        struct stat info;
        if (candidates[i] && stat(candidates[i], &info) == 0)
            st = ich_model_load_weights(t->model, candidates[i], 0);
    }
    if (st == ICH_ERR_NOT_FOUND) {
        ich_log(ICH_LOG_WARNING, "ich_train: the best epoch was before the resumed checkpoint "
                                 "and no best.safetensors was found: keeping the last weights");
        st = ICH_OK;
    }
    free(candidates[0]);
    free(candidates[1]);
    /* rank 0's file (the other ranks may not see its folder) */
    if (!st)
        st = ich_train_dist_sync_model(&t->dist, t->model);
    return st;
}

/* End of an epoch: history, schedule, early stopping, checkpoints. */
static ich_status finish_epoch(trainer *t, const ich_epoch_stats *row, int *stop)
{
    ich_status st = ich_history_append(t->history, row);
    double metric = isnan(row->val_loss) ? row->train_loss : row->val_loss;
    int improved = ich_history_best_epoch(t->history) == row->epoch;
    *stop = 0;
    if (!st && t->early)
        st = ich_early_stopping_update(t->early, metric, &improved, stop);
    if (!st && t->schedule)
        st = ich_schedule_step(t->schedule, metric);
    if (!st && improved && t->early && t->o.restore_best)
        st = snapshot_take(&t->best, t->model);
    if (!st && improved && t->best_path)
        st = save_checkpoint(t, t->best_path, row);
    if (!st && t->last_path)
        st = save_checkpoint(t, t->last_path, row);
    if (!st && t->csv_path)
        st = ich_history_write_csv(t->history, t->csv_path);
    return st;
}

/* The best weights of the stage that ends (restore_best). */
static ich_status restore_stage_best(trainer *t)
{
    if (t->best.valid)
        return snapshot_restore(&t->best, t->model);
    if (t->stage_best_epoch >= 0 && t->stage_best_epoch < t->first_epoch)
        return restore_best_from_file(t);
    return ICH_OK;
}

/* End of a staged run's epoch: as finish_epoch(), against the stage's own
 * best; at the end of a stage (its epochs done, or early stopping) its best
 * weights come back and the next epoch begins stage two, whose start the
 * checkpoints record. */
static ich_status finish_stage_epoch(trainer *t, const ich_epoch_stats *row, int *stop)
{
    ich_status st = ich_history_append(t->history, row);
    double metric = isnan(row->val_loss) ? row->train_loss : row->val_loss;
    int improved = t->stage_best_epoch < 0 || metric < t->stage_best;
    *stop = 0;
    if (!st && t->early)
        st = ich_early_stopping_update(t->early, metric, &improved, stop);
    if (!st && improved) {
        t->stage_best = metric;
        t->stage_best_epoch = row->epoch;
    }
    if (!st && t->schedule)
        st = ich_schedule_step(t->schedule, metric);
    if (!st && improved && t->o.restore_best)
        st = snapshot_take(&t->best, t->model);
    int over = *stop || row->epoch + 1 >= t->stage_start + t->stage_len[t->stage];
    if (over && t->stage == 0) {
        t->next_stage = 1;
        t->next_start = row->epoch + 1;
    }
    if (!st && improved && t->best_path)
        st = save_checkpoint(t, t->best_path, row);
    if (!st && over && t->o.restore_best)
        st = restore_stage_best(t);
    if (!st && t->last_path)
        st = save_checkpoint(t, t->last_path, row);
    if (!st && t->csv_path)
        st = ich_history_write_csv(t->history, t->csv_path);
    if (!st && over && t->stage == 0) {
        t->stage = 1;
        t->stage_start = row->epoch + 1;
        t->entering = 1;
        *stop = 0; /* early stopping ends the stage, not the run */
    } else if (over) {
        t->finished = 1;
    }
    return st;
}

/* The run's epochs: staged, those of stage one and two (as far as known). */
static int32_t total_epochs(const trainer *t)
{
    if (!t->staged)
        return t->o.epochs;
    return t->stage == 0 ? t->stage_start + t->stage_len[0] + t->stage_len[1]
                         : t->stage_start + t->stage_len[1];
}

static ich_status run_epoch(trainer *t, int32_t epoch, int *stop)
{
    double start = seconds_now();
    ich_status st = ICH_OK;
    if (t->staged) {
        if (t->entering)
            st = enter_stage(t, 1);
        t->entering = 0;
        if (!st)
            st = stage_epoch_begin(t, epoch);
    } else {
        st = epoch < t->o.warmup_epochs
                 ? freeze_for_warmup(t->model, t->warmup_prefix, t->warmup_count)
                 : restore_frozen(t->model, t->user_frozen);
    }
    const int validate = t->staged ? t->use_val : t->val != NULL;
    pass_report r = {t->o.progress, t->o.progress_user, epoch, total_epochs(t), start,
                     "ich_train", t->staged ? t->stage : -1, t->staged ? 2 : 0};
    ich_epoch_stats row = {sizeof row, epoch, NAN, NAN, NAN, NAN,
                           ich_optimizer_lr(t->optimizer), 0, t->staged ? t->stage : -1};
    pass_sums train = {0}, val = {0};
    if (!st)
        st = run_pass(&t->loss, t->train, &t->train_map, epoch, t->optimizer, t->o.clip_norm,
                      &r, &train);
    if (!st && validate)
        st = run_pass(&t->loss, t->val, &t->val_map, 0, NULL, 0, &r, &val);
    if (st)
        return st;
    row.train_loss = sums_loss(&train);
    row.train_accuracy = sums_accuracy(&train);
    if (validate) {
        row.val_loss = sums_loss(&val);
        row.val_accuracy = sums_accuracy(&val);
    }
    row.seconds = seconds_now() - start;
    char when[64];
    snprintf(when, sizeof when, "the end of epoch %d", epoch + 1);
    st = ich_train_dist_check_model(&t->dist, t->model, when);
    if (!st)
        st = t->staged ? finish_stage_epoch(t, &row, stop) : finish_epoch(t, &row, stop);
    if (!st)
        st = report(&r, ICH_TRAIN_PHASE_EPOCH, 0, 0, &train, &row);
    return st;
}

static int32_t batch_capacity(ich_dataset *train, ich_dataset *val)
{
    int32_t capacity = ich_dataset_batch_size(train);
    if (val && ich_dataset_batch_size(val) > capacity)
        capacity = ich_dataset_batch_size(val);
    return capacity;
}

/* The training data's label names (unless the model already has its own,
 * to which check_fit() matched the data's columns) and recipe go into the
 * model, so every checkpoint says what its outputs mean and how to feed
 * it. */
static ich_status store_input_spec(ich_model *model, const ich_dataset *train)
{
    const ich_labels *labels = ich_dataset_labels(train);
    const char *names[64];
    int32_t count = ich_labels_columns(labels);
    if (count > 64)
        return ich_fail(ICH_ERR_UNSUPPORTED, "ich_train: %d label columns (at most 64)", count);
    for (int32_t c = 0; c < count; c++)
        names[c] = ich_labels_column_name(labels, c);
    ich_status st = ICH_OK;
    if (!ich_model_metadata(model, "ich.labels"))
        st = ich_model_set_labels(model, names, count);
    ich_window *window = NULL;
    if (!st)
        st = ich_dataset_input_window(train, &window);
    if (!st && (st = ich_model_set_input_window(model, window)) != ICH_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", ich_last_error());
        st = ich_fail(st, "ich_train: the training dataset's window recipe does not describe "
                      "the model's input (%s); for PNG images, open the dataset with the recipe "
                      "the PNGs were made with", why);
    }
    ich_window_free(window);
    return st;
}

/* Resuming: the checkpoint's "ich.labels" decide how the datasets' columns
 * are matched, as the model will hold them once the checkpoint is loaded
 * (resume_from(), after the checks); an unreadable file is left for
 * resume_from() to report. */
static ich_status resume_labels(trainer *t)
{
    if (!t->o.resume)
        return ICH_OK;
    ich_st_file file;
    ich_status st = ICH_OK;
    if (ich_st_read(t->o.resume, &file) == ICH_OK) {
        const char *names = ich_st_metadata(&file, "ich.labels");
        if (names)
            st = ich_model_set_metadata(t->model, "ich.labels", names);
    }
    ich_st_free(&file); /* on failure too: it may hold the path */
    return st;
}

/* A distributed run (include/ich/train.h, "Distributed training"): the
 * datasets sharded over the ranks, progress from rank 0 only. */
static ich_status dist_setup(trainer *t)
{
    ich_status st = ich_train_dist_begin(&t->dist);
    if (st || t->dist.ranks <= 1)
        return st;
    t->sharded = 1;
    t->loss.dist = &t->dist;
    if (t->dist.rank != 0)
        t->o.progress = NULL;
    st = ich_dataset_set_shard(t->train, t->dist.rank, t->dist.ranks);
    if (!st && t->val)
        st = ich_dataset_set_shard(t->val, t->dist.rank, t->dist.ranks);
    ich_log(ICH_LOG_INFO, "ich_train: rank %d of %d, a share of each batch of %d",
            t->dist.rank, t->dist.ranks, ich_dataset_batch_size(t->train));
    return st;
}

/* Every rank starts from the same weights: a fresh run from rank 0's (as
 * DDP does); a resumed one from the checkpoint each rank read, checked. */
static ich_status dist_start_weights(trainer *t)
{
    if (t->o.resume)
        return ich_train_dist_check_model(&t->dist, t->model, "the start (after resuming)");
    return ich_train_dist_sync_model(&t->dist, t->model);
}

static ich_status train_setup(trainer *t)
{
    ich_status st = check_options(&t->o);
    if (!st)
        st = resume_labels(t);
    if (!st)
        st = check_fit(t->model, t->train, "training", t->o.resume != NULL, &t->train_map);
    if (!st)
        st = store_input_spec(t->model, t->train);
    if (!st && t->val)
        st = check_fit(t->model, t->val, "validation", t->o.resume != NULL, &t->val_map);
    if (!st)
        st = init_pos_weight(t);
    if (!st)
        st = setup_init(&t->loss, t->model, t->train, &t->train_map,
                        batch_capacity(t->train, t->val),
                        t->pos_weight, t->o.cascade_mask);
    if (!st)
        st = dist_setup(t);
    if (!st)
        st = ich_history_new(&t->history);
    if (!st)
        st = init_schedule(t);
    if (!st && t->o.patience > 0)
        st = ich_early_stopping_create(t->o.patience, t->o.min_delta, 0, &t->early);
    if (!st)
        st = save_frozen(t->model, &t->user_frozen);
    if (!st)
        st = stages_setup(t);
    t->warmup_count = 1;
    if (!st && t->o.warmup_epochs > 0 && !t->staged) {
        if (t->o.warmup_trainable) {
            snprintf(t->warmup_prefix[0], sizeof t->warmup_prefix[0], "%s",
                     t->o.warmup_trainable);
        } else if (ich_model_cascade_stages(t->model) == 2) {
            /* a cascade trained jointly: both stages' heads */
            memcpy(t->warmup_prefix, t->head_prefix, sizeof t->warmup_prefix);
            t->warmup_count = 2;
        } else {
            st = last_layer_prefix(t->model, "", t->warmup_prefix[0],
                                   sizeof t->warmup_prefix[0]);
        }
    }
    if (!st)
        st = init_paths(t);
    if (!st && t->o.resume)
        st = resume_from(t, t->o.resume);
    if (!st && t->staged) {
        /* a fresh stage, or the middle of one whose state the checkpoint
         * restored (schedule, early stopping, learning rate) */
        int fresh = t->first_epoch <= t->stage_start;
        if (!fresh)
            stage_best_from_history(t);
        st = enter_stage(t, fresh);
    }
    if (!st)
        st = dist_start_weights(t);
    return st;
}

/* With early stopping, end with the best epoch's weights. */
static ich_status restore_best(trainer *t)
{
    if (!t->early || !t->o.restore_best)
        return ICH_OK;
    int64_t best_epoch = -1;
    ich_early_stopping_best(t->early, &best_epoch);
    if (t->best.valid)
        return snapshot_restore(&t->best, t->model);
    if (best_epoch < 0 || best_epoch >= t->first_epoch)
        return ICH_OK; /* nothing trained, or the best is what the model holds */
    return restore_best_from_file(t);
}

ich_status ich_train(ich_model *model, ich_optimizer *optimizer, ich_dataset *train,
                     ich_dataset *val, const ich_train_options *options, ich_history **history)
{
    if (history)
        *history = NULL;
    if (!model || !optimizer || !train)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_train: NULL model, optimizer or dataset");
    trainer t;
    memset(&t, 0, sizeof t);
    t.model = model;
    t.optimizer = optimizer;
    t.train = train;
    t.val = val;
    ich_train_options_init(&t.o);
    ich_status st = ich_options_merge(&t.o, sizeof t.o, options,
                                      ICH_OPTIONS_V1_SIZE(ich_train_options, progress_user),
                                      "ich_train");
    if (!st)
        st = train_setup(&t);
    int stop = 0;
    for (int32_t epoch = t.first_epoch; !st && !stop && !t.finished && epoch < total_epochs(&t);
         epoch++)
        st = run_epoch(&t, epoch, &stop);
    if (t.history)
        t.history->stopped_early = stop;
    if (!st && !t.staged)
        st = restore_best(&t);
    if (t.user_frozen) {
        ich_status unfreeze = restore_frozen(model, t.user_frozen);
        if (!st)
            st = unfreeze;
    }
    if (t.staged) {
        /* both stages for predictions; the caller's datasets as they were */
        ich_status undo = ich_model_set_active_stage(model, -1);
        if (t.restricted) {
            ich_status a = ich_dataset_set_positive_only(train, t.caller_train);
            ich_status b = val ? ich_dataset_set_positive_only(val, t.caller_val) : ICH_OK;
            undo = undo ? undo : a ? a : b;
        }
        if (!st)
            st = undo;
    }
    ich_model_set_training(model, 0);
    if (t.sharded) {
        ich_dataset_set_shard(train, 0, 1);
        if (val)
            ich_dataset_set_shard(val, 0, 1);
    }
    if (st && t.dist.ranks > 1)
        ich_comm_mark_failed(); /* the others may wait for this rank: end them at exit */
    if (!st && history) {
        *history = t.history;
        t.history = NULL;
    }
    trainer_free(&t);
    return st;
}

ich_status ich_evaluate(ich_model *model, ich_dataset *dataset, const float *pos_weight,
                        int32_t cascade_mask_option, double *loss, double *accuracy)
{
    return ich_evaluate_with_progress(model, dataset, pos_weight, cascade_mask_option, NULL, NULL,
                                      loss, accuracy);
}

ich_status ich_evaluate_with_progress(ich_model *model, ich_dataset *dataset,
                                      const float *pos_weight, int32_t cascade_mask_option,
                                      ich_train_progress_fn progress, void *progress_user,
                                      double *loss, double *accuracy)
{
    if (!model || !dataset)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_evaluate: NULL model or dataset");
    /* A whole pass can take seconds: the callback after each batch is where
     * a caller (Ctrl-C in Python) can stop it. */
    pass_report r = {progress, progress_user, 0, 1, seconds_now(), "ich_evaluate", -1, 0};
    label_map lm;
    ich_status st = check_fit(model, dataset, "evaluation", 0, &lm);
    loss_setup s;
    memset(&s, 0, sizeof s);
    pass_sums sums;
    if (!st)
        st = setup_init(&s, model, dataset, &lm, ich_dataset_batch_size(dataset), pos_weight,
                        cascade_mask_option);
    if (!st)
        st = run_pass(&s, dataset, &lm, 0, NULL, 0, &r, &sums);
    ich_model_set_training(model, 0);
    if (!st && loss)
        *loss = sums_loss(&sums);
    if (!st && accuracy)
        *accuracy = sums_accuracy(&sums);
    setup_free(&s);
    return st;
}
