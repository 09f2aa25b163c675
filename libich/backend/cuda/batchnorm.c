/* Batch normalisation on the GPU over NHWC activations, with the semantics
 * of libich/backend/cpu/batchnorm.c (PyTorch's, through oneDNN there):
 *
 * training: normalise with the batch mean and biased variance,
 *   y = weight / sqrt(var + eps) * (x - mean) + bias, then update
 *   running_mean / running_var (unbiased variance) with the momentum and
 *   num_batches_tracked += 1, on the host copies, with the CPU's very
 *   formula (the batch statistics come back, 2 x C floats, queued, and
 *   are applied when the model's pass ends: ich_cuda_synchronize).
 * evaluation: the running statistics instead (device mirrors, uploaded when
 *   their version changes).
 * backward: oneDNN's formulas, d weight = sum((x - mean) dy) / sqrt(var +
 *   eps), d bias = sum(dy), accumulated into the host gradients; after an
 *   evaluation forward the statistics are constants (dx = weight /
 *   sqrt(var + eps) dy).
 * fused ReLU: the training forward keeps a mask of the positive outputs and
 *   backward zeroes grad_out (the layer's scratch) outside it first; its
 *   backward after an evaluation forward is refused, as on the CPU.
 *
 * Per-channel sums are reduced in double precision in a fixed order
 * (layers_kernels.cu): deterministic, close to the CPU's float sums. */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/layers_kernels.h"

enum { BN_WEIGHT, BN_BIAS, BN_MEAN, BN_VAR, BN_COUNT, BN_PARAMS };

typedef struct bn_state {
    ich_cuda_mirror weight, bias, running_mean, running_var;
    float *stats;      /* device, 2 x C: the last training forward's batch mean, variance */
    float *grads;      /* device, 2 x C: d weight, d bias of a backward */
    double *partial;   /* device, the reductions' partial sums */
    size_t partial_size;
    ich_cuda_relu_mask mask; /* fused ReLU: positive outputs of the training forward */
    int last_training;       /* the mode of the last forward */
    int ready;               /* a forward ran since create/resize */
} bn_state;

static void bn_destroy(ich_layer *layer)
{
    bn_state *s = layer->state;
    if (s) {
        ich_cuda_mirror_free(&s->weight);
        ich_cuda_mirror_free(&s->bias);
        ich_cuda_mirror_free(&s->running_mean);
        ich_cuda_mirror_free(&s->running_var);
        ich_cuda_free(s->stats);
        ich_cuda_free(s->grads);
        ich_cuda_free(s->partial);
        ich_cuda_relu_mask_free(&s->mask);
        free(s);
        layer->state = NULL;
    }
    ich_cuda_params_free(layer);
}

static ich_status bn_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cuda_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    bn_state *s = calloc(1, sizeof *s);
    layer->state = s;
    if (!s)
        return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    size_t C = (size_t)in->c;
    s->stats = ich_cuda_alloc(2 * C * sizeof(float));
    s->grads = ich_cuda_alloc(2 * C * sizeof(float));
    if (!s->stats || !s->grads)
        status = cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for batch statistics",
                           layer->name);
    int64_t dims[1] = {in->c};
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var"};
    if (status == ICH_OK)
        status = ich_cuda_params_alloc(layer, BN_PARAMS);
    for (int i = 0; i < 4 && status == ICH_OK; i++)
        status = ich_cuda_param_init(&layer->params[i], names[i], ICH_DTYPE_F32, 1, dims, i < 2);
    if (status == ICH_OK)
        status = ich_cuda_param_init(&layer->params[BN_COUNT], "num_batches_tracked",
                                     ICH_DTYPE_I64, 0, NULL, 0);
    if (status != ICH_OK) {
        bn_destroy(layer);
        return status;
    }
    return ICH_OK;
}

static ich_status bn_resize(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cuda_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    ((bn_state *)layer->state)->ready = 0;
    return ICH_OK;
}

/* The partial-sum buffer for the current shapes; *chunks receives its
 * chunk count. */
static ich_status bn_partial(ich_layer *layer, int64_t rows, int32_t *chunks)
{
    bn_state *s = layer->state;
    const int32_t C = layer->in[0].c;
    *chunks = ich_cuda_bn_chunks(rows, C);
    return ich_cuda_grow(layer, (void **)&s->partial, &s->partial_size,
                         2 * (size_t)*chunks * (size_t)C * sizeof(double));
}

/* PyTorch's running statistics update from the batch's mean and biased
 * variance (the running variance takes the unbiased one): the CPU
 * backend's update_running, on the host copies. */
static void update_running(void *target, const float *stats, int64_t count)
{
    ich_layer *layer = target;
    const int C = (int)(count / 2);
    const float *mean = stats, *var = stats + C;
    const double rows = (double)(ich_shape_count(layer->in[0]) / C);
    const double m = layer->args.momentum;
    const double unbias = rows > 1 ? rows / (rows - 1) : 1.0;
    float *rm = layer->params[BN_MEAN].data, *rv = layer->params[BN_VAR].data;
    for (int c = 0; c < C; c++) {
        rm[c] = (float)((1.0 - m) * rm[c] + m * mean[c]);
        rv[c] = (float)((1.0 - m) * rv[c] + m * var[c] * unbias);
    }
    layer->params[BN_MEAN].version++;
    layer->params[BN_VAR].version++;
    (*(int64_t *)layer->params[BN_COUNT].data)++;
    layer->params[BN_COUNT].version++;
}

static ich_status bn_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    bn_state *s = layer->state;
    const int32_t C = layer->in[0].c;
    const int64_t count = ich_shape_count(layer->in[0]), rows = count / C;
    const float eps = layer->args.eps;
    ich_status status;
    if ((status = ich_cuda_mirror_sync(layer, &layer->params[BN_WEIGHT], &s->weight)) ||
        (status = ich_cuda_mirror_sync(layer, &layer->params[BN_BIAS], &s->bias)))
        return status;
    const float *mean, *var;
    if (training) {
        int32_t chunks;
        if ((status = bn_partial(layer, rows, &chunks)))
            return status;
        float *batch_mean = s->stats, *batch_var = s->stats + C;
        ich_cuda_k_bn_reduce(ICH_CUDA_BN_MEAN, batch_mean, NULL, s->partial, chunks, in[0], NULL,
                             NULL, NULL, eps, rows, C);
        CHECK_LAUNCH("batchnorm mean");
        ich_cuda_k_bn_reduce(ICH_CUDA_BN_VARIANCE, batch_var, NULL, s->partial, chunks, in[0],
                             NULL, batch_mean, NULL, eps, rows, C);
        CHECK_LAUNCH("batchnorm variance");
        mean = batch_mean;
        var = batch_var;
    } else {
        if ((status = ich_cuda_mirror_sync(layer, &layer->params[BN_MEAN], &s->running_mean)) ||
            (status = ich_cuda_mirror_sync(layer, &layer->params[BN_VAR], &s->running_var)))
            return status;
        mean = s->running_mean.device;
        var = s->running_var.device;
    }
    ich_cuda_k_bn_forward(out, in[0], mean, var, s->weight.device, s->bias.device, eps, rows, C);
    CHECK_LAUNCH("batchnorm forward");
    if (layer->args.fuse_relu &&
        (status = ich_cuda_relu_fused(layer, training ? &s->mask : NULL, out, count)))
        return status;
    s->ready = 0;
    /* the host's running statistics are right when the model's forward
     * pass returns (ich_cuda_synchronize) */
    if (training && (status = ich_cuda_finish_later(layer, s->stats, 2 * (int64_t)C,
                                                    update_running, layer)))
        return status;
    s->last_training = training ? 1 : 0;
    s->ready = 1;
    return ICH_OK;
}

static ich_status bn_backward(ich_layer *layer, const float *const *in, const float *out,
                              const float *grad_out, float *const *grad_in)
{
    bn_state *s = layer->state;
    const int t = s->last_training;
    const int32_t C = layer->in[0].c;
    const int64_t count = ich_shape_count(layer->in[0]), rows = count / C;
    const float eps = layer->args.eps;
    ich_status status;
    if (!s->ready)
        return cuda_fail(ICH_ERR_INVALID_ARGUMENT, "%s: backward without a forward pass",
                         layer->name);
    if (layer->args.fuse_relu && !t)
        return cuda_fail(ICH_ERR_UNSUPPORTED,
                         "%s: backward of a fused batchnorm+ReLU after an evaluation forward",
                         layer->name);
    /* the gradient through the fused ReLU, in grad_out (the layer's scratch) */
    if (layer->args.fuse_relu &&
        (status = ich_cuda_relu_mask_apply(layer, &s->mask, (float *)grad_out, count)))
        return status;
    if ((status = ich_cuda_mirror_sync(layer, &layer->params[BN_WEIGHT], &s->weight)))
        return status;
    const float *mean, *var;
    if (t) {
        mean = s->stats;
        var = s->stats + C;
    } else {
        if ((status = ich_cuda_mirror_sync(layer, &layer->params[BN_MEAN], &s->running_mean)) ||
            (status = ich_cuda_mirror_sync(layer, &layer->params[BN_VAR], &s->running_var)))
            return status;
        mean = s->running_mean.device;
        var = s->running_var.device;
    }
    int32_t chunks;
    if ((status = bn_partial(layer, rows, &chunks)))
        return status;
    float *dweight = s->grads, *dbias = s->grads + C;
    ich_cuda_k_bn_reduce(ICH_CUDA_BN_GRADIENT, dweight, dbias, s->partial, chunks, in[0], grad_out,
                         mean, var, eps, rows, C);
    CHECK_LAUNCH("batchnorm parameter gradients");
    if (grad_in && grad_in[0]) {
        ich_cuda_k_bn_backward(grad_in[0], in[0], grad_out, mean, var, s->weight.device, dweight,
                               dbias, eps, rows, C, t);
        CHECK_LAUNCH("batchnorm backward");
    }
    /* grad_add skips frozen parameters */
    if ((status = ich_cuda_grad_add(layer, &layer->params[BN_WEIGHT], dweight)) ||
        (status = ich_cuda_grad_add(layer, &layer->params[BN_BIAS], dbias)))
        return status;
    return ICH_OK;
}

const ich_layer_ops ich_cuda_batchnorm_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "batchnorm",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = bn_create,
    .resize = bn_resize,
    .forward = bn_forward,
    .backward = bn_backward,
    .destroy = bn_destroy,
};
