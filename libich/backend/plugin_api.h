/* Internal: the whole binary interface between libich and a backend plugin
 * (libich-cuda.so, libich/backend/cuda/), in one header. Everything a
 * plugin and libich pass each other is here: the records they share
 * (shapes, parameters, layers), the tables of functions each side fills
 * (the layer implementations and the backend table the plugin fills, the
 * host services libich fills), the entry point and the interface version.
 * The built-in CPU backend fills the same tables (libich/backend/cpu/).
 * libich/backend/backend.h and libich/backend/layer.h include this header and
 * add what stays inside one side (backend choice, helpers compiled into
 * both).
 *
 * ---- Compatibility rules (read before changing anything below) ----------
 *
 * A plugin is built separately from the libich that loads it, so every
 * member below is a promise. Two numbers keep it:
 *
 *   ICH_BACKEND_INTERFACE_VERSION  the major version. libich and a plugin
 *       refuse each other when it differs. Bump it when a member of a table
 *       is removed, moved, retyped or changes meaning, when a record
 *       (ich_shape, ich_param, ich_layer_args, ich_layer) changes in any
 *       way (they are shared by pointer and in arrays, so no size can tell
 *       their versions apart), or when the entry point's contract changes.
 *       Never changed, in any version: the entry point's signature, and the
 *       first two members (interface_version, size) of ich_backend and
 *       ich_plugin_host, so any libich can read any plugin's version.
 *
 *   size  the first members of each TABLE (ich_backend, ich_plugin_host,
 *       ich_layer_ops): sizeof the table as its filler was compiled, set by
 *       whoever fills it. New members are only ever APPENDED to a table, at
 *       its end, and need no new version: the size tells the reader whether
 *       the other side has them (ICH_PLUGIN_HAS). An appended member is
 *       optional by nature (an older filler lacks it), so its comment says
 *       what the reader does without it. A table smaller than its first
 *       layout (ICH_PLUGIN_*_MIN_SIZE: the end of its last member when this
 *       major version was made) is refused, naming both sizes.
 *
 * Why sizes and no minor number: the size already says exactly which
 * members the filler knew, is computed by the compiler (sizeof) and so
 * cannot be forgotten; a hand-kept minor number would be a second answer
 * that can disagree with it (interface 3 had members inserted in the
 * middle of ich_backend without a new number, which nothing noticed). It
 * is the rule of libich's public structs and of Linux's extensible system
 * calls (clone3, openat2): size first, append only, read min(size, own).
 *
 * The layout is checked when anything including this header compiles: the
 * list at the end (ICH_PLUGIN_LAYOUT) gives every member's offset and size
 * on x86-64 (LP64). A failing assertion there means you changed the ABI:
 * append the member at the end of its table instead (and add it to the
 * list), or bump ICH_BACKEND_INTERFACE_VERSION and rewrite the list.
 *
 * ---- Memory ----------------------------------------------------------------
 *
 * Activations and their gradients live in backend memory (device memory on
 * CUDA): the model allocates them with alloc and reaches them from the host
 * only through to_device / to_host / accumulate, unless host_memory says
 * backend memory is host memory. Parameters, their gradients and buffers
 * (ich_param) live in HOST memory on every backend, in PyTorch's layout:
 * they are the master copy the optimizer updates and checkpoints save. A
 * device backend keeps its own copy of each parameter, refreshed when
 * ich_param.version changes, and adds its parameter gradients into
 * ich_param.grad by the end of the model's backward pass (synchronize: a
 * device backend queues the copies, so the device does not wait for the
 * host once per layer). This costs one small copy each way per step (the
 * tutorial ConvNet has 0.6 M parameters, 2.5 MB) and keeps the optimizers
 * (bit-exact with PyTorch), freezing, tensor views and checkpoints
 * identical on every backend.
 *
 * ---- Layers ----------------------------------------------------------------
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
 * The model owns every activation buffer and gives each layer its inputs
 * and output. A layer says which of them it needs again in backward
 * (needs_input / needs_output), so the model can free or reuse the others
 * early; whatever else a layer needs (a max-pool workspace, a dropout mask,
 * batch statistics) it keeps in its own state.
 */
#ifndef ICH_INTERNAL_PLUGIN_API_H
#define ICH_INTERNAL_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>

/* ich_status (error codes) and ich_log_level cross the interface too; they
 * are public and keep their values (new ones are only added). */
#include "ich/core.h"

/* The major interface version (see the rules above). 4: size fields in
 * every table, and ich_backend as interface 3 changed it in place
 * (host_alloc, host_free inserted before synchronize). */
#define ICH_BACKEND_INTERFACE_VERSION 5

/* The end of `member` in `type`: the smallest size a filler of `type`
 * that has the member can report. */
#define ICH_PLUGIN_END(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))

/* 1 when the table `table` points to, filled by the other side, has
 * `member`: its size reaches past the member's end. Read a member appended
 * after a table's first layout only when this holds. */
#define ICH_PLUGIN_HAS(table, member)                                                             \
    ((size_t)(table)->size >=                                                                     \
     (size_t)((const char *)&(table)->member - (const char *)(table)) + sizeof((table)->member))

/* ---- records (fixed per major version) ----------------------------------- */

/* An activation shape, NHWC. Flat tensors (after flatten/linear) have
 * h = w = 1 and c = features. */
typedef struct ich_shape {
    int32_t n, h, w, c;
} ich_shape;

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
    float p;                /* dropout, droppath: probability */
    float eps, momentum;    /* batchnorm (PyTorch: 1e-5, 0.1); layernorm: eps */
    int32_t groups;         /* conv: channel groups (1 = none, in = out = groups:
                               depthwise); 0 is read as 1 (interface 5) */
    float init;             /* layerscale: the initial value of its gammas */
} ich_layer_args;

typedef struct ich_layer_ops ich_layer_ops;

/* One layer of a model: filled by the model (libich), given to the
 * backend's layer functions, which set params, nparams and state. */
typedef struct ich_layer {
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
} ich_layer;

/* ---- tables (append only) --------------------------------------------------- */

/* The layer kinds a backend's layer() is asked for. A kind a backend does
 * not know (layer() returns NULL) fails only the models that use it. */
#define ICH_LAYER_KINDS                                                                           \
    "conv", "linear", "relu", "maxpool", "avgpool", "gap", "batchnorm", "dropout", "flatten",     \
        "add", "concat", "silu", "gelu", "sigmoid", "mul",                                        \
        /* layer normalisation (over the innermost, channel dimension), layer scale,     */       \
        /* stochastic depth (libich/backend/cpu/norm.c, cuda/norm.c) */                           \
        "layernorm", "layerscale", "droppath",                                                    \
        /* nn.Linear on each position's channels (NHWC rows), weight [out, in]: */                \
        /* ConvNeXt's CNBlock (libich/backend/cpu/linear.c, cuda/linear.c) */                     \
        "pointwise_linear"

/* One layer kind's implementation on one backend, filled by the backend. */
struct ich_layer_ops {
    uint32_t size;    /* sizeof(ich_layer_ops) as the backend was compiled */
    const char *kind; /* one of ICH_LAYER_KINDS */
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
    /* Append new members here (see the rules at the top). */
};

/* A backend, filled by the backend (the CPU one in libich, a plugin's in
 * the plugin). Members marked optional may be NULL. */
typedef struct ich_backend {
    uint32_t interface_version; /* ICH_BACKEND_INTERFACE_VERSION */
    uint32_t size;              /* sizeof(ich_backend) as the backend was compiled */
    const char *name;           /* "cpu", "cuda" */
    int host_memory;            /* 1: alloc returns host memory the model may touch */

    /* Memory: 64-byte aligned (256 on CUDA); free(NULL) is a no-op. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *pointer);
    /* Copies between host and backend memory (memcpy on the CPU). Both
     * return when the copy is complete (to_device may read src no more). */
    ich_status (*to_device)(void *dst, const void *src, size_t bytes);
    ich_status (*to_host)(void *dst, const void *src, size_t bytes);
    /* acc[i] += x[i] for i < count, both in backend memory. */
    ich_status (*accumulate)(float *acc, const float *x, int64_t count);
    /* Optional (NULL: the model reorders on the host, then to_device):
     * host NCHW images into backend memory as NHWC, n x h x w x c. From
     * host_alloc memory it may return before src has been read: the
     * caller keeps src unchanged until synchronize. */
    ich_status (*upload_nchw)(float *dst, const float *src, int32_t n, int32_t c, int32_t h,
                              int32_t w);
    /* Optional (NULL: malloc and free): host memory that to_device and
     * upload_nchw read fastest (pinned on CUDA: a copy from it is a plain
     * DMA, and it does not wait for the host). For buffers filled every
     * step, as the training driver's batches. */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *pointer);
    /* Optional (NULL: nothing is ever pending): wait for the backend's
     * queued work and finish what layers left for the host (parameter
     * gradients added into ich_param.grad, batch-norm running statistics).
     * The model calls it at the end of every forward and backward pass,
     * failed ones included, so host copies are right when they return. */
    ich_status (*synchronize)(void);

    /* The implementation of a layer kind, or NULL when unknown. */
    const ich_layer_ops *(*layer)(const char *kind);

    /* Threads used by the backend's host-side kernels (0: one per CPU). */
    void (*set_threads)(int threads);
    int (*threads)(void);

    /* C = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when t*
     * is 1, all in backend memory. */
    void (*gemm)(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

    /* One line on what runs: "cpu: 2 threads, oneDNN 2.6.3", "cuda: NVIDIA
     * H100 (sm_90, 80 GiB), cuDNN 9.x". Never NULL. */
    const char *(*describe)(void);

    /* ---- appended in interface 5: collectives on backend memory --------- */
    /* Optional, all four or none (NULL, or a table too small to have them:
     * libich sums through host memory with dist/comm.h instead). The ranks
     * of a distributed run (dist/comm.h) summing float buffers in backend
     * memory with the backend's own library (NCCL on CUDA), set up once per
     * process by libich (backend/collective.c): every rank calls
     * collective_load, rank 0 collective_id, and only when every rank
     * succeeded (joining is a collective that would wait for a rank that
     * never comes) does libich broadcast the id and every rank call
     * collective_init. ICH_ERR_UNSUPPORTED (with the reason) when the
     * library is missing or cannot start; libich then sums on the host on
     * every rank. */
    /* Load the library (no communication): ICH_OK when this rank can join
     * a communicator. */
    ich_status (*collective_load)(void);
    /* A new communicator's id: at most ICH_COLLECTIVE_ID_MAX bytes into
     * `id`, their count into *bytes. */
    ich_status (*collective_id)(void *id, size_t *bytes);
    /* Join the communicator of `ranks` ranks as `rank` (0 .. ranks - 1),
     * every rank at once, each with rank 0's id. Called again, it leaves
     * the previous communicator first. */
    ich_status (*collective_init)(int32_t rank, int32_t ranks, const void *id, size_t bytes);
    /* data[i] = the sum of data[i] over the ranks, for i < count, in place,
     * after the work queued before it; returns when the sums are there.
     * Every rank calls it with the same count, in the same order. Gives up
     * after `timeout` seconds (0: no limit) with an error naming `what`;
     * after any error the communicator is unusable (libich then ends every
     * rank: the others may be waiting in the same sum). */
    ich_status (*allreduce_sum)(float *data, int64_t count, double timeout, const char *what);
    /* Append new members here (see the rules at the top). */
} ich_backend;

/* The most bytes of a communicator id (NCCL's ncclUniqueId has 128). */
#define ICH_COLLECTIVE_ID_MAX 128

/* How a backend reports an error: ich_fail in libich, the host's fail
 * function in a plugin (both set the thread's message and return status). */
typedef ich_status (*ich_fail_fn)(ich_status status, const char *fmt, ...);

/* What libich gives a plugin, filled by libich: its error and log
 * functions, its CPU threads (a plugin links nothing of libich) and the
 * interface version libich was built with. */
typedef struct ich_plugin_host {
    uint32_t interface_version; /* ICH_BACKEND_INTERFACE_VERSION */
    uint32_t size;              /* sizeof(ich_plugin_host) as libich was compiled */
    /* Set the calling thread's error message and return `status`. */
    ich_status (*fail)(ich_status status, const char *fmt, ...);
    void (*log)(ich_log_level level, const char *fmt, ...);
    /* fn(context, begin, end) over [0, count) in contiguous ranges on the
     * CPU backend's threads (ich_set_threads), for host-side loops. */
    void (*parallel)(int64_t count, void (*fn)(void *context, int64_t begin, int64_t end),
                     void *context);
    /* Appended in interface 5 (a plugin reads it only when ICH_PLUGIN_HAS
     * says the host has it): sum `count` floats in HOST memory over the
     * ranks of the distributed run, in place (dist/comm.h's
     * ich_comm_allreduce_float; `what` names the operation for the
     * watchdog's message). For a plugin whose collective library has no
     * transport of its own: the CPU emulation of NCCL (tests/cuda_emu). */
    ich_status (*allreduce_float)(float *data, size_t count, const char *what);
    /* Append new members here (see the rules at the top). */
} ich_plugin_host;

/* The sizes of the tables' first layouts in this major version: a table
 * reporting less is refused. They name the last member the version was
 * made with and stay as they are when members are appended. */
#define ICH_PLUGIN_BACKEND_MIN_SIZE ICH_PLUGIN_END(ich_backend, describe)
#define ICH_PLUGIN_HOST_MIN_SIZE ICH_PLUGIN_END(ich_plugin_host, parallel)
#define ICH_PLUGIN_LAYER_OPS_MIN_SIZE ICH_PLUGIN_END(ich_layer_ops, destroy)

/* ---- the entry point ---------------------------------------------------------- */

/* The plugin's one exported function. It stores the interface version it
 * was built for in *plugin_version first; when that differs from
 * host->interface_version it returns NULL without touching anything else.
 * When host->size is below ICH_PLUGIN_HOST_MIN_SIZE it returns NULL after
 * host->fail() naming both sizes (ich_plugin_check_host does both checks).
 * Otherwise it starts the backend (finds a device, creates its handles) and
 * returns its table, or NULL after host->fail() with the reason (no device,
 * no driver). Called once per process by libich, which then checks the
 * table's version and size and the size of every kind's layer ops. */
#define ICH_BACKEND_PLUGIN_ENTRY "ich_backend_plugin"
typedef const ich_backend *(*ich_backend_plugin_fn)(const ich_plugin_host *host,
                                                    uint32_t *plugin_version);

/* The checks a plugin's entry point starts with, after storing its
 * version: 1 when `host` is for this interface version and has every
 * member of its first layout; else 0, after host->fail() naming `plugin`
 * and both sizes when the size is the problem (libich adds the plugin's
 * path to the message). */
static inline int ich_plugin_check_host(const ich_plugin_host *host, const char *plugin)
{
    if (!host || host->interface_version != ICH_BACKEND_INTERFACE_VERSION)
        return 0;
    if (host->size < ICH_PLUGIN_HOST_MIN_SIZE) {
        /* fail itself is there in every host of this version; checked so
         * that a damaged table is refused without a call through it. */
        /* (host->fail): cmocka, included by tests, has a macro fail(). */
        if (host->size >= ICH_PLUGIN_END(ich_plugin_host, fail) && host->fail)
            (host->fail)(ICH_ERR_UNSUPPORTED,
                         "%s: libich's host services table has %u bytes, this plugin needs "
                         "at least %u (backend interface %d): libich and the plugin were "
                         "built from different headers",
                         plugin, (unsigned)host->size, (unsigned)ICH_PLUGIN_HOST_MIN_SIZE,
                         ICH_BACKEND_INTERFACE_VERSION);
        return 0;
    }
    return 1;
}

/* ---- the layout, checked at compile time ---------------------------------------- */

/* Every member of every record and table: offset and size in bytes on
 * x86-64 (LP64), then each type's size. A failing assertion means you
 * changed the ABI: append the member at the end of its table instead (and
 * add a line here), or bump ICH_BACKEND_INTERFACE_VERSION and rewrite the
 * list. */
#define ICH_PLUGIN_LAYOUT(X)                                                                      \
    X(ich_shape, n, 0, 4)                                                                         \
    X(ich_shape, h, 4, 4)                                                                         \
    X(ich_shape, w, 8, 4)                                                                         \
    X(ich_shape, c, 12, 4)                                                                        \
    X(ich_param, name, 0, 32)                                                                     \
    X(ich_param, dtype, 32, 4)                                                                    \
    X(ich_param, ndim, 36, 4)                                                                     \
    X(ich_param, dims, 40, 32)                                                                    \
    X(ich_param, data, 72, 8)                                                                     \
    X(ich_param, grad, 80, 8)                                                                     \
    X(ich_param, trainable, 88, 4)                                                                \
    X(ich_param, frozen, 92, 4)                                                                   \
    X(ich_param, version, 96, 8)                                                                  \
    X(ich_layer_args, out, 0, 4)                                                                  \
    X(ich_layer_args, kernel, 4, 8)                                                               \
    X(ich_layer_args, stride, 12, 8)                                                              \
    X(ich_layer_args, padding, 20, 8)                                                             \
    X(ich_layer_args, dilation, 28, 8)                                                            \
    X(ich_layer_args, bias, 36, 4)                                                                \
    X(ich_layer_args, fuse_relu, 40, 4)                                                           \
    X(ich_layer_args, p, 44, 4)                                                                   \
    X(ich_layer_args, eps, 48, 4)                                                                 \
    X(ich_layer_args, momentum, 52, 4)                                                            \
    X(ich_layer_args, groups, 56, 4)                                                              \
    X(ich_layer_args, init, 60, 4)                                                                \
    X(ich_layer, ops, 0, 8)                                                                       \
    X(ich_layer, name, 8, 64)                                                                     \
    X(ich_layer, args, 72, 64)                                                                    \
    X(ich_layer, in, 136, 32)                                                                     \
    X(ich_layer, out, 168, 16)                                                                    \
    X(ich_layer, params, 184, 8)                                                                  \
    X(ich_layer, nparams, 192, 4)                                                                 \
    X(ich_layer, seed, 200, 8)                                                                    \
    X(ich_layer, step, 208, 8)                                                                    \
    X(ich_layer, state, 216, 8)                                                                   \
    X(ich_layer_ops, size, 0, 4)                                                                  \
    X(ich_layer_ops, kind, 8, 8)                                                                  \
    X(ich_layer_ops, inputs, 16, 4)                                                               \
    X(ich_layer_ops, needs_input, 20, 4)                                                          \
    X(ich_layer_ops, needs_output, 24, 4)                                                         \
    X(ich_layer_ops, in_place, 28, 4)                                                             \
    X(ich_layer_ops, create, 32, 8)                                                               \
    X(ich_layer_ops, resize, 40, 8)                                                               \
    X(ich_layer_ops, forward, 48, 8)                                                              \
    X(ich_layer_ops, backward, 56, 8)                                                             \
    X(ich_layer_ops, destroy, 64, 8)                                                              \
    X(ich_backend, interface_version, 0, 4)                                                       \
    X(ich_backend, size, 4, 4)                                                                    \
    X(ich_backend, name, 8, 8)                                                                    \
    X(ich_backend, host_memory, 16, 4)                                                            \
    X(ich_backend, alloc, 24, 8)                                                                  \
    X(ich_backend, free, 32, 8)                                                                   \
    X(ich_backend, to_device, 40, 8)                                                              \
    X(ich_backend, to_host, 48, 8)                                                                \
    X(ich_backend, accumulate, 56, 8)                                                             \
    X(ich_backend, upload_nchw, 64, 8)                                                            \
    X(ich_backend, host_alloc, 72, 8)                                                             \
    X(ich_backend, host_free, 80, 8)                                                              \
    X(ich_backend, synchronize, 88, 8)                                                            \
    X(ich_backend, layer, 96, 8)                                                                  \
    X(ich_backend, set_threads, 104, 8)                                                           \
    X(ich_backend, threads, 112, 8)                                                               \
    X(ich_backend, gemm, 120, 8)                                                                  \
    X(ich_backend, describe, 128, 8)                                                              \
    X(ich_backend, collective_load, 136, 8)                                                       \
    X(ich_backend, collective_id, 144, 8)                                                         \
    X(ich_backend, collective_init, 152, 8)                                                       \
    X(ich_backend, allreduce_sum, 160, 8)                                                         \
    X(ich_plugin_host, interface_version, 0, 4)                                                   \
    X(ich_plugin_host, size, 4, 4)                                                                \
    X(ich_plugin_host, fail, 8, 8)                                                                \
    X(ich_plugin_host, log, 16, 8)                                                                \
    X(ich_plugin_host, parallel, 24, 8)                                                           \
    X(ich_plugin_host, allreduce_float, 32, 8)

#define ICH_PLUGIN_SIZES(X)                                                                       \
    X(ich_shape, 16)                                                                              \
    X(ich_param, 104)                                                                             \
    X(ich_layer_args, 64)                                                                         \
    X(ich_layer, 224)                                                                             \
    X(ich_layer_ops, 72)                                                                          \
    X(ich_backend, 168)                                                                           \
    X(ich_plugin_host, 40)                                                                        \
    X(ich_dtype, 4)                                                                               \
    X(ich_status, 4)                                                                              \
    X(ich_log_level, 4)

#ifdef __cplusplus
#define ICH_PLUGIN_STATIC_ASSERT static_assert
#else
#define ICH_PLUGIN_STATIC_ASSERT _Static_assert
#endif

/* Checked where the list holds: x86-64 with LP64, in host code (nvcc's
 * device passes see the same layout, and the host pass checks it). */
#if defined(__x86_64__) && defined(__LP64__) && !defined(__CUDA_ARCH__)
#define ICH_PLUGIN_CHECK_MEMBER(type, member, offset, bytes)                                      \
    ICH_PLUGIN_STATIC_ASSERT(offsetof(type, member) == (offset) &&                                \
                                 sizeof(((type *)0)->member) == (bytes),                          \
                             #type "." #member " moved or changed size: you changed the plugin "  \
                                   "ABI: append instead, or bump ICH_BACKEND_INTERFACE_VERSION");
#define ICH_PLUGIN_CHECK_SIZE(type, bytes)                                                        \
    ICH_PLUGIN_STATIC_ASSERT(sizeof(type) == (bytes),                                             \
                             "sizeof(" #type ") changed: you changed the plugin ABI: add the "    \
                             "appended member to ICH_PLUGIN_LAYOUT, or bump "                     \
                             "ICH_BACKEND_INTERFACE_VERSION");
ICH_PLUGIN_LAYOUT(ICH_PLUGIN_CHECK_MEMBER)
ICH_PLUGIN_SIZES(ICH_PLUGIN_CHECK_SIZE)
#undef ICH_PLUGIN_CHECK_MEMBER
#undef ICH_PLUGIN_CHECK_SIZE
#endif

#endif
