/* Internal: shared pieces of the CPU backend (oneDNN + OpenBLAS). */
#ifndef ICH_INTERNAL_BACKEND_CPU_H
#define ICH_INTERNAL_BACKEND_CPU_H

#include <stddef.h>
#include <stdint.h>

#include <dnnl.h>

#include "core/threads.h"
#include "backend/layer.h"

/* The layer kinds of the CPU backend (one file each, or grouped). */
extern const ich_layer_ops ich_cpu_conv_ops;
extern const ich_layer_ops ich_cpu_linear_ops;
extern const ich_layer_ops ich_cpu_relu_ops;
extern const ich_layer_ops ich_cpu_maxpool_ops;
extern const ich_layer_ops ich_cpu_avgpool_ops;
extern const ich_layer_ops ich_cpu_gap_ops;
extern const ich_layer_ops ich_cpu_batchnorm_ops;
extern const ich_layer_ops ich_cpu_dropout_ops;
extern const ich_layer_ops ich_cpu_flatten_ops;
extern const ich_layer_ops ich_cpu_add_ops;
extern const ich_layer_ops ich_cpu_concat_ops;
/* issue 14: act.c */
extern const ich_layer_ops ich_cpu_silu_ops;
extern const ich_layer_ops ich_cpu_gelu_ops;
extern const ich_layer_ops ich_cpu_sigmoid_ops;
extern const ich_layer_ops ich_cpu_mul_ops;
/* norm.c: layer normalisation, layer scale, stochastic depth */
extern const ich_layer_ops ich_cpu_layernorm_ops;
extern const ich_layer_ops ich_cpu_layerscale_ops;
extern const ich_layer_ops ich_cpu_droppath_ops;
/* linear.c: nn.Linear on each position's channels (ConvNeXt) */
extern const ich_layer_ops ich_cpu_pointwise_linear_ops;

/* 64-byte aligned memory (zeroed by ich_cpu_calloc); NULL on failure. */
void *ich_cpu_alloc(size_t bytes);
void *ich_cpu_calloc(size_t bytes);
void ich_cpu_free(void *pointer);

/* The process's oneDNN CPU engine and stream (created once). NULL and the
 * thread's last error set when oneDNN cannot start. */
dnnl_engine_t ich_cpu_engine(void);
dnnl_stream_t ich_cpu_stream(void);

/* Turn a failed oneDNN call into an ICH_ERR_INTERNAL (or NO_MEMORY) status
 * whose message names the layer and the call. */
ich_status ich_cpu_dnnl_fail(const ich_layer *layer, const char *what, dnnl_status_t status);

/* One argument of a oneDNN primitive: a memory descriptor and the data. */
typedef struct ich_dnnl_arg {
    int arg; /* DNNL_ARG_* */
    const dnnl_memory_desc_t *md;
    const void *data;
} ich_dnnl_arg;

/* Run `prim` (made from `pd`; NULL: asked from prim) on the arguments and
 * wait for it; `scratch` (the layer's buffer of at least the pd's
 * scratchpad size) is passed when the pd wants a scratchpad. */
ich_status ich_cpu_execute(const ich_layer *layer, dnnl_primitive_t prim,
                           const_dnnl_primitive_desc_t pd, const ich_dnnl_arg *list, int count,
                           void *scratch, const char *what);

/* ich_cpu_execute for a small primitive without a scratchpad (the weight
 * reorders of a convolution: ~1000 per EfficientNet training step, each a
 * few hundred KB) on the calling thread alone: an OpenMP region costs a
 * wake-up of every worker, and on a busy machine a scheduling slice
 * (milliseconds) whenever a worker is not running; one thread does these
 * in microseconds. */
ich_status ich_cpu_execute_serial(const ich_layer *layer, dnnl_primitive_t prim,
                                  const ich_dnnl_arg *list, int count, const char *what);

/* The size of the scratchpad `pd` asks for (0 when none). */
size_t ich_cpu_scratchpad_size(const_dnnl_primitive_desc_t pd);

/* Log (at debug level) the oneDNN implementation behind `pd`, which the
 * layer has just made into a primitive labelled `what` ("forward",
 * "backward data", ...: core/profile.h's labels), and count it. Every layer
 * calls it once per primitive it builds (reorders aside). */
void ich_cpu_log_impl(const ich_layer *layer, const char *what, const_dnnl_primitive_desc_t pd);

/* Primitives built in this process so far (ich_cpu_log_impl): forward ones
 * and backward ones (any gradient). Tests check that inference builds no
 * backward primitive. */
void ich_cpu_primitives_built(int64_t *forward, int64_t *backward);

/* Tests: the bytes a convolution pass's activation copies (blocked or NCHW
 * layout) may take per call, read when its primitives are built; 0: the
 * default (64 MiB). A smaller budget splits the batch into more calls. */
void ich_cpu_conv_set_copy_budget(int64_t bytes);

/* Tests: how a convolution's backward data runs once its backward
 * primitives are built: 0 oneDNN's backward-data kernel, 1 a forward
 * convolution with the flipped weights, oneDNN padding (conv.c,
 * data_as_forward()), 2 the same over a copy of the output gradient with
 * the left padding in it. ich_cpu_conv_force_data_copy(1) makes layers
 * built after it take 2 wherever they would take 1 (0 restores). */
int ich_cpu_conv_data_mode(const ich_layer *layer);
void ich_cpu_conv_force_data_copy(int on);

/* Tests: ich_cpu_conv_force_im2col(1) makes layers whose backward is built
 * after it take their weight gradient from im2col.c wherever it fits, not
 * only with one input channel (0 restores); ich_cpu_conv_im2col_runs
 * counts a layer's calls to it. */
void ich_cpu_conv_force_im2col(int on);
int ich_cpu_conv_im2col_runs(const ich_layer *layer);

/* Return from the calling function (which has an `ich_layer *layer`) with
 * ich_cpu_dnnl_fail() when a oneDNN call fails. */
#define CHECK_DNNL(call, what)                                                                   \
    do {                                                                                         \
        dnnl_status_t check_status_ = (call);                                                    \
        if (check_status_ != dnnl_success)                                                       \
            return ich_cpu_dnnl_fail(layer, what, check_status_);                                \
    } while (0)

/* Make *buffer (of *size bytes, 64-byte aligned) at least `want` bytes;
 * the old contents are not kept. */
ich_status ich_cpu_grow(const ich_layer *layer, void **buffer, size_t *size, size_t want);

/* Allocate layer->params (count entries, zeroed). */
ich_status ich_cpu_params_alloc(ich_layer *layer, int32_t count);

/* Set up one parameter: zeroed data and (when trainable) zeroed gradient. */
ich_status ich_cpu_param_init(ich_param *param, const char *name, ich_dtype dtype, int32_t ndim,
                              const int64_t *dims, int trainable);

/* ich_layer_shape with libich's error function: the create/resize of the
 * kinds that need no more. */
ich_status ich_cpu_shape(ich_layer *layer, const ich_shape *in, ich_shape *out);

/* Free every parameter's data and gradient and the array itself. */
void ich_cpu_params_free(ich_layer *layer);

/* A fused ReLU's backward without keeping the output: forward records one
 * bit per output value (value > 0), backward zeroes grad where the bit is 0. */
typedef struct ich_relu_mask {
    uint8_t *bits;
    int64_t capacity; /* values */
} ich_relu_mask;

ich_status ich_relu_mask_record(ich_relu_mask *mask, const float *out, int64_t count);
void ich_relu_mask_apply(const ich_relu_mask *mask, float *grad, int64_t count);
void ich_relu_mask_free(ich_relu_mask *mask);

#endif
