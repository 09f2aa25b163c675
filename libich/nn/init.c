/* Weight initialisation as PyTorch's defaults for the same layers:
 * Conv2d and Linear weights kaiming_uniform(a = sqrt(5)), which is
 * uniform(+-1/sqrt(fan_in)), biases uniform(+-1/sqrt(fan_in)); batch norm
 * weight 1, bias 0, running mean 0, running variance 1, no batches
 * tracked; layer norm weight 1, bias 0; layer scale its init value. The random numbers come from core/rng.h, one stream per
 * (layer, parameter), so they do not match PyTorch's, only their law. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "nn/model_internal.h"

static int64_t param_count(const ich_param *p)
{
    int64_t count = 1;
    for (int d = 0; d < p->ndim; d++)
        count *= p->dims[d];
    return count;
}

/* fan_in of a conv (OIHW) or linear ([out, in]) weight: the product of
 * its dims after the first, so IN/G * KH * KW for a grouped conv (weight
 * [OUT, IN/G, KH, KW]), as PyTorch's _calculate_fan_in_and_fan_out. */
static int64_t fan_in(const ich_layer *layer)
{
    for (int i = 0; i < layer->nparams; i++) {
        const ich_param *p = &layer->params[i];
        if (!strcmp(p->name, "weight")) {
            int64_t fan = 1;
            for (int d = 1; d < p->ndim; d++)
                fan *= p->dims[d];
            return fan;
        }
    }
    return 1;
}

static void fill(ich_param *p, double value)
{
    int64_t count = param_count(p);
    if (p->dtype == ICH_DTYPE_I64) {
        memset(p->data, 0, (size_t)count * sizeof(int64_t));
        return;
    }
    float *data = p->data;
    for (int64_t k = 0; k < count; k++)
        data[k] = (float)value;
}

void ich_model_init_node(ich_model *model, int index, uint64_t seed)
{
    ich_layer *layer = &model->nodes[index].layer;
    spec_kind kind = model->nodes[index].kind;
    for (int i = 0; i < layer->nparams; i++) {
        ich_param *p = &layer->params[i];
        if (p->grad)
            memset(p->grad, 0, (size_t)param_count(p) * sizeof(float));
        if (kind == SPEC_CONV || kind == SPEC_LINEAR) {
            double bound = 1.0 / sqrt((double)fan_in(layer));
            ich_rng rng = ich_rng_init(seed, (uint64_t)index, (uint64_t)i);
            float *data = p->data;
            int64_t count = param_count(p);
            for (int64_t k = 0; k < count; k++)
                data[k] = (float)ich_rng_range(&rng, -bound, bound);
        } else if (kind == SPEC_LAYERSCALE) {
            fill(p, layer->args.init); /* ConvNeXt: init * ones(C, 1, 1) */
        } else if (!strcmp(p->name, "weight") || !strcmp(p->name, "running_var")) {
            fill(p, 1.0);
        } else {
            fill(p, 0.0); /* bias, running_mean, num_batches_tracked */
        }
    }
}
