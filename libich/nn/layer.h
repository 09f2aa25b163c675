/* Internal: the layer interface between the model graph (libich/nn/model*.c)
 * and the backends that implement layers (libich/backend/cpu/, later
 * libich/backend/cuda/).
 *
 * Activations inside a model are float32 tensors in NHWC order (channels
 * last), plain (no padding, no blocking): oneDNN's AVX-512 convolution,
 * pooling and batch norm run fast on it without padding channel counts
 * like 50 or 120 up to a multiple of 16, which keeps peak memory down. A
 * backend may keep its own layouts inside a layer (weights reordered to a
 * blocked format, cached until the weights change). The model converts
 * NCHW input to NHWC once at its input; linear layers see "flatten" in
 * PyTorch's C*H*W order (the flatten layer permutes).
 *
 * Parameters and buffers are kept in PyTorch's layout and names (conv
 * weight OIHW, linear weight [out, in], batch norm weight/bias/
 * running_mean/running_var/num_batches_tracked), so checkpoints and the
 * optimizer need no knowledge of the backend.
 *
 * Memory: the model owns every activation buffer and gives each layer its
 * inputs and output. A layer says which of them it needs again in backward
 * (needs_input / needs_output), so the model can free or reuse the others
 * early; whatever else a layer needs (a max-pool workspace, a dropout mask,
 * batch statistics) it keeps in its own state.
 */
#ifndef ICH_INTERNAL_LAYER_H
#define ICH_INTERNAL_LAYER_H

#include <stdint.h>

#include "ich/core.h"

/* An activation shape, NHWC. Flat tensors (after flatten/linear) have
 * h = w = 1 and c = features. */
typedef struct ich_shape {
    int32_t n, h, w, c;
} ich_shape;

static inline int64_t ich_shape_count(ich_shape s)
{
    return (int64_t)s.n * s.h * s.w * s.c;
}

typedef enum ich_dtype { ICH_DTYPE_F32 = 0, ICH_DTYPE_I64 = 1 } ich_dtype;

/* A parameter (trainable) or buffer (running statistics) of a layer. */
typedef struct ich_param {
    char name[32];      /* state_dict suffix: "weight", "bias", "running_mean", ... */
    ich_dtype dtype;    /* F32, or I64 for num_batches_tracked */
    int32_t ndim;
    int64_t dims[4];    /* PyTorch's shape */
    void *data;         /* dims' product values, PyTorch layout, owned by the layer */
    float *grad;        /* same count, F32; NULL for buffers */
    int trainable;      /* 1 for parameters, 0 for buffers */
    int frozen;         /* set by ich_model_freeze(): no gradient, no update */
    uint64_t version;   /* bumped by whoever writes `data` (optimizer, loading), so a
                           backend can tell when its cached copy (e.g. reordered
                           weights) is stale */
} ich_param;

/* What a spec line says about a layer; fields not used by a kind are 0. */
typedef struct ich_layer_args {
    int32_t out;            /* conv: output channels; linear: output features */
    int32_t kernel[2];      /* conv, pools: rows, columns */
    int32_t stride[2];      /* conv, pools (pools: default = kernel) */
    int32_t padding[2];     /* conv, pools */
    int32_t dilation[2];    /* conv (1 = none) */
    int32_t bias;           /* conv, linear: 1 = with bias */
    int32_t fuse_relu;      /* conv, linear, batchnorm: ReLU applied to the output
                               in the same pass (set by the model when a relu follows
                               and nothing else reads the pre-ReLU value) */
    float p;                /* dropout probability */
    float eps, momentum;    /* batchnorm (PyTorch: 1e-5, 0.1) */
} ich_layer_args;

typedef struct ich_layer ich_layer;

/* One layer kind's implementation on one backend. */
typedef struct ich_layer_ops {
    const char *kind; /* "conv", "linear", "relu", "maxpool", "avgpool", "gap",
                         "batchnorm", "dropout", "flatten", "add", "concat" */
    int inputs;       /* 1, or 2 for add; concat: 2 */
    int needs_input;  /* backward reads the inputs again */
    int needs_output; /* backward reads the output again */
    int in_place;     /* forward may run with out == in[0] (relu, dropout, add) */
    /* Create state and parameters (zeroed; the model initialises them) for the
     * given input shapes (n is the first batch size) and set *out. */
    ich_status (*create)(ich_layer *layer, const ich_shape *in, ich_shape *out);
    /* The batch size changed: in[i].n and out->n are new, the rest is the same. */
    ich_status (*resize)(ich_layer *layer, const ich_shape *in, ich_shape *out);
    ich_status (*forward)(ich_layer *layer, const float *const *in, float *out, int training);
    /* grad_in[i] receives d loss / d in[i] (overwritten, not accumulated; NULL
     * when not needed, e.g. for the model's input). Parameter gradients are
     * ACCUMULATED into param->grad unless the parameter is frozen. in / out
     * are valid when needs_input / needs_output say so, else NULL.
     * grad_out is the layer's to use as scratch: a fused ReLU zeroes its
     * masked values in place, so the model must not read grad_out after
     * backward (grad_in may be the same buffer as grad_out only for in_place
     * kinds). A fused ReLU keeps its own 1-bit mask from the training
     * forward, so fuse_relu does not make the layer need its output.
     * Backward uses the state of the layer's last forward call: run it after
     * a forward with training = 1 on the same inputs (dropout replays that
     * forward's mask; max pool its workspace; batch norm its statistics). */
    ich_status (*backward)(ich_layer *layer, const float *const *in, const float *out,
                           const float *grad_out, float *const *grad_in);
    void (*destroy)(ich_layer *layer);
} ich_layer_ops;

struct ich_layer {
    const ich_layer_ops *ops;
    char name[64];        /* state_dict prefix: "conv1", "layer1.0.bn1" */
    ich_layer_args args;
    ich_shape in[2];
    ich_shape out;
    ich_param *params;    /* created by ops->create */
    int32_t nparams;
    uint64_t seed;        /* dropout: the model's seed mixed with the layer index */
    uint64_t step;        /* dropout: training forward passes so far (a fresh mask
                             each); the layer's forward uses it and adds 1 */
    void *state;          /* the kind's own data */
};

/* How a backend reports an error: ich_fail in libich, the host's fail
 * function in a plugin (both set the thread's message and return status). */
typedef ich_status (*ich_fail_fn)(ich_status status, const char *fmt, ...);

/* Output size of a convolution or pooling along one axis (PyTorch's floor
 * rule); 0 when the window does not fit. */
static inline int32_t ich_out_size(int32_t in, int32_t kernel, int32_t stride, int32_t pad,
                                   int32_t dilation)
{
    int32_t span = dilation * (kernel - 1) + 1;
    if (in + 2 * pad < span || stride <= 0)
        return 0;
    return (in + 2 * pad - span) / stride + 1;
}

/* The output shape of layer->ops->kind for the input shapes, checking the
 * layer's arguments and filling their defaults (conv stride and dilation 1,
 * pool stride = kernel, batch norm eps and momentum); sets layer->in[] and
 * layer->out. Every backend's create and resize start with it
 * (libich/backend/layer_shape.c, compiled into libich and each plugin). */
ich_status ich_layer_shape(ich_layer *layer, const ich_shape *in, ich_shape *out,
                           ich_fail_fn fail);

/* Fill a parameter's description (name, dtype, dims, trainable; zero
 * elsewhere, data and grad NULL) and return its number of values. */
int64_t ich_param_describe(ich_param *param, const char *name, ich_dtype dtype, int32_t ndim,
                           const int64_t *dims, int trainable);
/* Number of values of a parameter (1 for a scalar, ndim 0). */
int64_t ich_param_count(const ich_param *param);

#endif
