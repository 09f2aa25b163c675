/* Pretrained backbones (ich_model_load_pretrained, include/ich/model.h):
 * the tensors of a safetensors file that fit a model (name after a
 * prefix, shape) are loaded, the others reported and left alone.
 *
 * Everything that touches the file is model_file.c's: the reader
 * (ich_st_read: the hostile-file checks), the plan (dtype and finite
 * checks, ich_load_plan_tensor), the stem rule (ich_load_plan_stem_fold)
 * and the commit, so this loads exactly as ich_model_load_weights() does,
 * only choosing which tensors. Nothing is copied, logged or reported
 * before every check has passed: all or nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/options.h"
#include "ich/model.h"
#include "nn/model_file.h"
#include "nn/safetensors.h"

#define REPORT_V1_SIZE ICH_OPTIONS_V1_SIZE(ich_pretrained_report, tensor_user)
#define FN "ich_model_load_pretrained"

/* What became of each model tensor. */
enum { OUTSIDE = 0, LOADED, SUMMED, FRESH };

/* Names listed in the summary line and the no-fit error. */
#define SUMMARY_NAMES 8
#define ERROR_NAMES 3

typedef struct load {
    ich_model *model;
    const char *path;
    const char *prefix;
    size_t prefix_len;
    ich_st_file file;
    ich_load_plan plan;
    int32_t count;         /* model tensors */
    unsigned char *state;  /* per model tensor: OUTSIDE, LOADED, SUMMED, FRESH */
    unsigned char *ignore; /* per file tensor: a checkpoint's optimizer state */
    ich_pretrained_report out;
    ich_pretrained_fn fn;
    void *user;
} load;

static int same_shape(const ich_st_tensor *t, const ich_tensor_view *view)
{
    if (t->ndim != view->ndim)
        return 0;
    for (int32_t d = 0; d < t->ndim; d++)
        if (t->shape[d] != view->dims[d])
            return 0;
    return 1;
}

static int under_prefix(const load *l, const char *name)
{
    return strncmp(name, l->prefix, l->prefix_len) == 0;
}

/* Model tensor `i` with the file's name for it (the prefix removed). */
static ich_status model_view(const load *l, int32_t i, ich_tensor_view *view)
{
    *view = (ich_tensor_view){.size = sizeof *view};
    return ich_model_tensor(l->model, i, view);
}

/* Plan the copies: each model tensor under the prefix, in state_dict order. */
static ich_status plan(load *l)
{
    int32_t channels = 0;
    int stem_seen = ich_model_input_shape(l->model, &channels, NULL, NULL) != ICH_OK ||
                    channels != 1;
    int32_t under = 0;
    for (int32_t i = 0; i < l->count; i++) {
        ich_tensor_view view;
        ich_status st = model_view(l, i, &view);
        if (st != ICH_OK)
            return st;
        if (!under_prefix(l, view.name))
            continue;
        under++;
        l->state[i] = FRESH;
        ich_tensor_view in_file = view;
        in_file.name = view.name + l->prefix_len;
        int32_t index = ich_st_find(&l->file, in_file.name);
        int stem = !stem_seen && view.ndim == 4;
        if (stem)
            stem_seen = 1;
        if (index < 0 || l->ignore[index])
            continue;
        if (stem && view.dims[1] == 1 && ich_load_plan_stem_fold(&l->plan, &l->file, &in_file, &st)) {
            if (st != ICH_OK)
                return st;
            l->state[i] = SUMMED;
            continue;
        }
        if (!same_shape(&l->file.tensors[index], &view))
            continue;
        /* dtype and finite checks: a tensor meant for this one but stored
         * as F16, or holding a NaN, is an error, not a skip */
        st = ich_load_plan_tensor(&l->plan, &l->file, &in_file);
        if (st != ICH_OK)
            return st;
        l->state[i] = LOADED;
    }
    if (under == 0)
        return ich_fail(ICH_ERR_NOT_FOUND, "%s: no tensor of the model starts with \"%s\"",
                        l->file.path, l->prefix);
    return ICH_OK;
}

/* Appends ", \"name\"" to a list of at most `limit` names. */
static void list_name(char *list, size_t size, int32_t *listed, int32_t limit, const char *name)
{
    size_t at = strlen(list);
    if (*listed < limit && at < size)
        snprintf(list + at, size - at, "%s\"%s\"", *listed ? ", " : "", name);
    else if (*listed == limit && at < size)
        snprintf(list + at, size - at, ", ...");
    (*listed)++;
}

/* Nothing fits: a file for another network. */
static ich_status no_fit(const load *l)
{
    char file_names[512] = "", model_names[512] = "";
    int32_t nfile = 0, nmodel = 0;
    for (int32_t i = 0; i < l->file.count; i++)
        if (!l->ignore[i])
            list_name(file_names, sizeof file_names, &nfile, ERROR_NAMES, l->file.tensors[i].name);
    for (int32_t i = 0; i < l->count; i++) {
        ich_tensor_view view;
        if (l->state[i] != OUTSIDE && model_view(l, i, &view) == ICH_OK)
            list_name(model_names, sizeof model_names, &nmodel, ERROR_NAMES, view.name);
    }
    return ich_fail(ICH_ERR_SHAPE,
                    "%s: no tensor of the file fits the model%s%s%s (a file for another "
                    "network?): the file has %d tensors (%s), the model %d (%s)",
                    l->file.path, l->prefix_len ? " under prefix \"" : "", l->prefix,
                    l->prefix_len ? "\"" : "", (int)nfile, nfile ? file_names : "none",
                    (int)nmodel, model_names);
}

static void emit(load *l, int32_t kind, const char *name, const char *detail)
{
    static const char *const verbs[] = {"loaded", "skipped", "new"};
    ich_log(ICH_LOG_INFO, "pretrained %s: %s %s%s%s%s", l->file.path, verbs[kind], name,
            detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
    if (l->fn)
        l->fn(l->user, kind, name, detail);
}

/* Why file tensor `t` was not used. */
static void skip_reason(const load *l, const ich_st_tensor *t, char *out, size_t size)
{
    size_t n = l->prefix_len + strlen(t->name) + 1;
    char *name = malloc(n);
    int32_t index = -1;
    if (name) {
        snprintf(name, n, "%s%s", l->prefix, t->name);
        index = ich_model_find_tensor(l->model, name);
        free(name);
    }
    ich_tensor_view view;
    if (index < 0 || model_view(l, index, &view) != ICH_OK) {
        snprintf(out, size, "not in the model");
        return;
    }
    char file_shape[128], model_shape[128];
    ich_format_shape(file_shape, sizeof file_shape, t->ndim, t->shape);
    ich_format_shape(model_shape, sizeof model_shape, view.ndim, view.dims);
    snprintf(out, size, "shape %s in the file, the model's is %s", file_shape, model_shape);
}

/* Log and report every tensor (after the commit), then the summary. */
static void report_all(load *l)
{
    char detail[320], skipped[600] = "", fresh[600] = "";
    int32_t nskipped = 0, nfresh = 0;
    for (int32_t i = 0; i < l->count; i++) {
        ich_tensor_view view;
        if (l->state[i] == OUTSIDE || model_view(l, i, &view) != ICH_OK)
            continue;
        detail[0] = '\0';
        if (l->state[i] == SUMMED)
            snprintf(detail, sizeof detail, "summed over 3 input channels");
        if (l->state[i] == FRESH) {
            int32_t index = ich_st_find(&l->file, view.name + l->prefix_len);
            char shape[128];
            if (index >= 0 && !l->ignore[index]) {
                const ich_st_tensor *t = &l->file.tensors[index];
                ich_format_shape(shape, sizeof shape, t->ndim, t->shape);
                snprintf(detail, sizeof detail, "the file's has shape %s", shape);
            } else {
                snprintf(detail, sizeof detail, "not in the file");
            }
            list_name(fresh, sizeof fresh, &nfresh, SUMMARY_NAMES, view.name);
        }
        emit(l, l->state[i] == FRESH ? ICH_PRETRAINED_FRESH : ICH_PRETRAINED_LOADED, view.name,
             detail);
    }
    for (int32_t i = 0; i < l->file.count; i++) {
        if (l->plan.used[i] || l->ignore[i])
            continue;
        skip_reason(l, &l->file.tensors[i], detail, sizeof detail);
        list_name(skipped, sizeof skipped, &nskipped, SUMMARY_NAMES, l->file.tensors[i].name);
        emit(l, ICH_PRETRAINED_SKIPPED, l->file.tensors[i].name, detail);
    }
    ich_log(nskipped ? ICH_LOG_WARNING : ICH_LOG_INFO,
            "pretrained %s%s%s: %d tensors loaded, %d skipped%s%s%s, %d new%s%s%s", l->file.path,
            l->prefix_len ? " into " : "", l->prefix, (int)l->out.loaded, (int)nskipped,
            nskipped ? " (" : "", skipped, nskipped ? ")" : "", (int)nfresh, nfresh ? " (" : "",
            fresh, nfresh ? ")" : "");
}

static void count(load *l)
{
    for (int32_t i = 0; i < l->count; i++) {
        l->out.loaded += l->state[i] == LOADED || l->state[i] == SUMMED;
        l->out.summed += l->state[i] == SUMMED;
        l->out.fresh += l->state[i] == FRESH;
    }
    for (int32_t i = 0; i < l->file.count; i++)
        l->out.skipped += !l->plan.used[i] && !l->ignore[i];
}

static ich_status prepare(load *l)
{
    ich_status st = ich_st_read(l->path, &l->file);
    if (st != ICH_OK)
        return st;
    l->count = ich_model_tensor_count(l->model);
    if (l->count < 0)
        return ich_fail(ICH_ERR_INTERNAL, FN ": negative tensor count");
    l->state = calloc((size_t)l->count + 1, 1);
    l->ignore = calloc((size_t)l->file.count + 1, 1);
    if (!l->state || !l->ignore)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", l->file.path);
    if (ich_st_metadata(&l->file, ICH_META_OPTIMIZER))
        for (int32_t i = 0; i < l->file.count; i++)
            l->ignore[i] = strncmp(l->file.tensors[i].name, ICH_OPTIMIZER_PREFIX,
                                   strlen(ICH_OPTIMIZER_PREFIX)) == 0;
    st = ich_load_plan_alloc(&l->plan, &l->file, l->count);
    l->plan.finite = 1;
    return st;
}

ich_status ich_model_load_pretrained(ich_model *model, const char *path, const char *prefix,
                                     ich_pretrained_report *report)
{
    if (!model || !path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, FN ": NULL model or path");
    size_t report_size = 0;
    if (report) {
        report_size = ich_options_size(report, sizeof *report, REPORT_V1_SIZE, FN);
        if (!report_size)
            return ICH_ERR_INVALID_ARGUMENT;
    }
    load l = {.model = model, .prefix = prefix ? prefix : ""};
    l.prefix_len = strlen(l.prefix);
    if (report) {
        /* the caller's in fields (all in the first version) */
        l.fn = report->tensor_fn;
        l.user = report->tensor_user;
    }
    l.out = (ich_pretrained_report){.size = sizeof l.out, .tensor_fn = l.fn, .tensor_user = l.user};
    l.path = path;
    ich_status st = prepare(&l);
    if (st == ICH_OK)
        st = plan(&l);
    if (st == ICH_OK) {
        count(&l);
        if (l.out.loaded == 0)
            st = no_fit(&l);
    }
    if (st == ICH_OK) {
        ich_load_plan_commit(&l.plan);
        ich_model_tensor_changed(model, -1);
        report_all(&l);
        if (report)
            ich_options_write(report, &l.out, sizeof l.out, REPORT_V1_SIZE, FN);
    }
    ich_load_plan_free(&l.plan);
    free(l.state);
    free(l.ignore);
    ich_st_free(&l.file);
    return st;
}
