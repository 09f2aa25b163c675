/* Tests for <ich/dicom.h>: CT slice writing, reading back, metadata,
 * error handling on bad and truncated files, and (when pydicom's sample
 * files are available through ICH_PYDICOM_TEST_FILES) real-world files in
 * several transfer syntaxes. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

#define ROWS 37
#define COLS 53

static const char *STUDY_UID = "1.2.826.0.1.3680043.8.498.10001";
static const char *SERIES_UID = "1.2.826.0.1.3680043.8.498.10001.2";
static const char *SOP_UID = "1.2.826.0.1.3680043.8.498.10001.2.3";

/* ---- Fixtures ------------------------------------------------------------ */

/* 37 x 53 int16 values with the extremes, zero, +-1 and pseudo-random rest. */
static void make_pixels(int16_t *px, int n)
{
    uint32_t seed = 12345;
    for (int i = 0; i < n; i++)
        px[i] = (int16_t)(tu_rand(&seed) & 0xffff);
    px[0] = INT16_MIN;
    px[1] = INT16_MAX;
    px[2] = 0;
    px[3] = -1;
    px[4] = 1;
    px[n - 1] = INT16_MIN;
    px[n - 2] = INT16_MAX;
}

static ich_ct_slice full_slice(const int16_t *px)
{
    ich_ct_slice s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    s.rows = ROWS;
    s.columns = COLS;
    s.pixels = px;
    s.rescale_slope = 2.5;
    s.rescale_intercept = -1024.0;
    s.pixel_spacing[0] = 0.5;
    s.pixel_spacing[1] = 0.75;
    s.slice_thickness = 2.5;
    s.image_position[0] = -125.5;
    s.image_position[1] = -110.25;
    s.image_position[2] = 42.75;
    s.instance_number = 17;
    s.window_center = 40.0;
    s.window_width = 80.0;
    s.patient_id = "PAT-0042";
    s.study_instance_uid = STUDY_UID;
    s.series_instance_uid = SERIES_UID;
    s.sop_instance_uid = SOP_UID;
    return s;
}

static ich_ct_slice minimal_slice(const int16_t *px, int32_t rows, int32_t columns)
{
    ich_ct_slice s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    s.rows = rows;
    s.columns = columns;
    s.pixels = px;
    return s;
}

/* A valid DICOM UID: 1..64 characters, digits and dots, no empty component,
 * no leading zero in a multi-digit component. */
static int uid_is_valid(const char *uid)
{
    size_t len = strlen(uid);
    if (len == 0 || len > 64)
        return 0;
    const char *p = uid;
    while (1) {
        const char *start = p;
        while (*p >= '0' && *p <= '9')
            p++;
        size_t comp = (size_t)(p - start);
        if (comp == 0)
            return 0;
        if (comp > 1 && start[0] == '0')
            return 0;
        if (*p == '\0')
            return 1;
        if (*p != '.')
            return 0;
        p++;
    }
}

static void assert_dir_holds(const char *dir, int count, const char *expect_names)
{
    char names[1024];
    int n = tu_dir_count(dir, names, sizeof names);
    if (n != count || (expect_names && strcmp(names, expect_names) != 0))
        fail_msg("directory %s holds %d entries [%s], expected %d [%s]", dir, n, names, count,
                 expect_names ? expect_names : "");
}

/* ---- Round trip ---------------------------------------------------------- */

static void test_round_trip(void **state)
{
    const char *dir = *state;
    char path[512];
    tu_join(path, sizeof path, dir, "slice.dcm");
    static int16_t px[ROWS * COLS];
    make_pixels(px, ROWS * COLS);
    ich_ct_slice s = full_slice(px);

    assert_int_equal(ich_dicom_write_ct(path, &s), ICH_OK);
    assert_dir_holds(dir, 1, "slice.dcm");

    ich_dicom *d = NULL;
    assert_int_equal(ich_dicom_read(path, &d), ICH_OK);
    assert_non_null(d);

    int32_t r = -1, c = -1;
    ich_dicom_size(d, &r, &c);
    assert_int_equal(r, ROWS);
    assert_int_equal(c, COLS);
    r = -1;
    ich_dicom_size(d, &r, NULL);
    assert_int_equal(r, ROWS);
    c = -1;
    ich_dicom_size(d, NULL, &c);
    assert_int_equal(c, COLS);
    ich_dicom_size(d, NULL, NULL);

    ich_dicom_info info;
    memset(&info, 0x5a, sizeof info);
    info.size = sizeof info;
    assert_int_equal(ich_dicom_get_info(d, &info), ICH_OK);
    assert_int_equal(info.size, sizeof info);
    assert_int_equal(info.rows, ROWS);
    assert_int_equal(info.columns, COLS);
    assert_int_equal(info.bits_allocated, 16);
    assert_int_equal(info.bits_stored, 16);
    assert_int_equal(info.pixel_representation, 1);
    assert_int_equal(info.sample_bits, 16);
    assert_int_equal(info.monochrome1, 0);
    assert_int_equal(info.instance_number, 17);
    assert_true(info.rescale_slope == 2.5);
    assert_true(info.rescale_intercept == -1024.0);
    assert_true(info.pixel_spacing[0] == 0.5);
    assert_true(info.pixel_spacing[1] == 0.75);
    assert_true(info.slice_thickness == 2.5);
    assert_true(info.image_position[0] == -125.5);
    assert_true(info.image_position[1] == -110.25);
    assert_true(info.image_position[2] == 42.75);
    assert_true(info.window_center == 40.0);
    assert_true(info.window_width == 80.0);
    assert_string_equal(info.photometric, "MONOCHROME2");
    assert_string_equal(info.modality, "CT");
    assert_string_equal(info.transfer_syntax, "1.2.840.10008.1.2.1");
    assert_string_equal(info.sop_instance_uid, SOP_UID);
    assert_string_equal(info.series_instance_uid, SERIES_UID);
    assert_string_equal(info.study_instance_uid, STUDY_UID);
    assert_string_equal(info.patient_id, "PAT-0042");

    const int16_t *stored = ich_dicom_pixels(d);
    assert_non_null(stored);
    assert_memory_equal(stored, px, sizeof px);

    const float *hu = ich_dicom_hu(d);
    assert_non_null(hu);
    for (int i = 0; i < ROWS * COLS; i++) {
        float ref = (float)px[i] * (float)2.5 + (float)-1024.0;
        if (hu[i] != ref)
            fail_msg("hu[%d] = %.9g, expected %.9g (stored %d)", i, hu[i], ref, px[i]);
    }
    assert_true(hu[0] == -32768.0f * 2.5f - 1024.0f);
    assert_true(hu[1] == 32767.0f * 2.5f - 1024.0f);

    ich_dicom_free(d);
    ich_dicom_free(NULL);
    assert_dir_holds(dir, 1, "slice.dcm");
}

/* ---- Defaults ------------------------------------------------------------ */

static void read_info(const char *path, ich_dicom_info *info)
{
    ich_dicom *d = NULL;
    ich_status st = ich_dicom_read(path, &d);
    if (st != ICH_OK)
        fail_msg("ich_dicom_read(%s): %s: %s", path, ich_status_string(st), ich_last_error());
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
    assert_int_equal(ich_dicom_get_info(d, info), ICH_OK);
    ich_dicom_free(d);
}

/* The full test slice written as dir/full.dcm, and that file's bytes
 * (malloc'd, *size of them): the starting point for damaged copies. */
static uint8_t *written_slice_bytes(const char *dir, size_t *size)
{
    char full[512];
    tu_join(full, sizeof full, dir, "full.dcm");
    static int16_t px[ROWS * COLS];
    make_pixels(px, ROWS * COLS);
    ich_ct_slice s = full_slice(px);
    assert_int_equal(ich_dicom_write_ct(full, &s), ICH_OK);
    uint8_t *bytes = tu_read_file(full, size);
    assert_non_null(bytes);
    return bytes;
}

/* Bytes in memory decode exactly as the same bytes in a file; errors name
 * the caller's name for them. */
static void test_read_memory(void **state)
{
    const char *dir = *state;
    size_t size = 0;
    uint8_t *bytes = written_slice_bytes(dir, &size);
    char path[512];
    tu_join(path, sizeof path, dir, "full.dcm");
    ich_dicom *from_file = NULL, *from_memory = NULL;
    assert_int_equal(ich_dicom_read(path, &from_file), ICH_OK);
    assert_int_equal(ich_dicom_read_memory(bytes, size, "slice in memory", &from_memory), ICH_OK);
    ich_dicom_info a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.size = b.size = sizeof a;
    assert_int_equal(ich_dicom_get_info(from_file, &a), ICH_OK);
    assert_int_equal(ich_dicom_get_info(from_memory, &b), ICH_OK);
    assert_memory_equal(&a, &b, sizeof a);
    assert_memory_equal(ich_dicom_pixels(from_file), ich_dicom_pixels(from_memory),
                        (size_t)ROWS * COLS * 2);
    /* the handle keeps nothing of the caller's bytes */
    memset(bytes, 0, size);
    assert_memory_equal(ich_dicom_hu(from_file), ich_dicom_hu(from_memory),
                        (size_t)ROWS * COLS * sizeof(float));
    ich_dicom_free(from_file);
    ich_dicom_free(from_memory);
    free(bytes);

    bytes = written_slice_bytes(dir, &size);
    ich_dicom *d = (ich_dicom *)(uintptr_t)0x1;
    assert_int_equal(ich_dicom_read_memory(bytes, size / 2, "half.dcm", &d), ICH_ERR_FORMAT);
    assert_null(d);
    assert_non_null(strstr(ich_last_error(), "half.dcm"));
    assert_int_equal(ich_dicom_read_memory(bytes, 0, NULL, &d), ICH_ERR_FORMAT);
    assert_non_null(strstr(ich_last_error(), "<memory>"));
    assert_int_equal(ich_dicom_read_memory(NULL, 10, "x", &d), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_dicom_read_memory(bytes, size, "x", NULL), ICH_ERR_INVALID_ARGUMENT);
    free(bytes);
}

static void test_defaults(void **state)
{
    const char *dir = *state;
    int16_t px[4 * 5];
    for (int i = 0; i < 20; i++)
        px[i] = (int16_t)(i * 100 - 1000);
    ich_ct_slice s = minimal_slice(px, 4, 5);
    char a[512], b[512];
    tu_join(a, sizeof a, dir, "a.dcm");
    tu_join(b, sizeof b, dir, "b.dcm");
    assert_int_equal(ich_dicom_write_ct(a, &s), ICH_OK);
    assert_int_equal(ich_dicom_write_ct(b, &s), ICH_OK);
    assert_int_equal(tu_dir_count(dir, NULL, 0), 2);
    assert_true(tu_exists(a) && tu_exists(b));

    ich_dicom_info ia, ib;
    read_info(a, &ia);
    read_info(b, &ib);
    const ich_dicom_info *both[2] = {&ia, &ib};
    for (int k = 0; k < 2; k++) {
        const ich_dicom_info *in = both[k];
        assert_int_equal(in->rows, 4);
        assert_int_equal(in->columns, 5);
        assert_string_equal(in->patient_id, "ANONYMOUS");
        assert_string_equal(in->modality, "CT");
        assert_string_equal(in->photometric, "MONOCHROME2");
        assert_true(in->rescale_slope == 1.0);
        assert_true(in->rescale_intercept == 0.0);
        assert_true(in->pixel_spacing[0] == 1.0);
        assert_true(in->pixel_spacing[1] == 1.0);
        assert_true(isnan(in->slice_thickness)); /* 0 means absent */
        assert_true(isnan(in->window_center));   /* width 0: not written */
        assert_true(isnan(in->window_width));
        assert_int_equal(in->instance_number, 0);
        const char *uids[3] = {in->study_instance_uid, in->series_instance_uid,
                               in->sop_instance_uid};
        for (int u = 0; u < 3; u++)
            if (!uid_is_valid(uids[u]))
                fail_msg("generated UID '%s' is not a valid DICOM UID", uids[u]);
        assert_string_not_equal(in->study_instance_uid, in->series_instance_uid);
        assert_string_not_equal(in->study_instance_uid, in->sop_instance_uid);
        assert_string_not_equal(in->series_instance_uid, in->sop_instance_uid);
    }
    assert_string_not_equal(ia.study_instance_uid, ib.study_instance_uid);
    assert_string_not_equal(ia.series_instance_uid, ib.series_instance_uid);
    assert_string_not_equal(ia.sop_instance_uid, ib.sop_instance_uid);

    /* Slope 0 means 1, intercept 0: hu equals the stored values. */
    ich_dicom *d = NULL;
    assert_int_equal(ich_dicom_read(a, &d), ICH_OK);
    const int16_t *stored = ich_dicom_pixels(d);
    const float *hu = ich_dicom_hu(d);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(stored[i], px[i]);
        assert_true(hu[i] == (float)px[i]);
    }
    ich_dicom_free(d);

    /* A 1x1 slice and a 1-row slice are valid. */
    char c1[512];
    tu_join(c1, sizeof c1, dir, "one.dcm");
    int16_t one = -7;
    ich_ct_slice s1 = minimal_slice(&one, 1, 1);
    assert_int_equal(ich_dicom_write_ct(c1, &s1), ICH_OK);
    assert_int_equal(ich_dicom_read(c1, &d), ICH_OK);
    assert_int_equal(((const int16_t *)ich_dicom_pixels(d))[0], -7);
    assert_true(ich_dicom_hu(d)[0] == -7.0f);
    ich_dicom_free(d);
    assert_int_equal(tu_dir_count(dir, NULL, 0), 3);
}

/* ---- Overwrite and atomicity --------------------------------------------- */

static void test_overwrite(void **state)
{
    const char *dir = *state;
    char path[512];
    tu_join(path, sizeof path, dir, "same.dcm");
    int16_t p1[6] = {1, 2, 3, 4, 5, 6}, p2[6] = {-6, -5, -4, -3, -2, -1};
    ich_ct_slice s = minimal_slice(p1, 2, 3);
    assert_int_equal(ich_dicom_write_ct(path, &s), ICH_OK);
    s.pixels = p2;
    assert_int_equal(ich_dicom_write_ct(path, &s), ICH_OK);
    assert_dir_holds(dir, 1, "same.dcm");
    ich_dicom *d = NULL;
    assert_int_equal(ich_dicom_read(path, &d), ICH_OK);
    assert_memory_equal(ich_dicom_pixels(d), p2, sizeof p2);
    ich_dicom_free(d);

    /* A failed write (bad UID) leaves the existing file as it was. */
    size_t before_size = 0, after_size = 0;
    uint8_t *before = tu_read_file(path, &before_size);
    assert_non_null(before);
    s.pixels = p1;
    s.sop_instance_uid = "abc..x";
    assert_int_equal(ich_dicom_write_ct(path, &s), ICH_ERR_INVALID_ARGUMENT);
    uint8_t *after = tu_read_file(path, &after_size);
    assert_non_null(after);
    assert_int_equal(before_size, after_size);
    assert_memory_equal(before, after, before_size);
    free(before);
    free(after);
    assert_dir_holds(dir, 1, "same.dcm");
}

/* ---- ich_dicom_get_info and info->size ----------------------------------- */

static void test_info_size(void **state)
{
    const char *dir = *state;
    char path[512];
    tu_join(path, sizeof path, dir, "info.dcm");
    static int16_t px[ROWS * COLS];
    make_pixels(px, ROWS * COLS);
    ich_ct_slice s = full_slice(px);
    assert_int_equal(ich_dicom_write_ct(path, &s), ICH_OK);
    ich_dicom *d = NULL;
    assert_int_equal(ich_dicom_read(path, &d), ICH_OK);

    ich_dicom_info full;
    memset(&full, 0, sizeof full);
    full.size = sizeof full;
    assert_int_equal(ich_dicom_get_info(d, &full), ICH_OK);

    const size_t sizes[] = {
        offsetof(ich_dicom_info, bits_allocated), /* just rows and columns */
        offsetof(ich_dicom_info, instance_number),
        offsetof(ich_dicom_info, rescale_slope),
        offsetof(ich_dicom_info, window_center),
        offsetof(ich_dicom_info, photometric),
        offsetof(ich_dicom_info, transfer_syntax),
        offsetof(ich_dicom_info, patient_id),
    };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t size = sizes[k];
        union {
            ich_dicom_info info;
            unsigned char bytes[sizeof(ich_dicom_info) + 64];
        } buf;
        memset(&buf, 0xa5, sizeof buf);
        buf.info.size = size;
        assert_int_equal(ich_dicom_get_info(d, &buf.info), ICH_OK);
        assert_int_equal(buf.info.size, size);
        assert_int_equal(buf.info.rows, ROWS);
        assert_int_equal(buf.info.columns, COLS);
        for (size_t i = size; i < sizeof buf.bytes; i++)
            if (buf.bytes[i] != 0xa5)
                fail_msg("info->size %zu: byte %zu was written (0x%02x)", size, i, buf.bytes[i]);
        /* Every field inside `size` matches the full call. */
        if (size > offsetof(ich_dicom_info, instance_number))
            assert_int_equal(buf.info.instance_number, full.instance_number);
        if (size > offsetof(ich_dicom_info, rescale_intercept))
            assert_true(buf.info.rescale_intercept == full.rescale_intercept);
        if (size > offsetof(ich_dicom_info, window_width))
            assert_true(buf.info.window_width == full.window_width);
        if (size > offsetof(ich_dicom_info, sop_instance_uid))
            assert_string_equal(buf.info.sop_instance_uid, full.sop_instance_uid);
    }

    /* Too small to hold rows and columns, NULL arguments. */
    ich_dicom_info small;
    memset(&small, 0, sizeof small);
    small.size = offsetof(ich_dicom_info, columns);
    assert_int_equal(ich_dicom_get_info(d, &small), ICH_ERR_INVALID_ARGUMENT);
    small.size = 0;
    assert_int_equal(ich_dicom_get_info(d, &small), ICH_ERR_INVALID_ARGUMENT);
    small.size = sizeof small;
    assert_int_equal(ich_dicom_get_info(NULL, &small), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_dicom_get_info(d, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_dicom_free(d);
}

/* ---- Read errors --------------------------------------------------------- */

static void expect_read_error(const char *path, ich_status expected, int names_file)
{
    ich_dicom *d = (ich_dicom *)(uintptr_t)0x1;
    ich_clear_error();
    ich_status st = ich_dicom_read(path, &d);
    if (st != expected)
        fail_msg("ich_dicom_read(%s) gave %s, expected %s (%s)", path, ich_status_string(st),
                 ich_status_string(expected), ich_last_error());
    assert_null(d);
    assert_true(ich_last_error()[0] != '\0');
    if (names_file) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (!strstr(ich_last_error(), base))
            fail_msg("error message '%s' does not name %s", ich_last_error(), base);
    }
}

static void test_read_errors(void **state)
{
    const char *dir = *state;
    ich_dicom *d = (ich_dicom *)(uintptr_t)0x1;
    assert_int_equal(ich_dicom_read(NULL, &d), ICH_ERR_INVALID_ARGUMENT);
    assert_null(d);
    assert_int_equal(ich_dicom_read("/tmp/whatever.dcm", NULL), ICH_ERR_INVALID_ARGUMENT);

    char path[512];
    expect_read_error(tu_join(path, sizeof path, dir, "missing.dcm"), ICH_ERR_IO, 1);
    expect_read_error("/nonexistent/dir/x.dcm", ICH_ERR_IO, 1);

    /* A directory is not a DICOM file. */
    d = (ich_dicom *)(uintptr_t)0x1;
    assert_int_not_equal(ich_dicom_read(dir, &d), ICH_OK);
    assert_null(d);

    tu_join(path, sizeof path, dir, "empty.dcm");
    assert_int_equal(tu_write_file(path, "", 0), 0);
    expect_read_error(path, ICH_ERR_FORMAT, 1);

    uint8_t junk[4096];
    uint32_t seed = 99;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)tu_rand(&seed);
    tu_join(path, sizeof path, dir, "random.dcm");
    assert_int_equal(tu_write_file(path, junk, sizeof junk), 0);
    expect_read_error(path, ICH_ERR_FORMAT, 1);

    /* Random bytes behind a valid preamble and magic. */
    memset(junk, 0, 128);
    memcpy(junk + 128, "DICM", 4);
    tu_join(path, sizeof path, dir, "magic_random.dcm");
    assert_int_equal(tu_write_file(path, junk, sizeof junk), 0);
    expect_read_error(path, ICH_ERR_FORMAT, 1);
    /* Preamble and magic only. */
    tu_join(path, sizeof path, dir, "magic_only.dcm");
    assert_int_equal(tu_write_file(path, junk, 132), 0);
    expect_read_error(path, ICH_ERR_FORMAT, 1);
    /* A text file. */
    const char *text = "filename,any\nID_1.dcm,0\n";
    tu_join(path, sizeof path, dir, "text.dcm");
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    expect_read_error(path, ICH_ERR_FORMAT, 1);
}


/* Write a valid slice, then read every prefix of it (every 97 bytes and the
 * last few bytes): each must fail with ICH_ERR_FORMAT and never crash. */
static void test_truncated(void **state)
{
    const char *dir = *state;
    char cut[512];
    tu_join(cut, sizeof cut, dir, "cut.dcm");
    size_t size = 0;
    uint8_t *bytes = written_slice_bytes(dir, &size);
    assert_true(size > (size_t)ROWS * COLS * 2);

    size_t offsets[128];
    int n = 0;
    for (size_t off = 0; off < size && n < 120; off += 97)
        offsets[n++] = off;
    offsets[n++] = size - 1;
    offsets[n++] = size - 2;
    offsets[n++] = size - (size_t)ROWS * COLS * 2; /* pixel data value empty */
    offsets[n++] = 132;                             /* magic only */
    for (int k = 0; k < n; k++) {
        assert_int_equal(tu_write_file(cut, bytes, offsets[k]), 0);
        ich_dicom *d = (ich_dicom *)(uintptr_t)0x1;
        ich_status st = ich_dicom_read(cut, &d);
        if (d != NULL)
            ich_dicom_free(st == ICH_OK ? d : NULL);
        if (st != ICH_ERR_FORMAT)
            fail_msg("file truncated to %zu of %zu bytes: %s (%s), expected ICH_ERR_FORMAT",
                     offsets[k], size, ich_status_string(st), ich_last_error());
        assert_null(d);
    }
    free(bytes);
}

/* Overwrite single header bytes (every 7th byte before the pixel data, with
 * 0xff and with 0x00): any status may come back, but never a crash, and a
 * successful read must hold rows * columns readable values. */
static void test_corrupted(void **state)
{
    const char *dir = *state;
    char bad[512];
    tu_join(bad, sizeof bad, dir, "corrupt.dcm");
    size_t size = 0;
    uint8_t *bytes = written_slice_bytes(dir, &size);
    size_t header = size - (size_t)ROWS * COLS * 2;
    uint8_t *copy = malloc(size);
    assert_non_null(copy);
    /* Every header byte, set to 0xFF and to 0x00 in turn: an error or a
     * plausible image, never an abort (Debian's GDCM asserts on malformed
     * headers) and never a huge allocation from a corrupt length. */
    for (size_t off = 0; off < header; off += 1) {
        const uint8_t values[2] = {0xff, 0x00};
        for (int v = 0; v < 2; v++) {
            if (bytes[off] == values[v])
                continue;
            memcpy(copy, bytes, size);
            copy[off] = values[v];
            assert_int_equal(tu_write_file(bad, copy, size), 0);
            ich_dicom *d = (ich_dicom *)(uintptr_t)0x1;
            ich_status st = ich_dicom_read(bad, &d);
            if (st != ICH_OK) {
                if (d != NULL)
                    fail_msg("byte %zu = 0x%02x: %s but *out is not NULL", off, values[v],
                             ich_status_string(st));
                continue;
            }
            assert_non_null(d);
            ich_dicom_info info;
            memset(&info, 0, sizeof info);
            info.size = sizeof info;
            assert_int_equal(ich_dicom_get_info(d, &info), ICH_OK);
            assert_true(info.rows > 0 && info.columns > 0);
            assert_true(info.sample_bits == 8 || info.sample_bits == 16 ||
                        info.sample_bits == 32);
            size_t n = (size_t)info.rows * (size_t)info.columns;
            const uint8_t *p = ich_dicom_pixels(d);
            const float *hu = ich_dicom_hu(d);
            assert_non_null(p);
            assert_non_null(hu);
            volatile unsigned sink = 0;
            for (size_t i = 0; i < n * (size_t)(info.sample_bits / 8); i++)
                sink += p[i];
            volatile float fsink = 0;
            for (size_t i = 0; i < n; i++)
                fsink += hu[i];
            (void)sink;
            (void)fsink;
            ich_dicom_free(d);
        }
    }
    free(copy);
    free(bytes);
}

/* Find an explicit-VR little-endian US element (group, element) and patch
 * its value. */
static int patch_us(uint8_t *bytes, size_t size, uint16_t group, uint16_t element, uint16_t value)
{
    for (size_t i = 132; i + 10 <= size; i++) {
        if (bytes[i] == (group & 0xff) && bytes[i + 1] == (group >> 8) &&
            bytes[i + 2] == (element & 0xff) && bytes[i + 3] == (element >> 8) &&
            bytes[i + 4] == 'U' && bytes[i + 5] == 'S' && bytes[i + 6] == 2 && bytes[i + 7] == 0) {
            bytes[i + 8] = (uint8_t)(value & 0xff);
            bytes[i + 9] = (uint8_t)(value >> 8);
            return 1;
        }
    }
    return 0;
}

/* Rows/columns that do not match the pixel data are malformed files. */
static void test_bad_dimensions(void **state)
{
    const char *dir = *state;
    char bad[512];
    tu_join(bad, sizeof bad, dir, "bad.dcm");
    size_t size = 0;
    uint8_t *bytes = written_slice_bytes(dir, &size);

    const struct {
        uint16_t rows, columns;
    } cases[] = {{0, COLS}, {ROWS, 0}, {65535, 65535}, {ROWS + 1, COLS}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t *copy = malloc(size);
        assert_non_null(copy);
        memcpy(copy, bytes, size);
        assert_true(patch_us(copy, size, 0x0028, 0x0010, cases[k].rows));
        assert_true(patch_us(copy, size, 0x0028, 0x0011, cases[k].columns));
        assert_int_equal(tu_write_file(bad, copy, size), 0);
        free(copy);
        ich_dicom *d = (ich_dicom *)(uintptr_t)0x1;
        ich_status st = ich_dicom_read(bad, &d);
        if (st != ICH_ERR_FORMAT)
            fail_msg("rows %u columns %u: %s (%s), expected ICH_ERR_FORMAT",
                     (unsigned)cases[k].rows, (unsigned)cases[k].columns,
                     ich_status_string(st), ich_last_error());
        assert_null(d);
    }
    free(bytes);
}

/* The Pixel Data element's 32-bit length disagrees with the image: shorter
 * than rows * columns * 2 (with bytes left after it), longer than the file,
 * or absurdly large. All are malformed files (ICH_ERR_FORMAT), and a huge
 * declared length must not make the reader allocate gigabytes. */
static void test_bad_pixel_length(void **state)
{
    const char *dir = *state;
    char bad[512];
    tu_join(bad, sizeof bad, dir, "badlen.dcm");
    size_t size = 0;
    uint8_t *bytes = written_slice_bytes(dir, &size);
    const uint32_t needed = ROWS * COLS * 2;
    /* (7FE0,0010) OW, explicit VR little endian: tag, "OW", 2 reserved
     * bytes, 4-byte length, then the value up to the end of the file. */
    const uint8_t tag[8] = {0xe0, 0x7f, 0x10, 0x00, 'O', 'W', 0, 0};
    size_t at = 0;
    for (size_t i = 132; i + 12 <= size; i++)
        if (memcmp(bytes + i, tag, 8) == 0)
            at = i;
    assert_true(at > 0);
    assert_int_equal(at + 12 + needed, size);

    const uint32_t lengths[] = {needed - 2, needed + 2, 0x7ffffffeu, 0xff000000u | needed,
                                0xfffffffeu};
    char problems[1024] = "";
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        uint8_t *copy = malloc(size);
        assert_non_null(copy);
        memcpy(copy, bytes, size);
        uint32_t len = lengths[k];
        copy[at + 8] = (uint8_t)len;
        copy[at + 9] = (uint8_t)(len >> 8);
        copy[at + 10] = (uint8_t)(len >> 16);
        copy[at + 11] = (uint8_t)(len >> 24);
        assert_int_equal(tu_write_file(bad, copy, size), 0);
        free(copy);
        ich_dicom *d = (ich_dicom *)(uintptr_t)0x1;
        ich_status st = ich_dicom_read(bad, &d);
        if (st == ICH_OK)
            ich_dicom_free(d);
        if (st != ICH_ERR_FORMAT) {
            size_t used = strlen(problems);
            snprintf(problems + used, sizeof problems - used, "\n  length %u: %s", len,
                     ich_status_string(st));
        } else if (d != NULL) {
            fail_msg("length %u: ICH_ERR_FORMAT but *out is not NULL", len);
        }
    }
    free(bytes);
    if (problems[0])
        fail_msg("pixel data lengths that were not ICH_ERR_FORMAT (image and file hold %u "
                 "bytes):%s",
                 needed, problems);
}

/* ---- Write errors -------------------------------------------------------- */

static void expect_write_invalid(const char *dir, const char *path, const ich_ct_slice *s,
                                 const char *what)
{
    ich_status st = ich_dicom_write_ct(path, s);
    if (st != ICH_ERR_INVALID_ARGUMENT)
        fail_msg("%s: ich_dicom_write_ct gave %s, expected ICH_ERR_INVALID_ARGUMENT", what,
                 ich_status_string(st));
    assert_true(ich_last_error()[0] != '\0');
    assert_dir_holds(dir, 0, NULL);
}

static void test_write_errors(void **state)
{
    const char *dir = *state;
    char path[512];
    tu_join(path, sizeof path, dir, "w.dcm");
    int16_t px[6] = {0, 1, 2, 3, 4, 5};
    ich_ct_slice good = minimal_slice(px, 2, 3);
    ich_ct_slice s;

    assert_int_equal(ich_dicom_write_ct(NULL, &good), ICH_ERR_INVALID_ARGUMENT);
    expect_write_invalid(dir, path, NULL, "NULL slice");

    s = good;
    s.size = 0;
    expect_write_invalid(dir, path, &s, "size 0");
    s = good;
    s.size = offsetof(ich_ct_slice, pixels); /* too small to hold pixels */
    expect_write_invalid(dir, path, &s, "size too small");

    s = good;
    s.rows = 0;
    expect_write_invalid(dir, path, &s, "rows 0");
    s = good;
    s.columns = 0;
    expect_write_invalid(dir, path, &s, "columns 0");
    s = good;
    s.rows = -3;
    expect_write_invalid(dir, path, &s, "rows -3");
    s = good;
    s.columns = 65536;
    expect_write_invalid(dir, path, &s, "columns 65536");
    s = good;
    s.pixels = NULL;
    expect_write_invalid(dir, path, &s, "pixels NULL");

    const char *bad_uids[] = {
        "abc..x", "1.2..3", ".1.2.3", "1.2.3.", "1.02.3", "1.2.3a", "1.2 .3", "",
        "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27", /* 65+ */
    };
    for (size_t k = 0; k < sizeof bad_uids / sizeof bad_uids[0]; k++) {
        char what[160];
        s = good;
        s.study_instance_uid = bad_uids[k];
        snprintf(what, sizeof what, "study UID '%s'", bad_uids[k]);
        expect_write_invalid(dir, path, &s, what);
        s = good;
        s.series_instance_uid = bad_uids[k];
        snprintf(what, sizeof what, "series UID '%s'", bad_uids[k]);
        expect_write_invalid(dir, path, &s, what);
        s = good;
        s.sop_instance_uid = bad_uids[k];
        snprintf(what, sizeof what, "SOP UID '%s'", bad_uids[k]);
        expect_write_invalid(dir, path, &s, what);
    }

    /* A 64-character UID is still valid. */
    const char *uid64 = "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.2456";
    assert_int_equal(strlen(uid64), 64);
    s = good;
    s.sop_instance_uid = uid64;
    assert_int_equal(ich_dicom_write_ct(path, &s), ICH_OK);
    ich_dicom_info info;
    read_info(path, &info);
    assert_string_equal(info.sop_instance_uid, uid64);
    unlink(path);
    assert_dir_holds(dir, 0, NULL);

    /* A directory that does not exist: ICH_ERR_IO, nothing created. */
    char missing[512];
    tu_join(missing, sizeof missing, dir, "no/such/dir/w.dcm");
    ich_clear_error();
    assert_int_equal(ich_dicom_write_ct(missing, &good), ICH_ERR_IO);
    assert_true(ich_last_error()[0] != '\0');
    assert_dir_holds(dir, 0, NULL);

    /* The target is an existing directory: ICH_ERR_IO, and no temporary
     * file is left beside it. */
    char sub[512];
    tu_join(sub, sizeof sub, dir, "sub");
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(ich_dicom_write_ct(sub, &good), ICH_ERR_IO);
    assert_dir_holds(dir, 1, "sub");
    assert_dir_holds(sub, 0, NULL);
}

/* Many writes into one directory leave exactly the named files. */
static void test_no_temp_files(void **state)
{
    const char *dir = *state;
    static int16_t px[ROWS * COLS];
    make_pixels(px, ROWS * COLS);
    ich_ct_slice s = full_slice(px);
    s.sop_instance_uid = NULL;
    for (int i = 0; i < 8; i++) {
        char name[64], path[512];
        snprintf(name, sizeof name, "slice_%d.dcm", i);
        s.instance_number = i + 1;
        assert_int_equal(ich_dicom_write_ct(tu_join(path, sizeof path, dir, name), &s), ICH_OK);
    }
    char names[1024];
    assert_int_equal(tu_dir_count(dir, names, sizeof names), 8);
    for (int i = 0; i < 8; i++) {
        char path[512], name[64];
        snprintf(name, sizeof name, "slice_%d.dcm", i);
        assert_true(tu_exists(tu_join(path, sizeof path, dir, name)));
        ich_dicom_info info;
        read_info(path, &info);
        assert_int_equal(info.instance_number, i + 1);
    }
}

/* ---- pydicom's sample files ---------------------------------------------- */

static const char *pydicom_dir(void)
{
    const char *dir = getenv("ICH_PYDICOM_TEST_FILES");
    if (!dir || !dir[0])
        return NULL;
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/CT_small.dcm", dir);
    return tu_exists(probe) ? dir : NULL;
}

#define NEED_PYDICOM(dir)                                                          \
    const char *dir = pydicom_dir();                                               \
    if (!dir) {                                                                    \
        print_message("ICH_PYDICOM_TEST_FILES not set or not pydicom's folder\n"); \
        skip();                                                                    \
    }

static ich_dicom *read_sample(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ich_dicom *d = NULL;
    ich_status st = ich_dicom_read(path, &d);
    if (st != ICH_OK)
        fail_msg("%s: %s (%s)", name, ich_status_string(st), ich_last_error());
    assert_non_null(d);
    return d;
}

static void test_pydicom_ct_small(void **state)
{
    (void)state;
    NEED_PYDICOM(dir);
    ich_dicom *d = read_sample(dir, "CT_small.dcm");
    ich_dicom_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    assert_int_equal(ich_dicom_get_info(d, &info), ICH_OK);
    assert_int_equal(info.rows, 128);
    assert_int_equal(info.columns, 128);
    assert_string_equal(info.modality, "CT");
    assert_string_equal(info.photometric, "MONOCHROME2");
    assert_string_equal(info.transfer_syntax, "1.2.840.10008.1.2.1");
    assert_int_equal(info.bits_allocated, 16);
    assert_int_equal(info.bits_stored, 16);
    assert_int_equal(info.pixel_representation, 1);
    assert_int_equal(info.sample_bits, 16);
    assert_int_equal(info.monochrome1, 0);
    assert_int_equal(info.instance_number, 1);
    assert_true(info.rescale_slope == 1.0);
    assert_true(info.rescale_intercept == -1024.0);
    assert_true(fabs(info.pixel_spacing[0] - 0.661468) < 1e-9);
    assert_true(fabs(info.pixel_spacing[1] - 0.661468) < 1e-9);
    assert_true(fabs(info.slice_thickness - 5.0) < 1e-9);
    assert_true(fabs(info.image_position[0] - -158.135803) < 1e-9);
    assert_true(fabs(info.image_position[1] - -179.035797) < 1e-9);
    assert_true(fabs(info.image_position[2] - -75.699997) < 1e-9);
    assert_true(isnan(info.window_center));
    assert_true(isnan(info.window_width));
    assert_string_equal(info.patient_id, "1CT1");
    assert_string_equal(info.sop_instance_uid,
                        "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322");

    /* Values from pydicom's pixel_array. */
    const int16_t *px = ich_dicom_pixels(d);
    const int16_t first[5] = {175, 180, 166, 143, 139};
    assert_memory_equal(px, first, sizeof first);
    int64_t sum = 0;
    int16_t lo = INT16_MAX, hi = INT16_MIN;
    for (int i = 0; i < 128 * 128; i++) {
        sum += px[i];
        lo = px[i] < lo ? px[i] : lo;
        hi = px[i] > hi ? px[i] : hi;
    }
    assert_int_equal(sum, 14826310);
    assert_int_equal(lo, 128);
    assert_int_equal(hi, 2191);
    const float *hu = ich_dicom_hu(d);
    for (int i = 0; i < 128 * 128; i++)
        if (hu[i] != (float)px[i] * 1.0f + -1024.0f)
            fail_msg("CT_small hu[%d] = %g, stored %d", i, hu[i], px[i]);
    ich_dicom_free(d);
}

static void test_pydicom_mr_transfer_syntaxes(void **state)
{
    (void)state;
    NEED_PYDICOM(dir);
    ich_dicom *ref = read_sample(dir, "MR_small.dcm");
    ich_dicom_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    assert_int_equal(ich_dicom_get_info(ref, &info), ICH_OK);
    assert_int_equal(info.rows, 64);
    assert_int_equal(info.columns, 64);
    assert_string_equal(info.modality, "MR");
    assert_int_equal(info.sample_bits, 16);
    assert_int_equal(info.pixel_representation, 1);
    assert_true(info.rescale_slope == 1.0);
    assert_true(info.rescale_intercept == 0.0);
    const int16_t *rpx = ich_dicom_pixels(ref);
    int64_t sum = 0;
    for (int i = 0; i < 64 * 64; i++) {
        sum += rpx[i];
        assert_true(ich_dicom_hu(ref)[i] == (float)rpx[i]);
    }
    assert_int_equal(sum, 2125338); /* pydicom's pixel_array.sum() */

    const struct {
        const char *name, *syntax;
    } files[] = {
        {"MR_small_implicit.dcm", "1.2.840.10008.1.2"},
        {"MR_small_expb.dcm", "1.2.840.10008.1.2.2"},
        {"MR_small_bigendian.dcm", "1.2.840.10008.1.2.2"},
        {"MR_small_RLE.dcm", "1.2.840.10008.1.2.5"},
        {"MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80"},
        {"MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90"},
    };
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        ich_dicom *d = read_sample(dir, files[k].name);
        ich_dicom_info fi;
        memset(&fi, 0, sizeof fi);
        fi.size = sizeof fi;
        assert_int_equal(ich_dicom_get_info(d, &fi), ICH_OK);
        assert_int_equal(fi.rows, 64);
        assert_int_equal(fi.columns, 64);
        assert_int_equal(fi.sample_bits, 16);
        assert_int_equal(fi.pixel_representation, 1);
        assert_string_equal(fi.transfer_syntax, files[k].syntax);
        const int16_t *px = ich_dicom_pixels(d);
        const float *hu = ich_dicom_hu(d);
        for (int i = 0; i < 64 * 64; i++) {
            if (px[i] != rpx[i])
                fail_msg("%s: pixel %d is %d, MR_small.dcm has %d", files[k].name, i, px[i],
                         rpx[i]);
            if (hu[i] != ich_dicom_hu(ref)[i])
                fail_msg("%s: hu %d differs", files[k].name, i);
        }
        ich_dicom_free(d);
    }
    ich_dicom_free(ref);
}

/* A single-frame unsigned 32-bit RT dose grid. */
static void test_pydicom_32bit(void **state)
{
    (void)state;
    NEED_PYDICOM(dir);
    ich_dicom *d = read_sample(dir, "rtdose_1frame.dcm");
    ich_dicom_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    assert_int_equal(ich_dicom_get_info(d, &info), ICH_OK);
    assert_int_equal(info.rows, 10);
    assert_int_equal(info.columns, 10);
    assert_int_equal(info.sample_bits, 32);
    assert_int_equal(info.pixel_representation, 0);
    const uint32_t *px = ich_dicom_pixels(d);
    uint64_t sum = 0;
    for (int i = 0; i < 100; i++)
        sum += px[i];
    assert_int_equal(sum, 101378000); /* pydicom's pixel_array.sum() */
    ich_dicom_free(d);
}

static void expect_sample_error(const char *dir, const char *name, ich_status expected)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!tu_exists(path)) {
        print_message("%s not present, not checked\n", name);
        return;
    }
    expect_read_error(path, expected, 1);
}

/* ---- MONOCHROME1 ---------------------------------------------------------- */

/* A copy of the CT file at `from` made MONOCHROME1 by its tag alone (same
 * stored values, same rescale: the same HU, shown inverted). */
static void write_monochrome1(const char *from, const char *to)
{
    size_t size = 0;
    uint8_t *data = tu_read_file(from, &size);
    assert_non_null(data);
    int patched = 0;
    for (size_t i = 0; i + 11 <= size; i++)
        if (memcmp(data + i, "MONOCHROME2", 11) == 0) {
            data[i + 10] = '1';
            patched++;
        }
    assert_int_equal(patched, 1);
    assert_int_equal(tu_write_file(to, data, size), 0);
    free(data);
}

/* The linear window of window.h, then the display inversion v -> 1 - v. */
static float shown(float hu, float center, float width, int invert)
{
    float lo = center - width / 2;
    float v = (hu - lo) / width;
    v = v < 0 ? 0 : (v > 1 ? 1 : v);
    return invert ? 1.0f - v : v;
}

/* The HU of a MONOCHROME1 slice are the modality rescale of its stored
 * values (not mirrored first: issue 11); windowing inverts the displayed
 * values, before the uint8 step and the normalisation. */
static void test_monochrome1(void **state)
{
    const char *dir = *state;
    char m2[512], m1[512], png[512];
    tu_join(m2, sizeof m2, dir, "m2.dcm");
    tu_join(m1, sizeof m1, dir, "m1.dcm");
    tu_join(png, sizeof png, dir, "m1.png");
    static int16_t px[ROWS * COLS];
    uint32_t seed = 7;
    for (int i = 0; i < ROWS * COLS; i++)
        px[i] = (int16_t)(tu_rand(&seed) % 400 - 100);
    ich_ct_slice s = full_slice(px);
    s.rescale_slope = 1.0;
    assert_int_equal(ich_dicom_write_ct(m2, &s), ICH_OK);
    write_monochrome1(m2, m1);
    ich_dicom *a = NULL, *b = NULL;
    assert_int_equal(ich_dicom_read(m2, &a), ICH_OK);
    assert_int_equal(ich_dicom_read(m1, &b), ICH_OK);
    ich_dicom_info info = {.size = sizeof info};
    assert_int_equal(ich_dicom_get_info(b, &info), ICH_OK);
    assert_int_equal(info.monochrome1, 1);
    const float *hu = ich_dicom_hu(b);
    for (int i = 0; i < ROWS * COLS; i++)
        assert_true(hu[i] == (float)px[i] * 1.0f + -1024.0f);
    assert_memory_equal(hu, ich_dicom_hu(a), ROWS * COLS * sizeof(float));

    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add(w, -900.0f, 300.0f), ICH_OK);
    static float out1[ROWS * COLS], out2[ROWS * COLS];
    static uint8_t u8[ROWS * COLS];
    assert_int_equal(ich_window_apply_dicom_f32(w, b, out1, ROWS * COLS), ICH_OK);
    assert_int_equal(ich_window_apply_dicom_f32(w, a, out2, ROWS * COLS), ICH_OK);
    assert_int_equal(ich_window_apply_dicom_u8(w, b, u8, ROWS * COLS), ICH_OK);
    int inverted_pixels = 0;
    for (int i = 0; i < ROWS * COLS; i++) {
        assert_true(fabsf(out1[i] - shown(hu[i], -900.0f, 300.0f, 1)) <= 1e-6f);
        assert_true(fabsf(out2[i] - shown(hu[i], -900.0f, 300.0f, 0)) <= 1e-6f);
        int expect = (int)(shown(hu[i], -900.0f, 300.0f, 1) * 255.0f);
        assert_true(abs((int)u8[i] - expect) <= 1);
        inverted_pixels += out1[i] != out2[i];
    }
    assert_true(inverted_pixels > ROWS * COLS / 2);
    /* the PNG step inverts too */
    assert_int_equal(ich_window_dicom_to_png(w, m1, png), ICH_OK);
    uint8_t *read = NULL;
    int32_t width = 0, height = 0, channels = 0;
    assert_int_equal(ich_png_read(png, &read, &width, &height, &channels), ICH_OK);
    assert_int_equal(width * height, ROWS * COLS);
    assert_memory_equal(read, u8, ROWS * COLS);
    ich_free(read);
    /* normalisation after the inversion; a resize keeps v + (1 - v) = 1 */
    const float mean = 0.25f, sd = 0.5f;
    assert_int_equal(ich_window_set_normalization(w, &mean, &sd, 1), ICH_OK);
    assert_int_equal(ich_window_apply_dicom_f32(w, b, out1, ROWS * COLS), ICH_OK);
    for (int i = 0; i < ROWS * COLS; i++)
        assert_true(fabsf(out1[i] - (shown(hu[i], -900.0f, 300.0f, 1) - mean) / sd) <= 1e-5f);
    assert_int_equal(ich_window_set_size(w, 16, 20, ICH_RESIZE_AREA), ICH_OK);
    assert_int_equal(ich_window_apply_dicom_f32(w, b, out1, 16 * 20), ICH_OK);
    assert_int_equal(ich_window_apply_dicom_f32(w, a, out2, 16 * 20), ICH_OK);
    for (int i = 0; i < 16 * 20; i++)
        assert_true(fabsf((out1[i] * sd + mean) + (out2[i] * sd + mean) - 1.0f) <= 1e-5f);
    assert_int_equal(ich_window_apply_dicom_f32(w, NULL, out1, 16 * 20),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_dicom_f32(w, b, out1, 16 * 20 + 1), ICH_ERR_SHAPE);
    ich_window_free(w);
    ich_dicom_free(a);
    ich_dicom_free(b);
}

/* pydicom's MONOCHROME1 file (CR, 12 bits stored): hu = stored * slope +
 * intercept in float32, as pydicom's apply_modality_lut; mirrored first,
 * as libich once did, the minimum would be about -700, not above 1500. */
static void test_pydicom_monochrome1(void **state)
{
    (void)state;
    NEED_PYDICOM(dir);
    ich_dicom *d = read_sample(dir, "dicomdirtests/77654033/CR1/6154");
    ich_dicom_info info = {.size = sizeof info};
    assert_int_equal(ich_dicom_get_info(d, &info), ICH_OK);
    assert_int_equal(info.monochrome1, 1);
    assert_int_equal(info.bits_stored, 12);
    const uint16_t *stored = ich_dicom_pixels(d);
    const float *hu = ich_dicom_hu(d);
    float lowest = INFINITY;
    for (int i = 0; i < info.rows * info.columns; i++) {
        assert_true(hu[i] == (float)stored[i] * (float)info.rescale_slope +
                                 (float)info.rescale_intercept);
        lowest = hu[i] < lowest ? hu[i] : lowest;
    }
    assert_true(lowest > 1500.0f);
    ich_dicom_free(d);
}

static void test_pydicom_errors(void **state)
{
    (void)state;
    NEED_PYDICOM(dir);
    expect_sample_error(dir, "rtdose.dcm", ICH_ERR_UNSUPPORTED); /* 15 frames */
    /* Colour: SC_rgb.dcm where pydicom ships it, and the RGB files that
     * every pydicom version has. */
    expect_sample_error(dir, "SC_rgb.dcm", ICH_ERR_UNSUPPORTED);
    expect_sample_error(dir, "SC_rgb_small_odd.dcm", ICH_ERR_UNSUPPORTED);
    expect_sample_error(dir, "SC_rgb_rle.dcm", ICH_ERR_UNSUPPORTED);
    expect_sample_error(dir, "MR_truncated.dcm", ICH_ERR_FORMAT);
    expect_sample_error(dir, "rtplan.dcm", ICH_ERR_FORMAT); /* no pixel data */
}

/* ---- Hostile files (issue 12) ------------------------------------------ */

/* BitsAllocated/BitsStored/HighBit/PixelRepresentation combinations that
 * made GDCM fail an assertion and abort the process: now unsupported. */
static void test_hostile_bit_layouts(void **state)
{
    const char *dir = *state;
    size_t size = 0;
    uint8_t *bytes = written_slice_bytes(dir, &size);
    const struct {
        uint16_t allocated, stored, high_bit, representation;
    } cases[] = {{12, 12, 11, 0}, {12, 8, 7, 0}, {24, 16, 15, 0}, {8, 4, 3, 0}, {1, 1, 0, 1},
                 {8, 7, 6, 1},    {32, 24, 23, 0}, {64, 64, 63, 0}, {0, 0, 0, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t *copy = malloc(size);
        assert_non_null(copy);
        memcpy(copy, bytes, size);
        assert_true(patch_us(copy, size, 0x0028, 0x0100, cases[k].allocated));
        assert_true(patch_us(copy, size, 0x0028, 0x0101, cases[k].stored));
        assert_true(patch_us(copy, size, 0x0028, 0x0102, cases[k].high_bit));
        assert_true(patch_us(copy, size, 0x0028, 0x0103, cases[k].representation));
        ich_dicom *d = (ich_dicom *)(uintptr_t)0x1;
        ich_status st = ich_dicom_read_memory(copy, size, "layout.dcm", &d);
        free(copy);
        if (st != ICH_ERR_UNSUPPORTED && st != ICH_ERR_FORMAT)
            fail_msg("%u/%u/%u/%u: %s (%s), expected an error", cases[k].allocated,
                     cases[k].stored, cases[k].high_bit, cases[k].representation,
                     ich_status_string(st), ich_last_error());
        assert_null(d);
        assert_non_null(strstr(ich_last_error(), "layout.dcm"));
    }
    free(bytes);
}

/* `bytes` with the value of the DS element (group,element) replaced by
 * `text` (its length field adjusted): a new malloc'd buffer of *out_size. */
static uint8_t *replace_ds(const uint8_t *bytes, size_t size, uint16_t group, uint16_t element,
                           const char *text, size_t *out_size)
{
    for (size_t i = 132; i + 8 <= size; i++) {
        if (bytes[i] == (group & 0xff) && bytes[i + 1] == (group >> 8) &&
            bytes[i + 2] == (element & 0xff) && bytes[i + 3] == (element >> 8) &&
            bytes[i + 4] == 'D' && bytes[i + 5] == 'S') {
            size_t old = (size_t)(bytes[i + 6] | bytes[i + 7] << 8), n = strlen(text);
            size_t padded = n + (n % 2);
            uint8_t *out = malloc(size - old + padded);
            assert_non_null(out);
            memcpy(out, bytes, i + 6);
            out[i + 6] = (uint8_t)padded;
            out[i + 7] = 0;
            memcpy(out + i + 8, text, n);
            if (padded > n)
                out[i + 8 + n] = ' ';
            memcpy(out + i + 8 + padded, bytes + i + 8 + old, size - i - 8 - old);
            *out_size = size - old + padded;
            return out;
        }
    }
    fail_msg("no DS element (%04X,%04X)", group, element);
    return NULL;
}

/* Non-finite, absurd or unparsable rescale values are errors naming the
 * tag, not infinite HU or an intercept silently taken as 0; values within
 * the bound still give stored * slope + intercept. */
static void test_hostile_rescale(void **state)
{
    const char *dir = *state;
    size_t size = 0;
    uint8_t *bytes = written_slice_bytes(dir, &size);
    const struct {
        uint16_t element;
        const char *text, *tag;
    } bad[] = {{0x1053, "1e300", "(0028,1053)"}, {0x1052, "-1e39", "(0028,1052)"},
               {0x1052, "NaN", "(0028,1052)"},   {0x1052, "abc", "(0028,1052)"},
               {0x1053, "inf", "(0028,1053)"},   {0x1052, "1e10", "(0028,1052)"},
               {0x1052, "12abc", "(0028,1052)"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        size_t n = 0;
        uint8_t *copy = replace_ds(bytes, size, 0x0028, bad[k].element, bad[k].text, &n);
        ich_dicom *d = NULL;
        ich_status st = ich_dicom_read_memory(copy, n, "rescale.dcm", &d);
        free(copy);
        if (st != ICH_ERR_FORMAT)
            fail_msg("%s: %s (%s), expected ICH_ERR_FORMAT", bad[k].text, ich_status_string(st),
                     ich_last_error());
        assert_non_null(strstr(ich_last_error(), bad[k].tag));
        assert_non_null(strstr(ich_last_error(), "rescale.dcm"));
    }
    size_t n = 0;
    uint8_t *copy = replace_ds(bytes, size, 0x0028, 0x1053, "1e9", &n);
    ich_dicom *d = NULL;
    assert_int_equal(ich_dicom_read_memory(copy, n, "big.dcm", &d), ICH_OK);
    const int16_t *stored = ich_dicom_pixels(d);
    const float *hu = ich_dicom_hu(d);
    for (int i = 0; i < ROWS * COLS; i++)
        assert_true(hu[i] == (float)stored[i] * 1e9f + -1024.0f);
    ich_dicom_free(d);
    free(copy);
    free(bytes);
}

/* The limits: defaults, per call, process-wide; each exceeded limit named. */
static void test_limits(void **state)
{
    const char *dir = *state;
    size_t size = 0;
    uint8_t *bytes = written_slice_bytes(dir, &size);
    char path[512];
    tu_join(path, sizeof path, dir, "full.dcm");

    ich_dicom_limits l;
    memset(&l, 0, sizeof l);
    assert_int_equal(ich_dicom_default_limits(&l), ICH_ERR_INVALID_ARGUMENT); /* size unset */
    l.size = sizeof l;
    assert_int_equal(ich_dicom_default_limits(&l), ICH_OK);
    assert_true(l.max_file_bytes == ICH_DICOM_DEFAULT_MAX_FILE_BYTES);
    assert_true(l.max_pixels == ICH_DICOM_DEFAULT_MAX_PIXELS);
    assert_true(l.max_decoded_bytes == ICH_DICOM_DEFAULT_MAX_DECODED_BYTES);
    assert_true(ICH_DICOM_DEFAULT_MAX_PIXELS >= 64 * 512 * 512);
    ich_dicom_limits now = {sizeof now, 0, 0, 0};
    assert_int_equal(ich_dicom_get_limits(&now), ICH_OK);
    assert_memory_equal(&now, &l, sizeof l);
    /* an older, shorter struct: fields past its size are neither read nor written */
    ich_dicom_limits old = {offsetof(ich_dicom_limits, max_pixels), 77, 88, 99};
    assert_int_equal(ich_dicom_get_limits(&old), ICH_OK);
    assert_true(old.max_file_bytes == ICH_DICOM_DEFAULT_MAX_FILE_BYTES && old.max_pixels == 88);

    const struct {
        ich_dicom_limits limits;
        const char *name;
    } cases[] = {
        {{sizeof(ich_dicom_limits), 0, ROWS * COLS - 1, 0}, "max_pixels"},
        {{sizeof(ich_dicom_limits), size - 1, 0, 0}, "max_file_bytes"},
        {{sizeof(ich_dicom_limits), 0, 0, ROWS * COLS * 2 - 1}, "max_decoded_bytes"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ich_dicom *d = NULL;
        assert_int_equal(ich_dicom_read_with_limits(path, &cases[k].limits, &d),
                         ICH_ERR_UNSUPPORTED);
        assert_non_null(strstr(ich_last_error(), cases[k].name));
        assert_non_null(strstr(ich_last_error(), "full.dcm"));
        assert_int_equal(ich_dicom_read_memory_with_limits(bytes, size, "mem", &cases[k].limits, &d),
                         ICH_ERR_UNSUPPORTED);
        assert_null(d);
        /* process-wide */
        assert_int_equal(ich_dicom_set_limits(&cases[k].limits), ICH_OK);
        assert_int_equal(ich_dicom_read(path, &d), ICH_ERR_UNSUPPORTED);
        assert_int_equal(ich_dicom_set_limits(NULL), ICH_OK);
        assert_int_equal(ich_dicom_read(path, &d), ICH_OK);
        ich_dicom_free(d);
    }
    ich_dicom_limits exact = {sizeof exact, size, ROWS * COLS, ROWS * COLS * 2};
    ich_dicom *d = NULL;
    assert_int_equal(ich_dicom_read_with_limits(path, &exact, &d), ICH_OK);
    ich_dicom_free(d);
    ich_dicom_limits bad = {3, 0, 0, 0};
    assert_int_equal(ich_dicom_set_limits(&bad), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_dicom_read_with_limits(path, &bad, &d), ICH_ERR_INVALID_ARGUMENT);
    free(bytes);
}

static void alarm_fired(int sig)
{
    (void)sig;
    static const char msg[] = "ich_dicom_read blocked on a non-regular file\n";
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(3);
    _exit(2);
}

/* A FIFO, a device, a directory: refused at once (a FIFO used to block for
 * ever); a 3 GB file: refused by its size without being read. */
static void test_non_regular_and_huge_files(void **state)
{
    const char *dir = *state;
    char fifo[512], huge[512];
    tu_join(fifo, sizeof fifo, dir, "pipe.dcm");
    tu_join(huge, sizeof huge, dir, "huge.dcm");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    signal(SIGALRM, alarm_fired);
    alarm(20);
    expect_read_error(fifo, ICH_ERR_IO, 1);
    assert_non_null(strstr(ich_last_error(), "FIFO"));
    expect_read_error("/dev/null", ICH_ERR_IO, 1);
    expect_read_error(dir, ICH_ERR_IO, 1);
    alarm(0);

    FILE *f = fopen(huge, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("\0\0\0\0", 1, 4, f), 4);
    fclose(f);
    assert_int_equal(truncate(huge, (off_t)3 << 30), 0);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    expect_read_error(huge, ICH_ERR_UNSUPPORTED, 1);
    getrusage(RUSAGE_SELF, &after);
    assert_non_null(strstr(ich_last_error(), "max_file_bytes"));
    assert_true(after.ru_maxrss - before.ru_maxrss < 64 * 1024); /* KiB: nothing read */
}

/* GDCM's own leaks on a few broken compressed streams (a few kilobytes per
 * bad file, not libich's to fix; tests/fuzz/lsan.supp lists the same), for
 * sanitizer builds: LeakSanitizer reads this hook from the program. */
const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"), used)) const char *__lsan_default_suppressions(void)
{
    return "leak:libopenjp2.so\nleak:gdcm::JPEGLSCodec\nleak:gdcm::JPEG8Codec\n"
           "leak:gdcm::JPEG12Codec\nleak:gdcm::JPEG16Codec\nleak:libgdcmjpeg8.so\n"
           "leak:libgdcmjpeg12.so\nleak:libgdcmjpeg16.so\n";
}

/* The regression corpus (tests/fuzz/regressions: fuzzer findings and one
 * file of each hostile class): every file gives an image or an error that
 * names it, and reading them all stays well under 1 GB. */
static void test_regression_corpus(void **state)
{
    (void)state;
    char folder[1024];
    snprintf(folder, sizeof folder, "%s", __FILE__);
    char *slash = strrchr(folder, '/');
    if (!slash)
        skip();
    snprintf(slash + 1, sizeof folder - (size_t)(slash + 1 - folder), "fuzz/regressions");
    DIR *d = opendir(folder);
    if (!d)
        skip();
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".dcm") != 0)
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
        ich_dicom *dicom = NULL;
        ich_status st = ich_dicom_read(path, &dicom);
        if (st != ICH_OK && !strstr(ich_last_error(), e->d_name))
            fail_msg("%s: error does not name the file: %s", e->d_name, ich_last_error());
        ich_dicom_free(dicom);
        files++;
    }
    closedir(d);
    assert_true(files >= 20);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    assert_true(usage.ru_maxrss < 1024 * 1024); /* KiB */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_memory, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_defaults, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_overwrite, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_info_size, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_write_errors, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_no_temp_files, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test(test_pydicom_ct_small),
        cmocka_unit_test(test_pydicom_mr_transfer_syntaxes),
        cmocka_unit_test(test_pydicom_32bit),
        cmocka_unit_test(test_pydicom_errors),
        cmocka_unit_test(test_pydicom_monochrome1),
        cmocka_unit_test_setup_teardown(test_monochrome1, tu_setup_tmpdir, tu_teardown_tmpdir),
        /* Malformed input last: a crash there must not hide other results. */
        cmocka_unit_test_setup_teardown(test_read_errors, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_dimensions, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_pixel_length, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_truncated, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_corrupted, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_limits, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_hostile_rescale, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_non_regular_and_huge_files, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_hostile_bit_layouts, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test(test_regression_corpus),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
