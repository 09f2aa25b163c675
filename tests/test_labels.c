/* Tests for the label tables of <ich/labels.h>: the table functions and
 * their errors, the long (RSNA) and wide CSV formats, writing and reading
 * back, the "any" check, and scan-level labels propagated to slices. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

static const char *const rsna[6] = {"any",           "epidural",     "intraparenchymal",
                                    "intraventricular", "subarachnoid", "subdural"};

static const char *write_text(char *path, size_t size, const char *dir, const char *name,
                              const char *text)
{
    tu_join(path, size, dir, name);
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    return path;
}

static void expect_message(const char *part)
{
    if (!strstr(ich_last_error(), part))
        fail_msg("message \"%s\" lacks \"%s\"", ich_last_error(), part);
}

static void expect_values(const ich_labels *labels, int64_t row, const float *want)
{
    const float *v = ich_labels_values(labels, row);
    assert_non_null(v);
    for (int32_t c = 0; c < ich_labels_columns(labels); c++)
        if (v[c] != want[c])
            fail_msg("row %lld column %d: %g, want %g", (long long)row, (int)c, (double)v[c],
                     (double)want[c]);
}

/* Log messages at warning level, counted (the library logs through this). */
static int warnings;
static char last_warning[512];
static void count_warnings(ich_log_level level, const char *message, void *user)
{
    (void)user;
    if (level >= ICH_LOG_WARNING) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", message);
    }
}

/* ---- Tables ---------------------------------------------------------------- */

static void test_label_name(void **state)
{
    (void)state;
    for (int i = 0; i < 6; i++)
        assert_string_equal(ich_label_name(i), rsna[i]);
    assert_null(ich_label_name(-1));
    assert_null(ich_label_name(6));
}

static void test_create(void **state)
{
    (void)state;
    ich_labels *labels = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &labels), ICH_OK);
    assert_int_equal(ich_labels_columns(labels), 6);
    assert_int_equal(ich_labels_rows(labels), 0);
    for (int i = 0; i < 6; i++)
        assert_string_equal(ich_labels_column_name(labels, i), rsna[i]);
    assert_null(ich_labels_column_name(labels, 6));
    assert_null(ich_labels_column_name(labels, -1));
    assert_int_equal(ich_labels_find_column(labels, "SubDural"), 5);
    assert_int_equal(ich_labels_find_column(labels, "sub"), -1);
    assert_int_equal(ich_labels_find_column(labels, NULL), -1);
    ich_labels_free(labels);

    const char *names[] = {"tumour", "Bleed"};
    assert_int_equal(ich_labels_create(names, 2, &labels), ICH_OK);
    assert_int_equal(ich_labels_columns(labels), 2);
    assert_string_equal(ich_labels_column_name(labels, 1), "Bleed");
    assert_int_equal(ich_labels_find_column(labels, "bleed"), 1);
    ich_labels_free(labels);

    const char *twice[] = {"any", "ANY"};
    const char *empty[] = {"a", ""};
    const char *comma[] = {"a,b"};
    const char *quote[] = {"a\"b"};
    const char *null_name[] = {NULL};
    labels = (ich_labels *)1;
    assert_int_equal(ich_labels_create(twice, 2, &labels), ICH_ERR_INVALID_ARGUMENT);
    assert_null(labels);
    assert_int_equal(ich_labels_create(empty, 2, &labels), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_create(comma, 1, &labels), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_create(quote, 1, &labels), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_create(null_name, 1, &labels), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_create(names, 0, &labels), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_create(NULL, 3, &labels), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_create(names, ICH_LABELS_MAX_COLUMNS + 1, &labels),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_create(NULL, 0, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_labels_free(NULL);
    assert_int_equal(ich_labels_rows(NULL), 0);
    assert_int_equal(ich_labels_columns(NULL), 0);
}

static void test_add_and_get(void **state)
{
    (void)state;
    ich_labels *labels;
    assert_int_equal(ich_labels_create(NULL, 0, &labels), ICH_OK);
    const float a[6] = {1, 0, 1, 0, 0, 0}, b[6] = {0.25f, 0, 0, 0, 0, 0.75f};
    assert_int_equal(ich_labels_add(labels, "ID_a", a, "P1"), ICH_OK);
    assert_int_equal(ich_labels_add(labels, "ID_b", b, NULL), ICH_OK);
    assert_int_equal(ich_labels_add(labels, "P2/scan/IM1", a, ""), ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 3);
    assert_string_equal(ich_labels_id(labels, 1), "ID_b");
    expect_values(labels, 0, a);
    expect_values(labels, 1, b);
    /* rows are contiguous, as the header promises */
    assert_ptr_equal(ich_labels_values(labels, 1), ich_labels_values(labels, 0) + 6);
    assert_string_equal(ich_labels_group(labels, 0), "P1");
    assert_string_equal(ich_labels_group(labels, 1), "");
    assert_string_equal(ich_labels_group(labels, 2), "");
    assert_null(ich_labels_group(labels, 3));
    assert_null(ich_labels_id(labels, -1));
    assert_null(ich_labels_values(labels, 3));
    assert_int_equal(ich_labels_find(labels, "ID_b"), 1);
    assert_int_equal(ich_labels_find(labels, "P2/scan/IM1"), 2);
    assert_int_equal(ich_labels_find(labels, "ID_"), -1);
    assert_int_equal(ich_labels_find(labels, "id_b"), -1); /* IDs are case-sensitive */
    assert_int_equal(ich_labels_find(labels, NULL), -1);
    assert_int_equal(ich_labels_find(NULL, "ID_b"), -1);

    assert_int_equal(ich_labels_set_group(labels, 1, "P9"), ICH_OK);
    assert_string_equal(ich_labels_group(labels, 1), "P9");
    assert_int_equal(ich_labels_set_group(labels, 0, NULL), ICH_OK);
    assert_string_equal(ich_labels_group(labels, 0), "");
    assert_int_equal(ich_labels_set_group(labels, 3, "x"), ICH_ERR_INVALID_ARGUMENT);

    /* errors leave the table as it was */
    assert_int_equal(ich_labels_add(labels, "ID_b", a, NULL), ICH_ERR_INVALID_ARGUMENT);
    expect_message("ID_b");
    assert_int_equal(ich_labels_add(labels, "", a, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_add(labels, NULL, a, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_add(labels, "x", NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
    float bad[6] = {0, 0, NAN, 0, 0, 0};
    assert_int_equal(ich_labels_add(labels, "x", bad, NULL), ICH_ERR_INVALID_ARGUMENT);
    bad[2] = INFINITY;
    assert_int_equal(ich_labels_add(labels, "x", bad, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_rows(labels), 3);
    assert_int_equal(ich_labels_find(labels, "x"), -1);

    int64_t counts[6];
    assert_int_equal(ich_labels_positives(labels, counts, 6), ICH_OK);
    const int64_t want[6] = {2, 0, 2, 0, 0, 1}; /* 0.25 is not positive, 0.75 is */
    assert_memory_equal(counts, want, sizeof want);
    assert_int_equal(ich_labels_positives(labels, counts, 5), ICH_ERR_SHAPE);
    assert_int_equal(ich_labels_positives(labels, NULL, 6), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_positives(NULL, counts, 6), ICH_ERR_INVALID_ARGUMENT);
    ich_labels_free(labels);
}

/* Many rows: every ID found at its row, absent ones not found (the hash
 * table grows many times on the way). */
static void test_copy(void **state)
{
    (void)state;
    const char *names[] = {"a", "b"};
    ich_labels *labels = NULL, *copy = NULL;
    assert_int_equal(ich_labels_create(names, 2, &labels), ICH_OK);
    const float v0[] = {1, 0}, v1[] = {0.25f, 1};
    assert_int_equal(ich_labels_add(labels, "x", v0, "p1"), ICH_OK);
    assert_int_equal(ich_labels_add(labels, "y", v1, NULL), ICH_OK);
    assert_int_equal(ich_labels_copy(labels, &copy), ICH_OK);
    /* the copy is independent: changing the source leaves it as it was */
    assert_int_equal(ich_labels_set_group(labels, 0, "other"), ICH_OK);
    const float v2[] = {1, 1};
    assert_int_equal(ich_labels_add(labels, "z", v2, NULL), ICH_OK);
    ich_labels_free(labels);
    assert_int_equal(ich_labels_rows(copy), 2);
    assert_int_equal(ich_labels_columns(copy), 2);
    assert_string_equal(ich_labels_column_name(copy, 1), "b");
    assert_string_equal(ich_labels_id(copy, 1), "y");
    assert_string_equal(ich_labels_group(copy, 0), "p1");
    assert_string_equal(ich_labels_group(copy, 1), "");
    expect_values(copy, 0, v0);
    expect_values(copy, 1, v1);
    assert_int_equal(ich_labels_find(copy, "y"), 1);
    ich_labels_free(copy);
    assert_int_equal(ich_labels_copy(NULL, &copy), ICH_ERR_INVALID_ARGUMENT);
    assert_null(copy);
}

static void test_many_rows(void **state)
{
    (void)state;
    const char *names[] = {"x"};
    ich_labels *labels;
    assert_int_equal(ich_labels_create(names, 1, &labels), ICH_OK);
    char id[32];
    for (int i = 0; i < 100000; i++) {
        float v = (float)(i % 3);
        snprintf(id, sizeof id, "ID_%x", (unsigned)i * 2654435761u);
        assert_int_equal(ich_labels_add(labels, id, &v, NULL), ICH_OK);
    }
    assert_int_equal(ich_labels_rows(labels), 100000);
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof id, "ID_%x", (unsigned)i * 2654435761u);
        assert_int_equal(ich_labels_find(labels, id), i);
        assert_true(ich_labels_values(labels, i)[0] == (float)(i % 3));
        snprintf(id, sizeof id, "id_%x", (unsigned)i * 2654435761u);
        assert_int_equal(ich_labels_find(labels, id), -1);
    }
    ich_labels_free(labels);
}

/* ---- Long format ----------------------------------------------------------- */

static void test_read_long(void **state)
{
    char path[4096];
    /* subtypes in RSNA's file order (any last), one exact duplicate row,
     * images in the order they first appear */
    const char *text = "ID,Label\n"
                       "ID_b_epidural,0\n"
                       "ID_b_intraparenchymal,1\n"
                       "ID_b_intraventricular,0\n"
                       "ID_b_subarachnoid,0\n"
                       "ID_b_subdural,0\n"
                       "ID_b_any,1\n"
                       "ID_a_epidural,0\n"
                       "ID_a_intraparenchymal,0\n"
                       "ID_a_intraventricular,0\n"
                       "ID_a_subarachnoid,0\n"
                       "ID_a_subdural,1\n"
                       "ID_a_subdural,1\n"
                       "ID_a_any,1\n"
                       "ID_b_any,1\n";
    ich_labels *labels = NULL;
    assert_int_equal(ich_labels_read(write_text(path, sizeof path, *state, "l.csv", text),
                                     &labels),
                     ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 2);
    assert_int_equal(ich_labels_columns(labels), 6);
    assert_string_equal(ich_labels_column_name(labels, 0), "any");
    assert_string_equal(ich_labels_id(labels, 0), "ID_b");
    assert_string_equal(ich_labels_id(labels, 1), "ID_a");
    const float b[6] = {1, 0, 1, 0, 0, 0}, a[6] = {1, 0, 0, 0, 0, 1};
    expect_values(labels, 0, b);
    expect_values(labels, 1, a);
    ich_labels_free(labels);

    /* header names ignore case; an image ID may hold '_' */
    const char *text2 = "id,LABEL\n"
                        "ID_x_y_ANY,0\nID_x_y_epidural,0\nID_x_y_intraparenchymal,0\n"
                        "ID_x_y_intraventricular,0\nID_x_y_subarachnoid,0\nID_x_y_subdural,0\n";
    assert_int_equal(ich_labels_read(write_text(path, sizeof path, *state, "l2.csv", text2),
                                     &labels),
                     ICH_OK);
    assert_int_equal(ich_labels_rows(labels), 1);
    assert_string_equal(ich_labels_id(labels, 0), "ID_x_y");
    ich_labels_free(labels);
}

static void expect_read_error(const char *dir, const char *text, ich_status status,
                              const char *part)
{
    char path[4096];
    ich_labels *labels = (ich_labels *)1;
    assert_int_equal(ich_labels_read(write_text(path, sizeof path, dir, "bad.csv", text), &labels),
                     status);
    assert_null(labels);
    expect_message(part);
}

static void test_read_long_errors(void **state)
{
    const char *six = "ID_a_any,1\nID_a_epidural,0\nID_a_intraparenchymal,0\n"
                      "ID_a_intraventricular,0\nID_a_subarachnoid,0\nID_a_subdural,1\n";
    char text[1024];
    /* conflicting duplicate */
    snprintf(text, sizeof text, "ID,Label\n%sID_a_subdural,0\n", six);
    expect_read_error(*state, text, ICH_ERR_FORMAT, "bad.csv:8:");
    /* missing subtype: the message names the image and the subtype */
    expect_read_error(*state,
                      "ID,Label\nID_a_any,1\nID_a_epidural,0\nID_a_intraparenchymal,0\n"
                      "ID_a_intraventricular,0\nID_a_subdural,1\n",
                      ICH_ERR_FORMAT, "ID_a has no row for subarachnoid");
    /* unknown subtype, no subtype, nothing before the subtype */
    snprintf(text, sizeof text, "ID,Label\n%sID_a_tumour,1\n", six);
    expect_read_error(*state, text, ICH_ERR_FORMAT, "bad.csv:8:");
    expect_read_error(*state, "ID,Label\nnounderscore,1\n", ICH_ERR_FORMAT, "bad.csv:2:");
    expect_read_error(*state, "ID,Label\n_any,1\n", ICH_ERR_FORMAT, "bad.csv:2:");
    /* a value that is not a number */
    snprintf(text, sizeof text, "ID,Label\n%sID_b_any,yes\n", six);
    expect_read_error(*state, text, ICH_ERR_FORMAT, "bad.csv:8:");
    expect_read_error(*state, "ID,Label\nID_a_any,\n", ICH_ERR_FORMAT, "bad.csv:2:");
    expect_read_error(*state, "ID,Label\nID_a_any,nan\n", ICH_ERR_FORMAT, "bad.csv:2:");
}

/* ---- Wide format ----------------------------------------------------------- */

static void test_read_wide(void **state)
{
    char path[4096];
    /* ID column not first and named "filename", columns in another order
     * and case, an ignored text column, a group column */
    const char *text = "Subdural,note,filename,ANY,PatientID,Epidural\n"
                       "1,hello,ID_1.dcm,1,P1,0\n"
                       "0,\"a, b\",ID_2.PNG,0.5,P2,0\n"
                       "0,x,ID_3,0,,1\n";
    ich_labels *labels = NULL;
    assert_int_equal(ich_labels_read(write_text(path, sizeof path, *state, "w.csv", text),
                                     &labels),
                     ICH_OK);
    assert_int_equal(ich_labels_columns(labels), 3);
    assert_string_equal(ich_labels_column_name(labels, 0), "Subdural");
    assert_string_equal(ich_labels_column_name(labels, 1), "ANY");
    assert_string_equal(ich_labels_column_name(labels, 2), "Epidural");
    assert_int_equal(ich_labels_find_column(labels, "any"), 1);
    assert_int_equal(ich_labels_rows(labels), 3);
    assert_string_equal(ich_labels_id(labels, 0), "ID_1");
    assert_string_equal(ich_labels_id(labels, 1), "ID_2");
    assert_string_equal(ich_labels_id(labels, 2), "ID_3");
    const float r0[3] = {1, 1, 0}, r1[3] = {0, 0.5f, 0}, r2[3] = {0, 0, 1};
    expect_values(labels, 0, r0);
    expect_values(labels, 1, r1);
    expect_values(labels, 2, r2);
    assert_string_equal(ich_labels_group(labels, 0), "P1");
    assert_string_equal(ich_labels_group(labels, 2), "");
    ich_labels_free(labels);

    /* no RSNA column: the numeric columns are the labels, the first column
     * the ID when none has an ID name, an unnamed column (pandas' index) is
     * not a label */
    const char *other = "name,,tumour,site,Bleed\nimg1,0,1,left,0\nimg2,1,0,right,1\n";
    assert_int_equal(ich_labels_read(write_text(path, sizeof path, *state, "o.csv", other),
                                     &labels),
                     ICH_OK);
    assert_int_equal(ich_labels_columns(labels), 2);
    assert_string_equal(ich_labels_column_name(labels, 0), "tumour");
    assert_string_equal(ich_labels_column_name(labels, 1), "Bleed");
    assert_string_equal(ich_labels_id(labels, 1), "img2");
    const float o1[2] = {0, 1};
    expect_values(labels, 1, o1);
    ich_labels_free(labels);
}

static void test_read_wide_errors(void **state)
{
    expect_read_error(*state, "ID,any,epidural\na,1,0\nb,1,x\n", ICH_ERR_FORMAT, "bad.csv:3:");
    expect_read_error(*state, "ID,any,epidural\na,1,0\nb,1,\n", ICH_ERR_FORMAT, "bad.csv:3:");
    expect_read_error(*state, "ID,any\na,1\n\na.dcm,0\n", ICH_ERR_FORMAT, "bad.csv:4:");
    expect_read_error(*state, "ID,any\na,1\n  ,0\n", ICH_ERR_FORMAT, "bad.csv:3:");
    expect_read_error(*state, "ID,note\na,x\n", ICH_ERR_FORMAT, "no label column");
    expect_read_error(*state, "ID,any,Any\na,1,1\n", ICH_ERR_FORMAT, "bad.csv");
    expect_read_error(*state, "ID,any\na,1e39\n", ICH_ERR_FORMAT, "bad.csv:2:");
}

/* A file without a header line: its first row used to become the header
 * (lost, with a label column named "1"); now refused, naming the file and
 * the headers expected. Every legitimate header form still reads. */
static void test_read_without_header(void **state)
{
    static const char *const headerless[] = {
        "ID_0001,0,1,0,0,1,0\nID_0002,0,0,0,0,0,0\n",     /* wide, no header */
        "ID_0001.dcm,1,0\nID_0002.dcm,0,0\n",             /* wide, file names */
        "ID_0001_epidural,0\nID_0001_any,1\nID_0002_any,0\n", /* long, no header */
        "ID_0001_any,1\n",                                 /* one line */
        "img1,0.5,1\n",
    };
    for (size_t k = 0; k < sizeof headerless / sizeof *headerless; k++) {
        expect_read_error(*state, headerless[k], ICH_ERR_FORMAT, "bad.csv: the first line is not a header");
        assert_non_null(strstr(ich_last_error(), "\"ID,Label\""));
    }
    static const char *const fine[] = {
        "ID,Label\nID_1_any,1\nID_1_epidural,0\nID_1_intraparenchymal,0\n"
        "ID_1_intraventricular,0\nID_1_subarachnoid,0\nID_1_subdural,1\n",
        "id,label\nID_1_any,1\nID_1_epidural,0\nID_1_intraparenchymal,0\n"
        "ID_1_intraventricular,0\nID_1_subarachnoid,0\nID_1_subdural,1\n",
        "ID,any,epidural\nID_1,1,0\n",
        "filename,any\nID_1.dcm,1\n",
        "image,tumour\nimg1,1\n",
        "ID_1,any,0\nID_2,1,0\n", /* an odd header, but a header (names RSNA's any) */
        ",ID,any\n0,ID_1,1\n",  /* pandas' index column */
    };
    for (size_t k = 0; k < sizeof fine / sizeof *fine; k++) {
        char path[4096];
        ich_labels *labels = NULL;
        if (ich_labels_read(write_text(path, sizeof path, *state, "fine.csv", fine[k]), &labels))
            fail_msg("case %zu: %s", k, ich_last_error());
        assert_int_equal(ich_labels_rows(labels), 1);
        ich_labels_free(labels);
    }
}

/* ---- Writing ------------------------------------------------------------- */

static void test_write_read_round_trip(void **state)
{
    ich_labels *labels;
    const char *names[] = {"any", "subdural", "soft"};
    assert_int_equal(ich_labels_create(names, 3, &labels), ICH_OK);
    const float v[4][3] = {{1, 0, 0.125f}, {0, 0, 0}, {1, 1, 1.0f / 3.0f}, {0, 1, -2.5f}};
    const char *ids[4] = {"ID_1", "with,comma", "P1/s1/IM \"2\"", "line\nbreak"};
    const char *groups[4] = {"P1", NULL, "P,2", ""};
    for (int i = 0; i < 4; i++)
        assert_int_equal(ich_labels_add(labels, ids[i], v[i], groups[i]), ICH_OK);
    char path[4096];
    tu_join(path, sizeof path, *state, "new/sub/out.csv"); /* parents created */
    assert_int_equal(ich_labels_write(labels, path), ICH_OK);

    size_t size;
    char *text = (char *)tu_read_file(path, &size);
    assert_non_null(text);
    const char *head = "ID,any,subdural,soft,patient\nID_1,1,0,0.125,P1\n\"with,comma\",0,0,0,\n";
    assert_memory_equal(text, head, strlen(head));
    free(text);

    ich_labels *back = NULL;
    assert_int_equal(ich_labels_read(path, &back), ICH_OK);
    assert_int_equal(ich_labels_rows(back), 4);
    assert_int_equal(ich_labels_columns(back), 2 + 0); /* "soft" is not an RSNA name */
    ich_labels_free(back);

    /* only RSNA names: everything comes back exactly (%.9g round-trips) */
    ich_labels *rs;
    assert_int_equal(ich_labels_create(NULL, 0, &rs), ICH_OK);
    uint32_t seed = 7;
    for (int i = 0; i < 4; i++) {
        float row[6];
        for (int c = 0; c < 6; c++)
            row[c] = (float)(tu_rand(&seed) % 1000) / 997.0f;
        assert_int_equal(ich_labels_add(rs, ids[i], row, groups[i]), ICH_OK);
    }
    assert_int_equal(ich_labels_write(rs, path), ICH_OK);
    assert_int_equal(ich_labels_read(path, &back), ICH_OK);
    assert_int_equal(ich_labels_rows(back), 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(ich_labels_id(back, i), ids[i]);
        assert_string_equal(ich_labels_group(back, i), groups[i] ? groups[i] : "");
        assert_memory_equal(ich_labels_values(back, i), ich_labels_values(rs, i),
                            6 * sizeof(float));
    }
    ich_labels_free(back);
    ich_labels_free(rs);
    ich_labels_free(labels);

    assert_int_equal(ich_labels_write(NULL, path), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_write_long(NULL, path), ICH_ERR_INVALID_ARGUMENT);
}

static void test_write_long_round_trip(void **state)
{
    ich_labels *labels;
    assert_int_equal(ich_labels_create(NULL, 0, &labels), ICH_OK);
    uint32_t seed = 99;
    char id[32];
    for (int i = 0; i < 500; i++) {
        float row[6];
        for (int c = 1; c < 6; c++)
            row[c] = tu_rand(&seed) % 4 == 0;
        row[0] = row[1] || row[2] || row[3] || row[4] || row[5];
        snprintf(id, sizeof id, "ID_%08x", tu_rand(&seed));
        if (ich_labels_find(labels, id) < 0)
            assert_int_equal(ich_labels_add(labels, id, row, NULL), ICH_OK);
    }
    char path[4096];
    tu_join(path, sizeof path, *state, "long.csv");
    assert_int_equal(ich_labels_write_long(labels, path), ICH_OK);
    size_t size;
    char *text = (char *)tu_read_file(path, &size);
    assert_non_null(text);
    char first[128];
    snprintf(first, sizeof first, "ID,Label\n%s_any,", ich_labels_id(labels, 0));
    assert_memory_equal(text, first, strlen(first));
    int lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    assert_int_equal(lines, 1 + 6 * ich_labels_rows(labels));
    free(text);

    ich_labels *back;
    assert_int_equal(ich_labels_read(path, &back), ICH_OK);
    assert_int_equal(ich_labels_rows(back), ich_labels_rows(labels));
    for (int64_t r = 0; r < ich_labels_rows(labels); r++) {
        assert_string_equal(ich_labels_id(back, r), ich_labels_id(labels, r));
        assert_memory_equal(ich_labels_values(back, r), ich_labels_values(labels, r),
                            6 * sizeof(float));
    }
    ich_labels_free(back);
    ich_labels_free(labels);
}

/* ---- The any check -------------------------------------------------------- */

static void test_check_any(void **state)
{
    (void)state;
    ich_labels *labels;
    assert_int_equal(ich_labels_create(NULL, 0, &labels), ICH_OK);
    const float rows[5][6] = {
        {1, 0, 1, 0, 0, 0}, /* fine */
        {0, 0, 0, 1, 0, 0}, /* any missing */
        {1, 0, 0, 0, 0, 0}, /* any without a subtype */
        {0, 0, 0, 0, 0, 0}, /* fine */
        {0, 0, 0, 0, 0, 0.8f}, /* soft subtype counts as positive */
    };
    char id[8];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "r%d", i);
        assert_int_equal(ich_labels_add(labels, id, rows[i], NULL), ICH_OK);
    }
    warnings = 0;
    ich_set_log_callback(count_warnings, NULL, ICH_LOG_WARNING);
    int64_t mismatches = -1;
    assert_int_equal(ich_labels_check_any(labels, 0, &mismatches), ICH_OK);
    assert_int_equal(mismatches, 3);
    assert_int_equal(warnings, 3);
    assert_true(ich_labels_values(labels, 1)[0] == 0.0f); /* not fixed */
    assert_int_equal(ich_labels_check_any(labels, 1, &mismatches), ICH_OK);
    assert_int_equal(mismatches, 3);
    assert_true(ich_labels_values(labels, 1)[0] == 1.0f);
    assert_true(ich_labels_values(labels, 2)[0] == 0.0f);
    assert_true(ich_labels_values(labels, 4)[0] == 1.0f);
    assert_true(ich_labels_values(labels, 0)[0] == 1.0f);
    assert_int_equal(ich_labels_check_any(labels, 0, &mismatches), ICH_OK);
    assert_int_equal(mismatches, 0);
    assert_int_equal(ich_labels_check_any(labels, 0, NULL), ICH_OK);
    ich_set_log_callback(NULL, NULL, ICH_LOG_WARNING);
    ich_labels_free(labels);

    /* "any" need not be first; without it: NOT_FOUND */
    const char *names[] = {"subdural", "ANY"};
    assert_int_equal(ich_labels_create(names, 2, &labels), ICH_OK);
    const float r[2] = {1, 0};
    assert_int_equal(ich_labels_add(labels, "x", r, NULL), ICH_OK);
    assert_int_equal(ich_labels_check_any(labels, 1, &mismatches), ICH_OK);
    assert_int_equal(mismatches, 1);
    assert_true(ich_labels_values(labels, 0)[1] == 1.0f);
    ich_labels_free(labels);
    const char *no_any[] = {"subdural"};
    assert_int_equal(ich_labels_create(no_any, 1, &labels), ICH_OK);
    assert_int_equal(ich_labels_check_any(labels, 0, &mismatches), ICH_ERR_NOT_FOUND);
    ich_labels_free(labels);
    assert_int_equal(ich_labels_check_any(NULL, 0, &mismatches), ICH_ERR_INVALID_ARGUMENT);
}

/* ---- Propagation ------------------------------------------------------------ */

static void make_file(const char *root, const char *rel)
{
    char path[4096];
    tu_join(path, sizeof path, root, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
    *slash = '/';
    assert_int_equal(tu_write_file(path, "x", 1), 0);
}

static void test_propagate(void **state)
{
    char root[4096], csv[4096];
    tu_join(root, sizeof root, *state, "data");
    make_file(root, "P1/scanB/IM2.dcm");
    make_file(root, "P1/scanB/IM10.dcm");
    make_file(root, "P1/scanB/IM1.dcm");
    make_file(root, "P1/scanB/notes.txt"); /* ignored */
    make_file(root, "P1/scanA/a.png");
    make_file(root, "P2/s1/x.dcm");
    make_file(root, "P3/orphan/y.dcm");   /* folder without a row */
    make_file(root, "P1/scanB/sub.dcm/z.dcm"); /* a folder inside a scan: ignored */
    const char *text = "PatientID,Scan,Any,subdural,epidural\n"
                       "P1,scanB,1,1,0\n"
                       "P2,s1,0,0,0\n"
                       "P9,gone,1,0,1\n" /* scan without a folder */
                       "P1,scanA,1,0,1\n";
    write_text(csv, sizeof csv, *state, "scans.csv", text);
    warnings = 0;
    ich_set_log_callback(count_warnings, NULL, ICH_LOG_WARNING);
    ich_labels *labels = NULL;
    assert_int_equal(ich_labels_propagate(root, csv, &labels), ICH_OK);
    ich_set_log_callback(NULL, NULL, ICH_LOG_WARNING);
    assert_int_equal(warnings, 2); /* P9/gone and P3/orphan */
    assert_int_equal(ich_labels_columns(labels), 3);
    assert_string_equal(ich_labels_column_name(labels, 0), "Any");
    const char *want[] = {"P1/scanB/IM1", "P1/scanB/IM10", "P1/scanB/IM2", "P2/s1/x",
                          "P1/scanA/a"};
    assert_int_equal(ich_labels_rows(labels), 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(ich_labels_id(labels, i), want[i]);
    const float b[3] = {1, 1, 0}, s1[3] = {0, 0, 0}, a[3] = {1, 0, 1};
    expect_values(labels, 1, b);
    expect_values(labels, 3, s1);
    expect_values(labels, 4, a);
    assert_string_equal(ich_labels_group(labels, 0), "P1");
    assert_string_equal(ich_labels_group(labels, 3), "P2");
    ich_labels_free(labels);

    /* errors */
    labels = (ich_labels *)1;
    char missing[4096];
    tu_join(missing, sizeof missing, *state, "nowhere");
    assert_int_equal(ich_labels_propagate(missing, csv, &labels), ICH_ERR_IO);
    assert_null(labels);
    assert_int_equal(ich_labels_propagate(root, missing, &labels), ICH_ERR_IO);
    write_text(csv, sizeof csv, *state, "noscan.csv", "patient,any\nP1,1\n");
    assert_int_equal(ich_labels_propagate(root, csv, &labels), ICH_ERR_FORMAT);
    expect_message("scan");
    write_text(csv, sizeof csv, *state, "bad.csv", "patient,scan,any\nP1,scanA,1\nP2,s1,?\n");
    assert_int_equal(ich_labels_propagate(root, csv, &labels), ICH_ERR_FORMAT);
    expect_message("bad.csv:3:");
    write_text(csv, sizeof csv, *state, "twice.csv", "patient,scan,any\nP1,scanA,1\nP1,scanA,1\n");
    assert_int_equal(ich_labels_propagate(root, csv, &labels), ICH_ERR_FORMAT);
    expect_message("twice.csv:3:");
    write_text(csv, sizeof csv, *state, "dots.csv", "patient,scan,any\n..,P1,1\n");
    assert_int_equal(ich_labels_propagate(root, csv, &labels), ICH_ERR_FORMAT);
    write_text(csv, sizeof csv, *state, "none.csv", "patient,scan,any\nP9,gone,1\n");
    assert_int_equal(ich_labels_propagate(root, csv, &labels), ICH_ERR_NOT_FOUND);
    assert_null(labels);
    assert_int_equal(ich_labels_propagate(NULL, csv, &labels), ICH_ERR_INVALID_ARGUMENT);
}


/* A FIFO named like a slice is not a slice (reading it would block); a
 * patient or scan that is not one folder name is refused by the shared
 * rule, with the CSV line. */
static void test_propagate_special_files_and_names(void **state)
{
    char root[4096], csv[4096], fifo[4096];
    tu_join(root, sizeof root, *state, "data");
    make_file(root, "P1/s1/IM1.dcm");
    assert_int_equal(mkfifo(tu_join(fifo, sizeof fifo, root, "P1/s1/pipe.dcm"), 0644), 0);
    write_text(csv, sizeof csv, *state, "scans.csv", "patient,scan,any\nP1,s1,1\n");
    warnings = 0;
    ich_set_log_callback(count_warnings, NULL, ICH_LOG_WARNING);
    ich_labels *labels = NULL;
    assert_int_equal(ich_labels_propagate(root, csv, &labels), ICH_OK);
    ich_set_log_callback(NULL, NULL, ICH_LOG_WARNING);
    assert_int_equal(ich_labels_rows(labels), 1);
    assert_string_equal(ich_labels_id(labels, 0), "P1/s1/IM1");
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "pipe.dcm: not a regular file"));
    ich_labels_free(labels);

    write_text(csv, sizeof csv, *state, "ctl.csv", "patient,scan,any\nP1,s1,1\nP\x01,s1,1\n");
    assert_int_equal(ich_labels_propagate(root, csv, &labels), ICH_ERR_FORMAT);
    expect_message("ctl.csv:3: patient \"P\\x01\" is not a folder name: it holds a control");
    write_text(csv, sizeof csv, *state, "slash.csv", "patient,scan,any\nP1,a/b,1\n");
    assert_int_equal(ich_labels_propagate(root, csv, &labels), ICH_ERR_FORMAT);
    expect_message("slash.csv:2: scan \"a/b\" is not a folder name: it holds a '/'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_name),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_add_and_get),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_many_rows),
        cmocka_unit_test_setup_teardown(test_read_long, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_long_errors, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_wide, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_wide_errors, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_without_header, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_write_read_round_trip, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_write_long_round_trip, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test(test_check_any),
        cmocka_unit_test_setup_teardown(test_propagate, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_propagate_special_files_and_names, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
