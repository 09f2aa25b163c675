/* ResNet18 and ResNet50 as torchvision 0.14 builds them (issue 14, item 2):
 * torchvision.models.resnet18 / resnet50(num_classes=outputs).
 *
 * Stem: conv1 (7x7, stride 2, pad 3, no bias), bn1, relu, maxpool 3 stride 2
 * pad 1; then layer1..layer4 of BasicBlocks (resnet18: 2-2-2-2) or
 * Bottlenecks (resnet50: 3-4-6-3, ResNet v1.5: the stride on the 3x3 conv),
 * widths 64-128-256-512 (x4 for Bottleneck), the first block of layer2..4
 * with stride 2; a block whose stride is not 1 or whose width changes has
 * torchvision's shortcut "downsample" (0: 1x1 conv with the stride, no bias;
 * 1: batch norm). Each block is "layerK.I = residual(conv1, bn1, relu,
 * conv2, bn2[, relu, conv3, bn3]; downsample: ...)" followed by a relu, so
 * the unnamed layers inside get torchvision's names (conv1, bn1, ...); then
 * global average pooling and fc. Batch norm: eps 1e-5, momentum 0.1 (the
 * grammar's defaults, PyTorch's). No dropout or stochastic depth. */
#include "nn/presets.h"

#include "core/error.h"

static ich_status resnet(ich_buf *out, const char *name, int bottleneck, const int blocks[4],
                         int32_t channels, int32_t rows, int32_t columns, int32_t outputs)
{
    if (channels < 1 || rows < 1 || columns < 1 || outputs < 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "preset %s: bad input %dx%dx%d or outputs %d", name, (int)channels,
                        (int)rows, (int)columns, (int)outputs);
    const int expansion = bottleneck ? 4 : 1;
    ich_buf_printf(out,
                   "input %dx%dx%d, conv1 = conv 64 7 stride 2 pad 3 nobias, bn1 = batchnorm, "
                   "relu, maxpool 3 stride 2 pad 1",
                   (int)channels, (int)rows, (int)columns);
    int inplanes = 64;
    for (int layer = 0; layer < 4; layer++) {
        int planes = 64 << layer;
        for (int b = 0; b < blocks[layer]; b++) {
            int stride = (layer > 0 && b == 0) ? 2 : 1;
            ich_buf_printf(out, ",\nlayer%d.%d = residual(", layer + 1, b);
            if (bottleneck)
                ich_buf_printf(out,
                               "conv %d 1 nobias, batchnorm, relu, "
                               "conv %d 3 stride %d pad 1 nobias, batchnorm, relu, "
                               "conv %d 1 nobias, batchnorm",
                               planes, planes, stride, planes * expansion);
            else
                ich_buf_printf(out,
                               "conv %d 3 stride %d pad 1 nobias, batchnorm, relu, "
                               "conv %d 3 pad 1 nobias, batchnorm",
                               planes, stride, planes);
            if (stride != 1 || inplanes != planes * expansion)
                ich_buf_printf(out,
                               "; downsample: 0 = conv %d 1 stride %d nobias, 1 = batchnorm",
                               planes * expansion, stride);
            ich_buf_printf(out, "), relu");
            inplanes = planes * expansion;
        }
    }
    ich_buf_printf(out, ",\ngap, fc = linear %d", (int)outputs);
    return ICH_OK;
}

ich_status ich_preset_resnet18(ich_buf *out, int32_t channels, int32_t rows, int32_t columns,
                               int32_t outputs)
{
    static const int blocks[4] = {2, 2, 2, 2};
    return resnet(out, "resnet18", 0, blocks, channels, rows, columns, outputs);
}

ich_status ich_preset_resnet50(ich_buf *out, int32_t channels, int32_t rows, int32_t columns,
                               int32_t outputs)
{
    static const int blocks[4] = {3, 4, 6, 3};
    return resnet(out, "resnet50", 1, blocks, channels, rows, columns, outputs);
}
