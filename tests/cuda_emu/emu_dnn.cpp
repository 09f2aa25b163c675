// The part of cuDNN the CUDA plugin uses (its convolution API), on the CPU
// for the emulation (tests/cuda_emu/README.md): naive loops over 4-D
// tensors in NCHW or NHWC, float or bfloat16 (cuDNN's "pseudo bfloat16"
// configuration: bfloat16 tensors, FP32 compute; results rounded to
// nearest even), sums in double. Every call checks what real
// cuDNN checks (descriptors set and consistent, output sizes, the
// workspace its heuristics asked for) and that each pointer is device
// memory large enough for its descriptor. Grouped convolutions
// (cudnnSetConvolutionGroupCount) as cuDNN defines them: the filter is
// K x C/G x R x S, output channel k reads input channels
// [g * C/G, (g + 1) * C/G) with g = k / (K/G).
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <new>
#include <vector>

#include "cudnn.h"

struct ich_emu_cudnn {
    cudaStream_t stream;
};

struct ich_emu_tensor {
    bool set;
    cudnnTensorFormat_t format;
    cudnnDataType_t type;
    int n, c, h, w;
};

struct ich_emu_conv {
    bool set;
    int pad_h, pad_w, u, v, dilation_h, dilation_w;
    cudnnConvolutionMode_t mode;
    cudnnMathType_t math;
    int groups; // cudnnSetConvolutionGroupCount (0: not set, cuDNN's default 1)
};

namespace {

// What the emulated algorithms ask for: algorithm 0 needs a workspace (so
// the plugin's workspace handling is exercised), algorithm 1 none.
size_t workspace_for(int algo, const ich_emu_tensor *x)
{
    return algo == 0 ? (size_t)x->c * 4096 : 0;
}

int groups_of(const ich_emu_conv *conv)
{
    return conv->groups > 0 ? conv->groups : 1;
}

// Offset of element (n, c, h, w) of a tensor (or of filter (k, c, r, s)).
int64_t at(const ich_emu_tensor *t, int64_t n, int64_t c, int64_t h, int64_t w)
{
    if (t->format == CUDNN_TENSOR_NHWC)
        return ((n * t->h + h) * t->w + w) * t->c + c;
    return ((n * t->c + c) * t->h + h) * t->w + w;
}

size_t count_of(const ich_emu_tensor *t)
{
    return (size_t)t->n * t->c * t->h * t->w;
}

size_t bytes_of(const ich_emu_tensor *t)
{
    return count_of(t) * (t->type == CUDNN_DATA_BFLOAT16 ? 2 : 4);
}

// A tensor's elements as doubles, and back (rounded to its type).
std::vector<double> load(const void *p, const ich_emu_tensor *t)
{
    std::vector<double> values(count_of(t));
    for (size_t i = 0; i < values.size(); i++) {
        if (t->type == CUDNN_DATA_FLOAT) {
            values[i] = ((const float *)p)[i];
        } else {
            uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
            float f;
            memcpy(&f, &u, sizeof f);
            values[i] = f;
        }
    }
    return values;
}

void store(void *p, const ich_emu_tensor *t, size_t i, float f)
{
    if (t->type == CUDNN_DATA_FLOAT) {
        ((float *)p)[i] = f;
        return;
    }
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u); // nearest, ties to even (no NaN here)
    ((uint16_t *)p)[i] = (uint16_t)(u >> 16);
}

bool device(const void *p, const ich_emu_tensor *t, const char *call, const char *what)
{
    if (ich_emu_is_device(p, bytes_of(t)))
        return true;
    ich_emu_misuse(cudaErrorInvalidValue, "%s: %s %p is not device memory of %zu bytes", call,
                   what, p, bytes_of(t));
    return false;
}

// The output size cuDNN computes for x, w, conv.
void output_dims(const ich_emu_tensor *x, const ich_emu_tensor *w, const ich_emu_conv *conv,
                 int *n, int *c, int *h, int *wd)
{
    *n = x->n;
    *c = w->n;
    *h = (x->h + 2 * conv->pad_h - (conv->dilation_h * (w->h - 1) + 1)) / conv->u + 1;
    *wd = (x->w + 2 * conv->pad_w - (conv->dilation_w * (w->w - 1) + 1)) / conv->v + 1;
}

// The descriptors of one convolution, checked as cuDNN does.
cudnnStatus_t check(const ich_emu_tensor *x, const ich_emu_tensor *w, const ich_emu_conv *conv,
                    const ich_emu_tensor *y, const char *call)
{
    if (!x || !w || !conv || !y || !x->set || !w->set || !conv->set || !y->set) {
        ich_emu_misuse(cudaErrorInvalidValue, "%s: a descriptor was not set", call);
        return CUDNN_STATUS_BAD_PARAM;
    }
    int n, c, h, wd;
    output_dims(x, w, conv, &n, &c, &h, &wd);
    if (x->type != w->type || x->type != y->type) {
        ich_emu_misuse(cudaErrorInvalidValue, "%s: x, w and y are not of one data type", call);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    const int groups = groups_of(conv);
    if (x->c != w->c * groups || w->n % groups || y->n != n || y->c != c || y->h != h ||
        y->w != wd || h <= 0 || wd <= 0) {
        ich_emu_misuse(cudaErrorInvalidValue,
                       "%s: x %dx%dx%dx%d, w %dx%dx%dx%d, %d group(s) give y %dx%dx%dx%d, not "
                       "%dx%dx%dx%d",
                       call, x->n, x->c, x->h, x->w, w->n, w->c, w->h, w->w, groups, n, c, h, wd,
                       y->n, y->c, y->h, y->w);
        return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

// Distance between consecutive channels of a tensor (or filter).
int64_t channel_stride(const ich_emu_tensor *t)
{
    return t->format == CUDNN_TENSOR_NHWC ? 1 : (int64_t)t->h * t->w;
}

// Calls f(yi, xi, wi) for every output element yi and every filter tap
// whose input position is inside the image, with xi the offset of the
// first input channel of yi's group at that input position and wi that of
// channel 0 of the filter tap; channel c (c < w->c) is at
// xi + c * channel_stride(x), wi + c * channel_stride(w).
template <typename F>
void each_tap(const ich_emu_tensor *x, const ich_emu_tensor *w, const ich_emu_conv *conv,
              const ich_emu_tensor *y, F f)
{
    const int per_group = y->c / groups_of(conv); // output channels per group
    for (int n = 0; n < y->n; n++)
        for (int k = 0; k < y->c; k++)
            for (int oy = 0; oy < y->h; oy++)
                for (int ox = 0; ox < y->w; ox++) {
                    int64_t yi = at(y, n, k, oy, ox);
                    for (int r = 0; r < w->h; r++) {
                        int iy = oy * conv->u - conv->pad_h + r * conv->dilation_h;
                        if (iy < 0 || iy >= x->h)
                            continue;
                        for (int s = 0; s < w->w; s++) {
                            int ix = ox * conv->v - conv->pad_w + s * conv->dilation_w;
                            if (ix < 0 || ix >= x->w)
                                continue;
                            // true convolution flips the filter
                            int fr = conv->mode == CUDNN_CONVOLUTION ? w->h - 1 - r : r;
                            int fs = conv->mode == CUDNN_CONVOLUTION ? w->w - 1 - s : s;
                            f(yi, at(x, n, (int64_t)(k / per_group) * w->c, iy, ix),
                              at(w, k, 0, fr, fs));
                        }
                    }
                }
}

// out[i] = a * sum[i] + b * out[i] (b 0: out is not read), in t's type.
void blend(void *out, const ich_emu_tensor *t, const std::vector<double> &sum, float a, float b)
{
    std::vector<double> old = b != 0.0f ? load(out, t) : std::vector<double>();
    for (size_t i = 0; i < sum.size(); i++)
        store(out, t, i, (float)(a * sum[i] + (b != 0.0f ? b * old[i] : 0.0)));
}

bool workspace_ok(void *workspace, size_t bytes, size_t needed, const char *call)
{
    if (bytes < needed) {
        ich_emu_misuse(cudaErrorInvalidValue, "%s: workspace of %zu bytes, the algorithm needs %zu",
                       call, bytes, needed);
        return false;
    }
    if (needed && !ich_emu_is_device(workspace, needed)) {
        ich_emu_misuse(cudaErrorInvalidValue, "%s: workspace %p is not device memory of %zu bytes",
                       call, workspace, needed);
        return false;
    }
    return true;
}

template <typename Perf> void two_algorithms(const ich_emu_tensor *x, int requested, int *returned,
                                             Perf *results)
{
    int count = requested < 2 ? requested : 2;
    for (int i = 0; i < count; i++) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].algo = i;
        results[i].status = CUDNN_STATUS_SUCCESS;
        results[i].memory = workspace_for(i, x);
    }
    *returned = count;
}

// cudnnFind*Ex: the operands checked as the operation checks them, the
// algorithms ranked 1 then 0 (each "succeeds" if its workspace fits), and
// the output overwritten with NaN (queued), as timing runs leave it
// holding whatever the last algorithm wrote.
template <typename Perf>
cudnnStatus_t find(const ich_emu_tensor *x, const ich_emu_tensor *w, const ich_emu_conv *conv,
                   const ich_emu_tensor *y, const void *in0, const ich_emu_tensor *in0_desc,
                   const void *in1, const ich_emu_tensor *in1_desc, void *out,
                   const ich_emu_tensor *out_desc, int requested, int *returned, Perf *results,
                   void *workspace, size_t workspace_bytes, const char *call)
{
    if (check(x, w, conv, y, call))
        return CUDNN_STATUS_BAD_PARAM;
    if (!device(in0, in0_desc, call, "input") || !device(in1, in1_desc, call, "input") ||
        !device(out, out_desc, call, "output") ||
        !workspace_ok(workspace, workspace_bytes, workspace_bytes, call))
        return CUDNN_STATUS_BAD_PARAM;
    int count = requested < 2 ? requested : 2;
    for (int i = 0; i < count; i++) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].algo = 1 - i;
        results[i].memory = workspace_for(1 - i, x);
        results[i].time = (float)(i + 1);
        results[i].status = results[i].memory <= workspace_bytes ? CUDNN_STATUS_SUCCESS
                                                                  : CUDNN_STATUS_ALLOC_FAILED;
    }
    *returned = count;
    const ich_emu_tensor od = *out_desc;
    ich_emu_enqueue([=]() {
        for (size_t i = 0; i < count_of(&od); i++)
            store(out, &od, i, NAN);
    });
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

extern "C" {

size_t cudnnGetVersion(void)
{
    return 90000;
}

const char *cudnnGetErrorString(cudnnStatus_t status)
{
    switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_ALLOC_FAILED: return "CUDNN_STATUS_ALLOC_FAILED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    }
    return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle)
{
    *handle = new (std::nothrow) ich_emu_cudnn{};
    return *handle ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream)
{
    handle->stream = stream;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *desc)
{
    *desc = new (std::nothrow) ich_emu_tensor{};
    return *desc ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t desc)
{
    delete desc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t desc, cudnnTensorFormat_t format,
                                         cudnnDataType_t type, int n, int c, int h, int w)
{
    if ((type != CUDNN_DATA_FLOAT && type != CUDNN_DATA_BFLOAT16) || n <= 0 || c <= 0 ||
        h <= 0 || w <= 0 || (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC))
        return CUDNN_STATUS_BAD_PARAM;
    *desc = ich_emu_tensor{true, format, type, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *desc)
{
    return cudnnCreateTensorDescriptor(desc);
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t desc)
{
    return cudnnDestroyTensorDescriptor(desc);
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t desc, cudnnDataType_t type,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w)
{
    return cudnnSetTensor4dDescriptor(desc, format, type, k, c, h, w);
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *desc)
{
    *desc = new (std::nothrow) ich_emu_conv{};
    return *desc ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t desc)
{
    delete desc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t desc, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t type)
{
    // compute type: FP32 (also for bfloat16 tensors)
    if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0 ||
        type != CUDNN_DATA_FLOAT || (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION))
        return CUDNN_STATUS_BAD_PARAM;
    *desc = ich_emu_conv{true, pad_h, pad_w, u, v, dilation_h, dilation_w, mode, desc->math,
                         desc->groups};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t desc, int groups)
{
    if (!desc || groups <= 0)
        return CUDNN_STATUS_BAD_PARAM;
    desc->groups = groups;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t desc, cudnnMathType_t math)
{
    desc->math = math;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
    const cudnnConvolutionDescriptor_t conv, const cudnnTensorDescriptor_t y, int requested,
    int *returned, cudnnConvolutionFwdAlgoPerf_t *results)
{
    (void)handle;
    cudnnStatus_t status = check(x, w, conv, y, "cudnnGetConvolutionForwardAlgorithm_v7");
    if (status == CUDNN_STATUS_SUCCESS)
        two_algorithms(x, requested, returned, results);
    return status;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t w, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t conv, const cudnnTensorDescriptor_t dx, int requested,
    int *returned, cudnnConvolutionBwdDataAlgoPerf_t *results)
{
    (void)handle;
    cudnnStatus_t status = check(dx, w, conv, dy, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
    if (status == CUDNN_STATUS_SUCCESS)
        two_algorithms(dx, requested, returned, results);
    return status;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t x, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t conv, const cudnnFilterDescriptor_t dw, int requested,
    int *returned, cudnnConvolutionBwdFilterAlgoPerf_t *results)
{
    (void)handle;
    cudnnStatus_t status =
        check(x, dw, conv, dy, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
    if (status == CUDNN_STATUS_SUCCESS)
        two_algorithms(x, requested, returned, results);
    return status;
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t x_desc, const void *x,
    const cudnnFilterDescriptor_t w_desc, const void *w, const cudnnConvolutionDescriptor_t conv,
    const cudnnTensorDescriptor_t y_desc, void *y, int requested, int *returned,
    cudnnConvolutionFwdAlgoPerf_t *results, void *workspace, size_t workspace_bytes)
{
    (void)handle;
    return find(x_desc, w_desc, conv, y_desc, x, x_desc, w, w_desc, y, y_desc, requested,
                returned, results, workspace, workspace_bytes,
                "cudnnFindConvolutionForwardAlgorithmEx");
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t w_desc, const void *w,
    const cudnnTensorDescriptor_t dy_desc, const void *dy, const cudnnConvolutionDescriptor_t conv,
    const cudnnTensorDescriptor_t dx_desc, void *dx, int requested, int *returned,
    cudnnConvolutionBwdDataAlgoPerf_t *results, void *workspace, size_t workspace_bytes)
{
    (void)handle;
    return find(dx_desc, w_desc, conv, dy_desc, w, w_desc, dy, dy_desc, dx, dx_desc, requested,
                returned, results, workspace, workspace_bytes,
                "cudnnFindConvolutionBackwardDataAlgorithmEx");
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t x_desc, const void *x,
    const cudnnTensorDescriptor_t dy_desc, const void *dy, const cudnnConvolutionDescriptor_t conv,
    const cudnnFilterDescriptor_t dw_desc, void *dw, int requested, int *returned,
    cudnnConvolutionBwdFilterAlgoPerf_t *results, void *workspace, size_t workspace_bytes)
{
    (void)handle;
    return find(x_desc, dw_desc, conv, dy_desc, x, x_desc, dy, dy_desc, dw, dw_desc, requested,
                returned, results, workspace, workspace_bytes,
                "cudnnFindConvolutionBackwardFilterAlgorithmEx");
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha,
                                      const cudnnTensorDescriptor_t x_desc, const void *x,
                                      const cudnnFilterDescriptor_t w_desc, const void *w,
                                      const cudnnConvolutionDescriptor_t conv,
                                      cudnnConvolutionFwdAlgo_t algo, void *workspace,
                                      size_t workspace_bytes, const void *beta,
                                      const cudnnTensorDescriptor_t y_desc, void *y)
{
    (void)handle;
    const char *call = "cudnnConvolutionForward";
    if (check(x_desc, w_desc, conv, y_desc, call))
        return CUDNN_STATUS_BAD_PARAM;
    if (!device(x, x_desc, call, "x") || !device(w, w_desc, call, "w") ||
        !device(y, y_desc, call, "y") ||
        !workspace_ok(workspace, workspace_bytes, workspace_for(algo, x_desc), call))
        return CUDNN_STATUS_BAD_PARAM;
    // the descriptors and scalars as they are now, the work when the stream runs
    const ich_emu_tensor xd = *x_desc, wd = *w_desc, yd = *y_desc;
    const ich_emu_conv cd = *conv;
    const float a = *(const float *)alpha, b = *(const float *)beta;
    ich_emu_enqueue([=]() {
        const std::vector<double> xf = load(x, &xd), wf = load(w, &wd);
        std::vector<double> sum(count_of(&yd));
        const int64_t xs = channel_stride(&xd), ws = channel_stride(&wd), channels = wd.c;
        each_tap(&xd, &wd, &cd, &yd, [&](int64_t yi, int64_t xi, int64_t wi) {
            double acc = 0.0;
            for (int64_t c = 0; c < channels; c++)
                acc += xf[xi + c * xs] * wf[wi + c * ws];
            sum[yi] += acc;
        });
        blend(y, &yd, sum, a, b);
    });
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha,
                                           const cudnnFilterDescriptor_t w_desc, const void *w,
                                           const cudnnTensorDescriptor_t dy_desc, const void *dy,
                                           const cudnnConvolutionDescriptor_t conv,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workspace,
                                           size_t workspace_bytes, const void *beta,
                                           const cudnnTensorDescriptor_t dx_desc, void *dx)
{
    (void)handle;
    const char *call = "cudnnConvolutionBackwardData";
    if (check(dx_desc, w_desc, conv, dy_desc, call))
        return CUDNN_STATUS_BAD_PARAM;
    if (!device(w, w_desc, call, "w") || !device(dy, dy_desc, call, "dy") ||
        !device(dx, dx_desc, call, "dx") ||
        !workspace_ok(workspace, workspace_bytes, workspace_for(algo, dx_desc), call))
        return CUDNN_STATUS_BAD_PARAM;
    const ich_emu_tensor xd = *dx_desc, wd = *w_desc, yd = *dy_desc;
    const ich_emu_conv cd = *conv;
    const float a = *(const float *)alpha, b = *(const float *)beta;
    ich_emu_enqueue([=]() {
        const std::vector<double> gf = load(dy, &yd), wf = load(w, &wd);
        std::vector<double> sum(count_of(&xd));
        const int64_t xs = channel_stride(&xd), ws = channel_stride(&wd), channels = wd.c;
        each_tap(&xd, &wd, &cd, &yd, [&](int64_t yi, int64_t xi, int64_t wi) {
            double g = gf[yi];
            for (int64_t c = 0; c < channels; c++)
                sum[xi + c * xs] += g * wf[wi + c * ws];
        });
        blend(dx, &xd, sum, a, b);
    });
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void *alpha,
                                             const cudnnTensorDescriptor_t x_desc, const void *x,
                                             const cudnnTensorDescriptor_t dy_desc,
                                             const void *dy,
                                             const cudnnConvolutionDescriptor_t conv,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *workspace,
                                             size_t workspace_bytes, const void *beta,
                                             const cudnnFilterDescriptor_t dw_desc, void *dw)
{
    (void)handle;
    const char *call = "cudnnConvolutionBackwardFilter";
    if (check(x_desc, dw_desc, conv, dy_desc, call))
        return CUDNN_STATUS_BAD_PARAM;
    if (!device(x, x_desc, call, "x") || !device(dy, dy_desc, call, "dy") ||
        !device(dw, dw_desc, call, "dw") ||
        !workspace_ok(workspace, workspace_bytes, workspace_for(algo, x_desc), call))
        return CUDNN_STATUS_BAD_PARAM;
    const ich_emu_tensor xd = *x_desc, wd = *dw_desc, yd = *dy_desc;
    const ich_emu_conv cd = *conv;
    const float a = *(const float *)alpha, b = *(const float *)beta;
    ich_emu_enqueue([=]() {
        const std::vector<double> xf = load(x, &xd), gf = load(dy, &yd);
        std::vector<double> sum(count_of(&wd));
        const int64_t xs = channel_stride(&xd), ws = channel_stride(&wd), channels = wd.c;
        each_tap(&xd, &wd, &cd, &yd, [&](int64_t yi, int64_t xi, int64_t wi) {
            double g = gf[yi];
            for (int64_t c = 0; c < channels; c++)
                sum[wi + c * ws] += xf[xi + c * xs] * g;
        });
        blend(dw, &wd, sum, a, b);
    });
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t handle, const void *alpha,
                                           const cudnnTensorDescriptor_t dy_desc, const void *dy,
                                           const void *beta, const cudnnTensorDescriptor_t db_desc,
                                           void *db)
{
    (void)handle;
    const char *call = "cudnnConvolutionBackwardBias";
    if (!dy_desc || !db_desc || !dy_desc->set || !db_desc->set || db_desc->n != 1 ||
        db_desc->h != 1 || db_desc->w != 1 || db_desc->c != dy_desc->c ||
        dy_desc->type != CUDNN_DATA_FLOAT || db_desc->type != CUDNN_DATA_FLOAT) {
        ich_emu_misuse(cudaErrorInvalidValue, "%s: the bias descriptor is not float 1 x C x 1 x 1",
                       call);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (!device(dy, dy_desc, call, "dy") || !device(db, db_desc, call, "db"))
        return CUDNN_STATUS_BAD_PARAM;
    const ich_emu_tensor yd = *dy_desc;
    const float a = *(const float *)alpha, b = *(const float *)beta;
    ich_emu_enqueue([=]() {
        const std::vector<double> gf = load(dy, &yd);
        std::vector<double> sum((size_t)yd.c);
        for (int n = 0; n < yd.n; n++)
            for (int c = 0; c < yd.c; c++)
                for (int h = 0; h < yd.h; h++)
                    for (int w = 0; w < yd.w; w++)
                        sum[(size_t)c] += gf[at(&yd, n, c, h, w)];
        const ich_emu_tensor bd = {true, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, yd.c, 1, 1};
        blend(db, &bd, sum, a, b);
    });
    return CUDNN_STATUS_SUCCESS;
}

} // extern "C"
