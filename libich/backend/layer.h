/* Internal: the layer helpers the model graph (libich/nn/model*.c) and every
 * backend's layers (libich/backend/cpu/, libich/backend/cuda/) share.
 *
 * The layer interface itself (ich_shape, ich_param, ich_layer_args,
 * ich_layer, ich_layer_ops), its memory and layout rules, is part of the
 * plugin interface: libich/backend/plugin_api.h. What is here is compiled
 * into each side (inline, or libich/backend/layer_shape.c, which libich and
 * each plugin build), so it is no part of the binary interface.
 */
#ifndef ICH_INTERNAL_LAYER_H
#define ICH_INTERNAL_LAYER_H

#include <stdint.h>

#include "backend/plugin_api.h"

static inline int64_t ich_shape_count(ich_shape s)
{
    return (int64_t)s.n * s.h * s.w * s.c;
}

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
 * layer's arguments and filling their defaults (conv stride, dilation and groups 1,
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
