/* Internal: the model spec, parsed into a tree of items (libich/nn/spec.c).
 *
 * Grammar (items separated by commas or newlines; words by spaces):
 *
 *   spec     := item { (',' | '\n') item }
 *   item     := [ NAME '=' ] layer
 *   layer    := 'input' C 'x' H 'x' W
 *             | 'conv' OUT K [stride S] [pad P] [dilation D] [groups G] [nobias]
 *             | 'linear' OUT [nobias]
 *             | 'maxpool' K [stride S] [pad P] | 'avgpool' K [stride S] [pad P]
 *             | 'relu' | 'gap' | 'flatten'
 *             | 'batchnorm' [eps E] [momentum M] | 'dropout' P
 *             | 'residual' '(' seq [ ';' 'shortcut' ':' seq ] ')'
 *             | 'concat' '(' branch { '|' branch } ')'
 *             | 'cascade' '(' branch '|' branch ')'
 *   branch   := [ NAME ':' ] seq
 *   K, S, P, D := N | N 'x' N (rows x columns)
 *
 * Names are the PyTorch state_dict prefixes. Unnamed layers are numbered
 * per kind inside their scope: conv1, conv2, fc1 (linear), bn1, res1
 * (residual), cat1 (concat), cascade1; the layers inside a residual block
 * are "<block>.conv1", its shortcut's "<block>.shortcut.conv1"; a concat
 * branch's are "<block>.branch<i>.conv1", or "<branch name>.conv1" when the
 * branch is named.
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
    SPEC_FLATTEN, SPEC_BATCHNORM, SPEC_DROPOUT, SPEC_RESIDUAL, SPEC_CONCAT, SPEC_CASCADE
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
     * concat/cascade: branches */
    spec_seq *seqs;
    int nseqs;
    int position;        /* byte offset in the spec text (messages) */
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
