/* 2-D convolution on the GPU with cuDNN (its convolution API, NHWC
 * activations and filters), matching libich/backend/cpu/conv.c: PyTorch's
 * cross-correlation, weight OIHW and bias [out] on the host.
 *
 * cuDNN's NHWC kernels want the filter in NHWC (OHWI) too: the layer keeps
 * the OIHW weight's device mirror and an OHWI copy made from it on the GPU
 * whenever the weight's version changes; the weight gradient comes back
 * OHWI and is turned to OIHW on the GPU before it is added on the host.
 *
 * Algorithms: cuDNN's heuristics (what PyTorch uses without
 * cudnn.benchmark), chosen again when the batch size changes, limited to a
 * workspace of ICH_CUDA_WORKSPACE_MB (default 1024). Math (cuda_backend.h):
 * FP32 FMA, TF32, or BF16: cuDNN then convolves bfloat16 copies of the
 * input, the weight (kept, made again when the weight changes) and the
 * output gradient, sums in FP32, and its bfloat16 results are widened to
 * FP32 for the rest of the model. The bias and its gradient stay FP32.
 *
 * Groups (args.groups = G > 1, depthwise when G = IN): cuDNN's group count
 * (cudnnSetConvolutionGroupCount) with a filter of OUT x IN/G x KH x KW,
 * PyTorch's grouped weight shape; the OIHW <-> OHWI copies work per output
 * filter, so they are the same as without groups. */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"

typedef struct conv_state {
    /* x, y, w: in the math's data type; dy32: the FP32 output gradient
     * (for the bias gradient) */
    cudnnTensorDescriptor_t x_desc, y_desc, bias_desc, dy32_desc;
    cudnnFilterDescriptor_t w_desc;
    cudnnConvolutionDescriptor_t conv_desc;
    cudnnConvolutionFwdAlgo_t fwd_algo;
    cudnnConvolutionBwdDataAlgo_t bwd_data_algo;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo;
    size_t fwd_bytes, bwd_data_bytes, bwd_filter_bytes;
    ich_cuda_mirror weight, bias;
    float *w_ohwi;          /* the weight in OHWI, from `weight` */
    uint16_t *w16;          /* BF16: w_ohwi in bfloat16 */
    uint64_t w_ohwi_version;
    int w_ohwi_valid;
    float *grad_ohwi, *grad_oihw, *grad_bias; /* backward scratch */
    ich_cuda_relu_mask mask;
    int mask_valid;
    /* ICH_CUDA_BENCHMARK=1: the algorithms cuDNN timed fastest, per batch
     * size (the last few sizes seen) */
    struct measured {
        int32_t n; /* 0: empty */
        int have_fwd, have_data, have_filter;
        cudnnConvolutionFwdAlgo_t fwd;
        cudnnConvolutionBwdDataAlgo_t data;
        cudnnConvolutionBwdFilterAlgo_t filter;
        size_t fwd_bytes, data_bytes, filter_bytes;
    } measured[4];
    int next_measured;
} conv_state;

static size_t workspace_limit(void)
{
    const char *text = getenv("ICH_CUDA_WORKSPACE_MB");
    long mb = text ? strtol(text, NULL, 10) : 0;
    return (size_t)(mb > 0 ? mb : 1024) << 20;
}

/* ICH_CUDA_BENCHMARK=1 (ich_cuda_benchmark): the algorithms are timed
 * (cudnnFind*Ex) at the first pass of each batch size and the fastest kept,
 * as PyTorch's cudnn.benchmark = True; otherwise cuDNN's heuristics choose
 * (PyTorch's default). */

/* The measurements for the current batch size (a new, empty entry the
 * first time it is seen). */
static struct measured *measured_entry(conv_state *s, int32_t n)
{
    for (int i = 0; i < 4; i++)
        if (s->measured[i].n == n)
            return &s->measured[i];
    struct measured *m = &s->measured[s->next_measured];
    s->next_measured = (s->next_measured + 1) % 4;
    memset(m, 0, sizeof *m);
    m->n = n;
    return m;
}

/* After the heuristics: the measured algorithms for this batch size, where
 * there are some. */
static ich_status measured_algorithms(ich_layer *layer)
{
    conv_state *s = layer->state;
    if (!ich_cuda_benchmark())
        return ICH_OK;
    const struct measured *m = measured_entry(s, layer->in[0].n);
    if (m->have_fwd) {
        s->fwd_algo = m->fwd;
        s->fwd_bytes = m->fwd_bytes;
    }
    if (m->have_data) {
        s->bwd_data_algo = m->data;
        s->bwd_data_bytes = m->data_bytes;
    }
    if (m->have_filter) {
        s->bwd_filter_algo = m->filter;
        s->bwd_filter_bytes = m->filter_bytes;
    }
    return ICH_OK;
}

/* The index of the first of `found` ranked results that cuDNN can run
 * within `limit` bytes of workspace, or -1 (the three kinds of result share
 * these fields). */
#define FIRST_USABLE(results, found, limit, out)                                                 \
    do {                                                                                         \
        (out) = -1;                                                                              \
        for (int i_ = 0; i_ < (found) && (out) < 0; i_++)                                        \
            if ((results)[i_].status == CUDNN_STATUS_SUCCESS && (results)[i_].memory <= (limit))  \
                (out) = i_;                                                                      \
    } while (0)

enum { MAX_ALGOS = 16 };

/* The first algorithm the heuristics rank that cuDNN can run within the
 * workspace limit. */
static ich_status choose_algorithms(ich_layer *layer)
{
    conv_state *s = layer->state;
    cudnnHandle_t h = ich_cuda_cudnn();
    size_t limit = workspace_limit();
    int found = 0, chosen;

    cudnnConvolutionFwdAlgoPerf_t fwd[MAX_ALGOS];
    CHECK_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, s->x_desc, s->w_desc, s->conv_desc,
                                                       s->y_desc, MAX_ALGOS, &found, fwd),
                "forward algorithm heuristics");
    FIRST_USABLE(fwd, found, limit, chosen);
    if (chosen < 0)
        return cuda_fail(ICH_ERR_UNSUPPORTED, "%s: cuDNN has no forward algorithm for this conv",
                         layer->name);
    s->fwd_algo = fwd[chosen].algo;
    s->fwd_bytes = fwd[chosen].memory;

    cudnnConvolutionBwdDataAlgoPerf_t data[MAX_ALGOS];
    CHECK_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, s->w_desc, s->y_desc, s->conv_desc,
                                                            s->x_desc, MAX_ALGOS, &found, data),
                "backward-data algorithm heuristics");
    FIRST_USABLE(data, found, limit, chosen);
    if (chosen < 0)
        return cuda_fail(ICH_ERR_UNSUPPORTED,
                         "%s: cuDNN has no backward-data algorithm for this conv", layer->name);
    s->bwd_data_algo = data[chosen].algo;
    s->bwd_data_bytes = data[chosen].memory;

    cudnnConvolutionBwdFilterAlgoPerf_t filter[MAX_ALGOS];
    CHECK_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, s->x_desc, s->y_desc,
                                                              s->conv_desc, s->w_desc, MAX_ALGOS,
                                                              &found, filter),
                "backward-filter algorithm heuristics");
    FIRST_USABLE(filter, found, limit, chosen);
    if (chosen < 0)
        return cuda_fail(ICH_ERR_UNSUPPORTED,
                         "%s: cuDNN has no backward-filter algorithm for this conv", layer->name);
    s->bwd_filter_algo = filter[chosen].algo;
    s->bwd_filter_bytes = filter[chosen].memory;
    cuda_log(ICH_LOG_DEBUG, "%s: cuDNN algorithms forward %d, backward data %d, filter %d",
             layer->name, (int)s->fwd_algo, (int)s->bwd_data_algo, (int)s->bwd_filter_algo);
    return measured_algorithms(layer);
}

/* Descriptors for the current shapes (n may change between calls). */
static ich_status describe(ich_layer *layer)
{
    conv_state *s = layer->state;
    const ich_layer_args *a = &layer->args;
    ich_shape in = layer->in[0], out = layer->out;
    const ich_cuda_math math = ich_cuda_math_mode();
    const cudnnDataType_t type = math == ICH_CUDA_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    CHECK_CUDNN(cudnnSetTensor4dDescriptor(s->x_desc, CUDNN_TENSOR_NHWC, type, in.n, in.c, in.h,
                                           in.w),
                "input descriptor");
    CHECK_CUDNN(cudnnSetTensor4dDescriptor(s->y_desc, CUDNN_TENSOR_NHWC, type, out.n, out.c,
                                           out.h, out.w),
                "output descriptor");
    CHECK_CUDNN(cudnnSetTensor4dDescriptor(s->dy32_desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT,
                                           out.n, out.c, out.h, out.w),
                "output gradient descriptor");
    CHECK_CUDNN(cudnnSetTensor4dDescriptor(s->bias_desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1,
                                           out.c, 1, 1),
                "bias descriptor");
    CHECK_CUDNN(cudnnSetFilter4dDescriptor(s->w_desc, type, CUDNN_TENSOR_NHWC, out.c,
                                           in.c / a->groups, a->kernel[0], a->kernel[1]),
                "filter descriptor");
    CHECK_CUDNN(cudnnSetConvolution2dDescriptor(s->conv_desc, a->padding[0], a->padding[1],
                                                a->stride[0], a->stride[1], a->dilation[0],
                                                a->dilation[1], CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT),
                "convolution descriptor");
    CHECK_CUDNN(cudnnSetConvolutionGroupCount(s->conv_desc, a->groups), "group count");
    CHECK_CUDNN(cudnnSetConvolutionMathType(s->conv_desc, math == ICH_CUDA_FP32 ? CUDNN_FMA_MATH
                                                          : math == ICH_CUDA_TF32
                                                              ? CUDNN_DEFAULT_MATH
                                                              : CUDNN_TENSOR_OP_MATH),
                "math type");
    s->mask_valid = 0;
    return choose_algorithms(layer);
}

static void conv_destroy(ich_layer *layer)
{
    conv_state *s = layer->state;
    if (s) {
        if (s->x_desc)
            cudnnDestroyTensorDescriptor(s->x_desc);
        if (s->y_desc)
            cudnnDestroyTensorDescriptor(s->y_desc);
        if (s->bias_desc)
            cudnnDestroyTensorDescriptor(s->bias_desc);
        if (s->dy32_desc)
            cudnnDestroyTensorDescriptor(s->dy32_desc);
        if (s->w_desc)
            cudnnDestroyFilterDescriptor(s->w_desc);
        if (s->conv_desc)
            cudnnDestroyConvolutionDescriptor(s->conv_desc);
        ich_cuda_mirror_free(&s->weight);
        ich_cuda_mirror_free(&s->bias);
        ich_cuda_free(s->w_ohwi);
        ich_cuda_free(s->w16);
        ich_cuda_free(s->grad_ohwi);
        ich_cuda_free(s->grad_oihw);
        ich_cuda_free(s->grad_bias);
        ich_cuda_relu_mask_free(&s->mask);
        free(s);
        layer->state = NULL;
    }
    ich_cuda_params_free(layer);
}

static ich_status conv_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cuda_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    conv_state *s = calloc(1, sizeof *s);
    layer->state = s;
    if (!s)
        return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    /* PyTorch's [OUT, IN/G, KH, KW] (ich_cuda_shape checked G divides both) */
    int64_t w_dims[4] = {out->c, in->c / layer->args.groups, layer->args.kernel[0],
                         layer->args.kernel[1]};
    int64_t b_dims[1] = {out->c};
    size_t w_bytes = (size_t)(w_dims[0] * w_dims[1] * w_dims[2] * w_dims[3]) * sizeof(float);
    if ((status = ich_cuda_params_alloc(layer, layer->args.bias ? 2 : 1)) ||
        (status = ich_cuda_param_init(&layer->params[0], "weight", ICH_DTYPE_F32, 4, w_dims, 1)) ||
        (layer->args.bias &&
         (status = ich_cuda_param_init(&layer->params[1], "bias", ICH_DTYPE_F32, 1, b_dims, 1))))
        goto fail;
    s->w_ohwi = ich_cuda_alloc(w_bytes);
    s->grad_ohwi = ich_cuda_alloc(w_bytes);
    s->grad_oihw = ich_cuda_alloc(w_bytes);
    s->grad_bias = ich_cuda_alloc((size_t)out->c * sizeof(float));
    if (ich_cuda_math_mode() == ICH_CUDA_BF16)
        s->w16 = ich_cuda_alloc(w_bytes / 2);
    if (!s->w_ohwi || !s->grad_ohwi || !s->grad_oihw || !s->grad_bias ||
        (ich_cuda_math_mode() == ICH_CUDA_BF16 && !s->w16)) {
        status = cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of GPU memory for the weights", layer->name);
        goto fail;
    }
    if (cudnnCreateTensorDescriptor(&s->x_desc) || cudnnCreateTensorDescriptor(&s->y_desc) ||
        cudnnCreateTensorDescriptor(&s->bias_desc) || cudnnCreateTensorDescriptor(&s->dy32_desc) ||
        cudnnCreateFilterDescriptor(&s->w_desc) ||
        cudnnCreateConvolutionDescriptor(&s->conv_desc)) {
        status = cuda_fail(ICH_ERR_NO_MEMORY, "%s: cannot create cuDNN descriptors", layer->name);
        goto fail;
    }
    if ((status = describe(layer)) == ICH_OK)
        return ICH_OK;
fail:
    conv_destroy(layer);
    return status;
}

static ich_status conv_resize(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cuda_shape(layer, in, out);
    return status ? status : describe(layer);
}

/* The device weights (OHWI) and bias for the host's current version. */
static ich_status sync_weights(ich_layer *layer)
{
    conv_state *s = layer->state;
    const ich_param *w = &layer->params[0];
    ich_status status = ich_cuda_mirror_sync(layer, w, &s->weight);
    if (!status && layer->args.bias)
        status = ich_cuda_mirror_sync(layer, &layer->params[1], &s->bias);
    if (status)
        return status;
    if (!s->w_ohwi_valid || s->w_ohwi_version != w->version) {
        ich_cuda_k_oihw_to_ohwi(s->w_ohwi, s->weight.device, (int32_t)w->dims[0],
                                (int32_t)w->dims[1], (int32_t)w->dims[2], (int32_t)w->dims[3]);
        CHECK_LAUNCH("weight layout");
        if (s->w16) {
            ich_cuda_k_to_bf16(s->w16, s->w_ohwi, ich_param_count(w));
            CHECK_LAUNCH("weight to bfloat16");
        }
        s->w_ohwi_version = w->version;
        s->w_ohwi_valid = 1;
    }
    return ICH_OK;
}

/* ---- ICH_CUDA_BENCHMARK=1: timing the algorithms ------------------------ */

/* The workspace to time algorithms in (the limit's size), or NULL when the
 * device has no room for it: the heuristics' choice then stays. */
static void *timing_workspace(ich_layer *layer, size_t *bytes)
{
    *bytes = workspace_limit();
    void *workspace = ich_cuda_workspace(layer, *bytes);
    if (!workspace)
        cuda_log(ICH_LOG_INFO, "%s: no room to time cuDNN's algorithms: the heuristics' stay",
                 layer->name);
    return workspace;
}

/* cuDNN times every algorithm on these operands (it writes the output);
 * the fastest it can run within the limit becomes the layer's, for this
 * batch size. */
static ich_status time_forward(ich_layer *layer, const void *x, const void *w, void *y)
{
    conv_state *s = layer->state;
    struct measured *m = measured_entry(s, layer->in[0].n);
    size_t limit;
    void *workspace;
    if (m->have_fwd || !(workspace = timing_workspace(layer, &limit)))
        return ICH_OK;
    cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
    int found = 0, chosen;
    CHECK_CUDNN(cudnnFindConvolutionForwardAlgorithmEx(ich_cuda_cudnn(), s->x_desc, x, s->w_desc,
                                                       w, s->conv_desc, s->y_desc, y, MAX_ALGOS,
                                                       &found, perf, workspace, limit),
                "timing the forward algorithms");
    FIRST_USABLE(perf, found, limit, chosen);
    m->fwd = chosen < 0 ? s->fwd_algo : perf[chosen].algo;
    m->fwd_bytes = chosen < 0 ? s->fwd_bytes : perf[chosen].memory;
    m->have_fwd = 1;
    return measured_algorithms(layer);
}

static ich_status time_backward_data(ich_layer *layer, const void *w, const void *dy, void *dx)
{
    conv_state *s = layer->state;
    struct measured *m = measured_entry(s, layer->in[0].n);
    size_t limit;
    void *workspace;
    if (m->have_data || !(workspace = timing_workspace(layer, &limit)))
        return ICH_OK;
    cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
    int found = 0, chosen;
    CHECK_CUDNN(cudnnFindConvolutionBackwardDataAlgorithmEx(
                    ich_cuda_cudnn(), s->w_desc, w, s->y_desc, dy, s->conv_desc, s->x_desc, dx,
                    MAX_ALGOS, &found, perf, workspace, limit),
                "timing the backward-data algorithms");
    FIRST_USABLE(perf, found, limit, chosen);
    m->data = chosen < 0 ? s->bwd_data_algo : perf[chosen].algo;
    m->data_bytes = chosen < 0 ? s->bwd_data_bytes : perf[chosen].memory;
    m->have_data = 1;
    return measured_algorithms(layer);
}

static ich_status time_backward_filter(ich_layer *layer, const void *x, const void *dy, void *dw)
{
    conv_state *s = layer->state;
    struct measured *m = measured_entry(s, layer->in[0].n);
    size_t limit;
    void *workspace;
    if (m->have_filter || !(workspace = timing_workspace(layer, &limit)))
        return ICH_OK;
    cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_ALGOS];
    int found = 0, chosen;
    CHECK_CUDNN(cudnnFindConvolutionBackwardFilterAlgorithmEx(
                    ich_cuda_cudnn(), s->x_desc, x, s->y_desc, dy, s->conv_desc, s->w_desc, dw,
                    MAX_ALGOS, &found, perf, workspace, limit),
                "timing the backward-filter algorithms");
    FIRST_USABLE(perf, found, limit, chosen);
    m->filter = chosen < 0 ? s->bwd_filter_algo : perf[chosen].algo;
    m->filter_bytes = chosen < 0 ? s->bwd_filter_bytes : perf[chosen].memory;
    m->have_filter = 1;
    cuda_log(ICH_LOG_DEBUG, "%s (batch %d): fastest cuDNN algorithms forward %d, backward data "
             "%d, filter %d", layer->name, layer->in[0].n, (int)m->fwd, (int)m->data,
             (int)m->filter);
    return measured_algorithms(layer);
}

/* BF16 scratch: bfloat16 copies for one call, back to the device cache at
 * the end of it (the stream runs in order, so that is safe at once). */
typedef struct bf16_scratch {
    uint16_t *buffers[4]; /* at most: backward's dy, dx, x and dw */
    int count;
} bf16_scratch;

static uint16_t *bf16_buffer(const ich_layer *layer, bf16_scratch *scratch, int64_t count)
{
    uint16_t *buffer = ich_cuda_alloc((size_t)count * sizeof(uint16_t));
    if (!buffer)
        cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of GPU memory for bfloat16 copies", layer->name);
    else
        scratch->buffers[scratch->count++] = buffer;
    return buffer;
}

/* A bfloat16 copy of `count` floats at `src`, or NULL (out of memory). */
static uint16_t *bf16_copy(const ich_layer *layer, bf16_scratch *scratch, const float *src,
                           int64_t count)
{
    uint16_t *copy = bf16_buffer(layer, scratch, count);
    if (copy)
        ich_cuda_k_to_bf16(copy, src, count);
    return copy;
}

static void bf16_release(bf16_scratch *scratch)
{
    for (int i = 0; i < scratch->count; i++)
        ich_cuda_free(scratch->buffers[i]);
    scratch->count = 0;
}

/* In a function with a `status` and a `done:` label: on failure set the
 * status and go there. TRY_ALLOC takes a pointer that is NULL when an
 * allocation failed (whoever failed has set the message). */
#define TRY_CUDNN(call, what)                                                                    \
    do {                                                                                         \
        cudnnStatus_t try_status_ = (call);                                                      \
        if (try_status_ != CUDNN_STATUS_SUCCESS) {                                               \
            status = ich_cudnn_error(layer, what, try_status_);                                  \
            goto done;                                                                           \
        }                                                                                        \
    } while (0)
#define TRY(expression)                                                                          \
    do {                                                                                         \
        if ((status = (expression)) != ICH_OK)                                                   \
            goto done;                                                                           \
    } while (0)
#define TRY_ALLOC(pointer)                                                                        \
    do {                                                                                         \
        if (!(pointer)) {                                                                        \
            status = ICH_ERR_NO_MEMORY;                                                          \
            goto done;                                                                           \
        }                                                                                        \
    } while (0)

static ich_status conv_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    conv_state *s = layer->state;
    bf16_scratch scratch = {{NULL}, 0};
    const int64_t in_count = ich_shape_count(layer->in[0]);
    const int64_t out_count = ich_shape_count(layer->out);
    const float one = 1.0f, zero = 0.0f;
    ich_status status = ICH_OK;
    TRY(sync_weights(layer));
    const void *x = in[0], *w = s->w_ohwi;
    void *y = out;
    if (s->w16) {
        uint16_t *y16 = bf16_buffer(layer, &scratch, out_count);
        TRY_ALLOC(y16);
        TRY_ALLOC(x = bf16_copy(layer, &scratch, in[0], in_count));
        w = s->w16;
        y = y16;
    }
    if (ich_cuda_benchmark())
        TRY(time_forward(layer, x, w, y));
    void *workspace = ich_cuda_workspace(layer, s->fwd_bytes);
    TRY_ALLOC(workspace);
    TRY_CUDNN(cudnnConvolutionForward(ich_cuda_cudnn(), &one, s->x_desc, x, s->w_desc, w,
                                      s->conv_desc, s->fwd_algo, workspace, s->fwd_bytes, &zero,
                                      s->y_desc, y),
              "convolution forward");
    if (s->w16)
        ich_cuda_k_from_bf16(out, y, out_count);
    int64_t rows = (int64_t)layer->out.n * layer->out.h * layer->out.w;
    if (layer->args.bias)
        ich_cuda_k_bias_add(out, s->bias.device, rows, layer->out.c);
    TRY(ich_cuda_check_launch(layer, "bias"));
    s->mask_valid = 0;
    if (layer->args.fuse_relu) {
        status = ich_cuda_relu_fused(layer, training ? &s->mask : NULL, out, out_count);
        s->mask_valid = training && !status;
    }
done:
    bf16_release(&scratch);
    return status;
}

static ich_status conv_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    conv_state *s = layer->state;
    cudnnHandle_t h = ich_cuda_cudnn();
    bf16_scratch scratch = {{NULL}, 0};
    const int64_t in_count = ich_shape_count(layer->in[0]);
    const int64_t out_count = ich_shape_count(layer->out);
    const float one = 1.0f, zero = 0.0f;
    ich_status status = ICH_OK;
    (void)out;
    if (layer->args.fuse_relu) {
        if (!s->mask_valid)
            return cuda_fail(ICH_ERR_INVALID_ARGUMENT,
                             "%s: backward without a training forward pass", layer->name);
        TRY(ich_cuda_relu_mask_apply(layer, &s->mask, (float *)grad_out, out_count));
    }
    TRY(sync_weights(layer));
    const void *dy = grad_out, *w = s->w_ohwi;
    if (s->w16) {
        TRY_ALLOC(dy = bf16_copy(layer, &scratch, grad_out, out_count));
        w = s->w16;
    }
    if (grad_in && grad_in[0]) {
        void *dx = grad_in[0];
        if (s->w16)
            TRY_ALLOC(dx = bf16_buffer(layer, &scratch, in_count));
        if (ich_cuda_benchmark())
            TRY(time_backward_data(layer, w, dy, dx));
        void *workspace = ich_cuda_workspace(layer, s->bwd_data_bytes);
        TRY_ALLOC(workspace);
        TRY_CUDNN(cudnnConvolutionBackwardData(h, &one, s->w_desc, w, s->y_desc, dy, s->conv_desc,
                                               s->bwd_data_algo, workspace, s->bwd_data_bytes,
                                               &zero, s->x_desc, dx),
                  "convolution backward data");
        if (s->w16)
            ich_cuda_k_from_bf16(grad_in[0], dx, in_count);
    }
    ich_param *weight = &layer->params[0];
    if (!weight->frozen) {
        const void *x = in[0];
        void *dw = s->grad_ohwi;
        if (s->w16) {
            TRY_ALLOC(x = bf16_copy(layer, &scratch, in[0], in_count));
            TRY_ALLOC(dw = bf16_buffer(layer, &scratch, ich_param_count(weight)));
        }
        if (ich_cuda_benchmark())
            TRY(time_backward_filter(layer, x, dy, dw));
        void *workspace = ich_cuda_workspace(layer, s->bwd_filter_bytes);
        TRY_ALLOC(workspace);
        TRY_CUDNN(cudnnConvolutionBackwardFilter(h, &one, s->x_desc, x, s->y_desc, dy,
                                                 s->conv_desc, s->bwd_filter_algo, workspace,
                                                 s->bwd_filter_bytes, &zero, s->w_desc, dw),
                  "convolution backward filter");
        if (s->w16)
            ich_cuda_k_from_bf16(s->grad_ohwi, dw, ich_param_count(weight));
        ich_cuda_k_ohwi_to_oihw(s->grad_oihw, s->grad_ohwi, (int32_t)weight->dims[0],
                                (int32_t)weight->dims[1], (int32_t)weight->dims[2],
                                (int32_t)weight->dims[3]);
        TRY(ich_cuda_check_launch(layer, "weight gradient layout"));
        TRY(ich_cuda_grad_add(layer, weight, s->grad_oihw));
    }
    if (layer->args.bias && !layer->params[1].frozen) {
        TRY_CUDNN(cudnnConvolutionBackwardBias(h, &one, s->dy32_desc, grad_out, &zero,
                                               s->bias_desc, s->grad_bias),
                  "convolution backward bias");
        TRY(ich_cuda_grad_add(layer, &layer->params[1], s->grad_bias));
    }
    status = ich_cuda_check_launch(layer, "convolution backward");
done:
    bf16_release(&scratch);
    return status;
}

const ich_layer_ops ich_cuda_conv_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "conv",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = conv_create,
    .resize = conv_resize,
    .forward = conv_forward,
    .backward = conv_backward,
    .destroy = conv_destroy,
};
