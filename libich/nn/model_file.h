/* Internal: a model as a safetensors file, in pieces that the checkpoint
 * code (libich/optim/checkpoint.c: model + optimizer state) builds on
 * without the model knowing optimizers.
 *
 * Loading goes in two phases so that nothing is half-loaded: plan (find
 * each destination's tensor in the file, check dtype, shape and, with
 * `finite`, that no F32 element is NaN or infinite), then, once every
 * check and every fallible step has passed, commit (copy; cannot fail). */
#ifndef ICH_INTERNAL_MODEL_FILE_H
#define ICH_INTERNAL_MODEL_FILE_H

#include <stdint.h>

#include "ich/model.h"
#include "nn/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata keys the file format and the model file own. */
#define ICH_META_FORMAT "format"
#define ICH_META_SPEC "ich.spec"
#define ICH_META_OPTIMIZER "ich.optimizer" /* a checkpoint's optimizer config */
/* Prefix of the optimizer's state tensors, skipped by model loads of a checkpoint. */
#define ICH_OPTIMIZER_PREFIX "optimizer."

/* Write the model's tensors (state_dict order), then the `tensor_count`
 * views of `tensors` (may be NULL when 0), with the model's metadata,
 * "ich.optimizer" = `optimizer_config` when not NULL and the `extra`
 * caller pairs keys[i] = values[i] (a reserved key, "format", "ich.spec"
 * or "ich.optimizer", is ICH_ERR_INVALID_ARGUMENT). Atomic and durable;
 * errors as ich_st_write. */
ich_status ich_model_file_save(const char *path, const ich_model *model,
                               const ich_tensor_view *tensors, int32_t tensor_count,
                               const char *optimizer_config, const char *const *keys,
                               const char *const *values, int32_t extra);

/* A planned copy: file tensor -> destination. `folded` (the stem rule,
 * ich_load_plan_model): the file's [O, 3, KH, KW] stem weight in host
 * floats, summed over its input channels into the destination [O, 1, KH, KW]
 * at commit. */
typedef struct ich_copy_plan {
    const ich_st_tensor *source;
    void *destination;
    float *folded;          /* owned by the plan; NULL: a plain copy */
    int64_t outer, fold, inner; /* O, file input channels, KH * KW */
} ich_copy_plan;

/* The copies planned from one file; zero-initialise, then
 * ich_load_plan_alloc. */
typedef struct ich_load_plan {
    ich_copy_plan *copies;
    int32_t count;
    unsigned char *used; /* per file tensor: matched */
    int finite;          /* refuse F32 tensors holding NaN or infinity */
    int stem_fold;       /* apply the stem rule (ich_load_plan_model) */
} ich_load_plan;

/* Room for `copies` copies from `file`. ICH_ERR_NO_MEMORY. */
ich_status ich_load_plan_alloc(ich_load_plan *plan, const ich_st_file *file, int32_t copies);
/* Find the view's tensor in the file, check it and plan its copy:
 * ICH_ERR_NOT_FOUND (missing), ICH_ERR_SHAPE (dtype or shape differs),
 * ICH_ERR_FORMAT (a non-finite value when plan->finite). */
ich_status ich_load_plan_tensor(ich_load_plan *plan, const ich_st_file *file,
                                const ich_tensor_view *view);
/* ich_load_plan_tensor for every tensor of the model. With
 * plan->stem_fold (ich_model_load_weights() only), the stem rule (as
 * timm's adapt_input_conv): when the model takes 1 input channel, its first
 * 4-D weight (the stem convolution's, state_dict order) has shape
 * [O, 1, KH, KW] and the file's tensor of that name [O, 3, KH, KW] (a
 * checkpoint made for 3-channel input), the file's weight summed over its
 * input channels is loaded: the 1-channel model on x then computes what
 * the 3-channel model computes on x repeated 3 times. */
ich_status ich_load_plan_model(ich_load_plan *plan, const ich_st_file *file,
                               const ich_model *model);
/* The stem rule for one tensor (ich_load_plan_model() applies it to the
 * model's first 4-D weight; ich_model_load_pretrained() to the first under
 * its prefix): when the file's tensor named view->name is an F32 [O, 3, KH,
 * KW] and the view an F32 [O, 1, KH, KW], plan the summed copy (after the
 * finite check when plan->finite) and return 1, with *st the result (an
 * error: nothing planned); else return 0 and leave *st alone. */
/* A tensor shape as "[2, 3, 4]" into out (truncated to size). */
void ich_format_shape(char *out, size_t size, int32_t ndim, const int64_t *dims);

int ich_load_plan_stem_fold(ich_load_plan *plan, const ich_st_file *file,
                            const ich_tensor_view *view, ich_status *st);
/* ICH_ERR_SHAPE naming the first file tensor no copy uses; with
 * `skip_optimizer`, tensors named "optimizer.*" are allowed to be unused. */
ich_status ich_load_plan_check_unused(const ich_load_plan *plan, const ich_st_file *file,
                                      int skip_optimizer);
/* Do the planned copies (host byte order). */
void ich_load_plan_commit(const ich_load_plan *plan);
void ich_load_plan_free(ich_load_plan *plan); /* zeroed after */

/* Set the model's metadata from the file's (all entries but "format" and
 * "ich.optimizer"; the model ignores "ich.spec"). A value the model
 * refuses is ICH_ERR_FORMAT (other errors kept) naming the file and the key; entries set
 * before the failure stay set (the caller rolls back). */
ich_status ich_model_apply_file_metadata(ich_model *model, const ich_st_file *file);

#ifdef __cplusplus
}
#endif
#endif
