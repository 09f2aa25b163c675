/* Internal: the torchvision-structured presets (issue 14, item 2).
 *
 * Each is a C function that writes the network's spec (grammar in
 * nn/spec.h) for an input of `channels` x `rows` x `columns` and `outputs`
 * logits, with torchvision 0.14's module structure, so that every
 * parameter and buffer gets the state_dict name and shape
 * torchvision.models.<name>(num_classes=outputs) gives it (batch-norm eps
 * and momentum, stochastic-depth probabilities and layer-scale values as
 * torchvision sets them). nn/presets.c maps the preset names to them and
 * parses the options of a preset name ("<name> input CxHxW outputs N").
 * Each writes with ich_buf_printf and returns ICH_OK, or
 * ICH_ERR_INVALID_ARGUMENT (message set) for sizes it cannot take. */
#ifndef ICH_INTERNAL_PRESETS_H
#define ICH_INTERNAL_PRESETS_H

#include <stdint.h>

#include "core/fileutil.h"

typedef ich_status (*ich_preset_fn)(ich_buf *out, int32_t channels, int32_t rows,
                                    int32_t columns, int32_t outputs);

/* nn/presets_resnet.c */
ich_status ich_preset_resnet18(ich_buf *out, int32_t channels, int32_t rows, int32_t columns,
                               int32_t outputs);
ich_status ich_preset_resnet50(ich_buf *out, int32_t channels, int32_t rows, int32_t columns,
                               int32_t outputs);
/* nn/presets_efficientnet.c */
ich_status ich_preset_efficientnet_v2_s(ich_buf *out, int32_t channels, int32_t rows,
                                        int32_t columns, int32_t outputs);
ich_status ich_preset_efficientnet_v2_m(ich_buf *out, int32_t channels, int32_t rows,
                                        int32_t columns, int32_t outputs);
/* nn/presets_convnext.c */
ich_status ich_preset_convnext_tiny(ich_buf *out, int32_t channels, int32_t rows,
                                    int32_t columns, int32_t outputs);
ich_status ich_preset_convnext_small(ich_buf *out, int32_t channels, int32_t rows,
                                     int32_t columns, int32_t outputs);

#endif
