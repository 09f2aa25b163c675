/* The preset networks as specs (grammar in libich/nn/spec.h).
 *
 * tutorial: the tutorial's ConvNet, layer for layer.
 * ichnet:   3-window 256x256 input; a ResNet-like net: stem conv (stride 2)
 *           + batch norm + ReLU + 2x2 max pool, four residual stages of
 *           widths 16-32-64-128 (the last three halve the resolution, with
 *           a 1x1 conv + batch norm shortcut), global average pooling,
 *           dropout 0.2, linear 6. About 0.15 GFLOP per image.
 * cascade:  two small nets on the same input: "any" (1 logit) and
 *           "subtype" (5 logits, the subtypes in label order); the model
 *           gives 6 logits, any first. Training treats it as one 6-output
 *           net; the training driver masks the subtype loss to samples
 *           whose "any" label is positive, so the subtype stage learns only
 *           from hemorrhages. ich_model_predict() zeroes the subtype
 *           probabilities where P(any) is below the threshold. */
#include <stddef.h>
#include <strings.h>

#include "nn/model_internal.h"

#define ICHNET_STAGE(w)                                                                    \
    "residual(conv " #w " 3 stride 2 pad 1 nobias, batchnorm, relu, conv " #w              \
    " 3 pad 1 nobias, batchnorm; shortcut: conv " #w " 1 stride 2 nobias, batchnorm), relu"

#define CASCADE_STAGE(outputs)                                                             \
    "conv 16 3 stride 2 pad 1 nobias, batchnorm, relu, maxpool 2, "                        \
    "conv 32 3 pad 1 nobias, batchnorm, relu, maxpool 2, "                                 \
    "conv 64 3 pad 1 nobias, batchnorm, relu, gap, linear " #outputs

static const struct {
    const char *name;
    const char *spec;
} PRESETS[] = {
    {"tutorial",
     "input 1x512x512, conv 50 5, relu, maxpool 2, conv 120 5, relu, maxpool 2, "
     "conv 100 5, relu, maxpool 2, conv 72 4, relu, maxpool 2, flatten, linear 50, relu, "
     "linear 6"},
    {"ichnet",
     "input 3x256x256, conv 16 3 stride 2 pad 1 nobias, batchnorm, relu, maxpool 2, "
     "residual(conv 16 3 pad 1 nobias, batchnorm, relu, conv 16 3 pad 1 nobias, batchnorm), "
     "relu, " ICHNET_STAGE(32) ", " ICHNET_STAGE(64) ", " ICHNET_STAGE(128) ", "
     "gap, dropout 0.2, linear 6"},
    {"cascade",
     "input 3x256x256, cascade(any: " CASCADE_STAGE(1) " | subtype: " CASCADE_STAGE(5) ")"},
};

const char *ich_model_preset_spec(const char *name)
{
    for (size_t i = 0; i < sizeof PRESETS / sizeof *PRESETS; i++)
        if (!strcasecmp(name, PRESETS[i].name))
            return PRESETS[i].spec;
    return NULL;
}

const char *ich_model_preset_names(void)
{
    return "tutorial, ichnet, cascade";
}
