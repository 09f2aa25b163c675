/* Tests for <ich/image.h>: ich_png_write in every channel count and odd
 * sizes, decoded again with stb_image; argument and I/O errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include <stb_image.h>

#include "ich/ich.h"
#include "test_util.h"

static uint8_t *make_pixels(int width, int height, int channels, uint32_t seed)
{
    size_t n = (size_t)width * height * channels;
    uint8_t *px = malloc(n);
    assert_non_null(px);
    for (size_t i = 0; i < n; i++)
        px[i] = (uint8_t)tu_rand(&seed);
    /* The extremes are always present. */
    px[0] = 0;
    px[n - 1] = 255;
    return px;
}

static void round_trip(const char *dir, int width, int height, int channels)
{
    char name[64], path[512];
    snprintf(name, sizeof name, "img_%dx%d_%d.png", width, height, channels);
    tu_join(path, sizeof path, dir, name);
    uint8_t *px = make_pixels(width, height, channels, (uint32_t)(width * 131 + height * 7 + channels));
    ich_status st = ich_png_write(path, px, width, height, channels);
    if (st != ICH_OK)
        fail_msg("ich_png_write %dx%d x%d: %s (%s)", width, height, channels,
                 ich_status_string(st), ich_last_error());
    int w = 0, h = 0, c = 0;
    unsigned char *img = stbi_load(path, &w, &h, &c, 0);
    if (!img)
        fail_msg("%s: stb_image cannot decode it: %s", name, stbi_failure_reason());
    assert_int_equal(w, width);
    assert_int_equal(h, height);
    assert_int_equal(c, channels);
    assert_memory_equal(img, px, (size_t)width * height * channels);
    stbi_image_free(img);
    free(px);
}

static void test_round_trip(void **state)
{
    const char *dir = *state;
    const int sizes[][2] = {{1, 1}, {7, 3}, {3, 7}, {64, 33}, {1, 50}, {50, 1}};
    int files = 0;
    for (int channels = 1; channels <= 4; channels++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            round_trip(dir, sizes[k][0], sizes[k][1], channels);
            files++;
        }
    /* Exactly the written files, no temporaries. */
    assert_int_equal(tu_dir_count(dir, NULL, 0), files);
}

static void test_overwrite(void **state)
{
    const char *dir = *state;
    char path[512];
    tu_join(path, sizeof path, dir, "same.png");
    uint8_t a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {250, 251, 252, 253, 254, 255};
    assert_int_equal(ich_png_write(path, a, 3, 2, 1), ICH_OK);
    assert_int_equal(ich_png_write(path, b, 2, 1, 3), ICH_OK);
    int w, h, c;
    unsigned char *img = stbi_load(path, &w, &h, &c, 0);
    assert_non_null(img);
    assert_int_equal(w, 2);
    assert_int_equal(h, 1);
    assert_int_equal(c, 3);
    assert_memory_equal(img, b, 6);
    stbi_image_free(img);
    assert_int_equal(tu_dir_count(dir, NULL, 0), 1);

    /* A failed write leaves the existing file as it was. */
    size_t before_size = 0, after_size = 0;
    uint8_t *before = tu_read_file(path, &before_size);
    assert_non_null(before);
    assert_int_equal(ich_png_write(path, a, 0, 2, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_png_write(path, a, 3, 2, 5), ICH_ERR_INVALID_ARGUMENT);
    uint8_t *after = tu_read_file(path, &after_size);
    assert_non_null(after);
    assert_int_equal(before_size, after_size);
    assert_memory_equal(before, after, before_size);
    free(before);
    free(after);
    assert_int_equal(tu_dir_count(dir, NULL, 0), 1);
}

static void test_errors(void **state)
{
    const char *dir = *state;
    char path[512];
    tu_join(path, sizeof path, dir, "e.png");
    uint8_t px[4 * 4 * 4] = {0};

    const struct {
        const char *path;
        const uint8_t *pixels;
        int32_t width, height, channels;
        const char *what;
    } cases[] = {
        {NULL, px, 2, 2, 1, "NULL path"},
        {path, NULL, 2, 2, 1, "NULL pixels"},
        {path, px, 2, 2, 0, "channels 0"},
        {path, px, 2, 2, 5, "channels 5"},
        {path, px, 2, 2, -1, "channels -1"},
        {path, px, 0, 2, 1, "width 0"},
        {path, px, 2, 0, 1, "height 0"},
        {path, px, -2, 2, 1, "width -2"},
        {path, px, 2, -2, 1, "height -2"},
        {path, px, 65536, 1, 1, "width 65536"},
        {path, px, 1, 65536, 1, "height 65536"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ich_clear_error();
        ich_status st = ich_png_write(cases[k].path, cases[k].pixels, cases[k].width,
                                      cases[k].height, cases[k].channels);
        if (st != ICH_ERR_INVALID_ARGUMENT)
            fail_msg("%s: %s, expected ICH_ERR_INVALID_ARGUMENT", cases[k].what,
                     ich_status_string(st));
        assert_true(ich_last_error()[0] != '\0');
        assert_int_equal(tu_dir_count(dir, NULL, 0), 0);
    }

    /* A directory that does not exist: ICH_ERR_IO, the message names the
     * file, nothing is created. */
    char missing[512];
    tu_join(missing, sizeof missing, dir, "no/such/dir/out_missing.png");
    ich_clear_error();
    assert_int_equal(ich_png_write(missing, px, 4, 4, 4), ICH_ERR_IO);
    assert_non_null(strstr(ich_last_error(), "out_missing.png"));
    assert_int_equal(tu_dir_count(dir, NULL, 0), 0);
    assert_int_equal(ich_png_write("/nonexistent/dir/x.png", px, 4, 4, 4), ICH_ERR_IO);

    /* The target is an existing directory: the rename fails, and the
     * temporary file written beside it must be removed. */
    char sub[512];
    tu_join(sub, sizeof sub, dir, "sub");
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(ich_png_write(sub, px, 4, 4, 1), ICH_ERR_IO);
    char names[512];
    int n = tu_dir_count(dir, names, sizeof names);
    if (n != 1 || strcmp(names, "sub") != 0)
        fail_msg("after a failed write the directory holds [%s]", names);
    assert_int_equal(tu_dir_count(sub, NULL, 0), 0);

    /* A path under a regular file (ENOTDIR). */
    char file[512], under[512];
    tu_join(file, sizeof file, dir, "plain");
    assert_int_equal(tu_write_file(file, "x", 1), 0);
    tu_join(under, sizeof under, dir, "plain/x.png");
    assert_int_equal(ich_png_write(under, px, 4, 4, 1), ICH_ERR_IO);
    assert_int_equal(tu_dir_count(dir, NULL, 0), 2);
    assert_int_equal(tu_file_size(file), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_overwrite, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_errors, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
