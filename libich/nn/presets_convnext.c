/* ConvNeXt-T and ConvNeXt-S as torchvision 0.14 builds them
 * (torchvision/models/convnext.py), written as specs (grammar in
 * nn/spec.h) whose parameters get torchvision's state_dict names and shapes:
 *
 *   features.0        stem: Conv2d(C_in, 96, 4, stride 4) + LayerNorm2d(96)
 *   features.1,3,5,7  stages of CNBlocks (3, 3, 9 | 27, 3 blocks; widths
 *                     96, 192, 384, 768): x + StochasticDepth(layer_scale *
 *                     block(x)), block = depthwise 7x7 conv (block.0),
 *                     Permute, LayerNorm(C) (block.2), Linear(C, 4C)
 *                     (block.3), GELU, Linear(4C, C) (block.5), Permute;
 *                     layer_scale [C, 1, 1] = 1e-6
 *   features.2,4,6    downsampling: LayerNorm2d(C) + Conv2d(C, 2C, 2, stride 2)
 *   avgpool           AdaptiveAvgPool2d(1)
 *   classifier        LayerNorm2d(768), Flatten, Linear(768, outputs)
 *
 * Every LayerNorm has eps 1e-6 (spec layernorm2d's default: the
 * Permute + LayerNorm(C) of a block normalises each position's channels,
 * as LayerNorm2d does), every Conv2d and Linear a bias. The block's Linears
 * act on each position's channels: spec "linear N pointwise", weights
 * [out, in] as nn.Linear's. Stochastic depth grows linearly with the
 * block's index over the whole network, p = P * i / (blocks - 1), P = 0.1
 * (tiny) or 0.4 (small), torchvision's defaults; a block with p = 0 (the
 * first) has no droppath layer (StochasticDepth(0) is the identity).
 *
 * Names: a residual block "features.S = residual(...)" gives its layers the
 * prefix "features.S."; the block's items are named "B.block.0", ...,
 * and its layer scale "B", so that its parameter is features.S.B.layer_scale
 * as torchvision's CNBlock has it (the residual items of one stage share
 * the name "features.S": they have no parameters). */
#include <stdio.h>

#include "core/error.h"
#include "ich/model.h"
#include "nn/presets.h"

typedef struct convnext_config {
    const char *name;
    int widths[4];
    int depths[4];
    double stochastic_depth; /* torchvision's stochastic_depth_prob */
} convnext_config;

static const convnext_config TINY = {"convnext_tiny", {96, 192, 384, 768}, {3, 3, 9, 3}, 0.1};
static const convnext_config SMALL = {"convnext_small", {96, 192, 384, 768}, {3, 3, 27, 3}, 0.4};

static ich_status convnext(const convnext_config *cfg, ich_buf *out, int32_t channels,
                           int32_t rows, int32_t columns, int32_t outputs)
{
    /* the stem divides by 4, each of the three downsamplings by 2: at
     * least 32 rows and columns (torchvision's min_size) */
    if (channels < 1 || channels > ICH_MODEL_MAX_INPUT_CHANNELS || rows < 32 || columns < 32 ||
        rows > ICH_MODEL_MAX_INPUT_SIDE || columns > ICH_MODEL_MAX_INPUT_SIDE || outputs < 1 ||
        outputs > ICH_MODEL_MAX_CHANNELS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: input %dx%dx%d, %d outputs: needs 1 to %d channels, at least 32 "
                        "(at most %d) rows and columns and 1 to %d outputs",
                        cfg->name, channels, rows, columns, outputs,
                        ICH_MODEL_MAX_INPUT_CHANNELS, ICH_MODEL_MAX_INPUT_SIDE,
                        ICH_MODEL_MAX_CHANNELS);
    int total = 0;
    for (int s = 0; s < 4; s++)
        total += cfg->depths[s];
    ich_buf_printf(out, "input %dx%dx%d,\n", channels, rows, columns);
    ich_buf_printf(out, "features.0.0 = conv %d 4 stride 4, features.0.1 = layernorm2d,\n",
                   cfg->widths[0]);
    int block_id = 0;
    for (int s = 0; s < 4; s++) {
        int c = cfg->widths[s], feature = 1 + 2 * s;
        for (int b = 0; b < cfg->depths[s]; b++, block_id++) {
            /* as torchvision: stochastic_depth_prob * stage_block_id / (total - 1.0) */
            double p = cfg->stochastic_depth * block_id / (total - 1.0);
            ich_buf_printf(out,
                           "features.%d = residual(%d.block.0 = conv %d 7 pad 3 groups %d, "
                           "%d.block.2 = layernorm2d, %d.block.3 = linear %d pointwise, "
                           "%d.block.4 = gelu, %d.block.5 = linear %d pointwise, %d = layerscale",
                           feature, b, c, c, b, b, 4 * c, b, b, c, b);
            if (p > 0.0)
                ich_buf_printf(out, ", %d.stochastic_depth = droppath %.9g", b, p);
            ich_buf_printf(out, "),\n");
        }
        if (s < 3)
            ich_buf_printf(out,
                           "features.%d.0 = layernorm2d, features.%d.1 = conv %d 2 stride 2,\n",
                           feature + 1, feature + 1, cfg->widths[s + 1]);
    }
    ich_buf_printf(out,
                   "avgpool = gap, classifier.0 = layernorm2d, classifier.1 = flatten, "
                   "classifier.2 = linear %d",
                   outputs);
    if (out->failed)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", cfg->name);
    return ICH_OK;
}

ich_status ich_preset_convnext_tiny(ich_buf *out, int32_t channels, int32_t rows, int32_t columns,
                                    int32_t outputs)
{
    return convnext(&TINY, out, channels, rows, columns, outputs);
}

ich_status ich_preset_convnext_small(ich_buf *out, int32_t channels, int32_t rows,
                                     int32_t columns, int32_t outputs)
{
    return convnext(&SMALL, out, channels, rows, columns, outputs);
}
