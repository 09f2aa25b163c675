/* Internal: JSON, written and read.
 *
 * One module for both directions so the library has one escaper, one UTF-8
 * rule (core/utf8.h) and one number format. The parser is hand-written
 * rather than a packaged library (cJSON): it reads untrusted checkpoint
 * headers, so it is strict (UTF-8 checked, no duplicate keys, no NUL in
 * strings, bounded nesting, every node's byte offset kept for messages),
 * allocates in proportion to its input only, and is fuzzed with the
 * safetensors reader (tests/fuzz/fuzz_safetensors.c, scripts/fuzz.sh
 * safetensors); one small fuzzed parser is less to trust than a new
 * dependency.
 *
 * Numbers written keep every double exactly (the shortest of %.15g, %.16g,
 * %.17g that reads back as the same double); NaN and infinities are null.
 */
#ifndef ICH_INTERNAL_JSON_H
#define ICH_INTERNAL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/fileutil.h"
#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Append the shortest text that reads back as exactly `value` (finite
 * values only; the caller decides what undefined looks like). */
void ich_buf_append_double(ich_buf *buf, double value);

/* ---- the writer ---------------------------------------------------------- */

/* Append `text` as a quoted JSON string: " \ and control characters
 * escaped, invalid UTF-8 bytes written as \ufffd. */
void ich_json_append_string(ich_buf *buf, const char *text);

#define ICH_JSON_MAX_DEPTH 32

/* A JSON document written front to back, indented two spaces per level
 * (arrays of plain values stay on one line). Zero-initialise it:
 *   ich_json j = {0};
 *   ich_json_object_begin(&j);
 *   ich_json_key(&j, "auc"); ich_json_number(&j, 0.93);
 *   ich_json_key(&j, "labels"); ich_json_array_begin(&j);
 *   ich_json_string(&j, "any"); ich_json_array_end(&j);
 *   ich_json_object_end(&j);
 *   status = ich_json_write(&j, "out/metrics.json");
 *   ich_json_free(&j);
 * Misuse (a value without a key inside an object, a key inside an array,
 * unbalanced ends, nesting deeper than ICH_JSON_MAX_DEPTH, a second
 * top-level value) is remembered, and ich_json_finish refuses it. */
typedef struct ich_json {
    ich_buf buf; /* the text so far */
    int depth;
    int after_key;
    int done;   /* the top-level value is complete */
    int misuse; /* the first misuse, as text, is in error */
    char error[96];
    struct {
        char kind; /* '{' or '[' */
        int count;
        int nested; /* an array that holds objects or arrays */
    } level[ICH_JSON_MAX_DEPTH];
} ich_json;

void ich_json_object_begin(ich_json *json);
void ich_json_object_end(ich_json *json);
void ich_json_array_begin(ich_json *json);
void ich_json_array_end(ich_json *json);
void ich_json_key(ich_json *json, const char *key); /* escaped like a string */
/* Escapes " \ and control characters; invalid UTF-8 bytes become \ufffd.
 * NULL writes null. */
void ich_json_string(ich_json *json, const char *text);
void ich_json_number(ich_json *json, double value); /* NaN and inf write null */
void ich_json_integer(ich_json *json, int64_t value);
void ich_json_bool(ich_json *json, int value);
void ich_json_null(ich_json *json);

/* Check the document is one complete value and add the final newline:
 * ICH_ERR_INTERNAL naming the misuse, ICH_ERR_NO_MEMORY when an append
 * failed. json->buf then holds the text. */
ich_status ich_json_finish(ich_json *json);

/* ich_json_finish, then write the text to `path` atomically (temporary
 * file + rename), creating the parent folders. */
ich_status ich_json_write(ich_json *json, const char *path);

void ich_json_free(ich_json *json);

/* ---- the parser ---------------------------------------------------------- */

typedef enum ich_json_type {
    ICH_JSON_NULL,
    ICH_JSON_FALSE,
    ICH_JSON_TRUE,
    ICH_JSON_NUMBER,
    ICH_JSON_STRING,
    ICH_JSON_ARRAY,
    ICH_JSON_OBJECT
} ich_json_type;

/* A parsed value: nodes sit in one array, linked by index. */
typedef struct ich_json_node {
    int type;          /* ich_json_type */
    int32_t first;     /* first child (array, object), -1 when none */
    int32_t next;      /* next sibling, -1 when last */
    int32_t count;     /* children */
    const char *key;   /* member name inside an object (decoded, NUL-terminated) */
    const char *text;  /* string (decoded, NUL-terminated) or number (its source
                          text, not terminated) */
    size_t length;     /* bytes of text */
    uint64_t offset;   /* source offset where the value starts */
    uint64_t key_offset;
} ich_json_node;

/* A parsed document; nodes[0] is the root value. */
typedef struct ich_json_doc {
    ich_json_node *nodes;
    int32_t count;
    char *pool; /* decoded strings */
} ich_json_doc;

/* Parse the `n` bytes at `text` as exactly one JSON value (RFC 8259,
 * whitespace around it allowed; nesting at most ICH_JSON_MAX_DEPTH) into
 * *doc (zeroed first; free it with ich_json_doc_free() whatever the
 * result). Number nodes keep their source text and point into `text`, so
 * `text` must outlive the doc. Errors: ICH_ERR_FORMAT "<label>: byte
 * <base + position>: <problem> in <what>", ICH_ERR_NO_MEMORY,
 * ICH_ERR_INVALID_ARGUMENT for NULL. */
ich_status ich_json_parse(const char *label, const char *what, const void *text, size_t n,
                          uint64_t base, ich_json_doc *doc);

/* Free a parsed doc; zeroed after. NULL is a no-op. */
void ich_json_doc_free(ich_json_doc *doc);

/* 1 for an ASCII digit, else 0 (for readers of number nodes). */
int ich_json_is_digit(unsigned char c);

#ifdef __cplusplus
}
#endif
#endif
