/* The model spec: a short text describing the network (grammar in
 * libich/nn/spec.h and at ich_model_create()), parsed into a tree of items,
 * and printed back in a canonical form that re-parses to the same model. */
#include "nn/spec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ich/model.h"

static const char *const KIND_NAMES[] = {
    "input", "conv", "linear", "maxpool", "avgpool", "relu", "gap",
    "flatten", "batchnorm", "dropout", "residual", "concat", "cascade",
    /* element-wise activations and the scale block (issue 14) */
    "silu", "gelu", "sigmoid", "scale",
    "layernorm2d", "layernorm", "layerscale", "droppath"};

const char *ich_spec_kind_name(spec_kind kind)
{
    return KIND_NAMES[kind];
}

typedef struct parser {
    const char *text;
    size_t pos;
    int items;      /* items started so far (1-based numbering in messages) */
    int item_start; /* position of the current item */
    int depth;
} parser;

static ich_status parse_seq(parser *p, spec_seq *seq);

/* The error message names the item (its number and first characters) and
 * the position where parsing stopped. */
static ich_status fail_at(parser *p, const char *what)
{
    char excerpt[40];
    size_t n = 0;
    const char *s = p->text + p->item_start;
    while (s[n] && s[n] != ',' && s[n] != '\n' && n < sizeof excerpt - 1)
        n++;
    memcpy(excerpt, s, n);
    excerpt[n] = 0;
    return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                    "model spec: item %d (\"%s\") at position %zu: %s", p->items, excerpt,
                    p->pos, what);
}

static void skip_blanks(parser *p)
{
    while (p->text[p->pos] == ' ' || p->text[p->pos] == '\t' || p->text[p->pos] == '\r')
        p->pos++;
}

/* Skip blanks and newlines (where a newline cannot end an item). */
static void skip_space(parser *p)
{
    while (isspace((unsigned char)p->text[p->pos]))
        p->pos++;
}

static int word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' || c == '+';
}

/* Read a word into buf (at most size-1 chars); returns its length (0: none). */
static size_t next_word(parser *p, char *buf, size_t size)
{
    skip_blanks(p);
    size_t n = 0;
    while (word_char(p->text[p->pos])) {
        if (n + 1 < size)
            buf[n] = p->text[p->pos];
        n++;
        p->pos++;
    }
    buf[n < size ? n : size - 1] = 0;
    return n;
}

static int parse_int_text(const char *s, int32_t *value)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return 0;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 1000000)
        return 0;
    *value = (int32_t)v;
    return 1;
}

/* "5" or "5x3" into pair[0], pair[1]. */
static int parse_pair(const char *s, int32_t pair[2])
{
    char a[32];
    const char *x = strchr(s, 'x');
    if (!x)
        return parse_int_text(s, &pair[0]) && (pair[1] = pair[0], 1);
    size_t n = (size_t)(x - s);
    if (n == 0 || n >= sizeof a)
        return 0;
    memcpy(a, s, n);
    a[n] = 0;
    return parse_int_text(a, &pair[0]) && parse_int_text(x + 1, &pair[1]);
}

static int parse_float_text(const char *s, float *value)
{
    char *end;
    if (!*s)
        return 0;
    double v = strtod(s, &end);
    if (*end)
        return 0;
    *value = (float)v;
    return 1;
}

static int at_item_end(parser *p)
{
    skip_blanks(p);
    char c = p->text[p->pos];
    return c == 0 || c == ',' || c == '\n' || (p->depth > 0 && (c == ')' || c == '|' || c == ';'));
}

/* Reads the required positive integer pair argument named `what`, at most
 * `max` (one of the ICH_MODEL_MAX_* limits of ich/model.h). */
static ich_status required_pair(parser *p, const char *what, int32_t pair[2], int allow_zero,
                                int32_t max)
{
    char word[64];
    if (!next_word(p, word, sizeof word)) {
        char msg[96];
        snprintf(msg, sizeof msg, "expected %s", what);
        return fail_at(p, msg);
    }
    if (!parse_pair(word, pair) || (!allow_zero && (pair[0] < 1 || pair[1] < 1))) {
        char msg[128];
        snprintf(msg, sizeof msg, "bad %s \"%s\"", what, word);
        return fail_at(p, msg);
    }
    if (pair[0] > max || pair[1] > max) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s \"%s\" too large (at most %d)", what, word, (int)max);
        return fail_at(p, msg);
    }
    return ICH_OK;
}

/* A limit macro's value in a message. */
#define ICH_STRINGIFY_(x) #x
#define ICH_STRINGIFY(x) ICH_STRINGIFY_(x)

/* Options after the positional arguments: "stride 2 pad 1 ...". */
static ich_status parse_options(parser *p, spec_item *item)
{
    char word[64];
    ich_layer_args *a = &item->args;
    while (!at_item_end(p)) {
        if (!next_word(p, word, sizeof word))
            return fail_at(p, "unexpected character");
        int conv = item->kind == SPEC_CONV, pool = item->kind == SPEC_MAXPOOL
                                                   || item->kind == SPEC_AVGPOOL;
        ich_status st;
        if ((conv || pool) && !strcmp(word, "stride")) {
            if ((st = required_pair(p, "stride", a->stride, 0, ICH_MODEL_MAX_KERNEL)))
                return st;
            item->pool_stride_set = 1;
        } else if ((conv || pool) && (!strcmp(word, "pad") || !strcmp(word, "padding"))) {
            if ((st = required_pair(p, "padding", a->padding, 1, ICH_MODEL_MAX_KERNEL)))
                return st;
        } else if (conv && !strcmp(word, "dilation")) {
            if ((st = required_pair(p, "dilation", a->dilation, 0, ICH_MODEL_MAX_KERNEL)))
                return st;
        } else if (conv && !strcmp(word, "groups")) {
            /* a divisor of the input and output channels (nn/model.c checks) */
            int32_t groups[2];
            if ((st = required_pair(p, "groups", groups, 0, ICH_MODEL_MAX_CHANNELS)))
                return st;
            if (groups[0] != groups[1])
                return fail_at(p, "groups is one number");
            a->groups = groups[0];
        } else if ((conv || item->kind == SPEC_LINEAR) && !strcmp(word, "nobias")) {
            a->bias = 0;
        } else if ((conv || item->kind == SPEC_LINEAR) && !strcmp(word, "bias")) {
            a->bias = 1;
        } else if (item->kind == SPEC_LINEAR && !strcmp(word, "pointwise")) {
            item->pointwise = 1;
        } else if (item->kind == SPEC_BATCHNORM
                   && (!strcmp(word, "eps") || !strcmp(word, "momentum"))) {
            char value[64];
            float *target = word[0] == 'e' ? &a->eps : &a->momentum;
            if (!next_word(p, value, sizeof value) || !parse_float_text(value, target)
                || !(*target >= 0.0f) || (word[0] == 'm' && *target > 1.0f))
                return fail_at(p, word[0] == 'e' ? "bad eps" : "bad momentum (0 to 1)");
        } else if ((item->kind == SPEC_LAYERNORM2D || item->kind == SPEC_LAYERNORM)
                   && !strcmp(word, "eps")) {
            char value[64];
            if (!next_word(p, value, sizeof value) || !parse_float_text(value, &a->eps)
                || !(a->eps > 0.0f) || !(a->eps < 1.0f))
                return fail_at(p, "bad eps (above 0, below 1)");
        } else if (item->kind == SPEC_LAYERSCALE && !strcmp(word, "init")) {
            char value[64];
            if (!next_word(p, value, sizeof value) || !parse_float_text(value, &a->init)
                || !(a->init > -1e30f && a->init < 1e30f))
                return fail_at(p, "bad init (a finite number)");
        } else {
            char msg[128];
            snprintf(msg, sizeof msg, "unknown option \"%s\" for %s", word,
                     KIND_NAMES[item->kind]);
            return fail_at(p, msg);
        }
    }
    return ICH_OK;
}

/* An error about a whole block names the block's item. */
static ich_status fail_block(parser *p, int item, int start, const char *what)
{
    p->items = item;
    p->item_start = start;
    return fail_at(p, what);
}

static ich_status parse_block(parser *p, spec_item *item)
{
    int block_item = p->items, block_start = p->item_start;
    skip_blanks(p);
    if (p->text[p->pos] != '(')
        return fail_at(p, "expected '(' after the block's kind");
    p->pos++;
    if (++p->depth > ICH_MODEL_MAX_DEPTH)
        return fail_at(p, "blocks nested too deeply (at most " ICH_STRINGIFY(ICH_MODEL_MAX_DEPTH) ")");
    for (;;) {
        spec_seq *grown = realloc(item->seqs, (size_t)(item->nseqs + 1) * sizeof *grown);
        if (!grown)
            return ich_fail(ICH_ERR_NO_MEMORY, "model spec: out of memory");
        item->seqs = grown;
        spec_seq *seq = &item->seqs[item->nseqs++];
        memset(seq, 0, sizeof *seq);
        /* An optional "label:" before the sequence: a branch name, or
         * "shortcut:" in a residual block. */
        skip_space(p);
        size_t save = p->pos;
        char word[64];
        if (next_word(p, word, sizeof word)) {
            skip_blanks(p);
            if (p->text[p->pos] == ':') {
                p->pos++;
                if (item->kind == SPEC_SCALE)
                    return fail_at(p, "a scale block has one unlabelled sequence");
                if (item->kind == SPEC_RESIDUAL) {
                    /* "; shortcut:" or "; NAME:": the shortcut's layers are
                     * "<block>.NAME.<layer>" (torchvision's "downsample") */
                    if (item->nseqs != 2)
                        return fail_at(p, "in a residual block only the shortcut (\"; "
                                          "shortcut:\" or \"; NAME:\") may be labelled");
                    if (strlen(word) >= 24 || word[0] == '.')
                        return fail_at(p, "bad shortcut name");
                    if (strcmp(word, "shortcut"))
                        snprintf(seq->name, sizeof seq->name, "%s", word);
                } else {
                    snprintf(seq->name, sizeof seq->name, "%s", word);
                }
            } else {
                p->pos = save;
            }
        } else {
            p->pos = save;
        }
        if (item->kind == SPEC_RESIDUAL && item->nseqs == 2 && p->pos == save)
            return fail_at(p, "expected \"shortcut:\" after ';' in a residual block");
        ich_status st = parse_seq(p, seq);
        if (st)
            return st;
        char c = p->text[p->pos];
        if (c == ')') {
            p->pos++;
            break;
        }
        if (item->kind == SPEC_RESIDUAL && c == ';' && item->nseqs == 1) {
            p->pos++;
            continue;
        }
        if (item->kind != SPEC_RESIDUAL && item->kind != SPEC_SCALE && c == '|') {
            p->pos++;
            continue;
        }
        return fail_block(p, block_item, block_start, c ? "unexpected separator in a block" : "missing ')'");
    }
    p->depth--;
    if (item->kind == SPEC_RESIDUAL && item->nseqs == 1) {
        spec_seq *grown = realloc(item->seqs, 2 * sizeof *grown);
        if (!grown)
            return ich_fail(ICH_ERR_NO_MEMORY, "model spec: out of memory");
        item->seqs = grown;
        memset(&item->seqs[1], 0, sizeof item->seqs[1]);
        item->nseqs = 2;
    }
    if (item->kind == SPEC_RESIDUAL && item->seqs[0].count == 0)
        return fail_block(p, block_item, block_start, "a residual block needs layers in its body");
    if (item->kind == SPEC_SCALE && item->seqs[0].count == 0)
        return fail_block(p, block_item, block_start, "a scale block needs layers");
    if (item->kind != SPEC_RESIDUAL && item->kind != SPEC_SCALE) {
        if (item->nseqs < 2)
            return fail_block(p, block_item, block_start, "a concat or cascade needs at least two branches separated by '|'");
        if (item->kind == SPEC_CASCADE && item->nseqs != 2)
            return fail_block(p, block_item, block_start, "a cascade has exactly two branches (any | subtypes)");
        for (int i = 0; i < item->nseqs; i++)
            if (item->seqs[i].count == 0)
                return fail_block(p, block_item, block_start, "empty branch");
    }
    skip_blanks(p);
    if (!at_item_end(p))
        return fail_at(p, "unexpected text after ')'");
    return ICH_OK;
}

static ich_status parse_positional(parser *p, spec_item *item)
{
    char word[64];
    ich_layer_args *a = &item->args;
    ich_status st;
    switch (item->kind) {
    case SPEC_INPUT: {
        int32_t v[3];
        if (!next_word(p, word, sizeof word) || strspn(word, "0123456789x") != strlen(word)
            || sscanf(word, "%9dx%9dx%9d", &v[0], &v[1], &v[2]) != 3 || v[0] < 1 || v[1] < 1
            || v[2] < 1)
            return fail_at(p, "expected the input shape CxHxW (e.g. input 1x512x512)");
        if (v[0] > ICH_MODEL_MAX_INPUT_CHANNELS || v[1] > ICH_MODEL_MAX_INPUT_SIDE
            || v[2] > ICH_MODEL_MAX_INPUT_SIDE) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "input %s too large (at most %d channels and %d rows and columns)", word,
                     ICH_MODEL_MAX_INPUT_CHANNELS, ICH_MODEL_MAX_INPUT_SIDE);
            return fail_at(p, msg);
        }
        memcpy(item->input, v, sizeof v);
        return ICH_OK;
    }
    case SPEC_CONV:
    case SPEC_LINEAR: {
        int32_t out[2];
        if ((st = required_pair(p, item->kind == SPEC_CONV ? "output channels" : "output features",
                                out, 0, ICH_MODEL_MAX_CHANNELS)))
            return st;
        if (out[0] != out[1])
            return fail_at(p, "the output count is one number");
        a->out = out[0];
        a->bias = 1;
        a->stride[0] = a->stride[1] = 1;
        a->dilation[0] = a->dilation[1] = 1;
        if (item->kind == SPEC_CONV) {
            a->groups = 1;
            return required_pair(p, "kernel size", a->kernel, 0, ICH_MODEL_MAX_KERNEL);
        }
        return ICH_OK;
    }
    case SPEC_MAXPOOL:
    case SPEC_AVGPOOL:
        if ((st = required_pair(p, "kernel size", a->kernel, 0, ICH_MODEL_MAX_KERNEL)))
            return st;
        memcpy(a->stride, a->kernel, sizeof a->stride);
        return ICH_OK;
    case SPEC_BATCHNORM:
        a->eps = 1e-5f;
        a->momentum = 0.1f;
        return ICH_OK;
    case SPEC_DROPOUT:
        if (!next_word(p, word, sizeof word) || !parse_float_text(word, &a->p) || !(a->p >= 0.0f)
            || !(a->p < 1.0f))
            return fail_at(p, "expected the drop probability in [0, 1) (e.g. dropout 0.5)");
        return ICH_OK;
    case SPEC_DROPPATH:
        if (!next_word(p, word, sizeof word) || !parse_float_text(word, &a->p) || !(a->p >= 0.0f)
            || !(a->p < 1.0f))
            return fail_at(p, "expected the drop probability in [0, 1) (e.g. droppath 0.1)");
        return ICH_OK;
    case SPEC_LAYERNORM2D:
        a->eps = 1e-6f; /* torchvision's ConvNeXt */
        return ICH_OK;
    case SPEC_LAYERNORM:
        a->eps = 1e-5f; /* nn.LayerNorm's default */
        return ICH_OK;
    case SPEC_LAYERSCALE:
        a->init = 1e-6f; /* ConvNeXt's layer_scale */
        return ICH_OK;
    default:
        return ICH_OK;
    }
}

static ich_status parse_item(parser *p, spec_item *item)
{
    char word[64], kind[64];
    memset(item, 0, sizeof *item);
    p->items++;
    if (p->items > ICH_MODEL_MAX_LAYERS)
        return fail_at(p, "too many items (at most " ICH_STRINGIFY(ICH_MODEL_MAX_LAYERS) ")");
    skip_blanks(p);
    p->item_start = (int)p->pos;
    item->position = (int)p->pos;
    size_t kind_start = p->pos;
    if (!next_word(p, word, sizeof word))
        return fail_at(p, "expected a layer");
    skip_blanks(p);
    if (p->text[p->pos] == '=') {
        p->pos++;
        if (strlen(word) >= 48 || strchr(word, '.') == word)
            return fail_at(p, "bad layer name");
        snprintf(item->local_name, sizeof item->local_name, "%s", word);
        item->explicit_name = 1;
        skip_blanks(p);
        kind_start = p->pos;
        if (!next_word(p, kind, sizeof kind))
            return fail_at(p, "expected a layer after '='");
    } else {
        snprintf(kind, sizeof kind, "%s", word);
    }
    for (char *c = kind; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    int k = -1;
    for (int i = 0; i < (int)(sizeof KIND_NAMES / sizeof *KIND_NAMES); i++)
        if (!strcmp(kind, KIND_NAMES[i]))
            k = i;
    if (!strcmp(kind, "fc"))
        k = SPEC_LINEAR;
    if (!strcmp(kind, "bn"))
        k = SPEC_BATCHNORM;
    if (k < 0) {
        p->pos = kind_start;
        char msg[256];
        snprintf(msg, sizeof msg,
                 "unknown layer \"%s\" (known: input, conv, linear, relu, maxpool, avgpool, gap, "
                 "flatten, batchnorm, dropout, silu, gelu, sigmoid, layernorm2d, layernorm, "
                 "layerscale, droppath, residual(...), concat(...), cascade(...), scale(...))",
                 kind);
        return fail_at(p, msg);
    }
    item->kind = (spec_kind)k;
    if (k == SPEC_RESIDUAL || k == SPEC_CONCAT || k == SPEC_CASCADE || k == SPEC_SCALE)
        return parse_block(p, item);
    ich_status st = parse_positional(p, item);
    if (st)
        return st;
    return parse_options(p, item);
}

static ich_status parse_seq(parser *p, spec_seq *seq)
{
    for (;;) {
        skip_space(p);
        char c = p->text[p->pos];
        if (c == 0 || (p->depth > 0 && (c == ')' || c == '|' || c == ';')))
            return ICH_OK;
        if (c == ',') {
            p->items++;
            p->item_start = (int)p->pos;
            return fail_at(p, "empty item");
        }
        spec_item *grown = realloc(seq->items, (size_t)(seq->count + 1) * sizeof *grown);
        if (!grown)
            return ich_fail(ICH_ERR_NO_MEMORY, "model spec: out of memory");
        seq->items = grown;
        spec_item *item = &seq->items[seq->count++];
        ich_status st = parse_item(p, item);
        if (st)
            return st;
        skip_blanks(p);
        c = p->text[p->pos];
        if (c == ',' || c == '\n')
            p->pos++;
        else if (!(c == 0 || (p->depth > 0 && (c == ')' || c == '|' || c == ';'))))
            return fail_at(p, "expected ',' between layers");
        else if (p->depth == 0 && c != 0)
            return fail_at(p, "unbalanced bracket or separator");
    }
}

/* Full names: explicit names as written, others numbered per kind inside
 * their sequence; blocks give their layers a prefix. */
static ich_status assign_names(spec_seq *seq, const char *prefix)
{
    int counters[SPEC_KIND_COUNT] = {0};
    static const char *const stems[] = {"input", "conv", "fc", "maxpool", "avgpool",
                                        "relu", "gap", "flatten", "bn", "dropout",
                                        "res", "cat", "cascade",
                                        "silu", "gelu", "sigmoid", "scale",
                                        "ln2d", "ln", "ls", "droppath"};
    snprintf(seq->prefix, sizeof seq->prefix, "%s", prefix);
    for (int i = 0; i < seq->count; i++) {
        spec_item *item = &seq->items[i];
        int number = ++counters[item->kind];
        char local[64];
        if (item->explicit_name)
            snprintf(local, sizeof local, "%s", item->local_name);
        else
            snprintf(local, sizeof local, "%s%d", stems[item->kind], number);
        size_t lp = strlen(prefix), ll = strlen(local);
        if (lp + ll >= sizeof item->name - 16)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "model spec: layer name too long: %s%s",
                            prefix, local);
        memcpy(item->name, prefix, lp);
        memcpy(item->name + lp, local, ll + 1);
        for (int s = 0; s < item->nseqs; s++) {
            char sub[160];
            spec_seq *child = &item->seqs[s];
            if ((item->kind == SPEC_RESIDUAL || item->kind == SPEC_SCALE) && s == 0)
                snprintf(sub, sizeof sub, "%s.", item->name);
            else if (item->kind == SPEC_RESIDUAL || item->kind == SPEC_SCALE)
                snprintf(sub, sizeof sub, "%s.%s.", item->name,
                         child->name[0] ? child->name : "shortcut");
            else if (child->name[0])
                snprintf(sub, sizeof sub, "%s%s.", prefix, child->name);
            else
                snprintf(sub, sizeof sub, "%s.branch%d.", item->name, s + 1);
            if (strlen(sub) >= 48)
                return ich_fail(ICH_ERR_INVALID_ARGUMENT, "model spec: name too long: %s", sub);
            ich_status st = assign_names(child, sub);
            if (st)
                return st;
        }
    }
    return ICH_OK;
}

ich_status ich_spec_parse(const char *text, spec_seq *out)
{
    memset(out, 0, sizeof *out);
    if (!text)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "model spec: NULL");
    parser p = {text, 0, 0, 0, 0};
    ich_status st = parse_seq(&p, out);
    if (!st && out->count == 0)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "model spec: empty");
    if (!st)
        st = assign_names(out, "");
    if (st)
        ich_spec_free(out);
    return st;
}

void ich_spec_free(spec_seq *seq)
{
    if (!seq)
        return;
    for (int i = 0; i < seq->count; i++) {
        for (int s = 0; s < seq->items[i].nseqs; s++)
            ich_spec_free(&seq->items[i].seqs[s]);
        free(seq->items[i].seqs);
    }
    free(seq->items);
    memset(seq, 0, sizeof *seq);
}

/* The shortest decimal text that reads back as the same float. */
static void print_float(ich_buf *buf, const char *prefix, float value)
{
    char text[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, value);
        if (strtof(text, NULL) == value)
            break;
    }
    ich_buf_printf(buf, "%s%s", prefix, text);
}

static void print_pair(ich_buf *buf, const char *option, const int32_t v[2])
{
    if (option)
        ich_buf_printf(buf, " %s", option);
    if (v[0] == v[1])
        ich_buf_printf(buf, " %d", v[0]);
    else
        ich_buf_printf(buf, " %dx%d", v[0], v[1]);
}

static void print_item(const spec_item *item, ich_buf *buf)
{
    const ich_layer_args *a = &item->args;
    if (item->explicit_name)
        ich_buf_printf(buf, "%s = ", item->local_name);
    ich_buf_printf(buf, "%s", KIND_NAMES[item->kind]);
    switch (item->kind) {
    case SPEC_INPUT:
        ich_buf_printf(buf, " %dx%dx%d", item->input[0], item->input[1], item->input[2]);
        break;
    case SPEC_CONV:
        ich_buf_printf(buf, " %d", a->out);
        print_pair(buf, NULL, a->kernel);
        if (a->stride[0] != 1 || a->stride[1] != 1)
            print_pair(buf, "stride", a->stride);
        if (a->padding[0] || a->padding[1])
            print_pair(buf, "pad", a->padding);
        if (a->dilation[0] != 1 || a->dilation[1] != 1)
            print_pair(buf, "dilation", a->dilation);
        if (a->groups > 1)
            ich_buf_printf(buf, " groups %d", a->groups);
        if (!a->bias)
            ich_buf_printf(buf, " nobias");
        break;
    case SPEC_LINEAR:
        ich_buf_printf(buf, " %d%s%s", a->out, a->bias ? "" : " nobias",
                       item->pointwise ? " pointwise" : "");
        break;
    case SPEC_MAXPOOL:
    case SPEC_AVGPOOL:
        print_pair(buf, NULL, a->kernel);
        if (a->stride[0] != a->kernel[0] || a->stride[1] != a->kernel[1])
            print_pair(buf, "stride", a->stride);
        if (a->padding[0] || a->padding[1])
            print_pair(buf, "pad", a->padding);
        break;
    case SPEC_BATCHNORM:
        if (a->eps != 1e-5f)
            print_float(buf, " eps ", a->eps);
        if (a->momentum != 0.1f)
            print_float(buf, " momentum ", a->momentum);
        break;
    case SPEC_DROPOUT:
    case SPEC_DROPPATH:
        print_float(buf, " ", a->p);
        break;
    case SPEC_LAYERNORM2D:
    case SPEC_LAYERNORM:
        if (a->eps != (item->kind == SPEC_LAYERNORM2D ? 1e-6f : 1e-5f))
            print_float(buf, " eps ", a->eps);
        break;
    case SPEC_LAYERSCALE:
        if (a->init != 1e-6f)
            print_float(buf, " init ", a->init);
        break;
    case SPEC_RESIDUAL:
    case SPEC_CONCAT:
    case SPEC_CASCADE:
    case SPEC_SCALE:
        ich_buf_printf(buf, "(");
        for (int s = 0; s < item->nseqs; s++) {
            const spec_seq *child = &item->seqs[s];
            if (item->kind == SPEC_RESIDUAL && s == 1) {
                if (!child->count)
                    break;
                ich_buf_printf(buf, "; %s: ", child->name[0] ? child->name : "shortcut");
            } else if (s > 0) {
                ich_buf_printf(buf, " | ");
            }
            if (item->kind != SPEC_RESIDUAL && item->kind != SPEC_SCALE && child->name[0])
                ich_buf_printf(buf, "%s: ", child->name);
            ich_spec_print(child, buf);
        }
        ich_buf_printf(buf, ")");
        break;
    default:
        break;
    }
}

void ich_spec_print(const spec_seq *seq, ich_buf *buf)
{
    for (int i = 0; i < seq->count; i++) {
        if (i)
            ich_buf_printf(buf, ", ");
        print_item(&seq->items[i], buf);
    }
}
