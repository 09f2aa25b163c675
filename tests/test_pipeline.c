/* <ich/pipeline.h>: preprocessing and predicting a folder, on phantom
 * slices plus a truncated DICOM, a file with the DICM marker and garbage
 * after it, a FIFO and symbolic links to "." and to a parent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <sys/stat.h>

#include "ich/ich.h"
#include "test_util.h"

#define GOOD 3
#define SIZE 32

typedef struct good_list {
    char (*paths)[4096];
    int count;
} good_list;

static int add_good(void *user, const char *path, const char *relative, const char *skipped)
{
    (void)relative;
    good_list *l = user;
    assert_null(skipped);
    assert_true(l->count < GOOD);
    snprintf(l->paths[l->count++], 4096, "%s", path);
    return 0;
}

/* scans/images/: GOOD phantom slices, ID_broken.dcm (the first one cut in
 * half) and zz_marker (no extension: found by its DICM marker; garbage
 * after it); scans/pipe.dcm (a FIFO); scans/self -> "." and
 * scans/images/up -> "..". The good files' paths go to good[], sorted. */
static void make_scans(const char *dir, char good[GOOD][4096])
{
    char scans[4096], images[4096], path[4096];
    tu_join(scans, sizeof scans, dir, "scans");
    ich_phantom_options po;
    ich_phantom_options_init(&po);
    po.patients = 1;
    po.slices = GOOD;
    po.rows = po.columns = SIZE;
    po.threads = 1;
    assert_int_equal(ich_phantom_write(scans, &po, NULL), ICH_OK);
    tu_join(images, sizeof images, scans, "images");
    /* the slices' paths in name order, as the folder walk gives them */
    good_list list = {good, 0};
    assert_int_equal(ich_files_walk(images, 0, add_good, &list, NULL), ICH_OK);
    assert_int_equal(list.count, GOOD);
    size_t size = 0;
    uint8_t *data = tu_read_file(good[0], &size);
    assert_non_null(data);
    assert_int_equal(tu_write_file(tu_join(path, sizeof path, images, "ID_broken.dcm"), data,
                                   size / 2), 0);
    free(data);
    uint8_t marker[400];
    memset(marker, 0x5a, sizeof marker);
    memset(marker, 0, 128);
    memcpy(marker + 128, "DICM", 4);
    assert_int_equal(tu_write_file(tu_join(path, sizeof path, images, "zz_marker"), marker,
                                   sizeof marker), 0);
    assert_int_equal(mkfifo(tu_join(path, sizeof path, scans, "pipe.dcm"), 0644), 0);
    assert_int_equal(symlink(".", tu_join(path, sizeof path, scans, "self")), 0);
    assert_int_equal(symlink("..", tu_join(path, sizeof path, images, "up")), 0);
}

static ich_window *brain_window(int size)
{
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "brain"), ICH_OK);
    assert_int_equal(ich_window_set_size(w, size, size, ICH_RESIZE_BILINEAR), ICH_OK);
    return w;
}

/* 1 when the two PNGs hold the same pixels. */
static int same_png(const char *a, const char *b)
{
    uint8_t *pa = NULL, *pb = NULL;
    int32_t wa, ha, ca, wb, hb, cb;
    assert_int_equal(ich_png_read(a, &pa, &wa, &ha, &ca), ICH_OK);
    assert_int_equal(ich_png_read(b, &pb, &wb, &hb, &cb), ICH_OK);
    int same = wa == wb && ha == hb && ca == cb &&
               memcmp(pa, pb, (size_t)wa * (size_t)ha * (size_t)ca) == 0;
    ich_free(pa);
    ich_free(pb);
    return same;
}

/* ---- Preprocessing ------------------------------------------------------- */

static void test_preprocess_converts_good_and_counts_bad(void **state)
{
    const char *dir = *state;
    char good[GOOD][4096], scans[4096], out[4096], path[4096], png[4096], want[4096];
    make_scans(dir, good);
    tu_join(scans, sizeof scans, dir, "scans");
    tu_join(out, sizeof out, dir, "png");
    ich_window *w = brain_window(24);
    ich_preprocess_options o;
    ich_preprocess_options_init(&o);
    o.threads = 2;
    ich_preprocess_summary s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    tu_log_capture(ICH_LOG_WARNING);
    assert_int_equal(ich_preprocess_folder(scans, out, w, &o, &s), ICH_OK);
    ich_set_log_callback(NULL, NULL, ICH_LOG_WARNING);
    /* each real file once, whatever the links to "." and ".." */
    assert_int_equal(s.files, GOOD + 2);
    assert_int_equal(s.converted, GOOD);
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.existing, 0);
    assert_int_equal(s.skipped, 1); /* the FIFO, never opened */
    assert_int_equal(s.threads, 2);
    assert_non_null(strstr(tu_log_text, "ID_broken.dcm"));
    assert_non_null(strstr(tu_log_text, "zz_marker"));
    assert_non_null(strstr(tu_log_text, "pipe.dcm"));
    assert_false(tu_exists(tu_join(path, sizeof path, out, "images/ID_broken.png")));
    for (int i = 0; i < GOOD; i++) {
        const char *name = strrchr(good[i], '/') + 1;
        snprintf(path, sizeof path, "images/%.*s.png", (int)(strlen(name) - 4), name);
        tu_join(png, sizeof png, out, path);
        tu_join(want, sizeof want, dir, "want.png");
        assert_int_equal(ich_window_dicom_to_png(w, good[i], want), ICH_OK);
        assert_true(same_png(png, want));
    }
    /* the recipe beside the PNGs */
    char text[ICH_WINDOW_STRING_MAX];
    assert_int_equal(ich_window_to_string(w, text, sizeof text, NULL), ICH_OK);
    strcat(text, "\n");
    size_t size = 0;
    char *recipe = (char *)tu_read_file(tu_join(path, sizeof path, out, "recipe.txt"), &size);
    assert_non_null(recipe);
    assert_int_equal(size, strlen(text));
    assert_memory_equal(recipe, text, size);
    free(recipe);
    /* a second run keeps the PNGs; overwrite converts them again */
    assert_int_equal(ich_preprocess_folder(scans, out, w, NULL, &s), ICH_OK);
    assert_int_equal(s.converted, 0);
    assert_int_equal(s.existing, GOOD);
    o.overwrite = 1;
    assert_int_equal(ich_preprocess_folder(scans, out, w, &o, &s), ICH_OK);
    assert_int_equal(s.converted, GOOD);
    assert_int_equal(s.existing, 0);
    ich_window_free(w);
}

static int cancel_at_once(void *user, int64_t done, int64_t total, const char *what)
{
    int *calls = user;
    (*calls)++;
    assert_int_equal(total, GOOD + 2);
    assert_true(done <= total);
    assert_string_equal(what, "preprocess");
    return 1;
}

static void test_preprocess_errors_and_cancel(void **state)
{
    const char *dir = *state;
    char good[GOOD][4096], scans[4096], out[4096], path[4096];
    make_scans(dir, good);
    tu_join(scans, sizeof scans, dir, "scans");
    tu_join(out, sizeof out, dir, "png");
    ich_window *w = brain_window(16);
    assert_int_equal(ich_preprocess_folder(NULL, out, w, NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_preprocess_folder(scans, out, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    /* a missing folder: nothing created */
    assert_int_equal(ich_preprocess_folder(tu_join(path, sizeof path, dir, "nope"), out, w, NULL,
                                           NULL), ICH_ERR_IO);
    assert_non_null(strstr(ich_last_error(), "nope"));
    assert_false(tu_exists(out));
    /* a file is not a folder */
    assert_int_equal(ich_preprocess_folder(good[0], out, w, NULL, NULL), ICH_ERR_IO);
    /* two channels cannot be a PNG */
    ich_window *two = brain_window(16);
    assert_int_equal(ich_window_add_list(two, "bone"), ICH_OK);
    assert_int_equal(ich_preprocess_folder(scans, out, two, NULL, NULL), ICH_ERR_UNSUPPORTED);
    ich_window_free(two);
    /* sizes that are no struct */
    ich_preprocess_options o;
    ich_preprocess_options_init(&o);
    o.size = 4;
    assert_int_equal(ich_preprocess_folder(scans, out, w, &o, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_preprocess_summary s = {4, 0, 0, 0, 0, 0, 0};
    assert_int_equal(ich_preprocess_folder(scans, out, w, NULL, &s), ICH_ERR_INVALID_ARGUMENT);
    /* cancelled by the progress callback */
    int calls = 0;
    ich_preprocess_options_init(&o);
    o.threads = 1;
    o.progress = cancel_at_once;
    o.progress_user = &calls;
    s.size = sizeof s;
    assert_int_equal(ich_preprocess_folder(scans, out, w, &o, &s), ICH_ERR_CANCELLED);
    assert_non_null(strstr(ich_last_error(), "cancelled"));
    assert_int_equal(calls, 1);
    assert_int_equal(s.files, GOOD + 2);
    ich_window_free(w);
}

/* Output sub-folders, each made once per worker (issue 16): files in
 * a/, b/ and a/deep/ of the input go to the same sub-folders of the
 * output; where one cannot be made (a plain file named b is in the way),
 * each of its files is reported and counted, and the others convert. */
static void test_preprocess_subfolders(void **state)
{
    const char *dir = *state;
    char good[GOOD][4096], in[4096], out[4096], path[4096];
    make_scans(dir, good);
    size_t size = 0;
    uint8_t *dcm = tu_read_file(good[0], &size);
    assert_non_null(dcm);
    tu_join(in, sizeof in, dir, "in");
    static const char *const files[] = {"a/1.dcm", "a/2.dcm", "a/deep/3.dcm", "b/4.dcm",
                                        "b/5.dcm", "c/6.dcm"};
    static const char *const dirs[] = {"", "/a", "/a/deep", "/b", "/c"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(path, sizeof path, "%s%s", in, dirs[i]);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        assert_int_equal(tu_write_file(tu_join(path, sizeof path, in, files[i]), dcm, size), 0);
    free(dcm);
    ich_window *w = brain_window(16);
    for (int threads = 1; threads <= 2; threads++) {
        char name[32];
        snprintf(name, sizeof name, "out%d", threads);
        tu_join(out, sizeof out, dir, name);
        assert_int_equal(mkdir(out, 0755), 0);
        assert_int_equal(tu_write_file(tu_join(path, sizeof path, out, "b"), "in the way", 10), 0);
        ich_preprocess_options o;
        ich_preprocess_options_init(&o);
        o.threads = threads;
        ich_preprocess_summary s;
        memset(&s, 0, sizeof s);
        s.size = sizeof s;
        tu_log_capture(ICH_LOG_WARNING);
        assert_int_equal(ich_preprocess_folder(in, out, w, &o, &s), ICH_OK);
        ich_set_log_callback(NULL, NULL, ICH_LOG_WARNING);
        assert_int_equal(s.files, 6);
        assert_int_equal(s.converted, 4);
        assert_int_equal(s.failed, 2);
        assert_non_null(strstr(tu_log_text, "b/4.dcm"));
        assert_non_null(strstr(tu_log_text, "b/5.dcm"));
        static const char *const made[] = {"a/1.png", "a/2.png", "a/deep/3.png", "c/6.png"};
        for (size_t i = 0; i < sizeof made / sizeof *made; i++)
            assert_true(tu_exists(tu_join(path, sizeof path, out, made[i])));
    }
    ich_window_free(w);
}

/* ---- Predicting ------------------------------------------------------------ */

static ich_model *small_model(void)
{
    ich_model *m = NULL;
    assert_int_equal(ich_model_create("input 1x16x16, flatten, linear 6", &m), ICH_OK);
    assert_int_equal(ich_model_init_weights(m, 3), ICH_OK);
    ich_window *w = brain_window(16);
    assert_int_equal(ich_model_set_input_window(m, w), ICH_OK);
    ich_window_free(w);
    return m;
}

/* The per-file path: read, window and predict one image. */
static void predict_one(ich_model *m, const char *path, float out[6])
{
    ich_window *w = NULL;
    ich_dicom *d = NULL;
    float image[16 * 16];
    assert_int_equal(ich_model_input_window(m, &w), ICH_OK);
    assert_int_equal(ich_dicom_read(path, &d), ICH_OK);
    assert_int_equal(ich_window_apply_dicom_f32(w, d, image, 16 * 16), ICH_OK);
    assert_int_equal(ich_model_predict(m, image, 1, 0.5f, out, 6), ICH_OK);
    ich_dicom_free(d);
    ich_window_free(w);
}

typedef struct seen {
    int predicted, failed, skipped;
    char ids[8][64];
    float probabilities[8][6];
    char problems[1024];
    int stop_after; /* 0: never */
} seen;

static int collect(void *user, const char *path, const char *id, const float *probabilities,
                   int32_t outputs, const char *problem)
{
    seen *s = user;
    assert_non_null(path);
    if (!id) {
        s->skipped++;
        assert_non_null(strstr(path, "pipe.dcm"));
        assert_non_null(problem);
    } else if (probabilities) {
        assert_int_equal(outputs, 6);
        assert_null(problem);
        snprintf(s->ids[s->predicted], sizeof s->ids[0], "%s", id);
        memcpy(s->probabilities[s->predicted], probabilities, 6 * sizeof(float));
        s->predicted++;
    } else {
        s->failed++;
        size_t n = strlen(s->problems);
        snprintf(s->problems + n, sizeof s->problems - n, "%s\n", problem);
    }
    return s->stop_after && s->predicted + s->failed >= s->stop_after;
}

static void test_predict_files_equals_the_per_file_path(void **state)
{
    const char *dir = *state;
    char good[GOOD][4096], scans[4096];
    make_scans(dir, good);
    tu_join(scans, sizeof scans, dir, "scans");
    ich_model *m = small_model();
    ich_predict_options o;
    ich_predict_options_init(&o);
    o.batch_size = 2; /* batches split by the failing files */
    o.threads = 2;
    ich_predict_summary sum;
    memset(&sum, 0, sizeof sum);
    sum.size = sizeof sum;
    static seen s;
    memset(&s, 0, sizeof s);
    const char *paths[] = {scans};
    assert_int_equal(ich_predict_files(m, paths, 1, &o, collect, &s, &sum), ICH_OK);
    assert_int_equal(sum.files, GOOD + 2);
    assert_int_equal(sum.predicted, GOOD);
    assert_int_equal(sum.failed, 2);
    assert_int_equal(sum.skipped, 1);
    assert_int_equal(s.predicted, GOOD);
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.skipped, 1);
    assert_non_null(strstr(s.problems, "ID_broken.dcm"));
    assert_non_null(strstr(s.problems, "zz_marker"));
    for (int i = 0; i < GOOD; i++) {
        const char *name = strrchr(good[i], '/') + 1;
        assert_int_equal(strncmp(s.ids[i], name, strlen(name) - 4), 0);
        assert_int_equal(strlen(s.ids[i]), strlen(name) - 4);
        float want[6];
        predict_one(m, good[i], want);
        for (int c = 0; c < 6; c++)
            assert_float_equal(s.probabilities[i][c], want[c], 1e-6);
    }
    /* a list of files, in the given order */
    memset(&s, 0, sizeof s);
    const char *two[] = {good[2], good[0]};
    assert_int_equal(ich_predict_files(m, two, 2, NULL, collect, &s, NULL), ICH_OK);
    assert_int_equal(s.predicted, 2);
    float want[6];
    predict_one(m, good[2], want);
    assert_float_equal(s.probabilities[0][0], want[0], 1e-6);
    ich_model_free(m);
}

static void test_predict_files_errors_stop_and_cancel(void **state)
{
    const char *dir = *state;
    char good[GOOD][4096], scans[4096], path[4096];
    make_scans(dir, good);
    tu_join(scans, sizeof scans, dir, "scans");
    ich_model *m = small_model();
    const char *paths[] = {scans};
    assert_int_equal(ich_predict_files(NULL, paths, 1, NULL, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_predict_files(m, NULL, 1, NULL, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_predict_files(m, NULL, 0, NULL, NULL, NULL, NULL), ICH_OK);
    const char *missing[] = {tu_join(path, sizeof path, dir, "nope.dcm")};
    assert_int_equal(ich_predict_files(m, missing, 1, NULL, NULL, NULL, NULL),
                     ICH_ERR_NOT_FOUND);
    assert_non_null(strstr(ich_last_error(), "nope.dcm: no such file or folder"));
    const char *fifo[] = {tu_join(path, sizeof path, scans, "pipe.dcm")};
    assert_int_equal(ich_predict_files(m, fifo, 1, NULL, NULL, NULL, NULL), ICH_ERR_IO);
    assert_non_null(strstr(ich_last_error(), "not a regular file or folder"));
    /* bad options */
    ich_predict_options o;
    ich_predict_options_init(&o);
    o.batch_size = 0;
    assert_int_equal(ich_predict_files(m, paths, 1, &o, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    ich_predict_options_init(&o);
    o.size = 8;
    assert_int_equal(ich_predict_files(m, paths, 1, &o, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    /* a recipe that does not make the model's input */
    ich_predict_options_init(&o);
    ich_window *big = brain_window(20);
    o.window = big;
    assert_int_equal(ich_predict_files(m, paths, 1, &o, NULL, NULL, NULL), ICH_ERR_SHAPE);
    ich_window_free(big);
    /* stop_on_failure: the broken file's own error */
    ich_predict_options_init(&o);
    o.stop_on_failure = 1;
    ich_status st = ich_predict_files(m, paths, 1, &o, NULL, NULL, NULL);
    assert_int_not_equal(st, ICH_OK);
    assert_int_not_equal(st, ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "ID_broken.dcm"));
    /* the callback stops the call */
    static seen s;
    memset(&s, 0, sizeof s);
    s.stop_after = 1;
    ich_predict_options_init(&o);
    o.batch_size = 1;
    assert_int_equal(ich_predict_files(m, paths, 1, &o, collect, &s, NULL),
                     ICH_ERR_CANCELLED);
    assert_non_null(strstr(ich_last_error(), "cancelled"));
    assert_int_equal(s.predicted + s.failed, 1);
    /* a model without a recipe, and none given */
    ich_model *bare = NULL;
    assert_int_equal(ich_model_create("input 1x16x16, flatten, linear 6", &bare), ICH_OK);
    assert_int_equal(ich_predict_files(bare, paths, 1, NULL, NULL, NULL, NULL),
                     ICH_ERR_NOT_FOUND);
    ich_model_free(bare);
    ich_model_free(m);
}

static void test_predict_folder_writes_the_csv(void **state)
{
    const char *dir = *state;
    char good[GOOD][4096], scans[4096], out[4096];
    make_scans(dir, good);
    tu_join(scans, sizeof scans, dir, "scans");
    tu_join(out, sizeof out, dir, "p.csv");
    ich_model *m = small_model();
    const char *names[] = {"subdural", "any", "epidural", "intraparenchymal",
                           "intraventricular", "subarachnoid"};
    assert_int_equal(ich_model_set_labels(m, names, 6), ICH_OK);
    ich_predict_summary sum;
    memset(&sum, 0, sizeof sum);
    sum.size = sizeof sum;
    tu_log_capture(ICH_LOG_WARNING);
    assert_int_equal(ich_predict_folder(m, scans, out, NULL, &sum), ICH_OK);
    ich_set_log_callback(NULL, NULL, ICH_LOG_WARNING);
    assert_int_equal(sum.predicted, GOOD);
    assert_int_equal(sum.failed, 2);
    assert_non_null(strstr(tu_log_text, "skipped"));
    assert_non_null(strstr(tu_log_text, "ID_broken.dcm"));
    size_t size = 0;
    char *text = (char *)tu_read_file(out, &size);
    assert_non_null(text);
    text = realloc(text, size + 1);
    text[size] = '\0';
    assert_int_equal(strncmp(text, "ID,subdural,any,epidural,intraparenchymal,intraventricular,"
                                   "subarachnoid\n", 70), 0);
    /* each good image's row: its ID and the per-file probabilities */
    const char *row = strchr(text, '\n') + 1;
    for (int i = 0; i < GOOD; i++) {
        const char *name = strrchr(good[i], '/') + 1;
        assert_int_equal(strncmp(row, name, strlen(name) - 4), 0);
        const char *p = row + strlen(name) - 4;
        float want[6];
        predict_one(m, good[i], want);
        for (int c = 0; c < 6; c++) {
            assert_int_equal(*p, ',');
            char *end;
            float v = strtof(p + 1, &end);
            assert_true(v == want[c] || fabsf(v - want[c]) < 1e-6f);
            p = end;
        }
        assert_int_equal(*p, '\n');
        row = p + 1;
    }
    assert_int_equal(*row, '\0');
    free(text);
    /* RSNA rows */
    ich_predict_options o;
    ich_predict_options_init(&o);
    o.format = ICH_PREDICT_RSNA;
    assert_int_equal(ich_predict_folder(m, good[0], out, &o, NULL), ICH_OK);
    text = (char *)tu_read_file(out, &size);
    text = realloc(text, size + 1);
    text[size] = '\0';
    const char *name = strrchr(good[0], '/') + 1;
    char first[256];
    snprintf(first, sizeof first, "ID,Label\n%.*s_subdural,", (int)(strlen(name) - 4), name);
    assert_int_equal(strncmp(text, first, strlen(first)), 0);
    free(text);
    /* an unknown format; a model whose outputs have no names */
    o.format = 7;
    assert_int_equal(ich_predict_folder(m, scans, out, &o, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_model *three = NULL;
    assert_int_equal(ich_model_create("input 1x16x16, flatten, linear 3", &three), ICH_OK);
    ich_window *w = brain_window(16);
    assert_int_equal(ich_model_set_input_window(three, w), ICH_OK);
    ich_window_free(w);
    unlink(out);
    assert_int_equal(ich_predict_folder(three, scans, out, NULL, NULL), ICH_ERR_NOT_FOUND);
    assert_false(tu_exists(out));
    ich_model_free(three);
    ich_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_preprocess_converts_good_and_counts_bad,
                                        tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_preprocess_errors_and_cancel, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_preprocess_subfolders, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_predict_files_equals_the_per_file_path,
                                        tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_predict_files_errors_stop_and_cancel,
                                        tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_predict_folder_writes_the_csv, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
