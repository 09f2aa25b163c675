/* Checkpoints: a model and its optimizer's state in one safetensors file
 * (ich_checkpoint_save/load, <ich/optim.h>), built on the model file
 * (nn/model_file.h): the optimizer's state tensors follow the model's, its
 * config is the metadata "ich.optimizer". Loading checks every tensor of
 * both before any is copied, and applies the optimizer config and the
 * model metadata (rolled back on failure) before the copies, which cannot
 * fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ich/model.h"
#include "ich/optim.h"
#include "nn/model_file.h"

/* ---- saving ------------------------------------------------------------- */

ich_status ich_checkpoint_save(const char *path, const ich_model *model,
                               const ich_optimizer *optimizer, const char *const *keys,
                               const char *const *values, int32_t count)
{
    if (!model || !optimizer || !path || !path[0])
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_checkpoint_save: NULL model, optimizer or empty path");
    if (count < 0 || (count > 0 && (!keys || !values)))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: bad extra metadata (count %d)", path,
                        (int)count);
    /* The optimizer's state tensors follow the model's. */
    int32_t nopt = ich_optimizer_state_count(optimizer);
    const char *config = ich_optimizer_config(optimizer);
    if (nopt < 0 || !config)
        return ich_fail(ICH_ERR_INTERNAL, "%s: the optimizer has no %s", path,
                        nopt < 0 ? "state count" : "config");
    ich_tensor_view *views = calloc((size_t)nopt + 1, sizeof *views);
    if (!views)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    ich_status st = ICH_OK;
    for (int32_t i = 0; i < nopt && st == ICH_OK; i++) {
        views[i].size = sizeof views[i];
        st = ich_optimizer_state(optimizer, i, &views[i]);
    }
    if (st == ICH_OK)
        st = ich_model_file_save(path, model, views, nopt, config, keys, values, count);
    free(views);
    return st;
}

/* ---- loading ----------------------------------------------------------- */

/* Plan (and check) the optimizer's state tensors from the file. */
static ich_status plan_optimizer(ich_load_plan *plan, const ich_st_file *file,
                                 const ich_optimizer *optimizer)
{
    int32_t count = ich_optimizer_state_count(optimizer);
    for (int32_t i = 0; i < count; i++) {
        ich_tensor_view view = {.size = sizeof view};
        ich_status st = ich_optimizer_state(optimizer, i, &view);
        if (st == ICH_OK)
            st = ich_load_plan_tensor(plan, file, &view);
        if (st != ICH_OK)
            return st;
    }
    return ICH_OK;
}

/* A copy of the model's metadata, to roll back to. */
typedef struct meta_snapshot {
    char **keys, **values;
    int32_t count;
} meta_snapshot;

static void snapshot_free(meta_snapshot *s)
{
    for (int32_t i = 0; i < s->count; i++) {
        free(s->keys[i]);
        free(s->values[i]);
    }
    free(s->keys);
    free(s->values);
    memset(s, 0, sizeof *s);
}

static ich_status snapshot_take(const ich_model *model, meta_snapshot *s, const char *path)
{
    int32_t count = ich_model_metadata_count(model);
    s->keys = calloc((size_t)(count > 0 ? count : 1), sizeof *s->keys);
    s->values = calloc((size_t)(count > 0 ? count : 1), sizeof *s->values);
    if (!s->keys || !s->values)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    for (int32_t i = 0; i < count; i++) {
        const char *key = ich_model_metadata_key(model, i);
        const char *value = key ? ich_model_metadata(model, key) : NULL;
        if (!key || !value)
            continue;
        s->keys[s->count] = strdup(key);
        s->values[s->count] = strdup(value);
        s->count++;
        if (!s->keys[s->count - 1] || !s->values[s->count - 1])
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    }
    return ICH_OK;
}

/* Put the metadata back as it was: drop the keys the file added. */
static void snapshot_restore(ich_model *model, const meta_snapshot *s, const ich_st_file *file)
{
    for (int32_t i = 0; i < file->meta_count; i++) {
        const char *key = file->meta[i].key;
        int existed = 0;
        for (int32_t k = 0; k < s->count && !existed; k++)
            existed = strcmp(s->keys[k], key) == 0;
        if (!existed && strcmp(key, ICH_META_SPEC) != 0)
            ich_model_set_metadata(model, key, NULL);
    }
    for (int32_t k = 0; k < s->count; k++)
        ich_model_set_metadata(model, s->keys[k], s->values[k]);
}

/* Restore config and metadata; undo both when either fails. */
static ich_status apply_checkpoint_state(ich_model *model, ich_optimizer *optimizer,
                                         const ich_st_file *file)
{
    const char *config = ich_st_metadata(file, ICH_META_OPTIMIZER);
    const char *current = ich_optimizer_config(optimizer);
    char *old_config = current ? strdup(current) : NULL;
    meta_snapshot snapshot = {0};
    if (!old_config)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", file->path);
    ich_status st = snapshot_take(model, &snapshot, file->path);
    if (st == ICH_OK) {
        st = ich_optimizer_restore_config(optimizer, config);
        if (st != ICH_OK) {
            char message[512];
            snprintf(message, sizeof message, "%s", ich_last_error());
            st = ich_fail(st, "%s: metadata \"ich.optimizer\": %s", file->path, message);
        } else if ((st = ich_model_apply_file_metadata(model, file)) != ICH_OK) {
            ich_optimizer_restore_config(optimizer, old_config);
            snapshot_restore(model, &snapshot, file);
        }
    }
    snapshot_free(&snapshot);
    free(old_config);
    return st;
}

ich_status ich_checkpoint_load(const char *path, ich_model *model, ich_optimizer *optimizer)
{
    if (!path || !model || !optimizer)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_checkpoint_load: NULL path, model or optimizer");
    ich_st_file file;
    ich_load_plan plan = {0};
    ich_status st = ich_st_read(path, &file);
    if (st == ICH_OK && !ich_st_metadata(&file, ICH_META_OPTIMIZER))
        st = ich_fail(ICH_ERR_FORMAT,
                      "%s: no \"ich.optimizer\" metadata: not a checkpoint (ich_model_load() reads "
                      "model files)",
                      path);
    if (st == ICH_OK)
        st = ich_load_plan_alloc(&plan, &file,
                        ich_model_tensor_count(model) + ich_optimizer_state_count(optimizer));
    plan.finite = 1; /* resuming a diverged run is refused too */
    if (st == ICH_OK)
        st = ich_load_plan_model(&plan, &file, model);
    if (st == ICH_OK)
        st = plan_optimizer(&plan, &file, optimizer);
    if (st == ICH_OK)
        st = ich_load_plan_check_unused(&plan, &file, 0);
    if (st == ICH_OK)
        st = apply_checkpoint_state(model, optimizer, &file);
    if (st == ICH_OK) {
        ich_load_plan_commit(&plan);
        ich_model_tensor_changed(model, -1);
    }
    ich_load_plan_free(&plan);
    ich_st_free(&file);
    return st;
}
