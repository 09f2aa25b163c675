/* EfficientNetV2-S and -M as torchvision 0.14 builds them
 * (torchvision/models/efficientnet.py, efficientnet_v2_s/_m with
 * num_classes = outputs), written as a spec (grammar in nn/spec.h) whose
 * parameters and buffers get torchvision's state_dict names and shapes.
 *
 *   features.0        stem Conv2dNormActivation: conv 3x3 stride 2 (no
 *                     bias), BatchNorm2d, SiLU
 *   features.1 .. S   one nn.Sequential per stage of the configuration
 *                     table, block b of stage s named features.s.b:
 *     FusedMBConv     block.0 = conv k x k (stride) + bn + SiLU; when the
 *                     expansion changes the width, block.1 = 1x1 projection
 *                     conv + bn (no activation)
 *     MBConv          block.0 = 1x1 expansion conv + bn + SiLU (when the
 *                     width changes), then depthwise k x k conv (groups =
 *                     width) + bn + SiLU, squeeze-and-excitation
 *                     (fc1/fc2 1x1 convs with bias, SiLU, sigmoid; squeeze
 *                     channels max(1, in / 4)), 1x1 projection conv + bn;
 *                     numbered block.0, block.1, ... in that order
 *     residual        when stride 1 and in == out: x + StochasticDepth(p,
 *                     "row")(block(x)), p = 0.2 * (index of the block among
 *                     all the stages' blocks) / (their count), as
 *                     torchvision computes it (stochastic_depth_prob 0.2
 *                     for both; the droppath layer is left out at p = 0,
 *                     the first block, where torchvision's is the identity)
 *   features.S+1      head Conv2dNormActivation: 1x1 conv to 1280, bn, SiLU
 *   avgpool           AdaptiveAvgPool2d(1): gap
 *   classifier.0      Dropout(0.2 for S, 0.3 for M)
 *   classifier.1      Linear(1280, outputs)
 *
 * Every BatchNorm2d has eps 1e-3 (norm_layer=partial(nn.BatchNorm2d,
 * eps=1e-03)) and PyTorch's momentum 0.1; convolutions are padded by
 * (k - 1) / 2 as Conv2dNormActivation pads them. The stem takes `channels`
 * input channels (torchvision's has 3: its weight is then [24, channels, 3,
 * 3]). */
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "ich/model.h"
#include "nn/presets.h"

typedef struct enet_stage {
    int fused;  /* FusedMBConv (1) or MBConv (0) */
    int expand; /* expand_ratio */
    int kernel;
    int stride;
    int in, out;
    int layers;
} enet_stage;

/* torchvision's _efficientnet_conf("efficientnet_v2_s") */
static const enet_stage V2_S[] = {
    {1, 1, 3, 1, 24, 24, 2},    {1, 4, 3, 2, 24, 48, 4},    {1, 4, 3, 2, 48, 64, 4},
    {0, 4, 3, 2, 64, 128, 6},   {0, 6, 3, 1, 128, 160, 9},  {0, 6, 3, 2, 160, 256, 15},
};

/* torchvision's _efficientnet_conf("efficientnet_v2_m") */
static const enet_stage V2_M[] = {
    {1, 1, 3, 1, 24, 24, 3},    {1, 4, 3, 2, 24, 48, 5},    {1, 4, 3, 2, 48, 80, 5},
    {0, 4, 3, 2, 80, 160, 7},   {0, 6, 3, 1, 160, 176, 14}, {0, 6, 3, 2, 176, 304, 18},
    {0, 6, 3, 1, 304, 512, 5},
};

#define ENET_BN "batchnorm eps 0.001 momentum 0.1"
#define ENET_LAST_CHANNEL 1280
#define ENET_STOCHASTIC_DEPTH 0.2

/* torchvision's _make_divisible(v, 8) */
static int make_divisible8(double v)
{
    int divisor = 8;
    int new_v = (int)(v + divisor / 2.0) / divisor * divisor;
    if (new_v < divisor)
        new_v = divisor;
    if (new_v < 0.9 * v)
        new_v += divisor;
    return new_v;
}

/* Conv2dNormActivation as the items "<prefix>.0 = conv ...", "<prefix>.1 =
 * batchnorm"[, silu]; `sep` is written before it. */
static void conv_norm_act(ich_buf *out, const char *sep, const char *prefix, int out_channels,
                          int kernel, int stride, int groups, int activation)
{
    ich_buf_printf(out, "%s%s.0 = conv %d %d", sep, prefix, out_channels, kernel);
    if (stride != 1)
        ich_buf_printf(out, " stride %d", stride);
    if ((kernel - 1) / 2)
        ich_buf_printf(out, " pad %d", (kernel - 1) / 2);
    if (groups != 1)
        ich_buf_printf(out, " groups %d", groups);
    ich_buf_printf(out, " nobias, %s.1 = " ENET_BN "%s", prefix, activation ? ", silu" : "");
}

/* The body of one FusedMBConv / MBConv block (torchvision's self.block),
 * its items named "<prefix>block.<i>...". */
static void block_body(ich_buf *out, const char *prefix, const enet_stage *cnf, int in,
                       int stride)
{
    char name[64];
    int expanded = make_divisible8((double)in * cnf->expand);
    int index = 0;
    const char *sep = "";
    if (cnf->fused) {
        if (expanded != in) {
            snprintf(name, sizeof name, "%sblock.%d", prefix, index++);
            conv_norm_act(out, sep, name, expanded, cnf->kernel, stride, 1, 1);
            snprintf(name, sizeof name, "%sblock.%d", prefix, index++);
            conv_norm_act(out, ", ", name, cnf->out, 1, 1, 1, 0);
        } else {
            snprintf(name, sizeof name, "%sblock.%d", prefix, index++);
            conv_norm_act(out, sep, name, cnf->out, cnf->kernel, stride, 1, 1);
        }
        return;
    }
    if (expanded != in) {
        snprintf(name, sizeof name, "%sblock.%d", prefix, index++);
        conv_norm_act(out, sep, name, expanded, 1, 1, 1, 1);
        sep = ", ";
    }
    snprintf(name, sizeof name, "%sblock.%d", prefix, index++);
    conv_norm_act(out, sep, name, expanded, cnf->kernel, stride, expanded, 1);
    int squeeze = in / 4 > 1 ? in / 4 : 1;
    ich_buf_printf(out,
                   ", %sblock.%d = scale(avgpool = gap, fc1 = conv %d 1, activation = silu, "
                   "fc2 = conv %d 1, scale_activation = sigmoid)",
                   prefix, index++, squeeze, expanded);
    snprintf(name, sizeof name, "%sblock.%d", prefix, index++);
    conv_norm_act(out, ", ", name, cnf->out, 1, 1, 1, 0);
}

static ich_status efficientnet_v2(ich_buf *out, const char *what, const enet_stage *stages,
                                  int nstages, double dropout, int32_t channels, int32_t rows,
                                  int32_t columns, int32_t outputs)
{
    if (channels < 1 || channels > ICH_MODEL_MAX_INPUT_CHANNELS || rows < 1 ||
        rows > ICH_MODEL_MAX_INPUT_SIDE || columns < 1 || columns > ICH_MODEL_MAX_INPUT_SIDE)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: input %dx%dx%d out of range (channels 1 to %d, sides 1 to %d)",
                        what, (int)channels, (int)rows, (int)columns,
                        ICH_MODEL_MAX_INPUT_CHANNELS, ICH_MODEL_MAX_INPUT_SIDE);
    if (outputs < 1 || outputs > ICH_MODEL_MAX_CHANNELS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: outputs %d out of range (1 to %d)", what,
                        (int)outputs, ICH_MODEL_MAX_CHANNELS);
    ich_buf_printf(out, "input %dx%dx%d", (int)channels, (int)rows, (int)columns);
    conv_norm_act(out, ",\n", "features.0", stages[0].in, 3, 2, 1, 1);

    int total = 0;
    for (int s = 0; s < nstages; s++)
        total += stages[s].layers;
    int block_id = 0;
    for (int s = 0; s < nstages; s++) {
        const enet_stage *cnf = &stages[s];
        for (int b = 0; b < cnf->layers; b++, block_id++) {
            int in = b ? cnf->out : cnf->in;
            int stride = b ? 1 : cnf->stride;
            /* torchvision: stochastic_depth_prob * float(stage_block_id) /
             * total_stage_blocks, in double precision */
            double p = ENET_STOCHASTIC_DEPTH * (double)block_id / total;
            char prefix[64];
            if (stride == 1 && in == cnf->out) {
                ich_buf_printf(out, ",\nfeatures.%d.%d = residual(", s + 1, b);
                block_body(out, "", cnf, in, stride);
                if (p > 0)
                    ich_buf_printf(out, ", stochastic_depth = droppath %.9g", p);
                ich_buf_printf(out, ")");
            } else {
                /* no residual: torchvision never applies its stochastic
                 * depth, and the block's layers sit at the top level */
                snprintf(prefix, sizeof prefix, "features.%d.%d.", s + 1, b);
                ich_buf_printf(out, ",\n");
                block_body(out, prefix, cnf, in, stride);
            }
        }
    }
    char head[32];
    snprintf(head, sizeof head, "features.%d", nstages + 1);
    conv_norm_act(out, ",\n", head, ENET_LAST_CHANNEL, 1, 1, 1, 1);
    ich_buf_printf(out, ",\navgpool = gap, classifier.0 = dropout %g, classifier.1 = linear %d",
                   dropout, (int)outputs);
    if (out->failed)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", what);
    return ICH_OK;
}

ich_status ich_preset_efficientnet_v2_s(ich_buf *out, int32_t channels, int32_t rows,
                                        int32_t columns, int32_t outputs)
{
    return efficientnet_v2(out, "efficientnet_v2_s", V2_S, (int)(sizeof V2_S / sizeof *V2_S),
                           0.2, channels, rows, columns, outputs);
}

ich_status ich_preset_efficientnet_v2_m(ich_buf *out, int32_t channels, int32_t rows,
                                        int32_t columns, int32_t outputs)
{
    return efficientnet_v2(out, "efficientnet_v2_m", V2_M, (int)(sizeof V2_M / sizeof *V2_M),
                           0.3, channels, rows, columns, outputs);
}
