/* safetensors reading and writing: the header parsed by core/json.c's
 * strict parser, validation of the tensor table, and the writer. See
 * safetensors.h for the format and the rules the reader enforces. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "core/json.h"
#include "core/utf8.h"
#include "nn/safetensors.h"

/* ---- dtypes ------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtype_table[ICH_ST_DTYPE_COUNT] = {
    [ICH_ST_BOOL] = {"BOOL", 1},       [ICH_ST_U8] = {"U8", 1},
    [ICH_ST_I8] = {"I8", 1},           [ICH_ST_F8_E4M3] = {"F8_E4M3", 1},
    [ICH_ST_F8_E5M2] = {"F8_E5M2", 1}, [ICH_ST_I16] = {"I16", 2},
    [ICH_ST_U16] = {"U16", 2},         [ICH_ST_F16] = {"F16", 2},
    [ICH_ST_BF16] = {"BF16", 2},       [ICH_ST_I32] = {"I32", 4},
    [ICH_ST_U32] = {"U32", 4},         [ICH_ST_F32] = {"F32", 4},
    [ICH_ST_I64] = {"I64", 8},         [ICH_ST_U64] = {"U64", 8},
    [ICH_ST_F64] = {"F64", 8},
};

const char *ich_st_dtype_name(ich_st_dtype dtype)
{
    return (unsigned)dtype < ICH_ST_DTYPE_COUNT ? dtype_table[dtype].name : NULL;
}

size_t ich_st_dtype_size(ich_st_dtype dtype)
{
    return (unsigned)dtype < ICH_ST_DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

static int dtype_from_name(const char *name, ich_st_dtype *out)
{
    for (int i = 0; i < ICH_ST_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (ich_st_dtype)i;
            return 1;
        }
    }
    return 0;
}

int64_t ich_st_element_count(int32_t ndim, const int64_t *shape)
{
    int64_t count = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] != 0 && count > INT64_MAX / shape[i])
            return -1;
        count *= shape[i];
    }
    return count;
}

/* ---- byte order --------------------------------------------------------- */

static int host_is_big_endian(void)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return 1;
#else
    return 0;
#endif
}

/* Reverse the bytes of each `element`-byte item (little <-> big endian). */
static void swap_elements(uint8_t *data, size_t nbytes, size_t element)
{
    if (element < 2)
        return;
    for (size_t i = 0; i + element <= nbytes; i += element) {
        for (size_t a = i, b = i + element - 1; a < b; a++, b--) {
            uint8_t t = data[a];
            data[a] = data[b];
            data[b] = t;
        }
    }
}

void ich_st_tensor_copy(const ich_st_tensor *tensor, void *dst)
{
    if (tensor->nbytes == 0)
        return;
    memcpy(dst, tensor->data, tensor->nbytes);
    if (host_is_big_endian())
        swap_elements(dst, tensor->nbytes, ich_st_dtype_size(tensor->dtype));
}

static uint64_t read_u64_le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void write_u64_le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)(v & 0xff);
}

/* ---- the tensor table --------------------------------------------------- */


static ich_status schema_fail(const char *label, uint64_t offset, const char *fmt, const char *name)
{
    char what[256];
    snprintf(what, sizeof what, fmt, name);
    return ich_fail(ICH_ERR_FORMAT, "%s: byte %llu: %s", label, (unsigned long long)offset, what);
}

/* A JSON number that is a non-negative integer below 2^63. */
static int node_integer(const ich_json_node *node, int64_t *value)
{
    if (node->type != ICH_JSON_NUMBER || node->length == 0 || node->length > 19)
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i < node->length; i++) {
        uint8_t c = (uint8_t)node->text[i];
        if (!ich_json_is_digit(c))
            return 0;
        if (v > (INT64_MAX - (c - '0')) / 10)
            return 0;
        v = v * 10 + (c - '0');
    }
    *value = v;
    return 1;
}

static ich_status read_metadata(ich_st_file *file, const ich_json_node *nodes, const ich_json_node *meta)
{
    if (meta->type != ICH_JSON_OBJECT)
        return schema_fail(file->path, meta->offset, "\"__metadata__\" is not an object%s", "");
    file->meta = calloc(meta->count ? (size_t)meta->count : 1, sizeof *file->meta);
    if (!file->meta)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", file->path);
    for (int32_t c = meta->first; c >= 0; c = nodes[c].next) {
        if (nodes[c].type != ICH_JSON_STRING)
            return schema_fail(file->path, nodes[c].offset,
                               "metadata \"%s\" is not a string", nodes[c].key);
        file->meta[file->meta_count].key = nodes[c].key;
        file->meta[file->meta_count].value = nodes[c].text;
        file->meta_count++;
    }
    return ICH_OK;
}

static ich_status read_shape(const char *label, const ich_json_node *nodes, const ich_json_node *entry,
                             const ich_json_node *shape, ich_st_tensor *t)
{
    if (shape->type != ICH_JSON_ARRAY)
        return schema_fail(label, shape->offset, "tensor \"%s\": shape is not an array", entry->key);
    if (shape->count > ICH_ST_MAX_DIMS)
        return ich_fail(ICH_ERR_UNSUPPORTED, "%s: byte %llu: tensor \"%s\" has %d dimensions (at most %d supported)",
                        label, (unsigned long long)shape->offset, entry->key, (int)shape->count,
                        ICH_ST_MAX_DIMS);
    t->ndim = 0;
    for (int32_t c = shape->first; c >= 0; c = nodes[c].next) {
        if (!node_integer(&nodes[c], &t->shape[t->ndim]))
            return schema_fail(label, nodes[c].offset,
                               "tensor \"%s\": a shape entry is not a non-negative integer", entry->key);
        t->ndim++;
    }
    return ICH_OK;
}

static ich_status read_offsets(const char *label, const ich_json_node *nodes, const ich_json_node *entry,
                               const ich_json_node *offsets, uint64_t *begin, uint64_t *end)
{
    int64_t v[2];
    int32_t k = 0;
    if (offsets->type != ICH_JSON_ARRAY || offsets->count != 2)
        return schema_fail(label, offsets->offset,
                           "tensor \"%s\": data_offsets is not an array of two integers", entry->key);
    for (int32_t c = offsets->first; c >= 0; c = nodes[c].next) {
        if (!node_integer(&nodes[c], &v[k++]))
            return schema_fail(label, nodes[c].offset,
                               "tensor \"%s\": data_offsets holds something else than a non-negative integer",
                               entry->key);
    }
    if (v[1] < v[0])
        return schema_fail(label, offsets->offset, "tensor \"%s\": data_offsets end before they begin",
                           entry->key);
    *begin = (uint64_t)v[0];
    *end = (uint64_t)v[1];
    return ICH_OK;
}

/* One tensor entry {"dtype": ..., "shape": [...], "data_offsets": [b, e]}. */
static ich_status read_tensor(ich_st_file *file, const ich_json_node *nodes, const ich_json_node *entry,
                              uint64_t data_size, ich_st_tensor *t, uint64_t *end)
{
    const char *label = file->path;
    if (entry->type != ICH_JSON_OBJECT)
        return schema_fail(label, entry->offset, "tensor \"%s\" is not an object", entry->key);
    if (entry->key[0] == '\0')
        return schema_fail(label, entry->key_offset, "a tensor has an empty name%s", "");
    const ich_json_node *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (int32_t c = entry->first; c >= 0; c = nodes[c].next) {
        const ich_json_node *m = &nodes[c];
        if (strcmp(m->key, "dtype") == 0)
            dtype = m;
        else if (strcmp(m->key, "shape") == 0)
            shape = m;
        else if (strcmp(m->key, "data_offsets") == 0)
            offsets = m;
        else
            return schema_fail(label, m->key_offset, "tensor \"%s\": unknown field", entry->key);
    }
    if (!dtype || !shape || !offsets)
        return schema_fail(label, entry->offset,
                           "tensor \"%s\" lacks one of dtype, shape and data_offsets", entry->key);
    t->name = entry->key;
    if (dtype->type != ICH_JSON_STRING || !dtype_from_name(dtype->text, &t->dtype))
        return schema_fail(label, dtype->offset, "tensor \"%s\": unknown dtype", entry->key);
    ich_status st = read_shape(label, nodes, entry, shape, t);
    if (st == ICH_OK)
        st = read_offsets(label, nodes, entry, offsets, &t->begin, end);
    if (st != ICH_OK)
        return st;
    int64_t count = ich_st_element_count(t->ndim, t->shape);
    size_t element = ich_st_dtype_size(t->dtype);
    if (count < 0 || (uint64_t)count > UINT64_MAX / element)
        return schema_fail(label, shape->offset, "tensor \"%s\": shape too large", entry->key);
    uint64_t nbytes = (uint64_t)count * element;
    if (nbytes != *end - t->begin) {
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: byte %llu: tensor \"%s\": shape and dtype make %llu bytes, data_offsets [%llu, %llu] span %llu",
                        label, (unsigned long long)offsets->offset, entry->key,
                        (unsigned long long)nbytes, (unsigned long long)t->begin,
                        (unsigned long long)*end, (unsigned long long)(*end - t->begin));
    }
    if (*end > data_size) {
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: byte %llu: tensor \"%s\": data_offsets [%llu, %llu] outside the data section (%llu bytes; file truncated?)",
                        label, (unsigned long long)offsets->offset, entry->key,
                        (unsigned long long)t->begin, (unsigned long long)*end,
                        (unsigned long long)data_size);
    }
    t->nbytes = (size_t)nbytes;
    return ICH_OK;
}

typedef struct span {
    uint64_t begin, end;
    int32_t index;
} span;

static int compare_spans(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->index - y->index;
}

/* The tensors must cover [0, data_size) exactly, in any order. */
static ich_status check_tiling(ich_st_file *file, span *spans, uint64_t data_size)
{
    qsort(spans, (size_t)file->count, sizeof *spans, compare_spans);
    uint64_t expected = 0;
    uint64_t data_start = 8 + file->header_size;
    for (int32_t i = 0; i < file->count; i++) {
        const char *name = file->tensors[spans[i].index].name;
        if (spans[i].begin < expected) {
            const char *other = file->tensors[spans[i - 1].index].name;
            return ich_fail(ICH_ERR_FORMAT,
                            "%s: tensor \"%s\" (data_offsets [%llu, %llu]) overlaps tensor \"%s\"",
                            file->path, name, (unsigned long long)spans[i].begin,
                            (unsigned long long)spans[i].end, other);
        }
        if (spans[i].begin > expected) {
            return ich_fail(ICH_ERR_FORMAT,
                            "%s: byte %llu: %llu bytes of the data section belong to no tensor (before \"%s\")",
                            file->path, (unsigned long long)(data_start + expected),
                            (unsigned long long)(spans[i].begin - expected), name);
        }
        expected = spans[i].end;
    }
    if (expected != data_size) {
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: byte %llu: %llu bytes after the last tensor's data belong to no tensor",
                        file->path, (unsigned long long)(data_start + expected),
                        (unsigned long long)(data_size - expected));
    }
    return ICH_OK;
}

/* Fill file->tensors and file->meta from the root object. */
static ich_status read_table(ich_st_file *file, const ich_json_node *nodes, const ich_json_node *root)
{
    uint64_t data_size = file->size - 8 - file->header_size;
    file->tensors = calloc(root->count ? (size_t)root->count : 1, sizeof *file->tensors);
    span *spans = calloc(root->count ? (size_t)root->count : 1, sizeof *spans);
    if (!file->tensors || !spans) {
        free(spans);
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", file->path);
    }
    ich_status st = ICH_OK;
    const uint8_t *data = file->bytes + 8 + file->header_size;
    for (int32_t c = root->first; c >= 0 && st == ICH_OK; c = nodes[c].next) {
        if (strcmp(nodes[c].key, "__metadata__") == 0) {
            st = read_metadata(file, nodes, &nodes[c]);
            continue;
        }
        ich_st_tensor *t = &file->tensors[file->count];
        uint64_t end = 0;
        st = read_tensor(file, nodes, &nodes[c], data_size, t, &end);
        if (st != ICH_OK)
            break;
        t->data = data + t->begin;
        spans[file->count] = (span){t->begin, end, file->count};
        file->count++;
    }
    if (st == ICH_OK)
        st = check_tiling(file, spans, data_size);
    free(spans);
    return st;
}

/* ---- reading ------------------------------------------------------------ */

static ich_status parse_owned(ich_st_file *file)
{
    if (file->size < 8) {
        return ich_fail(ICH_ERR_FORMAT, "%s: %zu bytes: too short for a safetensors file (8-byte header length missing)",
                        file->path, file->size);
    }
    uint64_t n = read_u64_le(file->bytes);
    if (n > file->size - 8) {
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: byte 0: header length %llu runs past the end of the file (%zu bytes): truncated or not safetensors",
                        file->path, (unsigned long long)n, file->size);
    }
    if (n > ICH_ST_MAX_HEADER) {
        return ich_fail(ICH_ERR_FORMAT, "%s: byte 0: header length %llu above the limit of %llu bytes",
                        file->path, (unsigned long long)n, (unsigned long long)ICH_ST_MAX_HEADER);
    }
    if (n < 2 || file->bytes[8] != '{') {
        return ich_fail(ICH_ERR_FORMAT, "%s: byte 8: the header is not a JSON object: not a safetensors file",
                        file->path);
    }
    file->header_size = n;
    /* Names and metadata values point into the parsed doc, kept with the
     * file until ich_st_free. The header follows 8 length bytes. */
    ich_json_doc *doc = calloc(1, sizeof *doc);
    if (!doc)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", file->path);
    file->internal = doc;
    ich_status st = ich_json_parse(file->path, "the safetensors header", file->bytes + 8, (size_t)n,
                                   8, doc);
    if (st != ICH_OK)
        return st;
    return read_table(file, doc->nodes, &doc->nodes[0]);
}

static ich_status set_path(ich_st_file *file, const char *label)
{
    memset(file, 0, sizeof *file);
    file->path = strdup(label ? label : "(memory)");
    return file->path ? ICH_OK : ich_fail(ICH_ERR_NO_MEMORY, "out of memory");
}

ich_status ich_st_parse(const char *label, const void *bytes, size_t size, ich_st_file *file)
{
    if (!file)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_st_parse: NULL file");
    ich_status st = set_path(file, label);
    if (st != ICH_OK)
        return st;
    if (!bytes && size > 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_st_parse: NULL bytes");
    file->bytes = malloc(size ? size : 1);
    if (!file->bytes)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory (%zu bytes)", file->path, size);
    if (size)
        memcpy(file->bytes, bytes, size);
    file->size = size;
    return parse_owned(file);
}

/* The whole file into memory (works for pipes and /proc files too). */
static ich_status read_whole(FILE *f, ich_st_file *file)
{
    struct stat sb;
    size_t capacity = 1 << 16;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        if ((uint64_t)sb.st_size > ICH_ST_MAX_FILE)
            return ich_fail(ICH_ERR_FORMAT, "%s: %llu bytes: larger than any model or checkpoint "
                                            "libich reads (at most %llu bytes)",
                            file->path, (unsigned long long)sb.st_size,
                            (unsigned long long)ICH_ST_MAX_FILE);
        capacity = (size_t)sb.st_size + 1;
    }
    for (;;) {
        if (file->size > ICH_ST_MAX_FILE)
            return ich_fail(ICH_ERR_FORMAT, "%s: larger than any model or checkpoint libich "
                                            "reads (at most %llu bytes)",
                            file->path, (unsigned long long)ICH_ST_MAX_FILE);
        if (!file->bytes || file->size == capacity) {
            if (file->bytes)
                capacity *= 2;
            uint8_t *bytes = realloc(file->bytes, capacity);
            if (!bytes)
                return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory (%zu bytes)", file->path, capacity);
            file->bytes = bytes;
        }
        size_t got = fread(file->bytes + file->size, 1, capacity - file->size, f);
        file->size += got;
        if (got == 0) {
            if (ferror(f))
                return ich_fail(ICH_ERR_IO, "%s: cannot read: %s", file->path, strerror(errno));
            return ICH_OK;
        }
    }
}

ich_status ich_st_read(const char *path, ich_st_file *file)
{
    if (!file)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_st_read: NULL file");
    if (!path) {
        memset(file, 0, sizeof *file);
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_st_read: NULL path");
    }
    ich_status st = set_path(file, path);
    if (st != ICH_OK)
        return st;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return ich_fail(ICH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    st = read_whole(f, file);
    fclose(f);
    return st == ICH_OK ? parse_owned(file) : st;
}

void ich_st_free(ich_st_file *file)
{
    if (!file)
        return;
    ich_json_doc_free(file->internal);
    free(file->internal);
    free(file->tensors);
    free(file->meta);
    free(file->bytes);
    free(file->path);
    memset(file, 0, sizeof *file);
}

int32_t ich_st_find(const ich_st_file *file, const char *name)
{
    if (!file || !name)
        return -1;
    for (int32_t i = 0; i < file->count; i++)
        if (strcmp(file->tensors[i].name, name) == 0)
            return i;
    return -1;
}

const char *ich_st_metadata(const ich_st_file *file, const char *key)
{
    if (!file || !key)
        return NULL;
    for (int32_t i = 0; i < file->meta_count; i++)
        if (strcmp(file->meta[i].key, key) == 0)
            return file->meta[i].value;
    return NULL;
}

/* ---- writing ------------------------------------------------------------ */

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first of `count` strings that appears twice, or NULL. */
static ich_status find_duplicate(const char **names, int32_t count, const char **duplicate)
{
    *duplicate = NULL;
    if (count < 2)
        return ICH_OK;
    const char **sorted = malloc((size_t)count * sizeof *sorted);
    if (!sorted)
        return ich_fail(ICH_ERR_NO_MEMORY, "out of memory");
    memcpy(sorted, names, (size_t)count * sizeof *sorted);
    qsort(sorted, (size_t)count, sizeof *sorted, compare_strings);
    for (int32_t i = 1; i < count && !*duplicate; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            *duplicate = sorted[i];
    free(sorted);
    return ICH_OK;
}

static ich_status check_tensor(const char *label, const ich_st_tensor *t)
{
    if (!t->name || !t->name[0] || !ich_utf8_valid(t->name) || strcmp(t->name, "__metadata__") == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: tensor name empty, reserved or not UTF-8", label);
    if (!ich_st_dtype_name(t->dtype) || t->ndim < 0 || t->ndim > ICH_ST_MAX_DIMS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: tensor \"%s\": bad dtype or rank", label, t->name);
    int64_t count = ich_st_element_count(t->ndim, t->shape);
    if (count < 0 || (uint64_t)count > SIZE_MAX / ich_st_dtype_size(t->dtype) ||
        (size_t)count * ich_st_dtype_size(t->dtype) != t->nbytes) {
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: tensor \"%s\": %zu bytes do not fit its shape and dtype",
                        label, t->name, t->nbytes);
    }
    if (t->nbytes > 0 && !t->data)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: tensor \"%s\": NULL data", label, t->name);
    return ICH_OK;
}

static ich_status check_inputs(const char *label, const ich_st_tensor *tensors, int32_t count,
                               const ich_st_meta *meta, int32_t meta_count)
{
    if (count < 0 || meta_count < 0 || (count > 0 && !tensors) || (meta_count > 0 && !meta))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: bad tensor or metadata list", label);
    int32_t most = count > meta_count ? count : meta_count;
    const char **names = malloc((most ? (size_t)most : 1) * sizeof *names);
    if (!names)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", label);
    ich_status st = ICH_OK;
    for (int32_t i = 0; i < count && st == ICH_OK; i++) {
        st = check_tensor(label, &tensors[i]);
        names[i] = tensors[i].name;
    }
    const char *dup = NULL;
    if (st == ICH_OK)
        st = find_duplicate(names, count, &dup);
    if (st == ICH_OK && dup)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: two tensors named \"%s\"", label, dup);
    for (int32_t i = 0; i < meta_count && st == ICH_OK; i++) {
        if (!meta[i].key || !meta[i].value || !ich_utf8_valid(meta[i].key) || !ich_utf8_valid(meta[i].value))
            st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: metadata entry %d is NULL or not UTF-8",
                          label, (int)i);
        names[i] = meta[i].key;
    }
    if (st == ICH_OK)
        st = find_duplicate(names, meta_count, &dup);
    if (st == ICH_OK && dup)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: two metadata entries \"%s\"", label, dup);
    free(names);
    return st;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes. */
static void build_header(ich_buf *h, const ich_st_tensor *tensors, int32_t count,
                         const ich_st_meta *meta, int32_t meta_count)
{
    ich_buf_append(h, "{", 1);
    if (meta_count > 0) {
        ich_buf_append(h, "\"__metadata__\":{", 16);
        for (int32_t i = 0; i < meta_count; i++) {
            if (i)
                ich_buf_append(h, ",", 1);
            ich_json_append_string(h, meta[i].key);
            ich_buf_append(h, ":", 1);
            ich_json_append_string(h, meta[i].value);
        }
        ich_buf_append(h, "}", 1);
    }
    uint64_t offset = 0;
    for (int32_t i = 0; i < count; i++) {
        const ich_st_tensor *t = &tensors[i];
        if (i || meta_count > 0)
            ich_buf_append(h, ",", 1);
        ich_json_append_string(h, t->name);
        ich_buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", ich_st_dtype_name(t->dtype));
        for (int32_t d = 0; d < t->ndim; d++)
            ich_buf_printf(h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        ich_buf_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                       (unsigned long long)(offset + t->nbytes));
        offset += t->nbytes;
    }
    ich_buf_append(h, "}", 1);
    while (h->length % 8 != 0 && !h->failed)
        ich_buf_append(h, " ", 1);
}

ich_status ich_st_serialize(const char *label, const ich_st_tensor *tensors, int32_t count,
                            const ich_st_meta *meta, int32_t meta_count, uint8_t **out,
                            size_t *out_size)
{
    if (!label)
        label = "(memory)";
    if (!out || !out_size)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL output", label);
    *out = NULL;
    *out_size = 0;
    ich_status st = check_inputs(label, tensors, count, meta, meta_count);
    if (st != ICH_OK)
        return st;
    ich_buf header = {0};
    build_header(&header, tensors, count, meta, meta_count);
    if (header.failed) {
        ich_buf_free(&header);
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", label);
    }
    size_t total = 8 + header.length;
    for (int32_t i = 0; i < count; i++) {
        if (tensors[i].nbytes > SIZE_MAX - total) {
            ich_buf_free(&header);
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: tensors too large", label);
        }
        total += tensors[i].nbytes;
    }
    uint8_t *bytes = malloc(total);
    if (!bytes) {
        ich_buf_free(&header);
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory (%zu bytes)", label, total);
    }
    write_u64_le(bytes, header.length);
    memcpy(bytes + 8, header.data, header.length);
    size_t at = 8 + header.length;
    ich_buf_free(&header);
    for (int32_t i = 0; i < count; i++) {
        if (tensors[i].nbytes == 0)
            continue;
        memcpy(bytes + at, tensors[i].data, tensors[i].nbytes);
        if (host_is_big_endian())
            swap_elements(bytes + at, tensors[i].nbytes, ich_st_dtype_size(tensors[i].dtype));
        at += tensors[i].nbytes;
    }
    *out = bytes;
    *out_size = total;
    return ICH_OK;
}

ich_status ich_st_write(const char *path, const ich_st_tensor *tensors, int32_t count,
                        const ich_st_meta *meta, int32_t meta_count)
{
    if (!path || !path[0])
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_st_write: NULL or empty path");
    uint8_t *bytes = NULL;
    size_t size = 0;
    ich_status st = ich_st_serialize(path, tensors, count, meta, meta_count, &bytes, &size);
    if (st == ICH_OK)
        st = ich_write_file_atomic(path, bytes, size, 1);
    free(bytes);
    return st;
}
