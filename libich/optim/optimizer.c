/* Adam, AdamW and SGD with PyTorch 1.13's semantics (torch/optim/adam.py,
 * adamw.py, sgd.py, the `_single_tensor_*` functions), and gradient
 * clipping (torch.nn.utils.clip_grad_norm_).
 *
 * The arithmetic is float32 op by op as torch's CPU kernels do it: scalars
 * are Python floats (double) cast to float when they meet a tensor; torch's
 * vectorised `add(other, alpha)` and `addcmul` are fused multiply-adds
 * (fmaf here); everything else is rounded after each op. Bias corrections
 * and step sizes are computed in double, as Python does. With the same
 * weights and gradients the updated weights equal torch's bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/options.h"
#include "core/threads.h"
#include "ich/optim.h"
#include "optim/optim_internal.h"

ICH_NO_FP_CONTRACT

/* The update loops are cloned for CPUs with FMA, so fmaf() is one
 * instruction there (elsewhere it is libm's exact software fma). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define ICH_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define ICH_FMA_CLONES
#endif

/* The state of one trainable parameter. */
typedef struct param_state {
    int32_t tensor;     /* index in the model */
    int64_t count;      /* elements */
    float *exp_avg;     /* Adam(W): first moment; SGD: momentum buffer */
    float *exp_avg_sq;  /* Adam(W): second moment */
    int64_t step;       /* updates of this parameter (torch's state["step"]) */
    char *names[3];     /* state tensor names */
} param_state;

struct ich_optimizer {
    ich_model *model;
    ich_optimizer_options o;
    int64_t steps;
    int32_t param_count;
    param_state *params;
    int32_t per_param; /* state tensors per parameter */
    char config[512];
};

static const char *kind_name(int32_t kind)
{
    switch (kind) {
    case ICH_OPTIM_SGD: return "sgd";
    case ICH_OPTIM_ADAM: return "adam";
    case ICH_OPTIM_ADAMW: return "adamw";
    default: return NULL;
    }
}

void (ich_optimizer_options_init)(ich_optimizer_options *caller, ich_optimizer_kind kind)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_optimizer_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->kind = kind;
    options->lr = kind == ICH_OPTIM_SGD ? 0.01 : 1e-3;
    options->beta1 = 0.9;
    options->beta2 = 0.999;
    options->eps = 1e-8;
    options->weight_decay = kind == ICH_OPTIM_ADAMW ? 0.01 : 0.0;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_optimizer_options, nesterov));
}

/* PyTorch's checks of the settings (its ValueErrors), plus finiteness. */
static ich_status check_options(const ich_optimizer_options *o, const char *fn)
{
    if (!kind_name(o->kind))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: unknown optimizer kind %d", fn, o->kind);
    if (!isfinite(o->lr) || o->lr < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: learning rate %g must be >= 0", fn, o->lr);
    if (!isfinite(o->weight_decay) || o->weight_decay < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: weight decay %g must be >= 0", fn,
                        o->weight_decay);
    if (o->kind == ICH_OPTIM_SGD) {
        if (!isfinite(o->momentum) || o->momentum < 0)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: momentum %g must be >= 0", fn,
                            o->momentum);
        if (!isfinite(o->dampening))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: dampening %g is not finite", fn,
                            o->dampening);
        if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "%s: Nesterov momentum requires a momentum > 0 and zero dampening",
                            fn);
        return ICH_OK;
    }
    if (!isfinite(o->eps) || o->eps < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: eps %g must be >= 0", fn, o->eps);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: betas (%g, %g) must be in [0, 1)", fn,
                        o->beta1, o->beta2);
    return ICH_OK;
}

static int32_t state_per_param(const ich_optimizer_options *o)
{
    if (o->kind == ICH_OPTIM_SGD)
        return o->momentum != 0 ? 2 : 0; /* momentum_buffer, step; plain SGD has none */
    return 3;                            /* exp_avg, exp_avg_sq, step */
}

static void free_params(ich_optimizer *opt)
{
    for (int32_t i = 0; i < opt->param_count; i++) {
        param_state *p = &opt->params[i];
        free(p->exp_avg);
        free(p->exp_avg_sq);
        for (int k = 0; k < 3; k++)
            free(p->names[k]);
    }
    free(opt->params);
    opt->params = NULL;
    opt->param_count = 0;
}

static char *state_name(const char *param, const char *suffix)
{
    size_t length = strlen("optimizer.") + strlen(param) + 1 + strlen(suffix) + 1;
    char *name = malloc(length);
    if (name)
        snprintf(name, length, "optimizer.%s.%s", param, suffix);
    return name;
}

/* Allocate the (zero) state of parameter `p`, viewed through `view`. The
 * zeros are what torch's lazily created state holds before its first use. */
static int init_param(ich_optimizer *opt, param_state *p, const ich_tensor_view *view)
{
    p->count = view->count;
    size_t bytes = (size_t)(view->count > 0 ? view->count : 1) * sizeof(float);
    const char *suffixes[3] = {"exp_avg", "exp_avg_sq", "step"};
    if (opt->o.kind == ICH_OPTIM_SGD) {
        suffixes[0] = "momentum_buffer";
        suffixes[1] = "step";
        suffixes[2] = NULL;
    }
    if (opt->per_param >= 2) {
        p->exp_avg = calloc(1, bytes);
        if (!p->exp_avg)
            return 0;
    }
    if (opt->per_param == 3) {
        p->exp_avg_sq = calloc(1, bytes);
        if (!p->exp_avg_sq)
            return 0;
    }
    for (int32_t k = 0; k < opt->per_param; k++) {
        p->names[k] = state_name(view->name ? view->name : "?", suffixes[k]);
        if (!p->names[k])
            return 0;
    }
    return 1;
}

static ich_status collect_params(ich_optimizer *opt)
{
    int32_t tensors = ich_model_tensor_count(opt->model);
    opt->params = calloc((size_t)(tensors > 0 ? tensors : 1), sizeof *opt->params);
    if (!opt->params)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_optimizer_create: out of memory");
    for (int32_t t = 0; t < tensors; t++) {
        ich_tensor_view view = {.size = sizeof view};
        ich_status st = ich_model_tensor(opt->model, t, &view);
        if (st != ICH_OK)
            return st;
        if (!view.trainable || view.type != ICH_TENSOR_F32)
            continue;
        param_state *p = &opt->params[opt->param_count++];
        p->tensor = t;
        if (!init_param(opt, p, &view))
            return ich_fail(ICH_ERR_NO_MEMORY, "ich_optimizer_create: out of memory for the "
                                               "state of %s", view.name ? view.name : "?");
    }
    return ICH_OK;
}

ich_status ich_optimizer_create(ich_model *model, const ich_optimizer_options *options,
                                ich_optimizer **out)
{
    const char *fn = "ich_optimizer_create";
    if (out)
        *out = NULL;
    if (!model || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL model or out", fn);
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, options && options->size >= offsetof(ich_optimizer_options, lr)
                                       ? (ich_optimizer_kind)options->kind
                                       : ICH_OPTIM_ADAM);
    ich_status st = ich_options_merge(&o, sizeof o, options,
                                      ICH_OPTIONS_V1_SIZE(ich_optimizer_options, nesterov), fn);
    if (st == ICH_OK)
        st = check_options(&o, fn);
    if (st != ICH_OK)
        return st;
    ich_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", fn);
    opt->model = model;
    opt->o = o;
    opt->per_param = state_per_param(&o);
    st = collect_params(opt);
    if (st != ICH_OK) {
        ich_optimizer_free(opt);
        return st;
    }
    *out = opt;
    return ICH_OK;
}

void ich_optimizer_free(ich_optimizer *optimizer)
{
    if (!optimizer)
        return;
    free_params(optimizer);
    free(optimizer);
}

/* ---- The updates ------------------------------------------------------- */

/* Adam's float32 constants for one step (torch casts each Python float
 * to float where it meets a tensor). */
typedef struct adam_step {
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float weight_decay;       /* Adam: L2 added to the gradient (0: none) */
    float decay_factor;       /* AdamW: 1 - lr * weight_decay */
    float bias_correction2_sqrt, eps, neg_step_size;
} adam_step;

/* _single_tensor_adam / _single_tensor_adamw, one parameter:
 *   AdamW:  param *= 1 - lr * wd
 *   Adam:   grad = grad + wd * param           (fused: torch's add, alpha)
 *   m = m * beta1 + (1 - beta1) * grad          (fused)
 *   v = v * beta2 + ((1 - beta2) * grad) * grad (fused: addcmul)
 *   denom = sqrt(v) / sqrt(bias_correction2) + eps
 *   param = param + (-step_size * m) / denom    (addcdiv) */
ICH_FMA_CLONES
static void adam_update(float *restrict param, const float *restrict grad, float *restrict m,
                        float *restrict v, int64_t count, const adam_step *s, int decoupled)
{
    for (int64_t i = 0; i < count; i++) {
        float p = param[i];
        float g = grad[i];
        if (decoupled)
            p = p * s->decay_factor;
        else if (s->weight_decay != 0.0f)
            g = fmaf(p, s->weight_decay, g);
        float mi = fmaf(g, s->one_minus_beta1, m[i] * s->beta1);
        float vi = fmaf(s->one_minus_beta2 * g, g, v[i] * s->beta2);
        float denom = sqrtf(vi) / s->bias_correction2_sqrt + s->eps;
        param[i] = p + (s->neg_step_size * mi) / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

/* One parameter's update spread over the CPU backend's threads (each
 * element's arithmetic is the same on any thread: bit for bit). */
typedef struct update_job {
    float *param, *m, *v;
    const float *grad;
    const void *step; /* adam_step or sgd_step */
    int decoupled;
} update_job;

static void adam_range(void *context, int64_t begin, int64_t end)
{
    const update_job *j = context;
    adam_update(j->param + begin, j->grad + begin, j->m + begin, j->v + begin, end - begin,
                j->step, j->decoupled);
}

static void adam_param(const ich_optimizer *opt, param_state *p, const ich_tensor_view *view)
{
    const ich_optimizer_options *o = &opt->o;
    p->step++;
    double step = (double)p->step;
    double bias_correction1 = 1.0 - pow(o->beta1, step);
    double bias_correction2 = 1.0 - pow(o->beta2, step);
    double step_size = o->lr / bias_correction1;
    adam_step s = {
        .beta1 = (float)o->beta1,
        .one_minus_beta1 = (float)(1.0 - o->beta1),
        .beta2 = (float)o->beta2,
        .one_minus_beta2 = (float)(1.0 - o->beta2),
        .weight_decay = (float)o->weight_decay,
        .decay_factor = (float)(1.0 - o->lr * o->weight_decay),
        .bias_correction2_sqrt = (float)sqrt(bias_correction2),
        .eps = (float)o->eps,
        .neg_step_size = (float)-step_size,
    };
    update_job job = {(float *)view->data, p->exp_avg, p->exp_avg_sq, view->grad, &s,
                      o->kind == ICH_OPTIM_ADAMW};
    ich_parallel_range(p->count, adam_range, &job);
}

typedef struct sgd_step {
    float weight_decay, momentum, one_minus_dampening, neg_lr;
    int first; /* the momentum buffer starts as a copy of the gradient */
    int nesterov;
} sgd_step;

/* _single_tensor_sgd, one parameter:
 *   d = grad + wd * param                      (fused, when wd != 0)
 *   buf = d on the first step, else buf * momentum + (1 - dampening) * d
 *   d = nesterov ? d + momentum * buf : buf    (fused)
 *   param = param + (-lr) * d                  (fused) */
ICH_FMA_CLONES
static void sgd_update(float *restrict param, const float *restrict grad, float *restrict buf,
                       int64_t count, const sgd_step *s)
{
    /* locals, not s->: the loop is then split by case and vectorised */
    const float weight_decay = s->weight_decay, momentum = s->momentum;
    const float one_minus_dampening = s->one_minus_dampening, neg_lr = s->neg_lr;
    const int first = s->first, nesterov = s->nesterov;
    for (int64_t i = 0; i < count; i++) {
        float p = param[i];
        float d = grad[i];
        if (weight_decay != 0.0f)
            d = fmaf(p, weight_decay, d);
        if (buf) {
            float b = first ? d : fmaf(d, one_minus_dampening, buf[i] * momentum);
            buf[i] = b;
            d = nesterov ? fmaf(b, momentum, d) : b;
        }
        param[i] = fmaf(d, neg_lr, p);
    }
}

static void sgd_range(void *context, int64_t begin, int64_t end)
{
    const update_job *j = context;
    sgd_update(j->param + begin, j->grad + begin, j->m ? j->m + begin : NULL, end - begin,
               j->step);
}

static void sgd_param(const ich_optimizer *opt, param_state *p, const ich_tensor_view *view)
{
    const ich_optimizer_options *o = &opt->o;
    sgd_step s = {
        .weight_decay = (float)o->weight_decay,
        .momentum = (float)o->momentum,
        .one_minus_dampening = (float)(1.0 - o->dampening),
        .neg_lr = (float)-o->lr,
        .first = p->step == 0,
        .nesterov = o->nesterov != 0,
    };
    update_job job = {(float *)view->data, o->momentum != 0 ? p->exp_avg : NULL, NULL,
                      view->grad, &s, 0};
    ich_parallel_range(p->count, sgd_range, &job);
    p->step++;
}

ich_status ich_optimizer_step(ich_optimizer *optimizer)
{
    if (!optimizer)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_optimizer_step: NULL optimizer");
    for (int32_t i = 0; i < optimizer->param_count; i++) {
        param_state *p = &optimizer->params[i];
        ich_tensor_view view = {.size = sizeof view};
        ich_status st = ich_model_tensor(optimizer->model, p->tensor, &view);
        if (st != ICH_OK)
            return st;
        if (view.count != p->count || !view.data)
            return ich_fail(ICH_ERR_SHAPE, "ich_optimizer_step: tensor %s changed size",
                            view.name ? view.name : "?");
        /* torch skips parameters without a gradient; frozen ones get none. */
        if (view.frozen || !view.grad)
            continue;
        if (optimizer->o.kind == ICH_OPTIM_SGD)
            sgd_param(optimizer, p, &view);
        else
            adam_param(optimizer, p, &view);
        ich_model_tensor_changed(optimizer->model, p->tensor);
    }
    optimizer->steps++;
    return ICH_OK;
}

double ich_optimizer_lr(const ich_optimizer *optimizer)
{
    return optimizer ? optimizer->o.lr : 0.0;
}

ich_status ich_optimizer_set_lr(ich_optimizer *optimizer, double lr)
{
    if (!optimizer)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_optimizer_set_lr: NULL optimizer");
    if (!isfinite(lr) || lr < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_optimizer_set_lr: learning rate %g must be >= 0", lr);
    optimizer->o.lr = lr;
    return ICH_OK;
}

int64_t ich_optimizer_steps(const ich_optimizer *optimizer)
{
    return optimizer ? optimizer->steps : 0;
}

/* ---- State and config -------------------------------------------------- */

int32_t ich_optimizer_state_count(const ich_optimizer *optimizer)
{
    return optimizer ? optimizer->param_count * optimizer->per_param : 0;
}

ich_status ich_optimizer_state(const ich_optimizer *optimizer, int32_t index,
                               ich_tensor_view *view)
{
    const char *fn = "ich_optimizer_state";
    if (!optimizer || !view)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL optimizer or view", fn);
    if (!ich_options_size(view, sizeof *view, ICH_OPTIONS_V1_SIZE(ich_tensor_view, frozen), fn))
        return ICH_ERR_INVALID_ARGUMENT;
    int32_t count = ich_optimizer_state_count(optimizer);
    if (index < 0 || index >= count)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: index %d outside 0..%d", fn, index,
                        count - 1);
    param_state *p = &optimizer->params[index / optimizer->per_param];
    int32_t k = index % optimizer->per_param;
    ich_tensor_view param = {.size = sizeof param};
    ich_status st = ich_model_tensor(optimizer->model, p->tensor, &param);
    if (st != ICH_OK)
        return st;
    ich_tensor_view v = {.size = sizeof v};
    v.name = p->names[k];
    if (k == optimizer->per_param - 1) { /* the step count: one int64 */
        v.type = ICH_TENSOR_I64;
        v.ndim = 1;
        v.dims[0] = 1;
        v.count = 1;
        v.data = &p->step;
    } else {
        v.type = ICH_TENSOR_F32;
        v.ndim = param.ndim;
        memcpy(v.dims, param.dims, sizeof v.dims);
        v.count = p->count;
        v.data = k == 0 ? p->exp_avg : p->exp_avg_sq;
    }
    /* Only the caller's view->size bytes are written. */
    return ich_options_write(view, &v, sizeof v, ICH_OPTIONS_V1_SIZE(ich_tensor_view, frozen), fn);
}

const char *ich_optimizer_config(const ich_optimizer *optimizer)
{
    if (!optimizer)
        return NULL;
    ich_optimizer *opt = (ich_optimizer *)optimizer; /* the text buffer is a cache */
    const ich_optimizer_options *o = &opt->o;
    snprintf(opt->config, sizeof opt->config,
             "kind=%s lr=%.17g beta1=%.17g beta2=%.17g eps=%.17g weight_decay=%.17g "
             "momentum=%.17g dampening=%.17g nesterov=%d steps=%lld",
             kind_name(o->kind), o->lr, o->beta1, o->beta2, o->eps, o->weight_decay,
             o->momentum, o->dampening, o->nesterov ? 1 : 0, (long long)opt->steps);
    return opt->config;
}

ich_status ich_optimizer_restore_config(ich_optimizer *optimizer, const char *config)
{
    const char *fn = "ich_optimizer_restore_config";
    if (!optimizer || !config)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL optimizer or config", fn);
    char kind[16];
    ich_status st = ich_config_word(config, "kind", kind, sizeof kind, fn);
    if (st != ICH_OK)
        return st;
    if (strcmp(kind, kind_name(optimizer->o.kind)) != 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: the config is for %s, the optimizer is %s",
                        fn, kind, kind_name(optimizer->o.kind));
    ich_optimizer_options o = optimizer->o;
    int64_t steps = 0;
    if ((st = ich_config_double(config, "lr", &o.lr, fn)) != ICH_OK ||
        (st = ich_config_double(config, "beta1", &o.beta1, fn)) != ICH_OK ||
        (st = ich_config_double(config, "beta2", &o.beta2, fn)) != ICH_OK ||
        (st = ich_config_double(config, "eps", &o.eps, fn)) != ICH_OK ||
        (st = ich_config_double(config, "weight_decay", &o.weight_decay, fn)) != ICH_OK ||
        (st = ich_config_double(config, "momentum", &o.momentum, fn)) != ICH_OK ||
        (st = ich_config_double(config, "dampening", &o.dampening, fn)) != ICH_OK ||
        (st = ich_config_int32(config, "nesterov", &o.nesterov, fn)) != ICH_OK ||
        (st = ich_config_int64(config, "steps", &steps, fn)) != ICH_OK)
        return st;
    if (steps < 0)
        return ich_fail(ICH_ERR_FORMAT, "%s: steps=%lld is negative", fn, (long long)steps);
    if ((o.momentum != 0) != (optimizer->o.momentum != 0))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: the config %s momentum, the optimizer %s (another state layout)", fn,
                        o.momentum != 0 ? "has" : "has no",
                        optimizer->o.momentum != 0 ? "has" : "has none");
    st = check_options(&o, fn);
    if (st != ICH_OK) {
        char message[256];
        snprintf(message, sizeof message, "%s", ich_last_error());
        return ich_fail(ICH_ERR_FORMAT, "%s (in the config)", message);
    }
    optimizer->o = o;
    optimizer->steps = steps;
    return ICH_OK;
}

/* ---- Gradient clipping -------------------------------------------------- */

ich_status ich_clip_grad_norm(ich_model *model, double max_norm, double *total_norm)
{
    const char *fn = "ich_clip_grad_norm";
    if (!model)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL model", fn);
    if (!(max_norm > 0) || !isfinite(max_norm))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: max_norm %g must be positive", fn,
                        max_norm);
    int32_t tensors = ich_model_tensor_count(model);
    double sum = 0.0;
    for (int pass = 0; pass < 2; pass++) {
        float coefficient = 1.0f;
        if (pass == 1) {
            double total = sqrt(sum);
            if (total_norm)
                *total_norm = total;
            if (!isfinite(total)) {
                ich_log(ICH_LOG_WARNING, "%s: the gradient norm is %g; not clipped", fn, total);
                return ICH_OK;
            }
            /* torch: clamp(max_norm / (total_norm + 1e-6), max=1), in float */
            coefficient = (float)max_norm / ((float)total + 1e-6f);
            if (!(coefficient < 1.0f))
                return ICH_OK;
        }
        for (int32_t t = 0; t < tensors; t++) {
            ich_tensor_view view = {.size = sizeof view};
            ich_status st = ich_model_tensor(model, t, &view);
            if (st != ICH_OK)
                return st;
            if (!view.trainable || view.frozen || !view.grad || view.type != ICH_TENSOR_F32)
                continue;
            for (int64_t i = 0; i < view.count; i++) {
                if (pass == 0)
                    sum += (double)view.grad[i] * (double)view.grad[i];
                else
                    view.grad[i] *= coefficient;
            }
        }
    }
    return ICH_OK;
}
