/* The preset networks as specs (grammar in libich/nn/spec.h).
 *
 * tutorial: the tutorial's ConvNet, layer for layer.
 * ichnet:   3-window 256x256 input; a ResNet-like net: stem conv (stride 2)
 *           + batch norm + ReLU + 2x2 max pool, four residual stages of
 *           widths 16-32-64-128 (the last three halve the resolution, with
 *           a 1x1 conv + batch norm shortcut), global average pooling,
 *           dropout 0.2, linear 6. About 0.15 GFLOP per image.
 * cascade:  two networks on the same input, each with its own backbone:
 *           "any" (1 logit) and "subtype" (5 logits, the subtypes in label
 *           order); the model gives 6 logits, any first, from the spec
 *           "input CxHxW, cascade(any: BODY | subtype: BODY)" where each
 *           BODY is a stage preset's spec without its input item, so the
 *           stage's tensors are the preset's names under "any." or
 *           "subtype." (any.features.0.0.weight, subtype.classifier.2.bias).
 *           Options "cascade [any NAME] [subtype NAME] [input CxHxW]";
 *           NAME is any preset that takes "outputs N" (the torchvision
 *           ones, tutorial, ichnet) or "small", the compact stage of
 *           libich's first cascade (CASCADE_STAGE below); defaults
 *           efficientnet_v2_m, convnext_tiny, 3x256x256 (the pipeline's).
 *           "cascade any small subtype small" is exactly the spec the plain
 *           "cascade" preset had before, so its checkpoints (which carry
 *           their spec anyway) keep their names. The training driver masks
 *           the subtype loss to samples whose "any" label is positive, so
 *           the subtype stage learns only from hemorrhages;
 *           ich_model_set_active_stage() trains one stage at a time.
 *           ich_model_predict() zeroes the subtype probabilities where
 *           P(any) is not above the threshold.
 *
 * and the torchvision-structured presets written by the generators of
 * nn/presets.h (resnet18, resnet50, efficientnet_v2_s/m, convnext_tiny/
 * small). A preset name takes options, "NAME [input CxHxW] [outputs N]"
 * (defaults 3x224x224 and 6); tutorial and ichnet take only "outputs",
 * cascade its own (above; ich_model_preset_build). */
#include <errno.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "nn/model_internal.h"
#include "nn/presets.h"

#define ICHNET_STAGE(w)                                                                    \
    "residual(conv " #w " 3 stride 2 pad 1 nobias, batchnorm, relu, conv " #w              \
    " 3 pad 1 nobias, batchnorm; shortcut: conv " #w " 1 stride 2 nobias, batchnorm), relu"

#define CASCADE_STAGE(outputs)                                                             \
    "conv 16 3 stride 2 pad 1 nobias, batchnorm, relu, maxpool 2, "                        \
    "conv 32 3 pad 1 nobias, batchnorm, relu, maxpool 2, "                                 \
    "conv 64 3 pad 1 nobias, batchnorm, relu, gap, linear " #outputs

/* The static presets; `outputs`: the spec ends with "linear 6", which the
 * option "outputs N" replaces. */
static const struct {
    const char *name;
    const char *spec;
    int outputs;
} PRESETS[] = {
    {"tutorial",
     "input 1x512x512, conv 50 5, relu, maxpool 2, conv 120 5, relu, maxpool 2, "
     "conv 100 5, relu, maxpool 2, conv 72 4, relu, maxpool 2, flatten, linear 50, relu, "
     "linear 6", 1},
    {"ichnet",
     "input 3x256x256, conv 16 3 stride 2 pad 1 nobias, batchnorm, relu, maxpool 2, "
     "residual(conv 16 3 pad 1 nobias, batchnorm, relu, conv 16 3 pad 1 nobias, batchnorm), "
     "relu, " ICHNET_STAGE(32) ", " ICHNET_STAGE(64) ", " ICHNET_STAGE(128) ", "
     "gap, dropout 0.2, linear 6", 1},
};

/* The cascade's stage "small": the spec ends with "linear 6" like the
 * static presets' (CASCADE_STAGE(1) and (5) were the first cascade's). */
static const char SMALL_STAGE[] = "input 3x256x256, " CASCADE_STAGE(6);

/* The torchvision-structured presets (nn/presets.h). */
static const struct {
    const char *name;
    ich_preset_fn make;
} GENERATED[] = {
    {"resnet18", ich_preset_resnet18},
    {"resnet50", ich_preset_resnet50},
    {"efficientnet_v2_s", ich_preset_efficientnet_v2_s},
    {"efficientnet_v2_m", ich_preset_efficientnet_v2_m},
    {"convnext_tiny", ich_preset_convnext_tiny},
    {"convnext_small", ich_preset_convnext_small},
};

static int parse_count(const char *text, int32_t *value)
{
    if (*text < '0' || *text > '9')
        return 0;
    errno = 0;
    char *end;
    long v = strtol(text, &end, 10);
    if (errno || v < 1 || v > ICH_MODEL_MAX_CHANNELS)
        return 0;
    *value = (int32_t)v;
    return end - text;
}

/* "CxHxW" into input[3]; 0 when malformed. */
static int parse_input(const char *w, int32_t *input)
{
    for (int d = 0; d < 3; d++) {
        int n = parse_count(w, &input[d]);
        w += n;
        if (!n || !(d == 2 ? *w == 0 : (*w == 'x' || *w == 'X')))
            return 0;
        w += d < 2;
    }
    return 1;
}

/* Append the body of stage preset `name` (its spec without the "input"
 * item) for `input` and `outputs` logits. */
static ich_status stage_body(const char *name, const int32_t *input, int32_t outputs,
                             ich_buf *out)
{
    ich_buf spec = {0};
    ich_status st = ICH_ERR_NOT_FOUND;
    for (size_t i = 0; i < sizeof GENERATED / sizeof *GENERATED && st == ICH_ERR_NOT_FOUND; i++)
        if (!strcasecmp(name, GENERATED[i].name))
            st = GENERATED[i].make(&spec, input[0], input[1], input[2], outputs);
    const char *fixed = !strcasecmp(name, "small") ? SMALL_STAGE : NULL;
    for (size_t i = 0; i < sizeof PRESETS / sizeof *PRESETS && !fixed; i++)
        if (PRESETS[i].outputs && !strcasecmp(name, PRESETS[i].name))
            fixed = PRESETS[i].spec;
    if (fixed) { /* its layers take the cascade's input; the spec ends with "linear 6" */
        ich_buf_printf(&spec, "%.*s%d", (int)(strlen(fixed) - 1), fixed, (int)outputs);
        st = ICH_OK;
    }
    if (st == ICH_ERR_NOT_FOUND)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT,
                      "model: preset cascade: unknown stage \"%s\" (stages: small, tutorial, "
                      "ichnet, resnet18, resnet50, efficientnet_v2_s, efficientnet_v2_m, "
                      "convnext_tiny, convnext_small)",
                      name);
    if (!st && spec.failed)
        st = ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    if (!st) {
        /* every stage spec starts with its "input CxHxW" item */
        const char *body = strchr(spec.data, ',');
        if (!body || strncmp(spec.data, "input ", 6))
            st = ich_fail(ICH_ERR_INTERNAL, "model: preset %s does not start with its input",
                          name);
        else
            ich_buf_printf(out, "%s", body + 1 + strspn(body + 1, " \t\n"));
    }
    ich_buf_free(&spec);
    return st;
}

/* "cascade [any NAME] [subtype NAME] [input CxHxW]" (top of this file). */
/* The words of a preset's text (at most `max`, each under 64 bytes), or -1
 * with the message naming the expected `form`. */
static int split_words(const char *text, char (*words)[64], int max, const char *form)
{
    int nwords = 0;
    for (const char *p = text;;) {
        p += strspn(p, " \t\n");
        if (!*p)
            return nwords;
        size_t n = strcspn(p, " \t\n");
        if (nwords == max || n >= 64) {
            ich_fail(ICH_ERR_INVALID_ARGUMENT, "model: bad preset \"%s\" (expected \"%s\")",
                     text, form);
            return -1;
        }
        memcpy(words[nwords], p, n);
        words[nwords++][n] = 0;
        p += n;
    }
}

static ich_status cascade_build(const char *text, ich_buf *out)
{
    char words[7][64];
    int nwords = split_words(text, words, 7, "cascade [any NAME] [subtype NAME] [input CxHxW]");
    if (nwords < 0)
        return ICH_ERR_INVALID_ARGUMENT;
    const char *stage[2] = {"efficientnet_v2_m", "convnext_tiny"};
    int32_t input[3] = {3, 256, 256};
    int seen[3] = {0, 0, 0};
    for (int i = 1; i < nwords; i += 2) {
        int ok = i + 1 < nwords, k = -1;
        if (ok && !strcasecmp(words[i], "any"))
            k = 0;
        else if (ok && !strcasecmp(words[i], "subtype"))
            k = 1;
        else if (ok && !strcasecmp(words[i], "input"))
            k = 2;
        ok = k >= 0 && !seen[k] && (k < 2 || parse_input(words[i + 1], input));
        if (!ok)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "model: bad option in preset \"%s\" (options: any NAME, subtype "
                            "NAME, input CxHxW)", text);
        seen[k] = 1;
        if (k < 2)
            stage[k] = words[i + 1];
    }
    ich_buf_printf(out, "input %dx%dx%d, cascade(any: ", (int)input[0], (int)input[1],
                   (int)input[2]);
    ich_status st = stage_body(stage[0], input, 1, out);
    if (!st) {
        ich_buf_printf(out, " | subtype: ");
        st = stage_body(stage[1], input, 5, out);
    }
    if (!st)
        ich_buf_printf(out, ")");
    if (!st && out->failed)
        st = ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    return st;
}

ich_status ich_model_preset_build(const char *text, ich_buf *out)
{
    /* "<name> [input CxHxW] [outputs N]", words separated by blanks; an
     * unknown name is ICH_ERR_NOT_FOUND before the options are read (a
     * caller may then try the text as a spec) */
    size_t skip = strspn(text, " \t\n"), length = strcspn(text + skip, " \t\n");
    int known = 0;
    for (size_t i = 0; i < sizeof GENERATED / sizeof *GENERATED; i++)
        known |= length == strlen(GENERATED[i].name) &&
                 !strncasecmp(text + skip, GENERATED[i].name, length);
    for (size_t i = 0; i < sizeof PRESETS / sizeof *PRESETS; i++)
        known |= length == strlen(PRESETS[i].name) &&
                 !strncasecmp(text + skip, PRESETS[i].name, length);
    if (length == strlen("cascade") && !strncasecmp(text + skip, "cascade", length))
        return cascade_build(text, out);
    if (!known)
        return ich_fail(ICH_ERR_NOT_FOUND, "model: unknown preset \"%.*s\" (known: %s)",
                        (int)(length < 64 ? length : 64), text + skip, ich_model_preset_names());
    char words[5][64];
    int nwords = split_words(text, words, 5, "NAME [input CxHxW] [outputs N]");
    if (nwords < 0)
        return ICH_ERR_INVALID_ARGUMENT;
    int32_t input[3] = {3, 224, 224}, outputs = 6;
    int has_input = 0, has_outputs = 0;
    for (int i = 1; i < nwords; i += 2) {
        int ok = i + 1 < nwords;
        if (ok && !strcasecmp(words[i], "input") && !has_input) {
            ok = parse_input(words[i + 1], input);
            has_input = 1;
        } else if (ok && !strcasecmp(words[i], "outputs") && !has_outputs) {
            int n = parse_count(words[i + 1], &outputs);
            ok = n > 0 && words[i + 1][n] == 0;
            has_outputs = 1;
        } else {
            ok = 0;
        }
        if (!ok)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "model: bad option in preset \"%s\" (options: input CxHxW, "
                            "outputs N)", text);
    }
    for (size_t i = 0; i < sizeof GENERATED / sizeof *GENERATED; i++)
        if (!strcasecmp(words[0], GENERATED[i].name)) {
            ich_status st = GENERATED[i].make(out, input[0], input[1], input[2], outputs);
            if (!st && out->failed)
                st = ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
            return st;
        }
    for (size_t i = 0; i < sizeof PRESETS / sizeof *PRESETS; i++)
        if (!strcasecmp(words[0], PRESETS[i].name)) {
            if (has_input)
                return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                                "model: preset %s has a fixed input (no \"input\" option)",
                                PRESETS[i].name);
            if (has_outputs && !PRESETS[i].outputs)
                return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                                "model: preset %s has a fixed number of outputs (no "
                                "\"outputs\" option)", PRESETS[i].name);
            const char *spec = PRESETS[i].spec;
            if (has_outputs) /* the spec ends with "linear 6" */
                ich_buf_printf(out, "%.*s%d", (int)(strlen(spec) - 1), spec, (int)outputs);
            else
                ich_buf_printf(out, "%s", spec);
            return out->failed ? ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory") : ICH_OK;
        }
    return ich_fail(ICH_ERR_NOT_FOUND, "model: unknown preset \"%s\" (known: %s)", words[0],
                    ich_model_preset_names());
}

const char *ich_model_preset_names(void)
{
    return "tutorial, ichnet, cascade, resnet18, resnet50, efficientnet_v2_s, "
           "efficientnet_v2_m, convnext_tiny, convnext_small";
}
