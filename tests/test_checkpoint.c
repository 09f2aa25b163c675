/* Tests for the safetensors files of <ich/model.h> and <ich/optim.h>:
 * ich_model_save/load, ich_model_load_weights, ich_checkpoint_save/load.
 *
 * The files are checked against the format with an independent writer in
 * this test (hand-built JSON headers), and every corruption the reader must
 * catch is produced from a valid file: the status is the documented one,
 * the message names the file, and a failed load leaves the model as it
 * was. A fuzz-like loop truncates and flips bytes of a checkpoint: never a
 * crash (run under the ASan build), always an error or a valid model. */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

/* Small, with every kind of tensor: 4-D, 1-D and 2-D floats, batch norm's
 * int64 scalar, and dropout (its step counters are metadata). */
static const char SPEC[] = "input 2x6x6, conv 3 3 pad 1, batchnorm, relu, maxpool 2, flatten, "
                           "dropout 0.5, linear 4";

static ich_model *make_model(uint64_t seed)
{
    ich_model *model = NULL;
    assert_int_equal(ich_model_create(SPEC, &model), ICH_OK);
    assert_int_equal(ich_model_init_weights(model, seed), ICH_OK);
    return model;
}

static void random_images(float *x, size_t count, uint32_t seed)
{
    uint32_t state = seed;
    for (size_t i = 0; i < count; i++)
        x[i] = (float)(tu_rand(&state) % 2001) / 1000.0f - 1.0f;
}

/* One training step with Adam (changes weights, running stats, the batch
 * norm counter, dropout's step and the optimizer state). */
static void train_step(ich_model *model, ich_optimizer *opt)
{
    float x[2 * 2 * 6 * 6], logits[2 * 4], grad[2 * 4], loss;
    float targets[8] = {1, 0, 0, 1, 0, 1, 1, 0};
    random_images(x, sizeof x / sizeof *x, 99);
    assert_int_equal(ich_model_set_training(model, 1), ICH_OK);
    assert_int_equal(ich_model_zero_grad(model), ICH_OK);
    assert_int_equal(ich_model_forward(model, x, 2, logits, 8), ICH_OK);
    assert_int_equal(ich_loss_bce_with_logits(logits, targets, 2, 4, NULL, NULL, &loss, grad), ICH_OK);
    assert_int_equal(ich_model_backward(model, grad, 8), ICH_OK);
    if (opt)
        assert_int_equal(ich_optimizer_step(opt), ICH_OK);
    assert_int_equal(ich_model_set_training(model, 0), ICH_OK);
}

static void eval_forward(ich_model *model, float *logits)
{
    float x[2 * 2 * 6 * 6];
    random_images(x, sizeof x / sizeof *x, 7);
    assert_int_equal(ich_model_set_training(model, 0), ICH_OK);
    assert_int_equal(ich_model_forward(model, x, 2, logits, 8), ICH_OK);
}

static size_t view_bytes(const ich_tensor_view *v)
{
    return (size_t)v->count * (v->type == ICH_TENSOR_I64 ? 8 : 4);
}

/* Same tensors (names, types, shapes, bytes) in both models? */
static void assert_same_tensors(const ich_model *a, const ich_model *b)
{
    assert_int_equal(ich_model_tensor_count(a), ich_model_tensor_count(b));
    for (int32_t i = 0; i < ich_model_tensor_count(a); i++) {
        ich_tensor_view va = {.size = sizeof va}, vb = {.size = sizeof vb};
        assert_int_equal(ich_model_tensor(a, i, &va), ICH_OK);
        assert_int_equal(ich_model_tensor(b, i, &vb), ICH_OK);
        assert_string_equal(va.name, vb.name);
        assert_int_equal(va.type, vb.type);
        assert_int_equal(va.ndim, vb.ndim);
        assert_memory_equal(va.dims, vb.dims, sizeof va.dims);
        assert_memory_equal(va.data, vb.data, view_bytes(&va));
    }
}

/* All tensor bytes of a model, concatenated (to see that a failed load
 * changed nothing). */
static uint8_t *snapshot(const ich_model *model, size_t *size)
{
    size_t total = 0;
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_model_tensor(model, i, &v), ICH_OK);
        total += view_bytes(&v);
    }
    uint8_t *bytes = malloc(total), *at = bytes;
    assert_non_null(bytes);
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_model_tensor(model, i, &v), ICH_OK);
        memcpy(at, v.data, view_bytes(&v));
        at += view_bytes(&v);
    }
    *size = total;
    return bytes;
}

static void assert_error_names(ich_status got, ich_status want, const char *path)
{
    if (got != want)
        fail_msg("expected %s, got %s: %s", ich_status_string(want), ich_status_string(got),
                 ich_last_error());
    if (!strstr(ich_last_error(), path))
        fail_msg("message does not name %s: %s", path, ich_last_error());
}

/* ---- An independent writer: headers built by hand ----------------------- */

typedef struct craft {
    char header[16384];
    size_t hlen;
    uint8_t data[65536];
    size_t dlen;
} craft;

static void craft_begin(craft *c, const char *metadata_json)
{
    c->hlen = (size_t)snprintf(c->header, sizeof c->header, "{");
    if (metadata_json)
        c->hlen += (size_t)snprintf(c->header + c->hlen, sizeof c->header - c->hlen,
                                    "\"__metadata__\":%s", metadata_json);
    c->dlen = 0;
}

/* Add a tensor entry with explicit offsets (data appended separately). */
static void craft_entry(craft *c, const char *name, const char *dtype, const char *shape_json,
                        size_t begin, size_t end)
{
    c->hlen += (size_t)snprintf(c->header + c->hlen, sizeof c->header - c->hlen,
                                "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                                c->hlen > 1 ? "," : "", name, dtype, shape_json, begin, end);
}

/* Add a tensor with its bytes at the end of the data. */
static void craft_tensor(craft *c, const char *name, const char *dtype, const char *shape_json,
                         const void *bytes, size_t nbytes)
{
    craft_entry(c, name, dtype, shape_json, c->dlen, c->dlen + nbytes);
    assert_true(c->dlen + nbytes <= sizeof c->data);
    memcpy(c->data + c->dlen, bytes, nbytes);
    c->dlen += nbytes;
}

static void shape_json(const ich_tensor_view *v, char *out, size_t size)
{
    size_t at = (size_t)snprintf(out, size, "[");
    for (int32_t d = 0; d < v->ndim; d++)
        at += (size_t)snprintf(out + at, size - at, "%s%lld", d ? "," : "", (long long)v->dims[d]);
    snprintf(out + at, size - at, "]");
}

/* Every tensor of `model` except `skip` and `skip2` (NULL: none), in
 * state_dict order. */
static void craft_model2(craft *c, const ich_model *model, const char *skip, const char *skip2)
{
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_model_tensor(model, i, &v), ICH_OK);
        if ((skip && strcmp(v.name, skip) == 0) || (skip2 && strcmp(v.name, skip2) == 0))
            continue;
        char shape[128];
        shape_json(&v, shape, sizeof shape);
        craft_tensor(c, v.name, v.type == ICH_TENSOR_I64 ? "I64" : "F32", shape, v.data,
                     view_bytes(&v));
    }
}

static void craft_model(craft *c, const ich_model *model, const char *skip)
{
    craft_model2(c, model, skip, NULL);
}

/* Close the header, pad it, write the file. `length_delta` is added to the
 * header length field (to corrupt it). */
static void craft_write(craft *c, const char *path, int64_t length_delta)
{
    c->hlen += (size_t)snprintf(c->header + c->hlen, sizeof c->header - c->hlen, "}");
    while (c->hlen % 8)
        c->header[c->hlen++] = ' ';
    uint64_t n = (uint64_t)((int64_t)c->hlen + length_delta);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(n >> (8 * i));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(len, 1, 8, f), 8);
    assert_int_equal(fwrite(c->header, 1, c->hlen, f), c->hlen);
    if (c->dlen)
        assert_int_equal(fwrite(c->data, 1, c->dlen, f), c->dlen);
    assert_int_equal(fclose(f), 0);
}

/* ---- Round trips -------------------------------------------------------- */

static void test_model_round_trip(void **state)
{
    const char *dir = *state;
    char path[4096];
    tu_join(path, sizeof path, dir, "model.safetensors");
    ich_model *model = make_model(3);
    train_step(model, NULL); /* running stats, counter and dropout step change */
    assert_int_equal(ich_model_set_metadata(model, "ich.labels", "any,epidural,\"quoted\"\\"), ICH_OK);
    assert_int_equal(ich_model_set_metadata(model, "ich.metrics", "{\"auc\": 0.5, \"\\u00e9\": \"\xc3\xa9\n\"}"),
                     ICH_OK);
    assert_int_equal(ich_model_save(model, path), ICH_OK);

    ich_model *loaded = NULL;
    assert_int_equal(ich_model_load(path, &loaded), ICH_OK);
    assert_string_equal(ich_model_spec(loaded), ich_model_spec(model));
    assert_same_tensors(model, loaded);
    /* every metadata entry comes back (dropout steps and seed included) */
    for (int32_t i = 0; i < ich_model_metadata_count(model); i++) {
        const char *key = ich_model_metadata_key(model, i);
        const char *value = ich_model_metadata(loaded, key);
        if (!value)
            fail_msg("metadata %s lost", key);
        assert_string_equal(value, ich_model_metadata(model, key));
    }
    assert_non_null(ich_model_metadata(loaded, "ich.steps"));
    assert_string_equal(ich_model_metadata(loaded, "ich.steps"), "1");
    float a[8], b[8];
    eval_forward(model, a);
    eval_forward(loaded, b);
    assert_memory_equal(a, b, sizeof a);
    ich_model_free(loaded);
    ich_model_free(model);
}

/* The file itself, read here without libich: header length, padding, the
 * metadata and every tensor's bytes at its offsets, in state_dict order. */
static void test_file_layout(void **state)
{
    const char *dir = *state;
    char path[4096];
    tu_join(path, sizeof path, dir, "layout.safetensors");
    ich_model *model = make_model(5);
    assert_int_equal(ich_model_save(model, path), ICH_OK);
    size_t size = 0;
    uint8_t *bytes = tu_read_file(path, &size);
    assert_non_null(bytes);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | bytes[i];
    assert_true(n % 8 == 0 && 8 + n <= size);
    assert_int_equal(bytes[8], '{');
    char *header = strndup((const char *)bytes + 8, n);
    assert_non_null(strstr(header, "\"format\":\"pt\""));
    assert_non_null(strstr(header, "\"ich.spec\":\""));
    size_t at = 8 + n;
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_model_tensor(model, i, &v), ICH_OK);
        char shape[128], entry[512];
        shape_json(&v, shape, sizeof shape);
        snprintf(entry, sizeof entry, "\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                 v.name, v.type == ICH_TENSOR_I64 ? "I64" : "F32", shape, at - 8 - (size_t)n,
                 at - 8 - (size_t)n + view_bytes(&v));
        if (!strstr(header, entry))
            fail_msg("entry %s not in header %s", entry, header);
        assert_memory_equal(bytes + at, v.data, view_bytes(&v));
        at += view_bytes(&v);
    }
    assert_int_equal(at, size);
    free(header);
    free(bytes);
    ich_model_free(model);
}

static void test_load_weights(void **state)
{
    const char *dir = *state;
    char path[4096], extra[4096];
    tu_join(path, sizeof path, dir, "w.safetensors");
    tu_join(extra, sizeof extra, dir, "extra.safetensors");
    ich_model *a = make_model(1), *b = make_model(2);
    assert_int_equal(ich_model_save(a, path), ICH_OK);
    assert_int_equal(ich_model_load_weights(b, path, 1), ICH_OK);
    assert_same_tensors(a, b);

    /* A file written by someone else, tensors in another order, no spec:
     * load_weights reads it, ich_model_load refuses it. */
    static craft c;
    craft_begin(&c, "{\"format\":\"pt\"}");
    int64_t scalar = 42;
    craft_tensor(&c, "zzz.extra", "I64", "[]", &scalar, 8);
    craft_model(&c, a, NULL);
    craft_write(&c, extra, 0);
    ich_model *fresh = make_model(9);
    assert_int_equal(ich_model_load_weights(fresh, extra, 0), ICH_OK);
    assert_same_tensors(a, fresh);
    ich_model_free(fresh);
    ich_model *none = NULL;
    ich_status st = ich_model_load(extra, &none);
    assert_error_names(st, ICH_ERR_FORMAT, extra);
    assert_non_null(strstr(ich_last_error(), "ich.spec"));
    assert_null(none);
    /* strict: the extra tensor is refused, nothing is loaded */
    ich_model *c2 = make_model(4);
    size_t s1, s2;
    uint8_t *before = snapshot(c2, &s1);
    st = ich_model_load_weights(c2, extra, 1);
    assert_error_names(st, ICH_ERR_SHAPE, extra);
    assert_non_null(strstr(ich_last_error(), "zzz.extra"));
    uint8_t *after = snapshot(c2, &s2);
    assert_memory_equal(before, after, s1);
    free(before);
    free(after);
    ich_model_free(c2);
    ich_model_free(a);
    ich_model_free(b);
}

/* Every dtype of the format, ranks 0 to 8, zero-size tensors and escaped
 * names parse (as extra tensors of a non-strict load); 9 dimensions are
 * unsupported. */
static void test_every_dtype_and_shape(void **state)
{
    const char *dir = *state;
    char path[4096];
    tu_join(path, sizeof path, dir, "dtypes.safetensors");
    static const struct {
        const char *dtype;
        size_t size;
    } types[] = {{"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
                 {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},   {"I32", 4},
                 {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},    {"F64", 8}};
    static const char *shapes[] = {"[]", "[0]", "[3]", "[2,0,5]", "[1,2,1,2]", "[1,1,1,1,1,1,1,2]"};
    static const size_t counts[] = {1, 0, 3, 0, 4, 2};
    ich_model *model = make_model(1);
    static craft c;
    craft_begin(&c, "{\"k\\u00e9\\ud83d\\ude00\":\"v\\\"\\\\\\/\\b\\f\\n\\r\\t\"}");
    uint8_t zeros[64] = {0};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            char name[64];
            snprintf(name, sizeof name, "x.%s.%zu\\u00e9", types[t].dtype, s);
            craft_tensor(&c, name, types[t].dtype, shapes[s], zeros, counts[s] * types[t].size);
        }
    }
    craft_model(&c, model, NULL);
    craft_write(&c, path, 0);
    assert_int_equal(ich_model_load_weights(model, path, 0), ICH_OK);
    assert_error_names(ich_model_load_weights(model, path, 1), ICH_ERR_SHAPE, path);

    craft_begin(&c, NULL);
    craft_tensor(&c, "nine", "U8", "[1,1,1,1,1,1,1,1,1]", zeros, 1);
    craft_model(&c, model, NULL);
    craft_write(&c, path, 0);
    assert_error_names(ich_model_load_weights(model, path, 0), ICH_ERR_UNSUPPORTED, path);
    ich_model_free(model);
}

/* ---- Corruption --------------------------------------------------------- */

typedef enum corruption {
    C_HEADER_BEYOND_FILE, C_NOT_JSON, C_TRAILING, C_BAD_ESCAPE, C_OFFSETS_REVERSED,
    C_OVERLAP, C_OUTSIDE, C_HOLE, C_TRAILING_DATA, C_BYTES_VS_SHAPE, C_DTYPE, C_SHAPE,
    C_UNKNOWN_DTYPE, C_MISSING, C_EXTRA, C_DUPLICATE, C_METADATA_NOT_STRING, C_UNKNOWN_FIELD,
    C_NEGATIVE, C_COUNT
} corruption;

/* The status a load of each corruption must give. */
static ich_status expected_status(corruption kind)
{
    switch (kind) {
    case C_DTYPE:
    case C_SHAPE:
    case C_EXTRA:
        return ICH_ERR_SHAPE;
    case C_MISSING:
        return ICH_ERR_NOT_FOUND;
    default:
        return ICH_ERR_FORMAT;
    }
}

/* Write a file for `kind` from model's tensors; conv1.weight is written
 * first, with other values, so a partial load would show. */
static void write_corrupt(const char *path, const ich_model *model, corruption kind)
{
    static craft c;
    craft_begin(&c, kind == C_METADATA_NOT_STRING ? "{\"ich.epoch\":3}" : "{\"format\":\"pt\"}");
    float other[3 * 2 * 3 * 3];
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        other[i] = 100.0f + (float)i;
    uint8_t pad[16] = {0};
    switch (kind) {
    case C_OFFSETS_REVERSED:
        craft_entry(&c, "bad", "U8", "[0]", 4, 0);
        break;
    case C_OVERLAP: /* bad covers the same 4 bytes as conv1.weight's first */
        craft_entry(&c, "bad", "F32", "[1]", 0, 4);
        break;
    case C_OUTSIDE:
        craft_entry(&c, "bad", "U8", "[4]", 1000000, 1000004);
        break;
    case C_HOLE:
        c.dlen = 8; /* 8 bytes nobody owns before the first tensor */
        break;
    case C_BYTES_VS_SHAPE:
        craft_tensor(&c, "bad", "F32", "[3]", pad, 8);
        break;
    case C_UNKNOWN_DTYPE:
        craft_tensor(&c, "bad", "F33", "[2]", pad, 8);
        break;
    case C_EXTRA:
        craft_tensor(&c, "unknown.weight", "F32", "[2]", pad, 8);
        break;
    case C_METADATA_NOT_STRING:
    default:
        break;
    }
    /* conv1.weight with other values, then the rest of the model */
    if (kind == C_DTYPE) {
        double wide[3 * 2 * 3 * 3];
        for (size_t i = 0; i < sizeof wide / sizeof *wide; i++)
            wide[i] = other[i];
        craft_tensor(&c, "conv1.weight", "F64", "[3,2,3,3]", wide, sizeof wide);
    } else if (kind == C_SHAPE) {
        craft_tensor(&c, "conv1.weight", "F32", "[3,2,9]", other, sizeof other);
    } else {
        craft_tensor(&c, "conv1.weight", "F32", "[3,2,3,3]", other, sizeof other);
    }
    craft_model2(&c, model, "conv1.weight", kind == C_MISSING ? "fc1.bias" : NULL);
    if (kind == C_DUPLICATE)
        craft_tensor(&c, "conv1.bias", "F32", "[3]", pad, 12);
    if (kind == C_UNKNOWN_FIELD) {
        c.hlen += (size_t)snprintf(c.header + c.hlen, sizeof c.header - c.hlen,
                                   ",\"odd\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":1}");
    }
    if (kind == C_NEGATIVE)
        craft_entry(&c, "neg", "U8", "[-1]", 0, 0);
    if (kind == C_TRAILING_DATA)
        c.data[c.dlen++] = 0;
    if (kind == C_NOT_JSON)
        memcpy(c.header + 1, "'format", 7);
    if (kind == C_BAD_ESCAPE)
        memcpy(c.header + 1, "\"\\x", 3);
    if (kind == C_TRAILING) {
        craft_write(&c, path, 0);
        /* close the object early: "} }" after padding is not whitespace */
        size_t size;
        uint8_t *bytes = tu_read_file(path, &size);
        bytes[8 + 1] = '}';
        tu_write_file(path, bytes, size);
        free(bytes);
        return;
    }
    craft_write(&c, path, kind == C_HEADER_BEYOND_FILE ? (int64_t)c.dlen + 1000 : 0);
}

static void test_corrupt_files(void **state)
{
    const char *dir = *state;
    ich_model *source = make_model(11);
    ich_model *target = make_model(12);
    size_t s0, s1;
    uint8_t *before = snapshot(target, &s0);
    for (int k = 0; k < C_COUNT; k++) {
        char path[4096], name[64];
        snprintf(name, sizeof name, "corrupt-%d.safetensors", k);
        tu_join(path, sizeof path, dir, name);
        write_corrupt(path, source, (corruption)k);
        ich_status st = ich_model_load_weights(target, path, 1);
        if (st != expected_status((corruption)k))
            fail_msg("case %d: expected %s, got %s: %s", k,
                     ich_status_string(expected_status((corruption)k)), ich_status_string(st),
                     ich_last_error());
        assert_error_names(st, expected_status((corruption)k), path);
        if (getenv("ICH_TEST_VERBOSE"))
            print_message("case %d: %s\n", k, ich_last_error());
        uint8_t *after = snapshot(target, &s1);
        assert_memory_equal(before, after, s0); /* nothing half-loaded */
        free(after);
    }
    /* too short, empty, missing, a folder */
    char path[4096];
    tu_join(path, sizeof path, dir, "short.safetensors");
    assert_int_equal(tu_write_file(path, "\x10\0\0", 3), 0);
    assert_error_names(ich_model_load_weights(target, path, 1), ICH_ERR_FORMAT, path);
    assert_int_equal(tu_write_file(path, "", 0), 0);
    assert_error_names(ich_model_load_weights(target, path, 1), ICH_ERR_FORMAT, path);
    tu_join(path, sizeof path, dir, "missing.safetensors");
    ich_model *none = NULL;
    assert_error_names(ich_model_load(path, &none), ICH_ERR_IO, path);
    assert_null(none);
    assert_error_names(ich_model_load_weights(target, dir, 1), ICH_ERR_IO, dir);
    /* a bad spec in the file */
    static craft c;
    craft_begin(&c, "{\"ich.spec\":\"input 2x6x6, conv banana\"}");
    craft_model(&c, source, NULL);
    tu_join(path, sizeof path, dir, "badspec.safetensors");
    craft_write(&c, path, 0);
    assert_error_names(ich_model_load(path, &none), ICH_ERR_FORMAT, path);
    assert_null(none);
    /* a spec of another network: the tensors do not fit */
    craft_begin(&c, "{\"ich.spec\":\"input 2x6x6, conv 4 3 pad 1, batchnorm, relu, maxpool 2, flatten, dropout 0.5, linear 4\"}");
    craft_model(&c, source, NULL);
    craft_write(&c, path, 0);
    assert_error_names(ich_model_load(path, &none), ICH_ERR_SHAPE, path);
    assert_null(none);
    free(before);
    ich_model_free(source);
    ich_model_free(target);
}


/* ---- Hostile files --------------------------------------------------------- */

/* A file holding only a spec (and maybe one small tensor) that asks for a
 * huge network: refused from the spec alone, before the model is built
 * (before this, "linear 1000000" made a 156-byte file take 8.6 GB). */
static void test_hostile_specs(void **state)
{
    const char *dir = *state;
    static const char *const specs[] = {
        /* within every per-item limit, but 1 GB of tensors: the file holds none */
        "input 1x8x8, flatten, linear 65536, linear 4000",
        /* beyond a limit */
        "input 1x8x8, flatten, linear 1000000, linear 1000",
        "input 1x8x8, flatten, linear 65536, linear 65536",
        "input 4096x16384x16384, conv 8 3, gap, linear 2",
        "input 1x16384x16384, conv 64 1, gap, linear 2",
        "input 1x8x8, conv 8 3 dilation 1000000, gap, linear 2",
    };
    static const char *const why[] = {"holds only", "too large", "too large", "too large",
                                      "too large", "too large"};
    static craft c;
    char path[4096], meta[512];
    tu_join(path, sizeof path, dir, "hostile.safetensors");
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        snprintf(meta, sizeof meta, "{\"ich.spec\":\"%s\"}", specs[k]);
        craft_begin(&c, meta);
        float bias[2] = {0, 0};
        craft_tensor(&c, "fc2.bias", "F32", "[2]", bias, sizeof bias);
        craft_write(&c, path, 0);
        ich_model *model = NULL;
        assert_error_names(ich_model_load(path, &model), ICH_ERR_FORMAT, path);
        assert_null(model);
        if (!strstr(ich_last_error(), why[k]))
            fail_msg("spec %zu: expected \"%s\" in: %s", k, why[k], ich_last_error());
    }
}

/* Limits on text specs (ich/model.h): each refused with a message naming
 * the limit; nested blocks and many items do not exhaust stack or memory. */
static void test_spec_limits(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "input 1x8x8, conv 65537 1, gap, linear 2",
        "input 1x8x8, conv 8 1025, gap, linear 2",
        "input 1x8x8, conv 8 3 stride 2000, gap, linear 2",
        "input 1x8x8, conv 8 3 pad 5000, gap, linear 2",
        "input 1x8x8, maxpool 1025, flatten, linear 2",
        "input 4097x8x8, gap, linear 2",
        "input 1x16385x8, gap, linear 2",
        "input 1x99999999999x8, gap, linear 2",
        "input 1x8x8, concat(conv 65536 1 | conv 8 1), gap, linear 2",
        "input 1x8x8, conv 20000 3 pad 1, conv 20000 1, gap, linear 2",
    };
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        ich_model *model = NULL;
        ich_status st = ich_model_create(specs[k], &model);
        if (st != ICH_ERR_INVALID_ARGUMENT || (!strstr(ich_last_error(), "too large")
                                               && !strstr(ich_last_error(), "expected the input shape")))
            fail_msg("spec %zu: %s: %s", k, ich_status_string(st), ich_last_error());
        assert_null(model);
    }
    /* 100000 nested blocks and 100000 items */
    size_t n = 100000;
    char *text = malloc(n * 10 + 64);
    assert_non_null(text);
    strcpy(text, "input 1x8x8, ");
    size_t at = strlen(text);
    for (size_t i = 0; i < n; i++, at += 9)
        memcpy(text + at, "residual(", 9);
    text[at] = 0;
    ich_model *model = NULL;
    assert_int_equal(ich_model_create(text, &model), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "nested too deeply"));
    strcpy(text, "input 1x8x8");
    at = strlen(text);
    for (size_t i = 0; i < n; i++, at += 6)
        memcpy(text + at, ", relu", 6);
    strcpy(text + at, ", gap, linear 2");
    assert_int_equal(ich_model_create(text, &model), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "too many items"));
    assert_null(model);
    free(text);
    /* the limits themselves are accepted */
    assert_int_equal(ich_model_create("input 1x8x8, conv 8 3 pad 1024, gap, linear 2", &model),
                     ICH_OK);
    ich_model_free(model);
}

/* NaN or infinity among the weights: an error naming the file and the
 * tensor, for ich_model_load and ich_model_load_weights; nothing loaded. */
static void test_non_finite_weights(void **state)
{
    const char *dir = *state;
    ich_model *source = make_model(21), *target = make_model(22);
    size_t s0, s1;
    uint8_t *before = snapshot(target, &s0);
    char meta[512], path[4096];
    snprintf(meta, sizeof meta, "{\"ich.spec\":\"%s\"}", SPEC);
    tu_join(path, sizeof path, dir, "nan.safetensors");
    for (int k = 0; k < 3; k++) {
        static craft c;
        craft_begin(&c, meta);
        craft_model2(&c, source, "fc1.bias", NULL);
        float bias[4] = {0.5f, 0.25f, 0.0f, 1.0f};
        bias[k + 1] = k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
        craft_tensor(&c, "fc1.bias", "F32", "[4]", bias, sizeof bias);
        craft_write(&c, path, 0);
        assert_error_names(ich_model_load_weights(target, path, 1), ICH_ERR_FORMAT, path);
        assert_non_null(strstr(ich_last_error(), "\"fc1.bias\""));
        assert_non_null(strstr(ich_last_error(), "non-finite"));
        uint8_t *after = snapshot(target, &s1);
        assert_memory_equal(before, after, s0);
        free(after);
        ich_model *loaded = NULL;
        assert_error_names(ich_model_load(path, &loaded), ICH_ERR_FORMAT, path);
        assert_non_null(strstr(ich_last_error(), "\"fc1.bias\""));
        assert_null(loaded);
    }
    /* a checkpoint of a diverged run (NaN through a tensor view) */
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
    ich_optimizer *opt = NULL, *opt2 = NULL;
    assert_int_equal(ich_optimizer_create(source, &o, &opt), ICH_OK);
    assert_int_equal(ich_optimizer_create(target, &o, &opt2), ICH_OK);
    ich_tensor_view v = {.size = sizeof v};
    assert_int_equal(ich_model_tensor(source, 0, &v), ICH_OK);
    ((float *)v.data)[1] = NAN;
    ich_model_tensor_changed(source, 0);
    tu_join(path, sizeof path, dir, "nan-checkpoint.safetensors");
    assert_int_equal(ich_checkpoint_save(path, source, opt, NULL, NULL, 0), ICH_OK);
    assert_error_names(ich_checkpoint_load(path, target, opt2), ICH_ERR_FORMAT, path);
    assert_non_null(strstr(ich_last_error(), v.name));
    uint8_t *after = snapshot(target, &s1);
    assert_memory_equal(before, after, s0);
    free(after);
    ich_optimizer_free(opt);
    ich_optimizer_free(opt2);
    free(before);
    ich_model_free(source);
    ich_model_free(target);
}

/* The second line of defence: a NaN in the weights (set through a tensor
 * view, not loaded) or an image never comes out of ich_model_predict as a
 * probability. */
static void test_predict_refuses_non_finite(void **state)
{
    (void)state;
    ich_model *model = make_model(5);
    float x[2 * 2 * 6 * 6], p[2 * 4];
    random_images(x, sizeof x / sizeof *x, 3);
    assert_int_equal(ich_model_predict(model, x, 2, 0.5f, p, 8), ICH_OK);
    for (int k = 0; k < 8; k++)
        assert_true(isfinite(p[k]));
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_model_tensor(model, i, &v), ICH_OK);
        if (strcmp(v.name, "fc1.bias") == 0)
            ((float *)v.data)[2] = NAN;
    }
    ich_model_tensor_changed(model, -1);
    assert_int_equal(ich_model_predict(model, x, 2, 0.5f, p, 8), ICH_ERR_FORMAT);
    assert_non_null(strstr(ich_last_error(), "image 0 of 2"));
    assert_non_null(strstr(ich_last_error(), "output 2"));
    ich_model_free(model);
}


/* The mode of `path` (permission bits), -1 when it cannot be stat'ed. */
static int file_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* Temporary files of atomic writes: a stale one (left by a killed writer,
 * so unlocked) is removed by the next save of the same file; a live
 * writer's (locked) one is left alone; names up to NAME_MAX work. Every
 * output gets mode 0644 whatever the umask and the temporary's mode, and
 * a stale temporary longer than the new content is cut to it. */
static void test_temporaries(void **state)
{
    const char *dir = *state;
    char path[4096], tmp[4200], names[2048];
    mode_t umask_was = umask(077);
    ich_model *model = make_model(3);
    tu_join(path, sizeof path, dir, "m.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp-ich", path);
    assert_int_equal(ich_model_save(model, path), ICH_OK); /* a fresh temporary */
    assert_int_equal(file_mode(path), 0644);
    struct stat fresh;
    assert_int_equal(stat(path, &fresh), 0);
    assert_int_equal(unlink(path), 0);
    size_t junk_size = (size_t)fresh.st_size + 4096; /* a killed write, longer than the new one */
    char *junk = malloc(junk_size);
    assert_non_null(junk);
    memset(junk, 'x', junk_size);
    assert_int_equal(tu_write_file(tmp, junk, junk_size), 0);
    free(junk);
    assert_int_equal(chmod(tmp, 0600), 0);
    assert_int_equal(ich_model_save(model, path), ICH_OK);
    assert_int_equal(tu_dir_count(dir, names, sizeof names), 1);
    assert_string_equal(names, "m.safetensors");
    assert_int_equal(file_mode(path), 0644);
    struct stat reused;
    assert_int_equal(stat(path, &reused), 0);
    assert_int_equal(reused.st_size, fresh.st_size);
    /* a live writer holds the temporary: the save goes around it */
    int fd = open(tmp, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    assert_int_equal(write(fd, "live", 4), 4);
    assert_int_equal(ich_model_save(model, path), ICH_OK);
    assert_int_equal(tu_dir_count(dir, names, sizeof names), 2);
    assert_int_equal(file_mode(path), 0644); /* from mkstemp's 0600 */
    size_t size = 0;
    uint8_t *bytes = tu_read_file(tmp, &size);
    assert_int_equal(size, 4); /* untouched */
    free(bytes);
    close(fd); /* the writer is gone: the next save cleans up */
    assert_int_equal(ich_model_save(model, path), ICH_OK);
    assert_int_equal(tu_dir_count(dir, names, sizeof names), 1);
    ich_model *loaded = NULL;
    assert_int_equal(ich_model_load(path, &loaded), ICH_OK);
    ich_model_free(loaded);
    /* a temporary name hard-linked to another file is not taken over */
    char victim[4096];
    tu_join(victim, sizeof victim, dir, "victim");
    assert_int_equal(tu_write_file(victim, "keep me", 7), 0);
    assert_int_equal(link(victim, tmp), 0);
    assert_int_equal(ich_model_save(model, path), ICH_OK);
    bytes = tu_read_file(victim, &size);
    assert_int_equal(size, 7);
    assert_memory_equal(bytes, "keep me", 7);
    free(bytes);
    assert_int_equal(unlink(tmp), 0);
    assert_int_equal(unlink(victim), 0);
    /* a 250-byte name and a 255-byte name */
    for (size_t n = 250; n <= 255; n += 5) {
        char name[256];
        memset(name, 'a', n);
        memcpy(name + n - 12, ".safetensors", 12);
        name[n] = 0;
        tu_join(path, sizeof path, dir, name);
        assert_int_equal(ich_model_save(model, path), ICH_OK);
        assert_int_equal(ich_model_load(path, &loaded), ICH_OK);
        ich_model_free(loaded);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(tu_dir_count(dir, names, sizeof names), 1);
    assert_string_equal(names, "m.safetensors");
    ich_model_free(model);
    umask(umask_was);
}

/* A failed save leaves the existing file as it was, and no temporary file. */
static void test_failed_save_keeps_target(void **state)
{
    const char *dir = *state;
    char path[4096];
    tu_join(path, sizeof path, dir, "keep.safetensors");
    assert_int_equal(tu_write_file(path, "old content", 11), 0);
    ich_model *model = make_model(1);
    /* metadata that is not UTF-8 cannot go into the JSON header */
    assert_int_equal(ich_model_set_metadata(model, "ich.labels", "bad\xff"), ICH_OK);
    assert_int_equal(ich_model_save(model, path), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_set_metadata(model, "ich.labels", NULL), ICH_OK);
    /* a folder where the file should go */
    char sub[4096];
    tu_join(sub, sizeof sub, dir, "folder");
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_error_names(ich_model_save(model, sub), ICH_ERR_IO, sub);
    char missing[4096];
    tu_join(missing, sizeof missing, dir, "no/such/folder.safetensors");
    assert_error_names(ich_model_save(model, missing), ICH_ERR_IO, missing);
    size_t size = 0;
    uint8_t *bytes = tu_read_file(path, &size);
    assert_int_equal(size, 11);
    assert_memory_equal(bytes, "old content", 11);
    free(bytes);
    char names[1024];
    assert_int_equal(tu_dir_count(dir, names, sizeof names), 2); /* keep.safetensors, folder */
    /* and a good save replaces it */
    assert_int_equal(ich_model_save(model, path), ICH_OK);
    ich_model *loaded = NULL;
    assert_int_equal(ich_model_load(path, &loaded), ICH_OK);
    assert_same_tensors(model, loaded);
    ich_model_free(loaded);
    ich_model_free(model);
}

/* ---- Checkpoints -------------------------------------------------------- */

static ich_optimizer *make_adam(ich_model *model)
{
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
    o.lr = 0.01;
    ich_optimizer *opt = NULL;
    assert_int_equal(ich_optimizer_create(model, &o, &opt), ICH_OK);
    return opt;
}

static void test_checkpoint_resume(void **state)
{
    const char *dir = *state;
    char path[4096];
    tu_join(path, sizeof path, dir, "ckpt.safetensors");
    ich_model *a = make_model(21);
    ich_optimizer *oa = make_adam(a);
    train_step(a, oa);
    train_step(a, oa);
    const char *keys[] = {"ich.epoch", "ich.schedule"};
    const char *values[] = {"2", "kind=plateau best=0.5"};
    assert_int_equal(ich_checkpoint_save(path, a, oa, keys, values, 2), ICH_OK);

    ich_model *b = make_model(22);
    ich_optimizer *ob = make_adam(b);
    assert_int_equal(ich_checkpoint_load(path, b, ob), ICH_OK);
    assert_same_tensors(a, b);
    assert_string_equal(ich_optimizer_config(oa), ich_optimizer_config(ob));
    assert_int_equal(ich_optimizer_steps(ob), 2);
    assert_int_equal(ich_optimizer_state_count(oa), ich_optimizer_state_count(ob));
    for (int32_t i = 0; i < ich_optimizer_state_count(oa); i++) {
        ich_tensor_view va = {.size = sizeof va}, vb = {.size = sizeof vb};
        assert_int_equal(ich_optimizer_state(oa, i, &va), ICH_OK);
        assert_int_equal(ich_optimizer_state(ob, i, &vb), ICH_OK);
        assert_string_equal(va.name, vb.name);
        assert_memory_equal(va.data, vb.data, view_bytes(&va));
    }
    assert_string_equal(ich_model_metadata(b, "ich.epoch"), "2");
    assert_string_equal(ich_model_metadata(b, "ich.schedule"), "kind=plateau best=0.5");
    assert_string_equal(ich_model_metadata(b, "ich.steps"), ich_model_metadata(a, "ich.steps"));
    /* the next step is the same, dropout mask included */
    train_step(a, oa);
    train_step(b, ob);
    assert_same_tensors(a, b);

    /* a model load of the checkpoint skips the optimizer state */
    ich_model *m = NULL;
    assert_int_equal(ich_model_load(path, &m), ICH_OK);
    ich_model_free(m);
    /* reserved extra keys are refused */
    const char *bad[] = {"ich.spec"};
    assert_int_equal(ich_checkpoint_save(path, a, oa, bad, values, 1), ICH_ERR_INVALID_ARGUMENT);

    ich_optimizer_free(oa);
    ich_optimizer_free(ob);
    ich_model_free(a);
    ich_model_free(b);
}

static void test_checkpoint_mismatch(void **state)
{
    const char *dir = *state;
    char path[4096], plain[4096];
    tu_join(path, sizeof path, dir, "ckpt.safetensors");
    tu_join(plain, sizeof plain, dir, "plain.safetensors");
    ich_model *a = make_model(31);
    ich_optimizer *oa = make_adam(a);
    train_step(a, oa);
    assert_int_equal(ich_checkpoint_save(path, a, oa, NULL, NULL, 0), ICH_OK);
    assert_int_equal(ich_model_save(a, plain), ICH_OK);

    ich_model *b = make_model(32);
    ich_optimizer_options o;
    ich_optimizer_options_init(&o, ICH_OPTIM_SGD);
    o.momentum = 0.9;
    ich_optimizer *sgd = NULL;
    assert_int_equal(ich_optimizer_create(b, &o, &sgd), ICH_OK);
    ich_optimizer *adam = make_adam(b);
    size_t s0, s1;
    uint8_t *before = snapshot(b, &s0);
    char *config = strdup(ich_optimizer_config(sgd));
    /* another optimizer kind: its state tensors are not in the file */
    assert_error_names(ich_checkpoint_load(path, b, sgd), ICH_ERR_NOT_FOUND, path);
    assert_string_equal(ich_optimizer_config(sgd), config);
    /* a model file is not a checkpoint */
    assert_error_names(ich_checkpoint_load(plain, b, adam), ICH_ERR_FORMAT, plain);
    /* a bad optimizer config: nothing changes */
    static craft c;
    craft_begin(&c, "{\"ich.optimizer\":\"kind=adam lr=banana\",\"ich.epoch\":\"9\"}");
    craft_model(&c, a, NULL);
    for (int32_t i = 0; i < ich_optimizer_state_count(oa); i++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_optimizer_state(oa, i, &v), ICH_OK);
        char shape[128];
        shape_json(&v, shape, sizeof shape);
        craft_tensor(&c, v.name, v.type == ICH_TENSOR_I64 ? "I64" : "F32", shape, v.data,
                     view_bytes(&v));
    }
    craft_write(&c, path, 0);
    assert_error_names(ich_checkpoint_load(path, b, adam), ICH_ERR_FORMAT, path);
    assert_null(ich_model_metadata(b, "ich.epoch"));
    assert_int_equal(ich_optimizer_steps(adam), 0);
    /* a good config but a bad metadata value after another: both undone */
    char meta[1024], *adam_config = strdup(ich_optimizer_config(adam));
    const char *steps_before = ich_model_metadata(b, "ich.steps");
    char *steps_copy = strdup(steps_before ? steps_before : "");
    snprintf(meta, sizeof meta, "{\"ich.optimizer\":\"%s\",\"ich.epoch\":\"9\",\"ich.steps\":\"x\"}",
             ich_optimizer_config(oa));
    c.hlen = (size_t)snprintf(c.header, sizeof c.header, "{\"__metadata__\":%s", meta);
    c.dlen = 0;
    craft_model(&c, a, NULL);
    for (int32_t i = 0; i < ich_optimizer_state_count(oa); i++) {
        ich_tensor_view v = {.size = sizeof v};
        assert_int_equal(ich_optimizer_state(oa, i, &v), ICH_OK);
        char shape[128];
        shape_json(&v, shape, sizeof shape);
        craft_tensor(&c, v.name, v.type == ICH_TENSOR_I64 ? "I64" : "F32", shape, v.data,
                     view_bytes(&v));
    }
    craft_write(&c, path, 0);
    assert_error_names(ich_checkpoint_load(path, b, adam), ICH_ERR_FORMAT, path);
    assert_non_null(strstr(ich_last_error(), "ich.steps"));
    assert_null(ich_model_metadata(b, "ich.epoch"));
    assert_string_equal(ich_model_metadata(b, "ich.steps") ? ich_model_metadata(b, "ich.steps") : "",
                        steps_copy);
    assert_string_equal(ich_optimizer_config(adam), adam_config);
    free(adam_config);
    free(steps_copy);
    uint8_t *after = snapshot(b, &s1);
    assert_memory_equal(before, after, s0);
    free(after);
    free(before);
    free(config);
    ich_optimizer_free(sgd);
    ich_optimizer_free(adam);
    ich_optimizer_free(oa);
    ich_model_free(a);
    ich_model_free(b);
}

/* ---- Fuzz-like: truncation and flipped bytes ---------------------------- */

/* Load `bytes` both ways: an error with a message naming the file, or a
 * model that works. A failed load_weights leaves `target` unchanged. */
static void load_mangled(const char *path, const uint8_t *bytes, size_t size, ich_model *target,
                         const uint8_t *target_bytes, size_t target_size)
{
    assert_int_equal(tu_write_file(path, bytes, size), 0);
    ich_model *model = NULL;
    ich_status st = ich_model_load(path, &model);
    if (st == ICH_OK) {
        float logits[8];
        eval_forward(model, logits);
        ich_model_free(model);
    } else {
        assert_null(model);
        assert_non_null(strstr(ich_last_error(), path));
    }
    for (int pass = 0; pass < 2; pass++) {
        /* ich_model_load_pretrained() reads the same hostile file: all or nothing too */
        st = pass == 0 ? ich_model_load_weights(target, path, 1)
                       : ich_model_load_pretrained(target, path, NULL, NULL);
        if (st != ICH_OK) {
            assert_non_null(strstr(ich_last_error(), path));
            size_t now_size;
            uint8_t *now = snapshot(target, &now_size);
            assert_memory_equal(now, target_bytes, target_size);
            free(now);
        } else {
            /* restore the reference weights for the next round */
            assert_int_equal(ich_model_init_weights(target, 77), ICH_OK);
        }
    }
}

/* ich_model_load_pretrained(): what fits is loaded, the rest reported
 * through the callback and left alone; a report below its first version is
 * refused before anything is read. (Against PyTorch: bindings/python/tests/
 * test_pretrained.py.) */
typedef struct pretrained_seen {
    int count[3];
    char names[3][256];
} pretrained_seen;

static void on_pretrained(void *user, int32_t kind, const char *name, const char *detail)
{
    pretrained_seen *seen = user;
    assert_true(kind >= 0 && kind <= 2 && detail != NULL);
    seen->count[kind]++;
    size_t at = strlen(seen->names[kind]);
    snprintf(seen->names[kind] + at, sizeof seen->names[kind] - at, "%s ", name);
}

static void test_load_pretrained(void **state)
{
    const char *dir = *state;
    char path[4096];
    tu_join(path, sizeof path, dir, "backbone.safetensors");
    ich_model *backbone = make_model(3);
    assert_int_equal(ich_model_save(backbone, path), ICH_OK);
    ich_model *model = NULL;
    assert_int_equal(ich_model_create("input 2x6x6, conv 3 3 pad 1, batchnorm, relu, maxpool 2, "
                                      "flatten, dropout 0.5, linear 5", &model), ICH_OK);
    size_t size_before;
    uint8_t *before = snapshot(model, &size_before);
    pretrained_seen seen = {{0}, {""}};
    ich_pretrained_report report = {.size = sizeof report, .tensor_fn = on_pretrained,
                                    .tensor_user = &seen};
    report.size = 8; /* below the first version: refused, nothing read */
    assert_int_equal(ich_model_load_pretrained(model, path, NULL, &report),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(seen.count[0] + seen.count[1] + seen.count[2], 0);
    report.size = sizeof report;
    assert_int_equal(ich_model_load_pretrained(model, path, "", &report), ICH_OK);
    assert_int_equal(report.size, sizeof report);
    assert_int_equal(report.loaded, 7);
    assert_int_equal(report.skipped, 2);
    assert_int_equal(report.fresh, 2);
    assert_int_equal(report.summed, 0);
    assert_int_equal(seen.count[ICH_PRETRAINED_LOADED], 7);
    assert_string_equal(seen.names[ICH_PRETRAINED_SKIPPED], "fc1.weight fc1.bias ");
    assert_string_equal(seen.names[ICH_PRETRAINED_FRESH], "fc1.weight fc1.bias ");
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v}, w = {.size = sizeof w};
        assert_int_equal(ich_model_tensor(model, i, &v), ICH_OK);
        int32_t j = ich_model_find_tensor(backbone, v.name);
        assert_int_equal(ich_model_tensor(backbone, j, &w), ICH_OK);
        if (strncmp(v.name, "fc1.", 4) != 0)
            assert_memory_equal(v.data, w.data, view_bytes(&v));
    }
    /* the head kept its values: the last tensors (fc1.weight, fc1.bias) */
    size_t size_after;
    uint8_t *after = snapshot(model, &size_after);
    size_t head = (5 * 3 * 3 * 3 + 5) * sizeof(float);
    assert_memory_equal(after + size_after - head, before + size_before - head, head);
    free(before);
    free(after);
    /* NULL report, NULL prefix; a prefix nothing has */
    assert_int_equal(ich_model_load_pretrained(model, path, NULL, NULL), ICH_OK);
    assert_error_names(ich_model_load_pretrained(model, path, "any.", NULL), ICH_ERR_NOT_FOUND,
                       path);
    assert_int_equal(ich_model_load_pretrained(NULL, path, NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_load_pretrained(model, NULL, NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_model_free(model);
    ich_model_free(backbone);
}

static void test_truncated_and_flipped(void **state)
{
    const char *dir = *state;
    char path[4096], mangled[4096];
    tu_join(path, sizeof path, dir, "fuzz.safetensors");
    tu_join(mangled, sizeof mangled, dir, "mangled.safetensors");
    ich_model *model = make_model(41);
    ich_optimizer *opt = make_adam(model);
    train_step(model, opt);
    const char *keys[] = {"ich.epoch"};
    const char *values[] = {"1"};
    assert_int_equal(ich_checkpoint_save(path, model, opt, keys, values, 1), ICH_OK);
    size_t size = 0;
    uint8_t *bytes = tu_read_file(path, &size);
    assert_non_null(bytes);
    ich_model *target = make_model(77);
    size_t target_size;
    uint8_t *target_bytes = snapshot(target, &target_size);

    int truncations = 0, flips = 0;
    for (size_t cut = 0; cut < size; cut += 97, truncations++) {
        load_mangled(mangled, bytes, cut, target, target_bytes, target_size);
        assert_int_not_equal(ich_model_load_weights(target, mangled, 1), ICH_OK);
    }
    uint8_t *copy = malloc(size);
    uint32_t rng = 2024;
    for (int i = 0; i < 500; i++, flips++) {
        memcpy(copy, bytes, size);
        size_t at = tu_rand(&rng) % size;
        copy[at] ^= (uint8_t)(1u << (tu_rand(&rng) % 8));
        load_mangled(mangled, copy, size, target, target_bytes, target_size);
    }
    assert_true(truncations > 10 && flips == 500);
    free(copy);
    free(target_bytes);
    free(bytes);
    ich_optimizer_free(opt);
    ich_model_free(model);
    ich_model_free(target);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    ich_model *model = make_model(1);
    ich_model *out = NULL;
    assert_int_equal(ich_model_save(NULL, "x"), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_save(model, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_save(model, ""), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_load(NULL, &out), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_load("x", NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_load_weights(NULL, "x", 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_model_load_weights(model, NULL, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_checkpoint_save("x", model, NULL, NULL, NULL, 0), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_checkpoint_load("x", model, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model_round_trip, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_file_layout, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_weights, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_every_dtype_and_shape, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_corrupt_files, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_failed_save_keeps_target, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_checkpoint_resume, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_checkpoint_mismatch, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_truncated_and_flipped, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_pretrained, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test_setup_teardown(test_hostile_specs, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test(test_spec_limits),
        cmocka_unit_test_setup_teardown(test_non_finite_weights, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test(test_predict_refuses_non_finite),
        cmocka_unit_test_setup_teardown(test_temporaries, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
