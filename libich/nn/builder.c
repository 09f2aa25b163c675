/* The model builder: C calls that write the spec text (include/ich/model.h).
 *
 * Each call appends one item of the spec grammar; the spec parser stays the
 * one place that knows what a network may be, so a builder and a text spec
 * can never disagree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "ich/model.h"

#define MAX_DEPTH 8

typedef enum block_kind { BLOCK_RESIDUAL, BLOCK_CONCAT, BLOCK_CASCADE, BLOCK_SCALE } block_kind;

struct ich_model_builder {
    ich_buf text;
    int need_separator;       /* an item was written since the last '(' or separator */
    int depth;
    block_kind open[MAX_DEPTH];
    int part[MAX_DEPTH];      /* 0: body / first branch, 1.. further ones */
};

/* Append one item, with the separator the grammar wants before it. */
static ich_status append(ich_model_builder *b, const char *item)
{
    if (b->need_separator)
        ich_buf_append(&b->text, ", ", 2);
    ich_buf_append(&b->text, item, strlen(item));
    b->need_separator = 1;
    return b->text.failed ? ich_fail(ICH_ERR_NO_MEMORY, "model builder: out of memory")
                          : ICH_OK;
}

/* "name = " when the caller names the layer; names are single words. */
static ich_status named_item(ich_model_builder *b, const char *name, const char *item)
{
    if (!name)
        return append(b, item);
    if (!*name || strpbrk(name, " ,=():|;\t\r\n"))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "model builder: name \"%.64s\" must be one word without , = ( ) : | ;",
                        name);
    char text[256];
    snprintf(text, sizeof text, "%s = %s", name, item);
    return append(b, text);
}

static ich_status check_builder(const ich_model_builder *b, const char *what)
{
    return b ? ICH_OK : ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL builder", what);
}

ich_status ich_model_builder_create(int32_t channels, int32_t rows, int32_t columns,
                                    ich_model_builder **out)
{
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_builder_create: NULL out");
    *out = NULL;
    if (channels < 1 || rows < 1 || columns < 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_builder_create: input %dx%dx%d: sizes must be >= 1",
                        (int)channels, (int)rows, (int)columns);
    ich_model_builder *b = calloc(1, sizeof *b);
    if (!b)
        return ich_fail(ICH_ERR_NO_MEMORY, "model builder: out of memory");
    char item[64];
    snprintf(item, sizeof item, "input %dx%dx%d", (int)channels, (int)rows, (int)columns);
    ich_status st = append(b, item);
    if (st != ICH_OK) {
        ich_model_builder_free(b);
        return st;
    }
    *out = b;
    return ICH_OK;
}

void ich_model_builder_free(ich_model_builder *b)
{
    if (!b)
        return;
    ich_buf_free(&b->text);
    free(b);
}

ich_status ich_model_builder_conv(ich_model_builder *b, const char *name, int32_t out,
                                  int32_t kernel, int32_t stride, int32_t padding)
{
    ich_status st = check_builder(b, "ich_model_builder_conv");
    if (st != ICH_OK)
        return st;
    if (out < 1 || kernel < 1 || stride < 1 || padding < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_builder_conv: out %d, kernel %d, stride %d (>= 1), "
                        "padding %d (>= 0)",
                        (int)out, (int)kernel, (int)stride, (int)padding);
    char item[128];
    snprintf(item, sizeof item, "conv %d %d stride %d pad %d", (int)out, (int)kernel,
             (int)stride, (int)padding);
    return named_item(b, name, item);
}

ich_status ich_model_builder_linear(ich_model_builder *b, const char *name, int32_t out)
{
    ich_status st = check_builder(b, "ich_model_builder_linear");
    if (st != ICH_OK)
        return st;
    if (out < 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_builder_linear: out %d (>= 1)",
                        (int)out);
    char item[64];
    snprintf(item, sizeof item, "linear %d", (int)out);
    return named_item(b, name, item);
}

ich_status ich_model_builder_pool(ich_model_builder *b, const char *kind, int32_t kernel,
                                  int32_t stride, int32_t padding)
{
    ich_status st = check_builder(b, "ich_model_builder_pool");
    if (st != ICH_OK)
        return st;
    if (!kind || (strcasecmp(kind, "maxpool") != 0 && strcasecmp(kind, "avgpool") != 0))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_builder_pool: kind must be \"maxpool\" or \"avgpool\"");
    if (kernel < 1 || stride < 1 || padding < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_builder_pool: kernel %d, stride %d (>= 1), padding %d (>= 0)",
                        (int)kernel, (int)stride, (int)padding);
    char item[128];
    snprintf(item, sizeof item, "%s %d stride %d pad %d", strcasecmp(kind, "maxpool") == 0
             ? "maxpool" : "avgpool", (int)kernel, (int)stride, (int)padding);
    return append(b, item);
}

ich_status ich_model_builder_dropout(ich_model_builder *b, double p)
{
    ich_status st = check_builder(b, "ich_model_builder_dropout");
    if (st != ICH_OK)
        return st;
    if (!(p >= 0 && p < 1))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_builder_dropout: p %g not in [0, 1)",
                        p);
    char item[64];
    snprintf(item, sizeof item, "dropout %.17g", p);
    return append(b, item);
}

ich_status ich_model_builder_layer(ich_model_builder *b, const char *name, const char *kind)
{
    ich_status st = check_builder(b, "ich_model_builder_layer");
    if (st != ICH_OK)
        return st;
    static const char *const kinds[] = {"relu",        "batchnorm", "gap",       "flatten",
                                        "silu",        "gelu",      "sigmoid",   "layernorm2d",
                                        "layernorm",   "layerscale"};
    for (size_t i = 0; kind && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcasecmp(kind, kinds[i]) == 0)
            return named_item(b, name, kinds[i]);
    return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                    "ich_model_builder_layer: kind \"%.32s\" is not relu, batchnorm, gap, "
                    "flatten, silu, gelu, sigmoid, layernorm2d, layernorm or layerscale",
                    kind ? kind : "(null)");
}

ich_status ich_model_builder_item(ich_model_builder *b, const char *item)
{
    ich_status st = check_builder(b, "ich_model_builder_item");
    if (st != ICH_OK)
        return st;
    if (!item || !*item || strpbrk(item, ",\n"))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_builder_item: one item, without commas or line breaks");
    return append(b, item);
}

ich_status ich_model_builder_begin(ich_model_builder *b, const char *kind)
{
    ich_status st = check_builder(b, "ich_model_builder_begin");
    if (st != ICH_OK)
        return st;
    block_kind k;
    const char *opening;
    if (kind && strcasecmp(kind, "residual") == 0)
        k = BLOCK_RESIDUAL, opening = "residual(";
    else if (kind && strcasecmp(kind, "concat") == 0)
        k = BLOCK_CONCAT, opening = "concat(";
    else if (kind && strcasecmp(kind, "cascade") == 0)
        k = BLOCK_CASCADE, opening = "cascade(any: ";
    else if (kind && strcasecmp(kind, "scale") == 0)
        k = BLOCK_SCALE, opening = "scale(";
    else
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_builder_begin: kind must be residual, concat, cascade or "
                        "scale");
    if (b->depth == MAX_DEPTH)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_builder_begin: more than %d "
                        "nested blocks", MAX_DEPTH);
    if ((st = append(b, opening)) != ICH_OK)
        return st;
    b->open[b->depth] = k;
    b->part[b->depth++] = 0;
    b->need_separator = 0;
    return ICH_OK;
}

ich_status ich_model_builder_next(ich_model_builder *b)
{
    ich_status st = check_builder(b, "ich_model_builder_next");
    if (st != ICH_OK)
        return st;
    if (b->depth == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_builder_next: no open block");
    int top = b->depth - 1;
    const char *separator = " | ";
    if (b->open[top] == BLOCK_SCALE)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_builder_next: a scale block has one sequence");
    if (b->open[top] == BLOCK_RESIDUAL) {
        if (b->part[top] > 0)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_model_builder_next: a residual block has one shortcut");
        separator = "; shortcut: ";
    } else if (b->open[top] == BLOCK_CASCADE) {
        if (b->part[top] > 0)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_model_builder_next: a cascade has two branches");
        separator = " | subtype: ";
    }
    ich_buf_append(&b->text, separator, strlen(separator));
    b->part[top]++;
    b->need_separator = 0;
    return b->text.failed ? ich_fail(ICH_ERR_NO_MEMORY, "model builder: out of memory")
                          : ICH_OK;
}

ich_status ich_model_builder_end(ich_model_builder *b)
{
    ich_status st = check_builder(b, "ich_model_builder_end");
    if (st != ICH_OK)
        return st;
    if (b->depth == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_builder_end: no open block");
    b->depth--;
    ich_buf_append(&b->text, ")", 1);
    b->need_separator = 1;
    return b->text.failed ? ich_fail(ICH_ERR_NO_MEMORY, "model builder: out of memory")
                          : ICH_OK;
}

const char *ich_model_builder_spec(const ich_model_builder *b)
{
    return b && b->text.data ? b->text.data : "";
}

ich_status ich_model_builder_build(const ich_model_builder *b, ich_model **out)
{
    if (out)
        *out = NULL;
    ich_status st = check_builder(b, "ich_model_builder_build");
    if (st != ICH_OK)
        return st;
    if (b->depth > 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_builder_build: %d block(s) not closed with "
                        "ich_model_builder_end()",
                        b->depth);
    return ich_model_create(ich_model_builder_spec(b), out);
}
