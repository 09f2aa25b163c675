/* Models as safetensors files (ich_model_save/load, ich_model_load_weights)
 * and the pieces checkpoints (optim/checkpoint.c) are built from.
 *
 * Saving lists the model's tensors in state_dict order (then the
 * caller's extra tensors: a checkpoint's optimizer state), and the metadata:
 * "format": "pt" (what PyTorch's
 * safetensors writes), "ich.spec", every metadata entry of the model (the
 * model keeps "ich.seed" and "ich.steps", its dropout state, among them),
 * for a checkpoint "ich.optimizer" and the caller's extra pairs.
 *
 * Loading never leaves a half-loaded model: the file is parsed and every
 * tensor matched against the model (name, dtype, shape) before the first
 * byte is copied; in a checkpoint the optimizer config and metadata are
 * applied (and rolled back on failure) before the tensors are committed,
 * since copying them cannot fail.
 *
 * A file is hostile until checked: ich_st_read() has matched every tensor
 * of the header against the header and the file's size; ich_model_load()
 * then computes what the file's "ich.spec" needs (within the limits of
 * ich/model.h) and refuses a spec whose tensors could not fit in the file
 * (beyond a small model, built to name the mismatch) before building
 * (allocating) the model; model tensors with a NaN or an
 * infinity are refused (ich_model_load, ich_model_load_weights,
 * ich_checkpoint_load), naming the file and the tensor, so no model with
 * such weights predicts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/safetensors.h"
#include "ich/model.h"
#include "nn/model_file.h"
#include "nn/model_internal.h"

/* Metadata keys the file format and this module own (model_file.h). */
static const char KEY_FORMAT[] = ICH_META_FORMAT;
static const char KEY_SPEC[] = ICH_META_SPEC;
static const char KEY_OPTIMIZER[] = ICH_META_OPTIMIZER;
static const char OPTIMIZER_PREFIX[] = ICH_OPTIMIZER_PREFIX;

static int is_reserved_key(const char *key)
{
    return strcmp(key, KEY_FORMAT) == 0 || strcmp(key, KEY_SPEC) == 0 ||
           strcmp(key, KEY_OPTIMIZER) == 0;
}

/* ---- tensors to write --------------------------------------------------- */

static ich_status view_to_st(const ich_tensor_view *view, const char *path, ich_st_tensor *t)
{
    memset(t, 0, sizeof *t);
    if (view->type != ICH_TENSOR_F32 && view->type != ICH_TENSOR_I64)
        return ich_fail(ICH_ERR_INTERNAL, "%s: tensor \"%s\" has unknown type %d", path,
                        view->name ? view->name : "?", (int)view->type);
    if (view->ndim < 0 || view->ndim > 4)
        return ich_fail(ICH_ERR_INTERNAL, "%s: tensor \"%s\" has %d dimensions", path,
                        view->name ? view->name : "?", (int)view->ndim);
    t->name = view->name;
    t->dtype = view->type == ICH_TENSOR_F32 ? ICH_ST_F32 : ICH_ST_I64;
    t->ndim = view->ndim;
    for (int32_t d = 0; d < view->ndim; d++)
        t->shape[d] = view->dims[d];
    t->data = view->data;
    t->nbytes = (size_t)view->count * ich_st_dtype_size(t->dtype);
    return ICH_OK;
}

/* The model's tensors, then the `nopt` extra ones (a checkpoint's optimizer state). */
static ich_status collect_tensors(const ich_model *model, const ich_tensor_view *extra,
                                  int32_t nopt, const char *path, ich_st_tensor **out,
                                  int32_t *count)
{
    int32_t nmodel = ich_model_tensor_count(model);
    if (nmodel < 0 || nopt < 0)
        return ich_fail(ICH_ERR_INTERNAL, "%s: negative tensor count", path);
    ich_st_tensor *tensors = calloc((size_t)(nmodel + nopt) + 1, sizeof *tensors);
    if (!tensors)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    ich_status st = ICH_OK;
    for (int32_t i = 0; i < nmodel + nopt && st == ICH_OK; i++) {
        ich_tensor_view view = {.size = sizeof view};
        if (i < nmodel)
            st = ich_model_tensor(model, i, &view);
        else
            view = extra[i - nmodel];
        if (st == ICH_OK)
            st = view_to_st(&view, path, &tensors[i]);
    }
    if (st != ICH_OK) {
        free(tensors);
        return st;
    }
    *out = tensors;
    *count = nmodel + nopt;
    return ICH_OK;
}

/* ---- metadata to write -------------------------------------------------- */

typedef struct meta_list {
    ich_st_meta *items;
    int32_t count, capacity;
} meta_list;

/* Add key = value, replacing an earlier value of the same key. */
static void meta_put(meta_list *list, const char *key, const char *value)
{
    for (int32_t i = 0; i < list->count; i++) {
        if (strcmp(list->items[i].key, key) == 0) {
            list->items[i].value = value;
            return;
        }
    }
    list->items[list->count++] = (ich_st_meta){key, value};
}

static ich_status build_metadata(const ich_model *model, const char *optimizer_config,
                                 const char *const *keys, const char *const *values,
                                 int32_t extra, const char *path, meta_list *list)
{
    int32_t nmodel = ich_model_metadata_count(model);
    if (nmodel < 0)
        nmodel = 0;
    list->capacity = nmodel + extra + 3;
    list->items = calloc((size_t)list->capacity, sizeof *list->items);
    if (!list->items)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    const char *spec = ich_model_spec(model);
    if (!spec)
        return ich_fail(ICH_ERR_INTERNAL, "%s: the model has no spec", path);
    meta_put(list, KEY_FORMAT, "pt");
    meta_put(list, KEY_SPEC, spec);
    for (int32_t i = 0; i < nmodel; i++) {
        const char *key = ich_model_metadata_key(model, i);
        const char *value = key ? ich_model_metadata(model, key) : NULL;
        if (key && value && !is_reserved_key(key))
            meta_put(list, key, value);
    }
    if (optimizer_config)
        meta_put(list, KEY_OPTIMIZER, optimizer_config);
    for (int32_t i = 0; i < extra; i++) {
        if (!keys[i] || !values[i])
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: extra metadata %d: NULL key or value",
                            path, (int)i);
        if (is_reserved_key(keys[i]))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "%s: extra metadata key \"%s\" is reserved (format, ich.spec, ich.optimizer)",
                            path, keys[i]);
        meta_put(list, keys[i], values[i]);
    }
    return ICH_OK;
}

ich_status ich_model_file_save(const char *path, const ich_model *model,
                               const ich_tensor_view *tensors_extra, int32_t tensor_count,
                               const char *optimizer_config, const char *const *keys,
                               const char *const *values, int32_t extra)
{
    ich_st_tensor *tensors = NULL;
    int32_t count = 0;
    meta_list meta = {0};
    ich_status st = collect_tensors(model, tensors_extra, tensor_count, path, &tensors, &count);
    if (st == ICH_OK)
        st = build_metadata(model, optimizer_config, keys, values, extra, path, &meta);
    if (st == ICH_OK)
        st = ich_st_write(path, tensors, count, meta.items, meta.count);
    free(meta.items);
    free(tensors);
    return st;
}

ich_status ich_model_save(const ich_model *model, const char *path)
{
    if (!model || !path || !path[0])
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_save: NULL model or empty path");
    return ich_model_file_save(path, model, NULL, 0, NULL, NULL, NULL, 0);
}

/* ---- matching a file against a model ------------------------------------ */

void ich_format_shape(char *out, size_t size, int32_t ndim, const int64_t *dims)
{
    size_t at = (size_t)snprintf(out, size, "[");
    for (int32_t d = 0; d < ndim && at < size; d++)
        at += (size_t)snprintf(out + at, size - at, "%s%lld", d ? ", " : "", (long long)dims[d]);
    if (at < size)
        snprintf(out + at, size - at, "]");
}

/* Does file tensor `t` fit the view (dtype and shape)? */
static ich_status check_fit(const char *path, const ich_tensor_view *view, const ich_st_tensor *t)
{
    ich_st_dtype want = view->type == ICH_TENSOR_I64 ? ICH_ST_I64 : ICH_ST_F32;
    if (t->dtype != want)
        return ich_fail(ICH_ERR_SHAPE, "%s: tensor \"%s\" is %s in the file, the model's is %s",
                        path, view->name, ich_st_dtype_name(t->dtype), ich_st_dtype_name(want));
    int same = t->ndim == view->ndim;
    for (int32_t d = 0; same && d < t->ndim; d++)
        same = t->shape[d] == view->dims[d];
    if (!same) {
        char file_shape[160], model_shape[160];
        ich_format_shape(file_shape, sizeof file_shape, t->ndim, t->shape);
        ich_format_shape(model_shape, sizeof model_shape, view->ndim, view->dims);
        return ich_fail(ICH_ERR_SHAPE, "%s: tensor \"%s\" has shape %s in the file, the model's is %s",
                        path, view->name, file_shape, model_shape);
    }
    if ((size_t)view->count * ich_st_dtype_size(want) != t->nbytes || (t->nbytes && !view->data))
        return ich_fail(ICH_ERR_INTERNAL, "%s: tensor \"%s\": the model's view is inconsistent",
                        path, view->name);
    return ICH_OK;
}


/* Is every element of a file F32 tensor finite? (Read byte by byte, as
 * stored: little-endian; an all-ones exponent is an infinity or a NaN.) */
static ich_status check_finite(const char *path, const ich_st_tensor *t)
{
    if (t->dtype != ICH_ST_F32)
        return ICH_OK;
    const unsigned char *bytes = t->data;
    for (size_t i = 0; i + 4 <= t->nbytes; i += 4) {
        unsigned exponent = ((unsigned)(bytes[i + 3] & 0x7f) << 1) | (bytes[i + 2] >> 7);
        if (exponent == 0xff) {
            float value;
            unsigned char le[4] = {bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]};
            ich_st_tensor one = *t;
            one.data = le;
            one.nbytes = 4;
            ich_st_tensor_copy(&one, &value);
            return ich_fail(ICH_ERR_FORMAT,
                            "%s: tensor \"%s\" holds a non-finite value (%s at element %zu): "
                            "a diverged or corrupt model",
                            path, t->name, isnan(value) ? "NaN" : value > 0 ? "inf" : "-inf",
                            i / 4);
        }
    }
    return ICH_OK;
}

void ich_load_plan_free(ich_load_plan *plan)
{
    for (int32_t i = 0; plan->copies && i < plan->count; i++)
        free(plan->copies[i].folded);
    free(plan->copies);
    free(plan->used);
    memset(plan, 0, sizeof *plan);
}

ich_status ich_load_plan_alloc(ich_load_plan *plan, const ich_st_file *file, int32_t copies)
{
    plan->copies = calloc((size_t)copies + 1, sizeof *plan->copies);
    plan->used = calloc((size_t)file->count + 1, 1);
    if (!plan->copies || !plan->used)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", file->path);
    return ICH_OK;
}

/* Find the view's tensor in the file, check it and plan its copy. */
ich_status ich_load_plan_tensor(ich_load_plan *plan, const ich_st_file *file,
                              const ich_tensor_view *view)
{
    int32_t index = ich_st_find(file, view->name);
    if (index < 0)
        return ich_fail(ICH_ERR_NOT_FOUND, "%s: tensor \"%s\" is missing from the file", file->path,
                        view->name);
    ich_status st = check_fit(file->path, view, &file->tensors[index]);
    if (st == ICH_OK && plan->finite)
        st = check_finite(file->path, &file->tensors[index]);
    if (st != ICH_OK)
        return st;
    plan->used[index] = 1;
    plan->copies[plan->count++] =
        (ich_copy_plan){.source = &file->tensors[index], .destination = view->data};
    return ICH_OK;
}

/* The stem rule (model_file.h): is file tensor `t` a 3-channel stem weight
 * for the model's 1-channel `view`? Then plan the summed copy. */
int ich_load_plan_stem_fold(ich_load_plan *plan, const ich_st_file *file,
                            const ich_tensor_view *view, ich_status *st)
{
    int32_t index = ich_st_find(file, view->name);
    if (index < 0)
        return 0;
    const ich_st_tensor *t = &file->tensors[index];
    if (t->dtype != ICH_ST_F32 || t->ndim != 4 || view->type == ICH_TENSOR_I64 ||
        t->shape[0] != view->dims[0] || t->shape[1] != 3 || t->shape[2] != view->dims[2] ||
        t->shape[3] != view->dims[3] || !view->data)
        return 0;
    *st = plan->finite ? check_finite(file->path, t) : ICH_OK;
    if (*st)
        return 1;
    float *host = malloc(t->nbytes ? t->nbytes : 1);
    if (!host) {
        *st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", file->path);
        return 1;
    }
    ich_st_tensor_copy(t, host);
    plan->used[index] = 1;
    plan->copies[plan->count++] = (ich_copy_plan){t, view->data, host, t->shape[0], 3,
                                                  t->shape[2] * t->shape[3]};
    return 1;
}

ich_status ich_load_plan_model(ich_load_plan *plan, const ich_st_file *file, const ich_model *model)
{
    int32_t count = ich_model_tensor_count(model);
    int32_t channels = 0, rows = 0, columns = 0;
    int stem_seen = !plan->stem_fold ||
                    ich_model_input_shape(model, &channels, &rows, &columns) != ICH_OK ||
                    channels != 1;
    for (int32_t i = 0; i < count; i++) {
        ich_tensor_view view = {.size = sizeof view};
        ich_status st = ich_model_tensor(model, i, &view);
        if (st == ICH_OK && !stem_seen && view.ndim == 4) {
            stem_seen = 1;
            if (view.dims[1] == 1 && ich_load_plan_stem_fold(plan, file, &view, &st))
                goto next;
        }
        if (st == ICH_OK)
            st = ich_load_plan_tensor(plan, file, &view);
    next:
        if (st != ICH_OK)
            return st;
    }
    return ICH_OK;
}

static int has_prefix(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* Every file tensor must be used, except a checkpoint's optimizer state
 * when `skip_optimizer` is set. */
ich_status ich_load_plan_check_unused(const ich_load_plan *plan, const ich_st_file *file, int skip_optimizer)
{
    int32_t unused = 0, first = -1;
    for (int32_t i = 0; i < file->count; i++) {
        if (plan->used[i] || (skip_optimizer && has_prefix(file->tensors[i].name, OPTIMIZER_PREFIX)))
            continue;
        if (first < 0)
            first = i;
        unused++;
    }
    if (unused == 0)
        return ICH_OK;
    return ich_fail(ICH_ERR_SHAPE,
                    "%s: tensor \"%s\" in the file is not in the model (%d unexpected tensor%s; a "
                    "different network?)",
                    file->path, file->tensors[first].name, (int)unused, unused == 1 ? "" : "s");
}

void ich_load_plan_commit(const ich_load_plan *plan)
{
    for (int32_t i = 0; i < plan->count; i++) {
        const ich_copy_plan *c = &plan->copies[i];
        if (!c->folded) {
            ich_st_tensor_copy(c->source, c->destination);
            continue;
        }
        float *dst = c->destination;
        for (int64_t o = 0; o < c->outer; o++)
            for (int64_t k = 0; k < c->inner; k++) {
                float sum = 0.0f;
                for (int64_t f = 0; f < c->fold; f++)
                    sum += c->folded[(o * c->fold + f) * c->inner + k];
                dst[o * c->inner + k] = sum;
            }
    }
}

/* Plan (and check) the model's tensors from an already read file. */
static ich_status plan_model_load(ich_load_plan *plan, const ich_st_file *file,
                                  const ich_model *model, int strict, int stem_fold)
{
    ich_status st = ich_load_plan_alloc(plan, file, ich_model_tensor_count(model));
    plan->finite = 1;
    plan->stem_fold = stem_fold;
    if (st == ICH_OK)
        st = ich_load_plan_model(plan, file, model);
    int checkpoint = ich_st_metadata(file, KEY_OPTIMIZER) != NULL;
    if (st == ICH_OK && strict)
        st = ich_load_plan_check_unused(plan, file, checkpoint);
    return st;
}

/* Set the model metadata from the file (all entries but the format's and
 * the optimizer's; the model ignores "ich.spec"). */
ich_status ich_model_apply_file_metadata(ich_model *model, const ich_st_file *file)
{
    for (int32_t i = 0; i < file->meta_count; i++) {
        const ich_st_meta *m = &file->meta[i];
        if (strcmp(m->key, KEY_FORMAT) == 0 || strcmp(m->key, KEY_OPTIMIZER) == 0)
            continue;
        ich_status st = ich_model_set_metadata(model, m->key, m->value);
        if (st != ICH_OK) {
            char message[512];
            snprintf(message, sizeof message, "%s", ich_last_error());
            if (st == ICH_ERR_INVALID_ARGUMENT)
                st = ICH_ERR_FORMAT; /* a bad value in the file */
            return ich_fail(st, "%s: metadata \"%s\": %s", file->path, m->key, message);
        }
    }
    return ICH_OK;
}

ich_status ich_model_load_weights(ich_model *model, const char *path, int strict)
{
    if (!model || !path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_load_weights: NULL model or path");
    ich_st_file file;
    ich_load_plan plan = {0};
    ich_status st = ich_st_read(path, &file);
    if (st == ICH_OK)
        st = plan_model_load(&plan, &file, model, strict, 1);
    if (st == ICH_OK) {
        ich_load_plan_commit(&plan);
        ich_model_tensor_changed(model, -1);
    }
    ich_load_plan_free(&plan);
    ich_st_free(&file);
    return st;
}

/* Tensor bytes of a model cheap enough to build just to name a mismatch. */
#define SMALL_MODEL_BYTES ((int64_t)16 << 20)

/* Build the model the file's "ich.spec" describes. */
static ich_status create_from_spec(const ich_st_file *file, ich_model **model)
{
    const char *spec = ich_st_metadata(file, KEY_SPEC);
    if (!spec)
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: no \"ich.spec\" metadata, so the network is unknown (not written by "
                        "libich?): create the model and use ich_model_load_weights()",
                        file->path);
    /* What the spec needs, before anything is allocated: a file whose
     * tensors are fewer bytes than the model's cannot hold them. A small
     * model is still built, so that the message names the tensor that is
     * missing or of another shape; a large one is refused here. */
    int64_t needed = 0;
    ich_status st = ich_model_spec_tensor_bytes(spec, &needed);
    uint64_t data = file->size - 8 - file->header_size; /* ich_st_read checked the sizes */
    if (st == ICH_OK && (uint64_t)needed > data && needed > SMALL_MODEL_BYTES)
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: metadata \"ich.spec\" describes a network whose tensors take %lld "
                        "bytes, but the file holds only %llu bytes of tensors",
                        file->path, (long long)needed, (unsigned long long)data);
    if (st == ICH_OK)
        st = ich_model_create(spec, model);
    if (st != ICH_OK) {
        char message[512];
        snprintf(message, sizeof message, "%s", ich_last_error());
        return ich_fail(st == ICH_ERR_NO_MEMORY ? st : ICH_ERR_FORMAT,
                        "%s: metadata \"ich.spec\" does not describe a model: %s", file->path,
                        message);
    }
    return ICH_OK;
}

ich_status ich_model_load(const char *path, ich_model **out)
{
    if (!path || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_load: NULL path or out");
    *out = NULL;
    ich_st_file file;
    ich_load_plan plan = {0};
    ich_model *model = NULL;
    ich_status st = ich_st_read(path, &file);
    if (st == ICH_OK)
        st = create_from_spec(&file, &model);
    if (st == ICH_OK)
        st = plan_model_load(&plan, &file, model, 1, 0);
    if (st == ICH_OK)
        st = ich_model_apply_file_metadata(model, &file);
    if (st == ICH_OK) {
        ich_load_plan_commit(&plan);
        ich_model_tensor_changed(model, -1);
        *out = model;
        model = NULL;
    }
    ich_model_free(model);
    ich_load_plan_free(&plan);
    ich_st_free(&file);
    return st;
}
