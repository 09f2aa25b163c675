/* JSON: the writer of reports and training logs, and the strict parser of
 * untrusted documents (safetensors headers). See json.h. */
#include "core/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/utf8.h"

void ich_buf_append_double(ich_buf *buf, double value)
{
    char text[40];
    /* The shortest of these that reads back exactly: 0.1 prints as "0.1",
     * and no digit of a double is ever lost. */
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, value);
        if (strtod(text, NULL) == value)
            break;
    }
    ich_buf_append(buf, text, strlen(text));
}

/* ---- the writer ---------------------------------------------------------- */

static void json_misuse(ich_json *j, const char *what)
{
    if (!j->misuse)
        snprintf(j->error, sizeof j->error, "%s", what);
    j->misuse = 1;
}

static void json_indent(ich_json *j, int depth)
{
    ich_buf_append(&j->buf, "\n", 1);
    for (int i = 0; i < depth; i++)
        ich_buf_append(&j->buf, "  ", 2);
}

/* What goes before a value: nothing after a key, a separator in an array.
 * 0 when the value may not be written here. */
static int json_before_value(ich_json *j, int container)
{
    if (j->misuse)
        return 0;
    if (j->depth == 0) {
        if (j->done) {
            json_misuse(j, "a second top-level value");
            return 0;
        }
        return 1;
    }
    if (j->level[j->depth - 1].kind == '{') {
        if (!j->after_key) {
            json_misuse(j, "a value without a key inside an object");
            return 0;
        }
        j->after_key = 0;
        return 1;
    }
    int count = j->level[j->depth - 1].count++;
    if (count)
        ich_buf_append(&j->buf, ",", 1);
    if (container) {
        j->level[j->depth - 1].nested = 1;
        json_indent(j, j->depth);
    } else if (count) {
        ich_buf_append(&j->buf, " ", 1);
    }
    return 1;
}

static void json_after_value(ich_json *j)
{
    if (j->depth == 0)
        j->done = 1;
}

void ich_json_append_string(ich_buf *buf, const char *text)
{
    ich_buf_append(buf, "\"", 1);
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        unsigned char c = *s;
        const char *rep = NULL;
        switch (c) {
        case '"': rep = "\\\""; break;
        case '\\': rep = "\\\\"; break;
        case '\b': rep = "\\b"; break;
        case '\f': rep = "\\f"; break;
        case '\n': rep = "\\n"; break;
        case '\r': rep = "\\r"; break;
        case '\t': rep = "\\t"; break;
        default: break;
        }
        if (rep) {
            ich_buf_append(buf, rep, strlen(rep));
            s++;
        } else if (c < 0x20) {
            ich_buf_printf(buf, "\\u%04x", c);
            s++;
        } else {
            size_t n = ich_utf8_sequence((const char *)s, strnlen((const char *)s, 4));
            if (n == 0) {
                ich_buf_append(buf, "\\ufffd", 6);
                s++;
            } else {
                ich_buf_append(buf, (const char *)s, (size_t)n);
                s += n;
            }
        }
    }
    ich_buf_append(buf, "\"", 1);
}

static void json_begin(ich_json *j, char kind)
{
    if (!json_before_value(j, 1))
        return;
    if (j->depth == ICH_JSON_MAX_DEPTH) {
        json_misuse(j, "nesting deeper than ICH_JSON_MAX_DEPTH");
        return;
    }
    j->level[j->depth].kind = kind;
    j->level[j->depth].count = 0;
    j->level[j->depth].nested = 0;
    j->depth++;
    ich_buf_append(&j->buf, kind == '{' ? "{" : "[", 1);
}

static void json_end(ich_json *j, char kind)
{
    if (j->misuse)
        return;
    if (j->depth == 0 || j->level[j->depth - 1].kind != kind || j->after_key) {
        json_misuse(j, j->after_key ? "a key without a value"
                                    : kind == '{' ? "an object end without its begin"
                                                  : "an array end without its begin");
        return;
    }
    j->depth--;
    int multiline = kind == '{' ? j->level[j->depth].count > 0 : j->level[j->depth].nested;
    if (multiline)
        json_indent(j, j->depth);
    ich_buf_append(&j->buf, kind == '{' ? "}" : "]", 1);
    json_after_value(j);
}

void ich_json_object_begin(ich_json *j) { json_begin(j, '{'); }
void ich_json_object_end(ich_json *j) { json_end(j, '{'); }
void ich_json_array_begin(ich_json *j) { json_begin(j, '['); }
void ich_json_array_end(ich_json *j) { json_end(j, '['); }

void ich_json_key(ich_json *j, const char *key)
{
    if (j->misuse)
        return;
    if (j->depth == 0 || j->level[j->depth - 1].kind != '{' || j->after_key) {
        json_misuse(j, j->after_key ? "two keys in a row" : "a key outside an object");
        return;
    }
    if (j->level[j->depth - 1].count++)
        ich_buf_append(&j->buf, ",", 1);
    json_indent(j, j->depth);
    ich_json_append_string(&j->buf, key ? key : "");
    ich_buf_append(&j->buf, ": ", 2);
    j->after_key = 1;
}

void ich_json_string(ich_json *j, const char *text)
{
    if (!text) {
        ich_json_null(j);
        return;
    }
    if (!json_before_value(j, 0))
        return;
    ich_json_append_string(&j->buf, text);
    json_after_value(j);
}

void ich_json_number(ich_json *j, double value)
{
    if (!isfinite(value)) {
        ich_json_null(j);
        return;
    }
    if (!json_before_value(j, 0))
        return;
    ich_buf_append_double(&j->buf, value);
    json_after_value(j);
}

void ich_json_integer(ich_json *j, int64_t value)
{
    if (!json_before_value(j, 0))
        return;
    ich_buf_printf(&j->buf, "%" PRId64, value);
    json_after_value(j);
}

void ich_json_bool(ich_json *j, int value)
{
    if (!json_before_value(j, 0))
        return;
    ich_buf_printf(&j->buf, value ? "true" : "false");
    json_after_value(j);
}

void ich_json_null(ich_json *j)
{
    if (!json_before_value(j, 0))
        return;
    ich_buf_printf(&j->buf, "null");
    json_after_value(j);
}

ich_status ich_json_finish(ich_json *j)
{
    if (!j)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "JSON: NULL writer");
    if (!j->misuse && !j->done)
        json_misuse(j, j->depth ? "unclosed objects or arrays" : "no value");
    if (j->misuse)
        return ich_fail(ICH_ERR_INTERNAL, "JSON writer misused: %s", j->error);
    if (j->buf.length == 0 || j->buf.data[j->buf.length - 1] != '\n')
        ich_buf_append(&j->buf, "\n", 1);
    if (j->buf.failed)
        return ich_fail(ICH_ERR_NO_MEMORY, "JSON: out of memory");
    return ICH_OK;
}

ich_status ich_json_write(ich_json *j, const char *path)
{
    ich_status status = ich_json_finish(j);
    if (status != ICH_OK)
        return status;
    if (!path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "JSON: NULL path");
    status = ich_make_parent_dirs(path);
    if (status != ICH_OK)
        return status;
    return ich_write_file_atomic(path, j->buf.data, j->buf.length, 0);
}

void ich_json_free(ich_json *j)
{
    if (j)
        ich_buf_free(&j->buf);
}

/* ---- the parser ---------------------------------------------------------- */

typedef struct jparser {
    const char *label; /* the source, in messages */
    const char *what;  /* the document, in messages ("the safetensors header") */
    uint64_t base;     /* offset of the text in its source */
    const uint8_t *s;  /* the text */
    size_t n;
    size_t pos;
    ich_json_node *nodes;
    int32_t count, capacity;
    char *pool;        /* decoded strings; never longer than their source */
    size_t pool_used;
} jparser;

/* Offset in the source of text position `pos`. */
static uint64_t source_offset(const jparser *p, size_t pos)
{
    return p->base + (uint64_t)pos;
}

static ich_status jfail_at(const jparser *p, size_t pos, const char *what)
{
    return ich_fail(ICH_ERR_FORMAT, "%s: byte %llu: %s in %s", p->label,
                    (unsigned long long)source_offset(p, pos), what, p->what);
}

static void skip_space(jparser *p)
{
    while (p->pos < p->n) {
        uint8_t c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static ich_status new_node(jparser *p, int type, int32_t *index)
{
    if (p->count == p->capacity) {
        int32_t capacity = p->capacity ? p->capacity * 2 : 64;
        ich_json_node *nodes = realloc(p->nodes, (size_t)capacity * sizeof *nodes);
        if (!nodes)
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory reading %s", p->label, p->what);
        p->nodes = nodes;
        p->capacity = capacity;
    }
    ich_json_node *node = &p->nodes[p->count];
    memset(node, 0, sizeof *node);
    node->type = type;
    node->first = node->next = -1;
    node->offset = source_offset(p, p->pos);
    *index = p->count++;
    return ICH_OK;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at pos (after "\u"); -1 when malformed. */
static int32_t read_hex4(const jparser *p, size_t pos)
{
    if (p->n - pos < 4)
        return -1;
    int32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        int h = hex_value(p->s[pos + i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* An escape sequence at p->pos (just after the backslash), appended to out. */
static ich_status parse_escape(jparser *p, char *out, size_t *written)
{
    size_t at = p->pos - 1;
    if (p->pos >= p->n)
        return jfail_at(p, at, "unterminated string");
    uint8_t c = p->s[p->pos++];
    static const char simple_from[] = "\"\\/bfnrt", simple_to[] = "\"\\/\b\f\n\r\t";
    const char *hit = c ? strchr(simple_from, c) : NULL;
    if (hit) {
        out[0] = simple_to[hit - simple_from];
        *written = 1;
        return ICH_OK;
    }
    if (c != 'u')
        return jfail_at(p, at, "invalid escape sequence");
    int32_t cp = read_hex4(p, p->pos);
    if (cp < 0)
        return jfail_at(p, at, "invalid \\u escape (four hex digits expected)");
    p->pos += 4;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return jfail_at(p, at, "unpaired UTF-16 low surrogate in a \\u escape");
    if (cp >= 0xd800 && cp <= 0xdbff) {
        int32_t low = -1;
        if (p->n - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u')
            low = read_hex4(p, p->pos + 2);
        if (low < 0xdc00 || low > 0xdfff)
            return jfail_at(p, at, "unpaired UTF-16 high surrogate in a \\u escape");
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    }
    if (cp == 0)
        return jfail_at(p, at, "NUL character (\\u0000) in a string");
    *written = ich_utf8_encode((uint32_t)cp, out);
    return ICH_OK;
}

/* A string at p->pos (the opening quote): decoded into the pool. */
static ich_status parse_string(jparser *p, const char **text, size_t *length)
{
    size_t start = p->pos++;
    char *out = p->pool + p->pool_used;
    size_t used = 0;
    for (;;) {
        if (p->pos >= p->n)
            return jfail_at(p, start, "unterminated string");
        uint8_t c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20)
            return jfail_at(p, p->pos, "control character in a string");
        if (c == '\\') {
            p->pos++;
            size_t written = 0;
            ich_status st = parse_escape(p, out + used, &written);
            if (st != ICH_OK)
                return st;
            used += written;
            continue;
        }
        size_t len = ich_utf8_sequence((const char *)p->s + p->pos, p->n - p->pos);
        if (len == 0)
            return jfail_at(p, p->pos, "invalid UTF-8 in a string");
        memcpy(out + used, p->s + p->pos, len);
        used += len;
        p->pos += len;
    }
    out[used] = '\0';
    p->pool_used += used + 1;
    *text = out;
    *length = used;
    return ICH_OK;
}

int ich_json_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A number by JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static ich_status parse_number(jparser *p, ich_json_node *node)
{
    size_t start = p->pos, i = p->pos;
    if (i < p->n && p->s[i] == '-')
        i++;
    if (i >= p->n || !ich_json_is_digit(p->s[i]))
        return jfail_at(p, start, "malformed number");
    if (p->s[i] == '0') {
        i++;
        if (i < p->n && ich_json_is_digit(p->s[i]))
            return jfail_at(p, start, "number with a leading zero");
    } else {
        while (i < p->n && ich_json_is_digit(p->s[i]))
            i++;
    }
    if (i < p->n && p->s[i] == '.') {
        i++;
        if (i >= p->n || !ich_json_is_digit(p->s[i]))
            return jfail_at(p, start, "malformed number");
        while (i < p->n && ich_json_is_digit(p->s[i]))
            i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (i >= p->n || !ich_json_is_digit(p->s[i]))
            return jfail_at(p, start, "malformed number");
        while (i < p->n && ich_json_is_digit(p->s[i]))
            i++;
    }
    node->text = (const char *)p->s + start;
    node->length = i - start;
    p->pos = i;
    return ICH_OK;
}

static ich_status parse_literal(jparser *p, const char *word)
{
    size_t len = strlen(word);
    if (p->n - p->pos < len || memcmp(p->s + p->pos, word, len) != 0)
        return jfail_at(p, p->pos, "invalid JSON value");
    p->pos += len;
    return ICH_OK;
}

static int compare_key_nodes(const void *a, const void *b)
{
    const ich_json_node *x = *(const ich_json_node *const *)a, *y = *(const ich_json_node *const *)b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    return x->key_offset < y->key_offset ? -1 : x->key_offset > y->key_offset;
}

/* Members of object `index` with equal names: the later one is reported. */
static ich_status check_duplicate_keys(jparser *p, int32_t index)
{
    int32_t count = p->nodes[index].count;
    if (count < 2)
        return ICH_OK;
    const ich_json_node **members = malloc((size_t)count * sizeof *members);
    if (!members)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory reading %s", p->label, p->what);
    int32_t k = 0;
    for (int32_t c = p->nodes[index].first; c >= 0; c = p->nodes[c].next)
        members[k++] = &p->nodes[c];
    qsort(members, (size_t)count, sizeof *members, compare_key_nodes);
    ich_status st = ICH_OK;
    for (int32_t i = 1; i < count && st == ICH_OK; i++) {
        if (strcmp(members[i - 1]->key, members[i]->key) == 0) {
            st = ich_fail(ICH_ERR_FORMAT, "%s: byte %llu: duplicate key \"%s\" in %s", p->label,
                          (unsigned long long)members[i]->key_offset, members[i]->key, p->what);
        }
    }
    free(members);
    return st;
}

static ich_status parse_value(jparser *p, int depth, int32_t *index);

/* Members or elements up to the closing bracket; p->pos is after the opening one. */
static ich_status parse_container(jparser *p, int depth, int32_t index, int object)
{
    char close = object ? '}' : ']';
    int32_t last = -1;
    skip_space(p);
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        return ICH_OK;
    }
    for (;;) {
        skip_space(p);
        const char *key = NULL;
        size_t key_length = 0;
        uint64_t key_offset = source_offset(p, p->pos);
        if (object) {
            if (p->pos >= p->n || p->s[p->pos] != '"')
                return jfail_at(p, p->pos, "expected a string key");
            ich_status st = parse_string(p, &key, &key_length);
            if (st != ICH_OK)
                return st;
            skip_space(p);
            if (p->pos >= p->n || p->s[p->pos] != ':')
                return jfail_at(p, p->pos, "expected ':' after a key");
            p->pos++;
        }
        int32_t child;
        ich_status st = parse_value(p, depth + 1, &child);
        if (st != ICH_OK)
            return st;
        p->nodes[child].key = key;
        p->nodes[child].key_offset = key_offset;
        if (last < 0)
            p->nodes[index].first = child;
        else
            p->nodes[last].next = child;
        last = child;
        p->nodes[index].count++;
        skip_space(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->n && p->s[p->pos] == close) {
            p->pos++;
            break;
        }
        return jfail_at(p, p->pos, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    return object ? check_duplicate_keys(p, index) : ICH_OK;
}

static ich_status parse_value(jparser *p, int depth, int32_t *index)
{
    skip_space(p);
    if (p->pos >= p->n)
        return jfail_at(p, p->pos, "unexpected end");
    if (depth > ICH_JSON_MAX_DEPTH)
        return jfail_at(p, p->pos, "nesting too deep");
    uint8_t c = p->s[p->pos];
    int type = c == '{'   ? ICH_JSON_OBJECT
               : c == '[' ? ICH_JSON_ARRAY
               : c == '"' ? ICH_JSON_STRING
               : c == 't' ? ICH_JSON_TRUE
               : c == 'f' ? ICH_JSON_FALSE
               : c == 'n' ? ICH_JSON_NULL
                          : ICH_JSON_NUMBER;
    ich_status st = new_node(p, type, index);
    if (st != ICH_OK)
        return st;
    int32_t i = *index;
    switch (type) {
    case ICH_JSON_OBJECT:
    case ICH_JSON_ARRAY:
        p->pos++;
        return parse_container(p, depth, i, type == ICH_JSON_OBJECT);
    case ICH_JSON_STRING: {
        const char *text = NULL;
        size_t length = 0;
        st = parse_string(p, &text, &length);
        p->nodes[i].text = text;
        p->nodes[i].length = length;
        return st;
    }
    case ICH_JSON_TRUE:
        return parse_literal(p, "true");
    case ICH_JSON_FALSE:
        return parse_literal(p, "false");
    case ICH_JSON_NULL:
        return parse_literal(p, "null");
    default:
        return parse_number(p, &p->nodes[i]);
    }
}

ich_status ich_json_parse(const char *label, const char *what, const void *text, size_t n,
                          uint64_t base, ich_json_doc *doc)
{
    if (!doc)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_json_parse: NULL doc");
    memset(doc, 0, sizeof *doc);
    if (!text && n > 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_json_parse: NULL text");
    jparser p = {.label = label ? label : "(memory)", .what = what ? what : "JSON",
                 .base = base, .s = text, .n = n};
    /* A decoded string and its NUL are shorter than its quoted source, so
     * one block the size of the text holds them all. */
    p.pool = malloc(n + 1);
    if (!p.pool)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory reading %s", p.label, p.what);
    doc->pool = p.pool;
    int32_t root = -1;
    ich_status st = parse_value(&p, 0, &root);
    doc->nodes = p.nodes;
    doc->count = p.count;
    if (st != ICH_OK)
        return st;
    skip_space(&p);
    if (p.pos != p.n)
        return jfail_at(&p, p.pos, "trailing characters after the JSON object");
    return ICH_OK;
}

void ich_json_doc_free(ich_json_doc *doc)
{
    if (!doc)
        return;
    free(doc->nodes);
    free(doc->pool);
    memset(doc, 0, sizeof *doc);
}
