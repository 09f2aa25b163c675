/* White-box tests of core/json.h's parser and core/utf8.h: the pieces the
 * safetensors reader (tests/test_checkpoint.c, the fuzz target) and the
 * JSON and SVG writers (tests/test_report.c) share. The parser is checked
 * on its own here: tree shape, decoded strings, offsets counted from the
 * caller's base, and each refusal with the message it gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json.h"
#include "core/utf8.h"
#include "ich/ich.h"

/* Parse `text`; the doc is freed, the status returned. */
static ich_status parse(const char *text)
{
    ich_json_doc doc;
    ich_status st = ich_json_parse("t.json", "the test", text, strlen(text), 100, &doc);
    ich_json_doc_free(&doc);
    return st;
}

static void assert_refused(const char *text, const char *message)
{
    assert_int_equal(parse(text), ICH_ERR_FORMAT);
    if (!strstr(ich_last_error(), message))
        fail_msg("\"%s\": got \"%s\", expected it to contain \"%s\"", text, ich_last_error(), message);
}

static void test_parse_tree(void **state)
{
    (void)state;
    const char *text = " {\"a\": [1, -2.5e3, true], \"b\\u00e9\": \"x\\n\\ud83d\\ude00\", \"c\": null} ";
    ich_json_doc doc;
    assert_int_equal(ich_json_parse("t.json", "the test", text, strlen(text), 100, &doc), ICH_OK);
    const ich_json_node *n = doc.nodes, *root = &n[0];
    assert_int_equal(root->type, ICH_JSON_OBJECT);
    assert_int_equal(root->count, 3);
    assert_int_equal(root->offset, 101); /* base + the leading space */
    const ich_json_node *a = &n[root->first];
    assert_string_equal(a->key, "a");
    assert_int_equal(a->type, ICH_JSON_ARRAY);
    assert_int_equal(a->count, 3);
    const ich_json_node *one = &n[a->first], *two = &n[one->next], *three = &n[two->next];
    assert_int_equal(one->type, ICH_JSON_NUMBER);
    assert_int_equal(one->length, 1);
    assert_memory_equal(two->text, "-2.5e3", 6);
    assert_int_equal(two->length, 6);
    assert_int_equal(three->type, ICH_JSON_TRUE);
    assert_int_equal(three->next, -1);
    const ich_json_node *b = &n[a->next];
    assert_string_equal(b->key, "b\xc3\xa9");
    assert_string_equal(b->text, "x\n\xf0\x9f\x98\x80"); /* the surrogate pair as one code point */
    assert_int_equal(b->length, 6);
    const ich_json_node *c = &n[b->next];
    assert_int_equal(c->type, ICH_JSON_NULL);
    assert_int_equal(c->next, -1);
    ich_json_doc_free(&doc);
    assert_null(doc.nodes);
    ich_json_doc_free(NULL);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    /* Offsets count from the base (100) given to the parser. */
    assert_refused("{\"a\": 1, \"a\": 2}", "t.json: byte 109: duplicate key \"a\" in the test");
    assert_refused("{\"a\": 01}", "byte 106: number with a leading zero in the test");
    assert_refused("{\"a\": \"\\u0000\"}", "NUL character");
    assert_refused("{\"a\": \"\\udc00\"}", "unpaired UTF-16 low surrogate");
    assert_refused("{\"a\": \"\\ud800x\"}", "unpaired UTF-16 high surrogate");
    assert_refused("{\"a\": \"\xc0\x80\"}", "invalid UTF-8 in a string");
    assert_refused("{\"a\": \"\x01\"}", "control character in a string");
    assert_refused("{\"a\": tru}", "invalid JSON value");
    assert_refused("{\"a\": 1} x", "byte 109: trailing characters");
    assert_refused("{\"a\" 1}", "expected ':' after a key");
    assert_refused("[1 2]", "expected ',' or ']'");
    assert_refused("{\"a\": \"x", "unterminated string");
    assert_refused("", "unexpected end");
    /* The root is depth 0: ICH_JSON_MAX_DEPTH + 1 nested arrays pass, one more fails. */
    char deep[2 * (ICH_JSON_MAX_DEPTH + 2) + 1];
    memset(deep, '[', ICH_JSON_MAX_DEPTH + 2);
    memset(deep + ICH_JSON_MAX_DEPTH + 2, ']', ICH_JSON_MAX_DEPTH + 2);
    deep[sizeof deep - 1] = '\0';
    assert_refused(deep, "nesting too deep");
    char ok[2 * ICH_JSON_MAX_DEPTH + 3];
    memset(ok, '[', ICH_JSON_MAX_DEPTH + 1);
    memset(ok + ICH_JSON_MAX_DEPTH + 1, ']', ICH_JSON_MAX_DEPTH + 1);
    ok[sizeof ok - 1] = '\0';
    assert_int_equal(parse(ok), ICH_OK);
    ich_json_doc doc;
    assert_int_equal(ich_json_parse("t", "x", NULL, 1, 0, &doc), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_json_parse("t", "x", "1", 1, 0, NULL), ICH_ERR_INVALID_ARGUMENT);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_int_equal(ich_utf8_sequence("a", 1), 1);
    assert_int_equal(ich_utf8_sequence("\xc3\xa9", 2), 2);
    assert_int_equal(ich_utf8_sequence("\xc3\xa9", 1), 0);          /* truncated */
    assert_int_equal(ich_utf8_sequence("\xc0\x80", 2), 0);          /* overlong */
    assert_int_equal(ich_utf8_sequence("\xed\xa0\x80", 3), 0);      /* surrogate */
    assert_int_equal(ich_utf8_sequence("\xf4\x90\x80\x80", 4), 0);  /* > U+10FFFF */
    assert_int_equal(ich_utf8_sequence("\xf4\x8f\xbf\xbf", 4), 4);
    assert_int_equal(ich_utf8_sequence("\xe2\x82", 3), 0);          /* NUL where a continuation belongs */
    assert_int_equal(ich_utf8_sequence("", 0), 0);
    assert_true(ich_utf8_valid("caf\xc3\xa9"));
    assert_false(ich_utf8_valid("caf\xc3"));
    uint32_t points[] = {0x41, 0xe9, 0x20ac, 0x1f600, 0x10ffff};
    for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
        char out[5] = {0};
        size_t n = ich_utf8_encode(points[i], out);
        assert_int_equal(ich_utf8_sequence(out, n), n); /* encoded, then read back whole */
        assert_int_equal(n, points[i] < 0x80 ? 1 : points[i] < 0x800 ? 2 : points[i] < 0x10000 ? 3 : 4);
    }
}

/* The writer's escaper and the parser agree: any string, written then
 * parsed, comes back (invalid UTF-8 as U+FFFD). */
static void test_write_then_parse(void **state)
{
    (void)state;
    const char *in[] = {"plain", "q\"b\\s/\b\f\n\r\t\x01\x1f", "caf\xc3\xa9 \xf0\x9f\x98\x80", "bad\xff"};
    const char *out[] = {"plain", "q\"b\\s/\b\f\n\r\t\x01\x1f", "caf\xc3\xa9 \xf0\x9f\x98\x80",
                         "bad\xef\xbf\xbd"};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        ich_buf buf = {0};
        ich_json_append_string(&buf, in[i]);
        ich_json_doc doc;
        assert_int_equal(ich_json_parse("t", "x", buf.data, buf.length, 0, &doc), ICH_OK);
        assert_int_equal(doc.nodes[0].type, ICH_JSON_STRING);
        assert_string_equal(doc.nodes[0].text, out[i]);
        ich_json_doc_free(&doc);
        ich_buf_free(&buf);
    }
    ich_buf buf = {0};
    ich_buf_append_double(&buf, 0.1);
    ich_buf_append(&buf, " ", 1);
    ich_buf_append_double(&buf, 1.0 / 3.0);
    assert_string_equal(buf.data, "0.1 0.3333333333333333");
    ich_buf_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_tree),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_write_then_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
