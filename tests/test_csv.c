/* Tests for the CSV reader behind ich_labels_read() (libich/core/csv.c is
 * internal, so it is reached through wide label files whose cells come back
 * as IDs and values): quotes with "" and embedded commas and line breaks,
 * CRLF, a BOM, blank lines, a missing final line end, and the errors, which
 * must name the file and the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

/* Write `text` to dir/name and read it as a label table. */
static ich_status read_text(const char *dir, const char *name, const char *text,
                            ich_labels **out)
{
    char path[4096];
    tu_join(path, sizeof path, dir, name);
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    *out = NULL;
    return ich_labels_read(path, out);
}

/* The read must fail with `status` and a message holding "<name>:<line>:"
 * (or just the name when line is 0). */
static void expect_error(const char *dir, const char *text, ich_status status, int line)
{
    ich_labels *labels = (ich_labels *)1;
    assert_int_equal(read_text(dir, "bad.csv", text, &labels), status);
    assert_null(labels);
    char want[64];
    if (line)
        snprintf(want, sizeof want, "bad.csv:%d:", line);
    else
        snprintf(want, sizeof want, "bad.csv");
    if (!strstr(ich_last_error(), want))
        fail_msg("message \"%s\" lacks \"%s\"", ich_last_error(), want);
}

static void test_plain(void **state)
{
    ich_labels *labels;
    assert_int_equal(read_text(*state, "a.csv", "ID,any\nx,1\ny,0\n", &labels), ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 2);
    assert_int_equal(ich_labels_columns(labels), 1);
    assert_string_equal(ich_labels_column_name(labels, 0), "any");
    assert_string_equal(ich_labels_id(labels, 0), "x");
    assert_string_equal(ich_labels_id(labels, 1), "y");
    assert_true(ich_labels_values(labels, 0)[0] == 1.0f);
    assert_true(ich_labels_values(labels, 1)[0] == 0.0f);
    ich_labels_free(labels);
}

static void test_quotes(void **state)
{
    const char *text = "ID,any\n"
                       "\"a,b\",1\n"
                       "\"say \"\"hi\"\"\",0\n"
                       "\"two\nlines\",\"1\"\n"
                       "\"\"\"\",0\n"
                       "plain\"quote,1\n";
    ich_labels *labels;
    assert_int_equal(read_text(*state, "q.csv", text, &labels), ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 5);
    assert_string_equal(ich_labels_id(labels, 0), "a,b");
    assert_string_equal(ich_labels_id(labels, 1), "say \"hi\"");
    assert_string_equal(ich_labels_id(labels, 2), "two\nlines");
    assert_true(ich_labels_values(labels, 2)[0] == 1.0f);
    assert_string_equal(ich_labels_id(labels, 3), "\"");
    /* a quote inside an unquoted field is kept as it is */
    assert_string_equal(ich_labels_id(labels, 4), "plain\"quote");
    ich_labels_free(labels);
}

static void test_crlf_bom_blank(void **state)
{
    ich_labels *labels;
    assert_int_equal(read_text(*state, "crlf.csv", "ID,any\r\nx,1\r\n\"y\r\nz\",0\r\n", &labels),
                     ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 2);
    assert_string_equal(ich_labels_id(labels, 0), "x"); /* no \r left */
    assert_true(ich_labels_values(labels, 0)[0] == 1.0f);
    assert_string_equal(ich_labels_id(labels, 1), "y\r\nz"); /* quoted: kept */
    ich_labels_free(labels);

    /* with the BOM kept, the first header would not be "any" */
    assert_int_equal(read_text(*state, "bom.csv", "\xEF\xBB\xBF" "any,ID\n1,x\n", &labels),
                     ICH_OK);
    assert_string_equal(ich_labels_column_name(labels, 0), "any");
    assert_string_equal(ich_labels_id(labels, 0), "x");
    ich_labels_free(labels);

    assert_int_equal(read_text(*state, "blank.csv", "\n\r\nID,any\n\nx,1\n  \n\t\ny,0\n\n\n",
                               &labels),
                     ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 2);
    assert_string_equal(ich_labels_id(labels, 1), "y");
    ich_labels_free(labels);
}

static void test_no_final_newline(void **state)
{
    ich_labels *labels;
    assert_int_equal(read_text(*state, "n.csv", "ID,any\nx,0\ny,1", &labels), ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 2);
    assert_string_equal(ich_labels_id(labels, 1), "y");
    assert_true(ich_labels_values(labels, 1)[0] == 1.0f);
    ich_labels_free(labels);
    assert_int_equal(read_text(*state, "n2.csv", "ID,any\nx,0\n\"y\",\"1\"", &labels), ICH_OK);
    assert_string_equal(ich_labels_id(labels, 1), "y");
    ich_labels_free(labels);
    assert_int_equal(read_text(*state, "n3.csv", "ID,any\r\nx,1\r", &labels), ICH_OK);
    assert_string_equal(ich_labels_id(labels, 0), "x");
    assert_true(ich_labels_values(labels, 0)[0] == 1.0f);
    ich_labels_free(labels);
}

static void test_spaces_and_header_only(void **state)
{
    ich_labels *labels;
    assert_int_equal(read_text(*state, "s.csv", " ID , Any \n x , 1 \n", &labels), ICH_OK);
    assert_string_equal(ich_labels_column_name(labels, 0), "Any");
    assert_string_equal(ich_labels_id(labels, 0), "x");
    assert_true(ich_labels_values(labels, 0)[0] == 1.0f);
    ich_labels_free(labels);
    assert_int_equal(read_text(*state, "h.csv", "ID,any,subdural\n", &labels), ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 0);
    assert_int_equal(ich_labels_columns(labels), 2);
    ich_labels_free(labels);
}

static void test_field_count_errors(void **state)
{
    expect_error(*state, "ID,any\nx,1\ny,0,1\n", ICH_ERR_FORMAT, 3);
    expect_error(*state, "ID,any\nx\n", ICH_ERR_FORMAT, 2);
    expect_error(*state, "ID,any\nx,1,\n", ICH_ERR_FORMAT, 2); /* trailing comma */
    /* blank lines and quoted line breaks still count as lines */
    expect_error(*state, "ID,any\n\nx,1\n\ny,1,2\n", ICH_ERR_FORMAT, 5);
    expect_error(*state, "ID,any\n\"a\nb\nc\",1\nd,1,2\n", ICH_ERR_FORMAT, 5);
    expect_error(*state, "ID,any\r\nx,1\r\ny\r\n", ICH_ERR_FORMAT, 3);
}

static void test_quote_errors(void **state)
{
    /* the message gives the line where the quote opened */
    expect_error(*state, "ID,any\nx,1\n\"y,0\nz,1\n", ICH_ERR_FORMAT, 3);
    expect_error(*state, "ID,any\n\"x\"y,1\n", ICH_ERR_FORMAT, 2);
    expect_error(*state, "ID,any\nx,\"1\" \n", ICH_ERR_FORMAT, 2);
}

static void test_empty_and_missing(void **state)
{
    expect_error(*state, "", ICH_ERR_FORMAT, 0);
    expect_error(*state, "\xEF\xBB\xBF\n\r\n   \n", ICH_ERR_FORMAT, 0);
    char path[4096];
    tu_join(path, sizeof path, *state, "does-not-exist.csv");
    ich_labels *labels = (ich_labels *)1;
    assert_int_equal(ich_labels_read(path, &labels), ICH_ERR_IO);
    assert_null(labels);
    assert_non_null(strstr(ich_last_error(), "does-not-exist.csv"));
    /* a folder is not a CSV file */
    assert_int_equal(ich_labels_read(*state, &labels), ICH_ERR_IO);
    assert_int_equal(ich_labels_read(NULL, &labels), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_read(path, NULL), ICH_ERR_INVALID_ARGUMENT);
}

/* A file with every awkward thing at once, against cells built here. */
static void test_random_quoting(void **state)
{
    uint32_t seed = 12345;
    const char *pieces[] = {"a", ",", "\"", "\n", "\r\n", " ", "b", "\r"};
    char ids[200][24];
    char *text = malloc(200 * 64 + 64);
    assert_non_null(text);
    size_t len = (size_t)sprintf(text, "\xEF\xBB\xBFID,subdural\r\n");
    for (int r = 0; r < 200; r++) {
        /* an ID of random pieces, made unique by its row number */
        int n = sprintf(ids[r], "%d", r);
        int parts = (int)(tu_rand(&seed) % 6);
        for (int k = 0; k < parts; k++)
            n += sprintf(ids[r] + n, "%s", pieces[tu_rand(&seed) % 8]);
        text[len++] = '"';
        for (const char *p = ids[r]; *p; p++) {
            if (*p == '"')
                text[len++] = '"';
            text[len++] = *p;
        }
        len += (size_t)sprintf(text + len, "\",%d%s", r % 2, tu_rand(&seed) % 2 ? "\r\n" : "\n");
        if (tu_rand(&seed) % 5 == 0)
            text[len++] = '\n'; /* a blank line */
    }
    text[len] = '\0';
    ich_labels *labels;
    assert_int_equal(read_text(*state, "r.csv", text, &labels), ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 200);
    for (int r = 0; r < 200; r++) {
        /* IDs lose spaces at their ends, as every cell does */
        const char *want = ids[r];
        size_t n = strlen(want);
        while (n && (want[n - 1] == ' '))
            n--;
        assert_int_equal(strlen(ich_labels_id(labels, r)), n);
        assert_memory_equal(ich_labels_id(labels, r), want, n);
        assert_true(ich_labels_values(labels, r)[0] == (float)(r % 2));
    }
    ich_labels_free(labels);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_quotes, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_crlf_bom_blank, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_no_final_newline, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_spaces_and_header_only, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_field_count_errors, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_quote_errors, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_empty_and_missing, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_random_quoting, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
