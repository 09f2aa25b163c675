/* Internal: the model graph (libich/nn/model.c, init.c, presets.c) and what
 * the checkpoint code (libich/nn/model_file.c) may use besides the public
 * API.
 *
 * For checkpoints, the public API is enough: a model keeps its metadata
 * entries "ich.spec" (canonical spec), "ich.seed" (the seed of its dropout
 * masks) and "ich.steps" (comma-separated forward counts of its dropout
 * layers, present when it has dropout) up to date itself, so saving the
 * metadata table saves them; loading creates the model from "ich.spec"
 * with ich_model_create(), reads the tensors, then calls
 * ich_model_set_metadata() for every entry of the file: setting "ich.seed"
 * and "ich.steps" restores the dropout state (bit-exact resume), setting
 * "ich.spec" is ignored (the model keeps its canonical spec). */
#ifndef ICH_INTERNAL_MODEL_H
#define ICH_INTERNAL_MODEL_H

#include "backend/backend.h"
#include "ich/model.h"
#include "backend/layer.h"
#include "core/profile.h"
#include "nn/spec.h"

typedef struct model_node {
    ich_layer layer;
    spec_kind kind;
    int in[2];
    int nin;
    int out;
    int removed;       /* fused away while building */
    int inplace_train; /* forward may write over its input (training) */
    int inplace_eval;
    int pointwise;     /* SPEC_LINEAR per position: backend kind "pointwise_linear" */
    int stage;         /* cascade branch it belongs to: 0 "any", 1 subtypes; -1 none */
    /* ICH_PROFILE=1: seconds and calls of forward and backward, the first
     * call of each left out (primitive compilation, first touch) */
    double profile_seconds[2];
    int64_t profile_calls[2];
    ich_profile_sink profile_parts[2]; /* the backend's primitives by part */
} model_node;

typedef struct model_value {
    ich_shape shape;
    float *data;
    float *grad;
    int producer;      /* node index, -1 for the model input */
    int consumers;
    int last_consumer; /* node index, -1: none */
    int keep;          /* needed by backward */
} model_value;

typedef struct model_tensor {
    char name[112];
    ich_param *param;
    int node;
} model_tensor;

typedef struct model_buffer {
    void *pointer;
    size_t bytes;
    int in_use;
} model_buffer;

struct ich_model {
    const ich_backend *backend;
    char *spec;
    model_node *nodes;
    int nnodes;
    model_value *values;
    int nvalues;
    int32_t input[3];
    int32_t outputs;
    int out_value;
    int32_t batch;      /* batch size the layers are sized for */
    int training;
    int have_forward;   /* a training forward's activations are kept */
    int gated;          /* cascade: predict gates the subtypes by "any" */
    /* cascade stages (gated models): the cascade node, each branch's
     * parameter-name prefix and logit columns, and the stage that runs
     * (-1: both; ich_model_set_active_stage) */
    int cascade_node;
    char stage_prefix[2][64];
    int32_t stage_first[2], stage_outputs[2];
    int active_stage;
    uint64_t seed;
    model_tensor *tensors;
    int ntensors;
    char **meta_keys;
    char **meta_values;
    int nmeta;
    /* host copy of the input in NHWC, for backends whose memory is not the
     * host's (grown as needed, reused) */
    float *staging;
    size_t staging_bytes;
    /* activation buffers, reused between passes */
    model_buffer *buffers;
    int nbuffers;
    size_t live_bytes, high_water;
    /* CPU activations: one reserved address range, blocks carved from it
     * (nn/model.c, "activation buffers"); NULL until first used. */
    struct model_arena *arena;
    int arena_off; /* no arena: another backend, a sanitizer build, or no address space */
    /* ich_model_allreduce_gradients' buffers (nn/gradients.c); NULL until used */
    struct model_gradient_sum *gradient_sum;
};

/* The spec of a preset with its options, "NAME [input CxHxW] [outputs N]"
 * (nn/presets.c), appended to `out`; ICH_ERR_NOT_FOUND for an unknown name,
 * ICH_ERR_INVALID_ARGUMENT for a bad or refused option (message set). */
ich_status ich_model_preset_build(const char *text, ich_buf *out);
/* Names of the presets, comma-separated (messages). */
const char *ich_model_preset_names(void);

/* Initialise node `index`'s parameters from `seed` (PyTorch's defaults). */
void ich_model_init_node(ich_model *model, int index, uint64_t seed);

/* Parse `spec`, check its shapes and limits (ich/model.h) and set *bytes
 * to the bytes of the tensors (parameters and buffers) its model holds,
 * without allocating them: a checkpoint smaller than that cannot hold the
 * model. Errors: those of ich_model_create(). */
ich_status ich_model_spec_tensor_bytes(const char *spec, int64_t *bytes);

/* ich_model_predict(), also giving the probabilities before the cascade's
 * gate: `ungated` (NULL: not wanted; else `count` floats) receives the
 * sigmoid of every logit, `probabilities` what ich_model_predict() gives
 * (for a model without a cascade both are the same). The evaluation report
 * computes its losses from the ungated ones (ich/report.h). */
ich_status ich_model_predict_ungated(ich_model *model, const float *images, int32_t n,
                                     float threshold, float *probabilities, size_t count,
                                     float *ungated);

/* Images per pass of an evaluation forward of n images (nn/model.c): n
 * when their activations (the most the layers hold at once, from the
 * value shapes) fit ICH_INFER_MEMORY's budget (<ich/backend.h>), else the
 * fewest equal slices that fit, at least one image each (unset, at least
 * 4 on the CPU). Equal, so that
 * the layers keep one batch size (a new one rebuilds their primitives):
 * the last slice ends at the batch's end and overlaps the one before when
 * n is not a multiple. Errors: ICH_ERR_INVALID_ARGUMENT for a bad
 * ICH_INFER_MEMORY. */
ich_status ich_model_infer_slice(const ich_model *model, int32_t n, int32_t *slice);

/* Update "ich.seed"/"ich.steps" from the dropout layers. */
ich_status ich_model_update_state_metadata(ich_model *model);

/* Sum the gradients of the model's trainable, unfrozen parameters over
 * the ranks of a distributed run (dist/comm.h) and multiply them by
 * `scale` (1 / ich_comm_size(): data-parallel training's average), in
 * place in every ich_param.grad, every rank ending with the same values.
 * Call it after the backward pass, before the optimizer step. A
 * collective: every rank calls it at the same point, with a model of the
 * same spec (the first call checks that the ranks' gradient counts agree).
 * When the model's backend has collectives of its own (NCCL on CUDA:
 * ich_backend_collectives), the gradients are summed in one buffer in its
 * memory; otherwise in host memory with ich_comm_allreduce_float. One
 * process: only the scaling. `what` names the step in the watchdog's and
 * errors' messages ("gradients, epoch 3 step 20").
 * Errors: ICH_ERR_INVALID_ARGUMENT (NULL model or what, a scale that is
 * not finite), ICH_ERR_SHAPE (ranks with different gradient counts),
 * ICH_ERR_NO_MEMORY, and those of dist/comm.h's collectives; a failed sum
 * on the device ends every rank (ich_backend_allreduce). */
ich_status ich_model_allreduce_gradients(ich_model *model, float scale, const char *what);
/* Free its buffers (ich_model_free). */
void ich_model_gradient_sum_free(ich_model *model);

/* Host memory that the model's backend copies from fastest (its host_alloc:
 * pinned on CUDA; else malloc), for input buffers filled every step; NULL
 * when out of memory. Free it with ich_model_host_free on the same model. */
void *ich_model_host_alloc(const ich_model *model, size_t bytes);
void ich_model_host_free(const ich_model *model, void *pointer);

#endif
