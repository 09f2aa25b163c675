/*
 * libich model: the CNN, from a text spec or a preset, forward and backward.
 *
 * A model is a graph of layers described by a short text spec; presets
 * give the networks of the pipeline:
 *
 *   "tutorial"  the tutorial's ConvNet: 1 x 512 x 512 input; conv 1->50 k5,
 *               50->120 k5, 120->100 k5, 100->72 k4, each ReLU + 2x2 max
 *               pool; linear 72*28*28 -> 50, ReLU, linear 50 -> 6.
 *   "ichnet"    a compact modern default for 3-window 256 x 256 input:
 *               batch norm, residual blocks, global average pooling.
 *   "cascade"   two stages, each its own backbone: a binary "any" network
 *               (default efficientnet_v2_m) and a subtype network (default
 *               convnext_tiny) whose outputs count only where "any" fires
 *               (see ich_model_predict(), ich_model_cascade_stage()).
 *
 * ich_model_spec() gives the spec of any model; the spec grammar is
 * documented at ich_model_create(). Tensors crossing this API are float32,
 * images NCHW (N x channels x rows x columns), outputs N x outputs logits.
 *
 * Parameters and buffers have PyTorch's state_dict names, shapes and
 * layouts for the same network ("conv1.weight" OIHW, "fc1.weight" [out,
 * in], flatten in C*H*W order), so weights move between libich and PyTorch
 * both ways through safetensors checkpoints (ich_model_save(),
 * ich_model_load()).
 *
 * Threads: a model is used by one thread at a time; its kernels use the
 * backend's threads (ich_set_threads(), declared in <ich/core.h>).
 */
#ifndef ICH_MODEL_H
#define ICH_MODEL_H

#include "ich/core.h"
#include "ich/window.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A model (opaque). */
typedef struct ich_model ich_model;

/* ---- Spec ----------------------------------------------------------------
 *
 * A spec is a list of layers separated by commas or newlines; the first
 * item is the input shape:
 *
 *   input 1x512x512, conv 50 5, relu, maxpool 2, conv 120 5, relu, maxpool 2,
 *   flatten, linear 50, relu, linear 6
 *
 * Layers (K, S, P, D are "N" or "RxC" for rows x columns):
 *   conv OUT K [stride S] [pad P] [dilation D] [groups G] [nobias]
 *                                           Conv2d; G (default 1) divides the
 *                                           input channels and OUT; G = input
 *                                           channels: depthwise
 *   linear OUT [nobias] (alias fc)                         Linear (flat input)
 *   linear OUT [nobias] pointwise         nn.Linear on each position's channels
 *                                         (ConvNeXt's CNBlock): C x H x W in,
 *                                         OUT x H x W out; weight [OUT, C]
 *   maxpool K [stride S] [pad P], avgpool K [...]          stride defaults to K
 *   batchnorm [eps E] [momentum M] (alias bn)              BatchNorm2d / 1d
 *   relu, gap (global average pool), flatten (C*H*W order), dropout P
 *   silu, gelu (erf form), sigmoid          nn.SiLU, nn.GELU(), nn.Sigmoid
 *   layernorm2d [eps E]   LayerNorm over each position's channels (ConvNeXt's
 *                         LayerNorm2d; eps default 1e-6)
 *   layernorm [eps E]     LayerNorm(F) over a flat input's F features
 *                         (after gap/flatten/linear; eps default 1e-5)
 *   layerscale [init V]   each channel times a learnable factor (ConvNeXt's
 *                         layer_scale, [C, 1, 1]; init V default 1e-6)
 *   droppath P            stochastic depth (torchvision StochasticDepth(P,
 *                         "row")): in training each sample is zeroed with
 *                         probability P, the others scaled by 1 / (1 - P);
 *                         seeded like dropout; identity in evaluation
 *   residual(BODY [; shortcut: SHORTCUT])   BODY(x) + SHORTCUT(x) (identity
 *                                           when no shortcut is given)
 *   concat(BRANCH | BRANCH ...)             channels of the branches joined
 *   cascade(any: BRANCH | subtype: BRANCH)  as concat; last item only; the
 *                                           first branch gives 1 output that
 *                                           gates the others in predict
 *   scale(BODY)                             x * BODY(x), BODY giving one value
 *                                           per channel (Cx1x1): squeeze-and-
 *                                           excitation, e.g. torchvision's
 *                                           SqueezeExcitation(C, S, SiLU) is
 *     se = scale(gap, fc1 = conv S 1, silu, fc2 = conv C 1, sigmoid)
 *                                           (se.fc1.weight, se.fc2.bias, ...)
 * A branch may start with "name:". Any item may start with "name =".
 *
 * Names: parameters are "<layer>.<weight|bias|running_mean|...>". Unnamed
 * layers are numbered per kind in their sequence: conv1, conv2, fc1, bn1,
 * res1 (residual), cat1 (concat), cascade1, scale1, ln2d1 (layernorm2d), ln1
 * (layernorm), ls1 (layerscale, tensor "ls1.layer_scale"; name it after
 * its block, "features.1.0 = layerscale", for torchvision's CNBlock name
 * "features.1.0.layer_scale"). Layers inside a residual or scale block
 * are "res1.conv1", its shortcut's "res1.shortcut.conv1"; inside a concat
 * branch "cat1.branch2.conv1", or "<branch name>.conv1" for a named branch.
 * A conv's weight is OIHW as PyTorch's: [OUT, IN/G, KH, KW] with groups G.
 * ich_model_spec() gives a canonical text that re-parses to the same model.
 */

/* ---- Limits ----------------------------------------------------------------
 *
 * A spec may come from a file (a checkpoint's "ich.spec"), so every size it
 * can ask for is bounded, and the memory a model needs is computed from the
 * spec before anything is allocated. A spec beyond any limit is refused by
 * ich_model_create() (and so by the builder and ich_model_load()) with
 * ICH_ERR_INVALID_ARGUMENT and a message naming the item and the limit
 * ("too large", "too many", "too deeply"). */

/** Most input channels ("input CxHxW"). */
#define ICH_MODEL_MAX_INPUT_CHANNELS 4096
/** Most input rows, and most input columns. */
#define ICH_MODEL_MAX_INPUT_SIDE 16384
/** Most output channels of a conv, output features of a linear, and
 *  channels out of a concat. */
#define ICH_MODEL_MAX_CHANNELS 65536
/** Largest kernel, stride, padding and dilation (each of rows, columns). */
#define ICH_MODEL_MAX_KERNEL 1024
/** Most items in a spec (layers and blocks, nested ones included). */
#define ICH_MODEL_MAX_LAYERS 4096
/** Deepest nesting of blocks (residual, concat, cascade). */
#define ICH_MODEL_MAX_DEPTH 16
/** Most bytes of parameters and buffers (the tensors a checkpoint holds;
 *  their gradients take as much again): 1 GiB. */
#define ICH_MODEL_MAX_PARAM_BYTES ((int64_t)1 << 30)
/** Most bytes of activations for one image: the sum of every layer's
 *  float32 output, the input included (a batch of N needs up to N times
 *  this while training): 1 GiB. */
#define ICH_MODEL_MAX_ACTIVATION_BYTES ((int64_t)1 << 30)

/** Build a model from a text spec (grammar above). Weights are
 *  initialised as PyTorch initialises the same layers, from `seed` 0; call
 *  ich_model_init_weights() for another seed. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (a malformed spec: the message names the item
 *  and its byte position; duplicate names; a spec beyond the limits above,
 *  found before anything is allocated),
 *  ICH_ERR_SHAPE (a layer does not fit its input), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_model_create(const char *spec, ich_model **out);

/* ---- Builder ---------------------------------------------------------------
 *
 * The same networks from C calls instead of text: each call appends one
 * item of the spec grammar above, ich_model_builder_build() makes the
 * model (errors are found there, as ich_model_create() finds them), and
 * ich_model_builder_spec() shows the text built so far. For example the
 * tutorial's first block and head:
 *
 *   ich_model_builder *b;
 *   ich_model_builder_create(1, 512, 512, &b);
 *   ich_model_builder_conv(b, NULL, 50, 5, 1, 0);
 *   ich_model_builder_layer(b, NULL, "relu");
 *   ich_model_builder_pool(b, "maxpool", 2, 2, 0);
 *   ...
 *   ich_model_builder_layer(b, NULL, "flatten");
 *   ich_model_builder_linear(b, NULL, 50);
 *   ich_model_builder_build(b, &model);
 *
 * Blocks: ich_model_builder_begin(b, "residual") ... ich_model_builder_next(b)
 * (starts the shortcut) ... ich_model_builder_end(b); "concat" and
 * "cascade" the same way, ich_model_builder_next() starting each further
 * branch. A builder is used by one thread at a time. */

/** A model under construction (opaque). */
typedef struct ich_model_builder ich_model_builder;

/** Start a network whose input is channels x rows x columns. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (sizes < 1), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_model_builder_create(int32_t channels, int32_t rows, int32_t columns,
                                            ich_model_builder **out);

/** Free a builder (not the models it built). NULL is a no-op. */
ICH_API void ich_model_builder_free(ich_model_builder *builder);

/** Conv2d with `out` channels, a square kernel, stride and padding
 *  (dilation 1, with bias). `name` (NULL: numbered) names its tensors. */
ICH_API ich_status ich_model_builder_conv(ich_model_builder *builder, const char *name,
                                          int32_t out, int32_t kernel, int32_t stride,
                                          int32_t padding);

/** Linear layer with `out` features (with bias). */
ICH_API ich_status ich_model_builder_linear(ich_model_builder *builder, const char *name,
                                            int32_t out);

/** "maxpool" or "avgpool" with a square kernel, stride and padding. */
ICH_API ich_status ich_model_builder_pool(ich_model_builder *builder, const char *kind,
                                          int32_t kernel, int32_t stride, int32_t padding);

/** Dropout with probability p (0 <= p < 1). */
ICH_API ich_status ich_model_builder_dropout(ich_model_builder *builder, double p);

/** A layer without numbers: "relu", "batchnorm", "gap", "flatten", "silu",
 *  "gelu", "sigmoid", "layernorm2d", "layernorm" or "layerscale" (their
 *  defaults; options through ich_model_builder_item()). */
ICH_API ich_status ich_model_builder_layer(ich_model_builder *builder, const char *name,
                                           const char *kind);

/** Any other item in the spec grammar, as text (e.g. "conv 64 3 stride 2
 *  pad 1 dilation 2 nobias"). */
ICH_API ich_status ich_model_builder_item(ich_model_builder *builder, const char *item);

/** Open a "residual", "concat", "cascade" or "scale" block;
 *  ich_model_builder_next() starts its shortcut (residual) or next branch
 *  (a scale block has none); ich_model_builder_end()
 *  closes it. Errors: ICH_ERR_INVALID_ARGUMENT (unknown kind, next/end
 *  with no open block, more than 8 nested). */
ICH_API ich_status ich_model_builder_begin(ich_model_builder *builder, const char *kind);
/** Start the open block's shortcut (residual) or its next branch. */
ICH_API ich_status ich_model_builder_next(ich_model_builder *builder);
/** Close the open block. */
ICH_API ich_status ich_model_builder_end(ich_model_builder *builder);

/** The spec built so far (valid until the next builder call). */
ICH_API const char *ich_model_builder_spec(const ich_model_builder *builder);

/** Make the model (as ich_model_create() with the built spec). The builder
 *  stays usable. Errors: those of ich_model_create(), and
 *  ICH_ERR_INVALID_ARGUMENT for a block left open. */
ICH_API ich_status ich_model_builder_build(const ich_model_builder *builder, ich_model **out);

/** Build a preset (case-insensitive name), with options:
 *  "NAME [input CxHxW] [outputs N]".
 *
 *  - "tutorial", "ichnet": libich's own networks (fixed input; they take
 *    "outputs N").
 *  - "resnet18", "resnet50", "efficientnet_v2_s", "efficientnet_v2_m",
 *    "convnext_tiny", "convnext_small": torchvision 0.14's networks, with
 *    the state_dict names and shapes of
 *    torchvision.models.NAME(num_classes=N), its batch-norm eps and
 *    momentum, stochastic-depth and layer-scale values, so a torchvision
 *    state_dict saved as safetensors loads unchanged
 *    (ich_model_load_weights()). Options: input (default 3x224x224; 1
 *    channel for grayscale: a 3-channel checkpoint's stem weight is then
 *    summed over its input channels when loaded) and outputs (default 6).
 *  - "cascade [any NAME] [subtype NAME] [input CxHxW]": the pipeline's
 *    cascade, 6 outputs ("any" first, then the 5 subtypes), spec
 *    "input CxHxW, cascade(any: BODY | subtype: BODY)" where BODY is the
 *    spec of preset NAME with 1 (any) or 5 (subtype) outputs and the
 *    cascade's input, less its input item: the stage's tensors are the
 *    preset's names under "any." or "subtype." (torchvision's for those
 *    presets: "any.features.0.0.weight", "subtype.classifier.2.bias"), so
 *    each stage loads torchvision weights renamed with the prefix. NAME is
 *    one of the presets above (tutorial and ichnet at the cascade's input
 *    where it fits them) or "small", the compact stage (3 conv + batch
 *    norm blocks, about 24k parameters) of libich's first cascade.
 *    Defaults: any efficientnet_v2_m, subtype convnext_tiny, input
 *    3x256x256 (about 81M parameters). "cascade any small subtype small"
 *    is what the plain "cascade" gave before it took stage options (such
 *    checkpoints carry that spec and load as they did).
 *
 *  Errors: ICH_ERR_NOT_FOUND (unknown name; the message lists them),
 *  ICH_ERR_INVALID_ARGUMENT (a bad option, or one the preset does not
 *  take), those of ich_model_create(). */
ICH_API ich_status ich_model_create_preset(const char *name, ich_model **out);

/** Free a model. NULL is a no-op.
 *
 *  With the environment variable ICH_PROFILE=1 (read once per process),
 *  every layer's forward and backward calls are timed (the first of each
 *  left out) and the model logs, when freed, a table at ICH_LOG_INFO: per
 *  layer and pass the milliseconds per call, GFLOP/s of convolutions and
 *  linear layers, and the share of the time in the layers (bench/README.md);
 *  on the CPU backend also a backward's input-gradient ("- data") and
 *  weight-gradient ("- weights") parts and the reorders (count and time per
 *  call). With ICH_PROFILE_PEAK=G (GFLOP/s, e.g. the FMA peak that
 *  bench/peak_flops.c measures for the ISA in use) the rates are also given
 *  as a percentage of G. The CPU backend logs oneDNN's implementation of
 *  each primitive at ICH_LOG_DEBUG. */
ICH_API void ich_model_free(ich_model *model);

/** The model's spec (valid while the model lives). */
ICH_API const char *ich_model_spec(const ich_model *model);

/** Name of the backend the model runs on ("cpu" or "cuda"): the one chosen
 *  when it was created (see ich/backend.h). NULL for a NULL model. */
ICH_API const char *ich_model_backend(const ich_model *model);

/** Input channels, rows and columns (each may be NULL). */
ICH_API ich_status ich_model_input_shape(const ich_model *model, int32_t *channels,
                                         int32_t *rows, int32_t *columns);

/** Number of outputs (logits per sample). */
ICH_API int32_t ich_model_outputs(const ich_model *model);

/** Initialise every parameter as PyTorch's default initialisation of the
 *  same layer does (kaiming-uniform weights with a = sqrt(5), uniform
 *  biases in +-1/sqrt(fan_in); batch norm weight 1, bias 0, running mean 0,
 *  var 1; layer norm weight 1, bias 0; layer scale its init value), drawn
 *  from `seed`. Also seeds the dropout and drop path masks from `seed`
 *  and sets their step counts to 0. */
ICH_API ich_status ich_model_init_weights(ich_model *model, uint64_t seed);

/** Training mode (batch norm uses batch statistics and updates its running
 *  ones, dropout drops) or evaluation mode (the default). */
ICH_API ich_status ich_model_set_training(ich_model *model, int training);

/** Forward pass of `n` images (n x C x H x W floats, NCHW, the model's
 *  input shape) into `logits` (n x outputs floats; logits_count must be
 *  that). In training mode the activations backward needs are kept.
 *  In evaluation mode the batch may run in equal slices, with the same
 *  logits (every image is computed alone in evaluation), to bound the
 *  activation memory: ICH_INFER_MEMORY, <ich/backend.h> (on the CPU by
 *  default passes of at most 8 MiB of activations, but of 4 images at
 *  least).
 *  Training is never sliced.
 *  Errors: ICH_ERR_INVALID_ARGUMENT (also a bad ICH_INFER_MEMORY),
 *  ICH_ERR_SHAPE, ICH_ERR_NO_MEMORY,
 *  ICH_ERR_CANCELLED (the thread's cancel check, ich_set_cancel_check(),
 *  asked to stop between two layers: `logits` are not meaningful). */
ICH_API ich_status ich_model_forward(ich_model *model, const float *images, int32_t n,
                                     float *logits, size_t logits_count);

/** Backward pass after a training-mode forward: `grad_logits` (n x outputs,
 *  d loss / d logits) is propagated back and the parameter gradients are
 *  ACCUMULATED (call ich_model_zero_grad() between steps, as in PyTorch).
 *  Frozen parameters get no gradient. Errors: ICH_ERR_INVALID_ARGUMENT (no
 *  training forward before), ICH_ERR_SHAPE, ICH_ERR_CANCELLED (the thread's
 *  cancel check asked to stop between two layers: the gradients are then
 *  partial; zero them before the next step). */
ICH_API ich_status ich_model_backward(ich_model *model, const float *grad_logits,
                                      size_t grad_count);

/** Set every parameter gradient to 0. */
ICH_API ich_status ich_model_zero_grad(ich_model *model);

/** Probabilities for prediction: the float32 sigmoid of the logits,
 *  1 / (1 + expf(-logit)); a label is predicted when its probability is
 *  > 0.5 (metrics.h). For the cascade preset, subtype probabilities are
 *  set to 0 where the "any" probability is not above `threshold` (0.5 when
 *  threshold <= 0), so P(any) = 0.5 exactly zeroes them. Evaluation mode. Errors
 *  as ich_model_forward(), and ICH_ERR_FORMAT when a probability is not
 *  finite (a NaN or an infinity in an image or in the weights): the message
 *  names the image's index in the batch; `probabilities` is then not
 *  meaningful. */
ICH_API ich_status ich_model_predict(ich_model *model, const float *images, int32_t n,
                                     float threshold, float *probabilities, size_t count);

/* ---- Cascade stages ------------------------------------------------------
 *
 * A cascade model (its spec ends with "cascade(any: BRANCH | subtype:
 * BRANCH)", e.g. the "cascade" preset) has two stages, each a branch with
 * its own layers: stage 0 = "any" (1 logit, column 0), stage 1 = the
 * subtypes (the other columns). They can be trained one at a time:
 * ich_model_set_active_stage() runs only one branch, and freezing by the
 * stage's prefix (ich_model_freeze()) selects its parameters. */

/** Number of stages: 2 for a cascade model (stage 0 = "any", 1 =
 *  subtypes), 0 otherwise (and for NULL). */
ICH_API int32_t ich_model_cascade_stages(const ich_model *model);

/** Where stage `stage` (0 = "any", 1 = subtypes) of a cascade model lives:
 *  *prefix the parameter-name prefix of its branch, e.g. "any." (valid
 *  while the model lives; every parameter and buffer of the branch starts
 *  with it), *first_output and *outputs its columns in the logits (0 and 1
 *  for "any", 1 and 5 for the subtypes of the "cascade" preset). Any out
 *  pointer may be NULL. Errors: ICH_ERR_INVALID_ARGUMENT (NULL model, not
 *  a cascade model, stage out of range). */
ICH_API ich_status ich_model_cascade_stage(const ich_model *model, int32_t stage,
                                           const char **prefix, int32_t *first_output,
                                           int32_t *outputs);

/** Run one stage only: -1 (the default) runs both; 0 or 1 makes forward
 *  and backward compute ONLY that stage's branch. The other branch's
 *  layers are not run (no FLOPs, no batch-norm running-statistics updates,
 *  no dropout/droppath steps, no memory for its activations), its logits
 *  come out as 0 and its parameters get no gradient, so one stage trains
 *  at the cost of one network. The logits of the active stage are those a
 *  both-stage pass gives, bit for bit, and its gradients those of a
 *  both-stage backward whose other-stage logit gradients are 0.
 *  ich_model_predict() gates by the "any" probability as always (with
 *  stage 1 alone, P(any) = sigmoid(0) = 0.5 zeroes every subtype: set -1
 *  for predictions). Changing the stage drops a training forward's kept
 *  activations (run forward again before backward). The stage is not
 *  saved in checkpoints: a loaded model runs both. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL model, not a cascade model and stage is
 *  not -1, stage out of range). */
ICH_API ich_status ich_model_set_active_stage(ich_model *model, int32_t stage);

/** The active stage set by ich_model_set_active_stage(): -1 (both), 0 or
 *  1; -1 for a NULL or non-cascade model. */
ICH_API int32_t ich_model_active_stage(const ich_model *model);

/* ---- Tensors: parameters and buffers ------------------------------------ */

/** Element type of a tensor. */
typedef enum ich_tensor_type { ICH_TENSOR_F32 = 0, ICH_TENSOR_I64 = 1 } ich_tensor_type;

/** A view of one parameter or buffer. Set `size` to sizeof(ich_tensor_view). */
typedef struct ich_tensor_view {
    /* ABI: first version up to `frozen`, 88 bytes on LP64 (today's layout). */
    size_t size;
    const char *name;       /**< state_dict name, e.g. "conv1.weight" */
    int32_t type;           /**< ich_tensor_type */
    int32_t ndim;
    int64_t dims[4];        /**< PyTorch shape */
    int64_t count;          /**< number of elements */
    void *data;             /**< the values (float or int64), owned by the model */
    float *grad;            /**< gradient (float), NULL for buffers */
    int32_t trainable;      /**< 1: parameter, 0: buffer (running statistics) */
    int32_t frozen;         /**< 1 when frozen by ich_model_freeze() */
} ich_tensor_view;

/** Number of tensors (parameters and buffers), in state_dict order. */
ICH_API int32_t ich_model_tensor_count(const ich_model *model);

/** View of tensor `index`. The pointers stay valid while the model lives.
 *  Whoever writes `data` must call ich_model_tensor_changed() afterwards
 *  (the backend may cache a converted copy). Errors:
 *  ICH_ERR_INVALID_ARGUMENT. */
ICH_API ich_status ich_model_tensor(const ich_model *model, int32_t index,
                                    ich_tensor_view *view);

/** Index of the tensor named `name`, or -1. */
ICH_API int32_t ich_model_find_tensor(const ich_model *model, const char *name);

/** Tell the model that tensor `index`'s data was written (-1: all). */
ICH_API void ich_model_tensor_changed(ich_model *model, int32_t index);

/** Freeze (frozen = 1) or unfreeze the parameters whose name starts with
 *  `prefix` ("" or NULL: all), as the pipeline's warm-up then fine-tune
 *  does. *matched (may be NULL) receives how many. Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_NOT_FOUND (nothing matched). */
ICH_API ich_status ich_model_freeze(ich_model *model, const char *prefix, int frozen,
                                    int32_t *matched);

/* ---- Metadata ----------------------------------------------------------- */

/** Set a metadata entry (copied; NULL value removes it). Checkpoints keep
 *  them in the safetensors __metadata__. Keys used by libich: "ich.spec"
 *  (set by the model itself), "ich.labels" (comma-separated label names in
 *  output order; ich_model_set_labels()), "ich.recipe" (the input recipe as
 *  ich_window_to_string() writes it; ich_model_set_input_window()), and in
 *  checkpoints of older versions "ich.windows", "ich.size", "ich.mean",
 *  "ich.std" (the input recipe before "ich.recipe"),
 *  "ich.epoch", "ich.metrics" (JSON). The model keeps "ich.seed" (its
 *  dropout seed) and "ich.steps" (its dropout and droppath layers' step
 *  counts, comma-separated, in layer order) up to date; setting them restores that state, so a loaded
 *  checkpoint resumes the same dropout masks. Setting "ich.spec" is
 *  ignored (the model keeps its own canonical spec). Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_FORMAT (an "ich.steps" value that
 *  does not match the model's dropout layers). */
ICH_API ich_status ich_model_set_metadata(ich_model *model, const char *key, const char *value);

/** Value of a metadata entry, or NULL. Valid until it is changed. */
ICH_API const char *ich_model_metadata(const ich_model *model, const char *key);

/** Number of metadata entries and the key of entry `index` (NULL when out
 *  of range). */
ICH_API int32_t ich_model_metadata_count(const ich_model *model);
/** Key of metadata entry `index` (see above). */
ICH_API const char *ich_model_metadata_key(const ich_model *model, int32_t index);

/** Store the input recipe the model is trained with (metadata
 *  "ich.recipe", its ich_window_to_string() text; the older keys
 *  "ich.windows", "ich.size", "ich.mean", "ich.std" are removed), so that
 *  its checkpoints say how to feed it. Every training path does this: the
 *  driver ich_train() stores its training dataset's recipe
 *  (ich_dataset_input_window()); with the step API call it yourself. The
 *  recipe must make the model's input: channels per slice x (2 x
 *  neighbours + 1) = the input channels, and its size (unless it keeps
 *  each slice's own) the input rows and columns. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, or a LINEAR recipe without windows),
 *  ICH_ERR_SHAPE (it does not make the model's input). */
ICH_API ich_status ich_model_set_input_window(ich_model *model, const ich_window *window);

/** Store the label names in output order (metadata "ich.labels", comma-
 *  separated), so that evaluation matches the columns of a label CSV by
 *  name. ich_train() stores its training dataset's label columns. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, an empty name or one with a comma,
 *  quote or control character), ICH_ERR_SHAPE (count differs from
 *  ich_model_outputs()), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_model_set_labels(ich_model *model, const char *const *names,
                                        int32_t count);

/** The input recipe stored in the model's metadata, as a new window
 *  (free it with ich_window_free()): "ich.recipe" when present; else, for
 *  checkpoints of older ich-train versions, "ich.windows", "ich.size"
 *  (default the model's input rows; bilinear resize) and, when both are
 *  present, "ich.mean"/"ich.std" (comma-separated, one value or one per
 *  channel) as normalisation. A model with neither has no recipe: that is
 *  ICH_ERR_NOT_FOUND, never a guessed default. The recipe must make the
 *  model's input (as for ich_model_set_input_window()). *out is NULL on
 *  failure. Errors: ICH_ERR_INVALID_ARGUMENT (NULL), ICH_ERR_NOT_FOUND (no
 *  recipe, or an unknown window name), ICH_ERR_FORMAT (a malformed
 *  metadata value), ICH_ERR_SHAPE (the recipe does not make the model's
 *  input), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_model_input_window(const ich_model *model, ich_window **out);

/* ---- Files -------------------------------------------------------------- */

/** Save the weights, buffers and metadata as a safetensors file that
 *  PyTorch's safetensors.torch.load_file() reads into the same network's
 *  state_dict: tensors in state_dict order (F32, num_batches_tracked I64),
 *  metadata "format" = "pt", "ich.spec" = ich_model_spec() and every entry
 *  of ich_model_metadata(). Written to a temporary file, fsynced, renamed:
 *  when the save fails, an existing file at `path` is left as it was.
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL, a metadata value that is not
 *  UTF-8), ICH_ERR_IO, ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_model_save(const ich_model *model, const char *path);

/** Load a model from a safetensors file written by ich_model_save() or
 *  ich_checkpoint_save() (whose optimizer tensors are skipped), or by
 *  PyTorch with an "ich.spec" metadata entry: the spec in the file
 *  rebuilds the network, then the tensors are read (every tensor of the
 *  model must be in the file, with its dtype and shape, and nothing else)
 *  and the metadata entries set (ich_model_set_metadata(), so the dropout
 *  state "ich.seed"/"ich.steps" is restored). *out is NULL on failure.
 *  Errors (messages name the file and, for a malformed header, the byte
 *  offset): ICH_ERR_IO (cannot open or read), ICH_ERR_FORMAT (not
 *  safetensors, truncated, corrupt header, offsets that overlap, leave
 *  holes or run outside the data, a file above 3 GiB plus the header,
 *  no "ich.spec" or a spec that does not parse or is beyond the limits
 *  above, a spec whose tensors need more bytes than the file holds, found
 *  before the model is built; a NaN or an infinity in a tensor, named),
 *  ICH_ERR_SHAPE (a tensor's dtype or shape differs from the
 *  spec's, or the file holds a tensor the model does not have),
 *  ICH_ERR_NOT_FOUND (a tensor missing), ICH_ERR_UNSUPPORTED (a tensor of
 *  more than 8 dimensions), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_model_load(const char *path, ich_model **out);

/** Read the tensors of a safetensors file into an existing model: names,
 *  dtypes and shapes must match; tensors in the file that the model lacks
 *  are an error unless `strict` is 0 (a checkpoint's optimizer tensors are
 *  always skipped). Only tensors are read: no "ich.spec" is needed (files
 *  from PyTorch) and the model's metadata is left alone. All or nothing:
 *  on any error the model is unchanged. Errors as ich_model_load().
 *
 *  The stem rule (as timm's adapt_input_conv): when the model takes 1 input
 *  channel and its first convolution's weight (the first 4-D tensor) is
 *  [O, 1, KH, KW] while the file's is [O, 3, KH, KW] (a checkpoint made for
 *  3-channel input, e.g. ImageNet weights), the file's weight summed over
 *  its input channels is loaded: the model on a grayscale image x gives
 *  what the 3-channel network gives on x repeated in 3 channels. */
ICH_API ich_status ich_model_load_weights(ich_model *model, const char *path, int strict);


/* ---- Pretrained weights --------------------------------------------------
 *
 * ich_model_load_pretrained() starts a model from a backbone trained
 * elsewhere (an ImageNet checkpoint converted to safetensors, e.g. by
 * `python3 -m ich.pretrained SRC.pth DST.safetensors`): the tensors that fit
 * are loaded, the rest keep their initialisation (a fresh head of the
 * model's own size), and every tensor is accounted for. */

/** What ich_model_load_pretrained() did with one tensor. */
typedef enum ich_pretrained_kind {
    ICH_PRETRAINED_LOADED = 0,  /**< a model tensor filled from the file */
    ICH_PRETRAINED_SKIPPED = 1, /**< a file tensor not used: the model has no
                                     tensor of that name, or of that shape */
    ICH_PRETRAINED_FRESH = 2    /**< a model tensor (under the prefix) that no
                                     file tensor filled: it keeps its values */
} ich_pretrained_kind;

/** Called once per tensor after a successful ich_model_load_pretrained():
 *  `kind` an ich_pretrained_kind; `name` the model's tensor name (loaded,
 *  fresh; the prefix included) or the file's (skipped); `detail` a short
 *  text, "" when there is nothing to add ("summed over 3 input channels",
 *  "not in the model", "shape [1000, 512] in the file, the model's is
 *  [6, 512]", "not in the file"). The strings are valid during the call. */
typedef void (*ich_pretrained_fn)(void *user, int32_t kind, const char *name,
                                  const char *detail);

/** What ich_model_load_pretrained() did. Set `size` to sizeof(the struct)
 *  and, to learn the names, `tensor_fn` (else NULL); the call reads
 *  tensor_fn and tensor_user, then writes the counts as far as `size`
 *  reaches and sets `size` to the bytes written. */
typedef struct ich_pretrained_report {
    /* ABI: first version up to `tensor_user`, 40 bytes on LP64 (today's layout). */
    size_t size;
    int32_t loaded;  /**< model tensors filled from the file */
    int32_t skipped; /**< file tensors not used */
    int32_t fresh;   /**< model tensors under the prefix left as they were */
    int32_t summed;  /**< of the loaded, stem weights summed over 3 input
                          channels (the stem rule) */
    ich_pretrained_fn tensor_fn; /**< in: called per tensor (may be NULL) */
    void *tensor_user;           /**< in: passed to tensor_fn */
} ich_pretrained_report;

/** Load the tensors of a safetensors file that fit into `model`, leaving
 *  the others as they are: a pretrained backbone with a fresh head.
 *
 *  `prefix` (NULL or "": none) is put before every file tensor's name, so a
 *  backbone file fills one stage of a cascade (prefix "any." for tensors
 *  "any.features.0.0.weight", ...). A file tensor whose name (with the
 *  prefix) and shape match a model tensor's is loaded, with the stem rule of
 *  ich_model_load_weights() for the first 4-D tensor under the prefix (a
 *  3-channel stem summed for a 1-channel model); a file tensor the model
 *  lacks, or whose shape differs (an ImageNet head of 1000 outputs), is
 *  skipped; a model tensor under the prefix that was not loaded is fresh
 *  and keeps its values. A checkpoint's optimizer tensors are ignored.
 *  Model tensors outside the prefix are neither touched nor reported.
 *  Metadata is not read.
 *
 *  Each tensor is logged (ICH_LOG_INFO, "pretrained FILE: loaded NAME",
 *  ...), then a summary line (ICH_LOG_WARNING when a tensor was skipped,
 *  else INFO); `report` (may be NULL) receives the counts and, through its
 *  tensor_fn, every name. All or nothing: on any error the model is
 *  unchanged, tensor_fn is not called and the report not written.
 *
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL model or path, a bad report
 *  size), ICH_ERR_NOT_FOUND (no model tensor starts with `prefix`),
 *  ICH_ERR_SHAPE (no file tensor fits at all, a file for another network:
 *  the message names the file and a few tensors of each side; a tensor of
 *  the model's name and shape but another dtype, e.g. F16: convert it to
 *  F32), and those of ich_model_load_weights() for the file itself
 *  (ICH_ERR_IO, ICH_ERR_FORMAT for a corrupt file or a NaN or an infinity
 *  in a tensor that would be loaded, ICH_ERR_UNSUPPORTED,
 *  ICH_ERR_NO_MEMORY). */
ICH_API ich_status ich_model_load_pretrained(ich_model *model, const char *path,
                                             const char *prefix,
                                             ich_pretrained_report *report);

#ifdef __cplusplus
}
#endif
#endif /* ICH_MODEL_H */
