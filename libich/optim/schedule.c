/* Learning-rate schedules with PyTorch 1.13's semantics
 * (torch/optim/lr_scheduler.py: ReduceLROnPlateau with threshold_mode
 * "rel", cooldown 0 and eps 1e-8; StepLR and CosineAnnealingLR in their
 * recursive get_lr() form, which is what scheduler.step() uses), and early
 * stopping. The arithmetic is Python's: doubles, in the same order, so the
 * learning rates equal torch's exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/options.h"
#include "ich/optim.h"
#include "optim/optim_internal.h"

ICH_NO_FP_CONTRACT

/* ReduceLROnPlateau ignores reductions smaller than this (its eps). */
#define PLATEAU_EPS 1e-8

struct ich_schedule {
    ich_optimizer *optimizer;
    ich_schedule_options o;
    double base_lr;     /* the learning rate when the schedule was created */
    int64_t last_epoch; /* epochs stepped */
    double best;        /* plateau: best metric (starts at the worst value) */
    int32_t bad_epochs; /* plateau: epochs without improvement */
    char config[512];
};

static const char *schedule_name(int32_t kind)
{
    switch (kind) {
    case ICH_SCHEDULE_PLATEAU: return "plateau";
    case ICH_SCHEDULE_STEP: return "step";
    case ICH_SCHEDULE_COSINE: return "cosine";
    default: return NULL;
    }
}

void (ich_schedule_options_init)(ich_schedule_options *caller, ich_schedule_kind kind)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_schedule_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->kind = kind;
    options->factor = 0.1;
    options->patience = 10;
    options->threshold = 1e-4;
    options->min_lr = 0.0;
    options->maximize = 0;
    options->step_size = 10;
    options->gamma = 0.1;
    options->t_max = 10;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_schedule_options, t_max));
}

static ich_status check_schedule(const ich_schedule_options *o, const char *fn)
{
    switch (o->kind) {
    case ICH_SCHEDULE_PLATEAU:
        if (!(o->factor > 0 && o->factor < 1))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: factor %g must be in (0, 1)", fn,
                            o->factor);
        if (o->patience < 0)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: patience %d is negative", fn,
                            o->patience);
        if (!isfinite(o->threshold) || o->threshold < 0)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: threshold %g must be >= 0", fn,
                            o->threshold);
        break;
    case ICH_SCHEDULE_STEP:
        if (o->step_size < 1)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: step_size %d must be >= 1", fn,
                            o->step_size);
        if (!isfinite(o->gamma) || o->gamma <= 0)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: gamma %g must be > 0", fn, o->gamma);
        return ICH_OK;
    case ICH_SCHEDULE_COSINE:
        if (o->t_max < 1)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: t_max %d must be >= 1", fn, o->t_max);
        break;
    default:
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: unknown schedule kind %d", fn, o->kind);
    }
    if (!isfinite(o->min_lr) || o->min_lr < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: min_lr %g must be >= 0", fn, o->min_lr);
    return ICH_OK;
}

/* The plateau's starting "best": the worst value of its mode. */
static double worst_metric(int maximize)
{
    return maximize ? -INFINITY : INFINITY;
}

ich_status ich_schedule_create(ich_optimizer *optimizer, const ich_schedule_options *options,
                               ich_schedule **out)
{
    const char *fn = "ich_schedule_create";
    if (out)
        *out = NULL;
    if (!optimizer || !options || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL optimizer, options or out", fn);
    ich_schedule_options o;
    ich_schedule_options_init(&o, ICH_SCHEDULE_PLATEAU);
    ich_status st = ich_options_merge(&o, sizeof o, options,
                                      ICH_OPTIONS_V1_SIZE(ich_schedule_options, t_max), fn);
    if (st == ICH_OK)
        st = check_schedule(&o, fn);
    if (st != ICH_OK)
        return st;
    ich_schedule *s = calloc(1, sizeof *s);
    if (!s)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", fn);
    s->optimizer = optimizer;
    s->o = o;
    s->base_lr = ich_optimizer_lr(optimizer);
    s->best = worst_metric(o.maximize);
    *out = s;
    return ICH_OK;
}

void ich_schedule_free(ich_schedule *schedule) { free(schedule); }

/* ReduceLROnPlateau.is_better with threshold_mode "rel". */
static int plateau_better(const ich_schedule *s, double metric)
{
    if (s->o.maximize)
        return metric > s->best * (s->o.threshold + 1.0);
    return metric < s->best * (1.0 - s->o.threshold);
}

static double plateau_lr(ich_schedule *s, double metric, double lr)
{
    if (plateau_better(s, metric)) {
        s->best = metric;
        s->bad_epochs = 0;
    } else {
        s->bad_epochs++;
    }
    if (s->bad_epochs > s->o.patience) {
        double reduced = fmax(lr * s->o.factor, s->o.min_lr);
        if (lr - reduced > PLATEAU_EPS)
            lr = reduced;
        s->bad_epochs = 0; /* cooldown 0: counting starts again at once */
    }
    return lr;
}

/* CosineAnnealingLR.get_lr, the recursive form scheduler.step() uses. */
static double cosine_lr(const ich_schedule *s, int64_t epoch, double lr)
{
    double t_max = (double)s->o.t_max;
    double min_lr = s->o.min_lr;
    if (epoch == 0)
        return lr;
    if ((epoch - 1 - s->o.t_max) % (2 * (int64_t)s->o.t_max) == 0)
        return lr + (s->base_lr - min_lr) * (1.0 - cos(M_PI / t_max)) / 2.0;
    return (1.0 + cos(M_PI * (double)epoch / t_max)) /
               (1.0 + cos(M_PI * (double)(epoch - 1) / t_max)) * (lr - min_lr) +
           min_lr;
}

ich_status ich_schedule_step(ich_schedule *schedule, double metric)
{
    if (!schedule)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_schedule_step: NULL schedule");
    ich_schedule *s = schedule;
    double lr = ich_optimizer_lr(s->optimizer);
    s->last_epoch++;
    switch (s->o.kind) {
    case ICH_SCHEDULE_PLATEAU:
        lr = plateau_lr(s, metric, lr);
        break;
    case ICH_SCHEDULE_STEP:
        if (s->last_epoch % s->o.step_size == 0)
            lr = lr * s->o.gamma;
        break;
    default:
        lr = cosine_lr(s, s->last_epoch, lr);
        break;
    }
    return ich_optimizer_set_lr(s->optimizer, lr);
}

const char *ich_schedule_config(const ich_schedule *schedule)
{
    if (!schedule)
        return NULL;
    ich_schedule *s = (ich_schedule *)schedule; /* the text buffer is a cache */
    const ich_schedule_options *o = &s->o;
    snprintf(s->config, sizeof s->config,
             "kind=%s factor=%.17g patience=%d threshold=%.17g min_lr=%.17g maximize=%d "
             "step_size=%d gamma=%.17g t_max=%d base_lr=%.17g last_epoch=%lld best=%.17g "
             "bad_epochs=%d",
             schedule_name(o->kind), o->factor, o->patience, o->threshold, o->min_lr,
             o->maximize ? 1 : 0, o->step_size, o->gamma, o->t_max, s->base_lr,
             (long long)s->last_epoch, s->best, s->bad_epochs);
    return s->config;
}

ich_status ich_schedule_restore_config(ich_schedule *schedule, const char *config)
{
    const char *fn = "ich_schedule_restore_config";
    if (!schedule || !config)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL schedule or config", fn);
    char kind[16];
    ich_status st = ich_config_word(config, "kind", kind, sizeof kind, fn);
    if (st != ICH_OK)
        return st;
    if (strcmp(kind, schedule_name(schedule->o.kind)) != 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: the config is for a %s schedule, this is %s",
                        fn, kind, schedule_name(schedule->o.kind));
    ich_schedule s = *schedule;
    if ((st = ich_config_double(config, "factor", &s.o.factor, fn)) != ICH_OK ||
        (st = ich_config_int32(config, "patience", &s.o.patience, fn)) != ICH_OK ||
        (st = ich_config_double(config, "threshold", &s.o.threshold, fn)) != ICH_OK ||
        (st = ich_config_double(config, "min_lr", &s.o.min_lr, fn)) != ICH_OK ||
        (st = ich_config_int32(config, "maximize", &s.o.maximize, fn)) != ICH_OK ||
        (st = ich_config_int32(config, "step_size", &s.o.step_size, fn)) != ICH_OK ||
        (st = ich_config_double(config, "gamma", &s.o.gamma, fn)) != ICH_OK ||
        (st = ich_config_int32(config, "t_max", &s.o.t_max, fn)) != ICH_OK ||
        (st = ich_config_double(config, "base_lr", &s.base_lr, fn)) != ICH_OK ||
        (st = ich_config_int64(config, "last_epoch", &s.last_epoch, fn)) != ICH_OK ||
        (st = ich_config_double(config, "best", &s.best, fn)) != ICH_OK ||
        (st = ich_config_int32(config, "bad_epochs", &s.bad_epochs, fn)) != ICH_OK)
        return st;
    st = check_schedule(&s.o, fn);
    if (st == ICH_OK && (s.last_epoch < 0 || s.bad_epochs < 0 || !isfinite(s.base_lr)))
        st = ich_fail(ICH_ERR_FORMAT, "%s: negative last_epoch or bad_epochs, or bad base_lr", fn);
    if (st != ICH_OK)
        return st == ICH_ERR_FORMAT ? st : ich_fail(ICH_ERR_FORMAT, "%s: invalid config", fn);
    *schedule = s;
    return ICH_OK;
}

/* ---- Early stopping ----------------------------------------------------- */

struct ich_early_stopping {
    int32_t patience;
    double min_delta;
    int maximize;
    double best;        /* best metric (the worst value before any) */
    int64_t best_epoch; /* -1 before any */
    int64_t epoch;      /* epochs recorded */
    int32_t bad_epochs; /* epochs since the best */
    char config[256];
};

static ich_status check_early(int32_t patience, double min_delta, const char *fn)
{
    if (patience < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: patience %d is negative", fn, patience);
    if (!isfinite(min_delta) || min_delta < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: min_delta %g must be >= 0", fn, min_delta);
    return ICH_OK;
}

ich_status ich_early_stopping_create(int32_t patience, double min_delta, int maximize,
                                     ich_early_stopping **out)
{
    const char *fn = "ich_early_stopping_create";
    if (out)
        *out = NULL;
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL out", fn);
    ich_status st = check_early(patience, min_delta, fn);
    if (st != ICH_OK)
        return st;
    ich_early_stopping *e = calloc(1, sizeof *e);
    if (!e)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", fn);
    e->patience = patience;
    e->min_delta = min_delta;
    e->maximize = maximize != 0;
    e->best = worst_metric(e->maximize);
    e->best_epoch = -1;
    *out = e;
    return ICH_OK;
}

void ich_early_stopping_free(ich_early_stopping *early) { free(early); }

ich_status ich_early_stopping_update(ich_early_stopping *early, double metric, int *improved,
                                     int *stop)
{
    if (!early)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_early_stopping_update: NULL object");
    /* NaN compares false: never an improvement. */
    int better = early->maximize ? metric > early->best + early->min_delta
                                 : metric < early->best - early->min_delta;
    if (better) {
        early->best = metric;
        early->best_epoch = early->epoch;
        early->bad_epochs = 0;
    } else {
        early->bad_epochs++;
    }
    early->epoch++;
    if (improved)
        *improved = better;
    if (stop)
        *stop = early->bad_epochs > 0 && early->bad_epochs >= early->patience;
    return ICH_OK;
}

double ich_early_stopping_best(const ich_early_stopping *early, int64_t *epoch)
{
    if (epoch)
        *epoch = early ? early->best_epoch : -1;
    if (!early || early->best_epoch < 0)
        return NAN;
    return early->best;
}

const char *ich_early_stopping_config(const ich_early_stopping *early)
{
    if (!early)
        return NULL;
    ich_early_stopping *e = (ich_early_stopping *)early; /* the text buffer is a cache */
    snprintf(e->config, sizeof e->config,
             "patience=%d min_delta=%.17g maximize=%d best=%.17g best_epoch=%lld epoch=%lld "
             "bad_epochs=%d",
             e->patience, e->min_delta, e->maximize, e->best, (long long)e->best_epoch,
             (long long)e->epoch, e->bad_epochs);
    return e->config;
}

ich_status ich_early_stopping_restore_config(ich_early_stopping *early, const char *config)
{
    const char *fn = "ich_early_stopping_restore_config";
    if (!early || !config)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL object or config", fn);
    ich_early_stopping e = *early;
    ich_status st;
    if ((st = ich_config_int32(config, "patience", &e.patience, fn)) != ICH_OK ||
        (st = ich_config_double(config, "min_delta", &e.min_delta, fn)) != ICH_OK ||
        (st = ich_config_int32(config, "maximize", &e.maximize, fn)) != ICH_OK ||
        (st = ich_config_double(config, "best", &e.best, fn)) != ICH_OK ||
        (st = ich_config_int64(config, "best_epoch", &e.best_epoch, fn)) != ICH_OK ||
        (st = ich_config_int64(config, "epoch", &e.epoch, fn)) != ICH_OK ||
        (st = ich_config_int32(config, "bad_epochs", &e.bad_epochs, fn)) != ICH_OK)
        return st;
    if (check_early(e.patience, e.min_delta, fn) != ICH_OK || e.best_epoch < -1 ||
        (e.best_epoch >= 0 && e.best_epoch >= e.epoch) || e.bad_epochs < 0 || e.epoch < 0)
        return ich_fail(ICH_ERR_FORMAT, "%s: inconsistent config \"%.200s\"", fn, config);
    e.maximize = e.maximize != 0;
    *early = e;
    return ICH_OK;
}
