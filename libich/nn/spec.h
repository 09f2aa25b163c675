/* Internal: the model spec, parsed into a tree of items (libich/nn/spec.c).
 *
 * Grammar (items separated by commas or newlines; words by spaces):
 *
 *   spec     := item { (',' | '\n') item }
 *   item     := [ NAME '=' ] layer
 *   layer    := 'input' C 'x' H 'x' W
 *             | 'conv' OUT K [stride S] [pad P] [dilation D] [groups G] [nobias]
 *             | 'linear' OUT [nobias] [pointwise]
 *             | 'maxpool' K [stride S] [pad P] | 'avgpool' K [stride S] [pad P]
 *             | 'relu' | 'gap' | 'flatten'
 *             | 'batchnorm' [eps E] [momentum M] | 'dropout' P
 *             | 'layernorm2d' [eps E] | 'layernorm' [eps E]
 *             | 'layerscale' [init V] | 'droppath' P
 *             | 'residual' '(' seq [ ';' ('shortcut' | NAME) ':' seq ] ')'
 *             | 'concat' '(' branch { '|' branch } ')'
 *             | 'cascade' '(' branch '|' branch ')'
 *             | 'silu' | 'gelu' | 'sigmoid'
 *             | 'scale' '(' seq ')'
 *   branch   := [ NAME ':' ] seq
 *   K, S, P, D := N | N 'x' N (rows x columns)
 *
 * Names are the PyTorch state_dict prefixes. Unnamed layers are numbered
 * per kind inside their scope: conv1, conv2, fc1 (linear), bn1, res1
 * (residual), cat1 (concat), cascade1; the layers inside a residual block
 * are "<block>.conv1", its shortcut's "<block>.shortcut.conv1" (or
 * "<block>.NAME.conv1" for a shortcut labelled "; NAME:", e.g. ResNet's
 * "; downsample: 0 = conv 128 1 stride 2 nobias, 1 = batchnorm"); a concat
 * branch's are "<block>.branch<i>.conv1", or "<branch name>.conv1" when the
 * branch is named.
 *
 * silu is x * sigmoid(x) (nn.SiLU), gelu the erf form x * Phi(x) (nn.GELU()
 * with approximate='none', PyTorch's default), sigmoid nn.Sigmoid; none has
 * parameters, unnamed ones are numbered silu1, gelu1, sigmoid1.
 *
 * scale(seq) is x * seq(x): seq must give one value per channel (N x C x 1 x
 * 1, e.g. it starts with gap) and the block multiplies every pixel of x's
 * channel c by it (backend layer kind "mul", two inputs: x and the factors).
 * Squeeze-and-excitation as torchvision's SqueezeExcitation(C, S,
 * activation=SiLU) (EfficientNet) is
 *   se = scale(gap, fc1 = conv S 1, silu, fc2 = conv C 1, sigmoid)
 * with state_dict names se.fc1.weight, se.fc1.bias, se.fc2.weight,
 * se.fc2.bias, as torchvision's (its avgpool, activation and
 * scale_activation have no parameters). Unnamed scale blocks are scale1,
 * scale2; their layers get the prefix "<block>." as a residual body's.
 * Why a general block and not an "se S" layer: the squeeze and excitation
 * are ordinary layers (gap, 1x1 convs, activations) that every backend
 * already has with their gradients, so the only new operation a backend
 * needs is the per-channel multiply; the block also expresses SE with ReLU
 * (MobileNetV3: hardsigmoid aside), without the squeeze, or any gating
 * network, and its parameters are named by the rules above instead of
 * hidden names.
 *
 * layernorm2d is ConvNeXt's LayerNorm2d: nn.LayerNorm(C) over the channels
 * of each position of an NCHW tensor (eps default 1e-6, as torchvision's
 * ConvNeXt); layernorm is nn.LayerNorm(F) over a flat [N, F] tensor (after
 * flatten, gap or linear; eps default 1e-5, PyTorch's). Both have the
 * parameters "weight" and "bias", shape [C]; unnamed they are "ln2d<i>"
 * and "ln<i>". layerscale multiplies each channel by a learnable factor:
 * parameter "layer_scale", shape [C, 1, 1], every value V at initialisation
 * (default 1e-6, ConvNeXt's), as torchvision's CNBlock (name the item after
 * the block, e.g. "features.1.0 = layerscale", to get its state_dict name);
 * unnamed "ls<i>". droppath is stochastic depth (torchvision's
 * StochasticDepth(P, "row")): in training each sample is zeroed with
 * probability P, the others scaled by 1 / (1 - P), seeded like dropout;
 * the identity in evaluation; no parameters.
 *
 * linear OUT pointwise is nn.Linear(C, OUT) applied to the channels of
 * every position of an N x C x H x W input (what ConvNeXt's CNBlock does
 * between its Permutes: a 1x1 convolution whose weight is stored as
 * nn.Linear's): the output is N x OUT x H x W, the parameters "weight"
 * [OUT, C] and "bias" [OUT], numbered with the other linears (fc1, fc2);
 * backend layer kind "pointwise_linear". Without pointwise, linear needs a
 * flat input.
 *
 * conv's groups G (default 1) splits the input and output channels into G
 * groups convolved separately, as PyTorch's Conv2d(groups=G): G must divide
 * both (checked when the model is built, where the input channels are
 * known); G = input channels is a depthwise convolution (OUT = G * m: m
 * filters per channel). Its parameters keep PyTorch's names and shapes:
 * "<name>.weight" [OUT, IN/G, KH, KW] and "<name>.bias" [OUT], so a
 * grouped conv is numbered with the other convs (conv1, conv2, ...).
 *
 * Every number, the count of items and the nesting of blocks are bounded
 * by the ICH_MODEL_MAX_* limits of ich/model.h (a spec may come from a
 * file); the sizes they imply together are checked in nn/model.c. */
#ifndef ICH_INTERNAL_SPEC_H
#define ICH_INTERNAL_SPEC_H

#include "core/fileutil.h"
#include "backend/layer.h"

typedef struct spec_seq spec_seq;

typedef enum spec_kind {
    SPEC_INPUT, SPEC_CONV, SPEC_LINEAR, SPEC_MAXPOOL, SPEC_AVGPOOL, SPEC_RELU, SPEC_GAP,
    SPEC_FLATTEN, SPEC_BATCHNORM, SPEC_DROPOUT, SPEC_RESIDUAL, SPEC_CONCAT, SPEC_CASCADE,
    /* issue 14: activations and the scale block */
    SPEC_SILU, SPEC_GELU, SPEC_SIGMOID, SPEC_SCALE,
    /* issue 14: normalisation and regularisation layers */
    SPEC_LAYERNORM2D, SPEC_LAYERNORM, SPEC_LAYERSCALE, SPEC_DROPPATH,
    SPEC_KIND_COUNT
} spec_kind;

typedef struct spec_item {
    spec_kind kind;
    char name[64];       /* full state_dict prefix */
    int explicit_name;   /* 1: named in the spec (printed back) */
    char local_name[64]; /* the name as written */
    ich_layer_args args;
    int32_t input[3];    /* SPEC_INPUT: channels, rows, columns */
    int pool_stride_set; /* pools: stride given */
    /* blocks: residual: seqs[0] body, seqs[1] shortcut (count 0: identity);
     * scale: seqs[0] the body giving the per-channel factors;
     * concat/cascade: branches */
    spec_seq *seqs;
    int nseqs;
    int position;        /* byte offset in the spec text (messages) */
    int pointwise;       /* linear: per position (backend kind "pointwise_linear") */
} spec_item;

struct spec_seq {
    spec_item *items;
    int count;
    char name[64];     /* branch name as written ("" when none) */
    char prefix[64];   /* prefix for the layers' names ("" at top level) */
};

/* Parse `text`; on error, set the message (naming the item and byte
 * position) and return ICH_ERR_INVALID_ARGUMENT. */
ich_status ich_spec_parse(const char *text, spec_seq *out);
void ich_spec_free(spec_seq *seq);
/* Canonical text of a parsed spec (re-parses to the same model). */
void ich_spec_print(const spec_seq *seq, ich_buf *buf);
/* The layer kind name of a spec kind ("conv", ...). */
const char *ich_spec_kind_name(spec_kind kind);

#endif
