/* Label columns matched to a model's labels by name (labels.h, "Matching a
 * model's labels"): the reordering against the values read by name, the
 * refusals and their messages, the unnamed-model rules, and end to end:
 * ich_evaluate_report(), a dataset opened with a model, ich_evaluate() and
 * ich_train() give the same numbers for a CSV in the tutorial's column
 * order as for one in libich's order (they did not when columns were
 * taken by position: issue 11). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

static const char *const STANDARD[6] = {"any", "epidural", "intraparenchymal",
                                        "intraventricular", "subarachnoid", "subdural"};
/* The tutorial's CSV order, spelled as a user might. */
static const char *const TUTORIAL[6] = {"Any", "Intraparenchymal", "intraventricular",
                                        "subdural", "subarachnoid", "epidural"};

/* A table with columns `names`, rows whose value in the column named
 * STANDARD[c] is (row * 7 + c) % 3 == 0: the same labels in any order. */
static ich_labels *table(const char *const *names, int32_t count, int64_t rows)
{
    ich_labels *t = NULL;
    assert_int_equal(ich_labels_create(names, count, &t), ICH_OK);
    for (int64_t r = 0; r < rows; r++) {
        float v[8];
        for (int32_t k = 0; k < count; k++) {
            int c = 0;
            while (c < 6 && strcasecmp(STANDARD[c], names[k]) != 0)
                c++;
            v[k] = (float)((r * 7 + c) % 3 == 0);
        }
        char id[32];
        snprintf(id, sizeof id, "ID_%03d", (int)r);
        assert_int_equal(ich_labels_add(t, id, v, r % 2 ? "P1" : "P2"), ICH_OK);
    }
    return t;
}

static ich_model *model(const char *labels_metadata, int32_t outputs)
{
    char spec[128];
    snprintf(spec, sizeof spec, "input 3x32x32, conv 4 5 stride 4, relu, maxpool 2, flatten, "
             "linear %d", outputs);
    ich_model *m = NULL;
    assert_int_equal(ich_model_create(spec, &m), ICH_OK);
    assert_int_equal(ich_model_init_weights(m, 3), ICH_OK);
    if (labels_metadata)
        assert_int_equal(ich_model_set_metadata(m, "ich.labels", labels_metadata), ICH_OK);
    return m;
}

/* Every value of `got` equals the value of the same row and column name
 * in `want` (read with ich_labels_find_column, an independent path). */
static void assert_same_by_name(const ich_labels *got, const ich_labels *want)
{
    assert_int_equal(ich_labels_rows(got), ich_labels_rows(want));
    for (int64_t r = 0; r < ich_labels_rows(got); r++) {
        assert_string_equal(ich_labels_id(got, r), ich_labels_id(want, r));
        assert_string_equal(ich_labels_group(got, r), ich_labels_group(want, r));
        for (int32_t c = 0; c < ich_labels_columns(got); c++) {
            int32_t w = ich_labels_find_column(want, ich_labels_column_name(got, c));
            assert_true(w >= 0);
            assert_true(ich_labels_values(got, r)[c] == ich_labels_values(want, r)[w]);
        }
    }
}

static void test_reorder(void **state)
{
    (void)state;
    ich_labels *tutorial = table(TUTORIAL, 6, 9), *out = NULL;
    /* 6 outputs without "ich.labels": the standard order */
    ich_model *m = model(NULL, 6);
    assert_int_equal(ich_labels_match_model(tutorial, m, "t.csv", "m.safetensors", &out), ICH_OK);
    for (int c = 0; c < 6; c++)
        assert_string_equal(ich_labels_column_name(out, c), STANDARD[c]);
    assert_same_by_name(out, tutorial);
    ich_labels *standard = table(STANDARD, 6, 9);
    for (int64_t r = 0; r < 9; r++)
        assert_memory_equal(ich_labels_values(out, r), ich_labels_values(standard, r),
                            6 * sizeof(float));
    ich_labels_free(out);
    ich_model_free(m);
    /* a model with its own order and spelling: the model's */
    m = model("SUBDURAL, any,epidural,intraparenchymal,intraventricular,subarachnoid", 6);
    assert_int_equal(ich_labels_match_model(tutorial, m, NULL, NULL, &out), ICH_OK);
    assert_string_equal(ich_labels_column_name(out, 0), "SUBDURAL");
    assert_string_equal(ich_labels_column_name(out, 1), "any");
    assert_same_by_name(out, tutorial);
    ich_labels *names = NULL;
    assert_int_equal(ich_labels_of_model(m, &names), ICH_OK);
    assert_int_equal(ich_labels_columns(names), 6);
    assert_int_equal(ich_labels_rows(names), 0);
    assert_string_equal(ich_labels_column_name(names, 5), "subarachnoid");
    ich_labels_free(names);
    ich_labels_free(out);
    ich_model_free(m);
    ich_labels_free(standard);
    ich_labels_free(tutorial);
}

static void test_refusals(void **state)
{
    (void)state;
    ich_model *m = model(NULL, 6);
    ich_labels *out = (ich_labels *)1;
    /* epidural missing, an unknown column instead */
    const char *five[6] = {"any", "intraparenchymal", "intraventricular", "subdural",
                           "subarachnoid", "bleed"};
    ich_labels *t = table(five, 6, 3);
    assert_int_equal(ich_labels_match_model(t, m, "test.csv", "best.safetensors", &out),
                     ICH_ERR_SHAPE);
    assert_null(out);
    const char *msg = ich_last_error();
    assert_non_null(strstr(msg, "test.csv"));
    assert_non_null(strstr(msg, "best.safetensors"));
    assert_non_null(strstr(msg, "any, intraparenchymal, intraventricular, subdural, "
                                "subarachnoid, bleed"));
    assert_non_null(strstr(msg, "any, epidural, intraparenchymal"));
    assert_non_null(strstr(msg, "missing: epidural"));
    assert_non_null(strstr(msg, "not a label of the model: bleed"));
    ich_labels_free(t);
    /* one column short */
    t = table(STANDARD, 5, 3);
    assert_int_equal(ich_labels_match_model(t, m, "short.csv", NULL, &out), ICH_ERR_SHAPE);
    assert_non_null(strstr(ich_last_error(), "missing: subdural"));
    ich_labels_free(t);
    ich_model_free(m);
    /* "ich.labels" must name each output once */
    t = table(STANDARD, 6, 3);
    m = model("any,epidural", 6);
    assert_int_equal(ich_labels_match_model(t, m, NULL, NULL, &out), ICH_ERR_FORMAT);
    assert_int_equal(ich_labels_of_model(m, &out), ICH_ERR_FORMAT);
    ich_model_free(m);
    m = model("any,any,b,c,d,e", 6);
    assert_int_equal(ich_labels_match_model(t, m, NULL, NULL, &out), ICH_ERR_FORMAT);
    ich_model_free(m);
    assert_int_equal(ich_labels_match_model(NULL, NULL, NULL, NULL, &out),
                     ICH_ERR_INVALID_ARGUMENT);
    ich_labels_free(t);
}

/* A model without names and other than 6 outputs: by position when the
 * counts agree (nothing better is known), refused otherwise. */
static void test_unnamed(void **state)
{
    (void)state;
    const char *three[3] = {"a", "b", "c"};
    ich_labels *t = table(three, 3, 4), *out = NULL;
    ich_model *m = model(NULL, 3);
    assert_int_equal(ich_labels_of_model(m, &out), ICH_ERR_NOT_FOUND);
    assert_int_equal(ich_labels_match_model(t, m, "abc.csv", NULL, &out), ICH_OK);
    assert_same_by_name(out, t);
    ich_labels_free(out);
    ich_model_free(m);
    m = model(NULL, 2);
    assert_int_equal(ich_labels_match_model(t, m, "abc.csv", NULL, &out), ICH_ERR_SHAPE);
    assert_non_null(strstr(ich_last_error(), "abc.csv"));
    assert_non_null(strstr(ich_last_error(), "no label names"));
    ich_model_free(m);
    /* with names, a 3-output model matches by name */
    m = model("C,a,B", 3);
    assert_int_equal(ich_labels_match_model(t, m, NULL, NULL, &out), ICH_OK);
    assert_string_equal(ich_labels_column_name(out, 0), "C");
    assert_true(ich_labels_values(out, 1)[0] == ich_labels_values(t, 1)[2]);
    ich_labels_free(out);
    ich_model_free(m);
    ich_labels_free(t);
}

/* ---- End to end on phantom slices ----------------------------------------- */

typedef struct fixture {
    char *dir;
    char images[512], standard_csv[512], tutorial_csv[512], checkpoint[512];
} fixture;

/* The phantom's labels as a standard-order and a tutorial-order CSV, and a
 * checkpoint with an input recipe and no "ich.labels" (6 outputs: the
 * standard order is assumed). */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    ich_phantom_options po;
    ich_phantom_options_init(&po);
    po.patients = 4;
    po.slices = 4;
    po.rows = po.columns = 32;
    po.prevalence = 0.8;
    po.multiple = 0.8;
    po.seed = 5;
    po.threads = 2;
    if (ich_phantom_write(f->dir, &po, NULL) != ICH_OK)
        return -1;
    char labels_csv[512];
    tu_join(f->images, sizeof f->images, f->dir, "images");
    tu_join(labels_csv, sizeof labels_csv, f->dir, "labels.csv");
    tu_join(f->standard_csv, sizeof f->standard_csv, f->dir, "standard.csv");
    tu_join(f->tutorial_csv, sizeof f->tutorial_csv, f->dir, "tutorial.csv");
    tu_join(f->checkpoint, sizeof f->checkpoint, f->dir, "model.safetensors");
    ich_labels *read = NULL, *tutorial = NULL;
    if (ich_labels_read(labels_csv, &read) || ich_labels_write(read, f->standard_csv) ||
        ich_labels_create(TUTORIAL, 6, &tutorial))
        return -1;
    for (int64_t r = 0; r < ich_labels_rows(read); r++) {
        float v[6];
        for (int k = 0; k < 6; k++)
            v[k] = ich_labels_values(read, r)[ich_labels_find_column(read, TUTORIAL[k])];
        if (ich_labels_add(tutorial, ich_labels_id(read, r), v, NULL))
            return -1;
    }
    if (ich_labels_write(tutorial, f->tutorial_csv))
        return -1;
    ich_labels_free(read);
    ich_labels_free(tutorial);
    ich_model *m = model(NULL, 6);
    if (ich_model_set_metadata(m, "ich.windows", "blood,brain,bone") ||
        ich_model_set_metadata(m, "ich.size", "32") || ich_model_save(m, f->checkpoint))
        return -1;
    ich_model_free(m);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static char *report_file(const char *dir, const char *name)
{
    char path[1024];
    tu_join(path, sizeof path, dir, name);
    size_t size = 0;
    uint8_t *data = tu_read_file(path, &size);
    assert_non_null(data);
    char *text = malloc(size + 1); /* as a string */
    assert_non_null(text);
    memcpy(text, data, size);
    text[size] = '\0';
    free(data);
    return text;
}

/* The report of a tutorial-order CSV equals the standard one's: the same
 * classes in the model's order, the same predictions and AUCs. */
static void test_report_same_numbers(void **state)
{
    fixture *f = *state;
    char out_standard[1024], out_tutorial[1024];
    tu_join(out_standard, sizeof out_standard, f->dir, "report_standard");
    tu_join(out_tutorial, sizeof out_tutorial, f->dir, "report_tutorial");
    ich_evaluate_options o;
    ich_evaluate_options_init(&o);
    o.bootstrap = 50;
    assert_int_equal(ich_evaluate_report(f->checkpoint, f->standard_csv, f->images, out_standard,
                                         &o), ICH_OK);
    assert_int_equal(ich_evaluate_report(f->checkpoint, f->tutorial_csv, f->images, out_tutorial,
                                         &o), ICH_OK);
    const char *files[] = {"metrics.csv", "predictions.csv"};
    for (int i = 0; i < 2; i++) {
        char *a = report_file(out_standard, files[i]), *b = report_file(out_tutorial, files[i]);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    char *metrics = report_file(out_tutorial, "metrics.csv");
    assert_non_null(strstr(metrics, "\nany,"));
    assert_true(strstr(metrics, "\nepidural,") < strstr(metrics, "\nsubdural,"));
    free(metrics);
    /* a CSV without the model's labels is refused, naming it */
    char bad_csv[1024], out_bad[1024];
    tu_join(bad_csv, sizeof bad_csv, f->dir, "bad.csv");
    tu_join(out_bad, sizeof out_bad, f->dir, "report_bad");
    const char *text = "ID,any,epidural,intraparenchymal,intraventricular,subarachnoid\n"
                       "ID_x,0,0,0,0,0\n";
    assert_int_equal(tu_write_file(bad_csv, text, strlen(text)), 0);
    assert_int_equal(ich_evaluate_report(f->checkpoint, bad_csv, f->images, out_bad, &o),
                     ICH_ERR_SHAPE);
    assert_non_null(strstr(ich_last_error(), bad_csv));
    assert_non_null(strstr(ich_last_error(), "missing: subdural"));
    assert_non_null(strstr(ich_last_error(), f->checkpoint));
}

static ich_dataset *open_csv(const fixture *f, const char *csv, const ich_model *m)
{
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "blood,brain,bone"), ICH_OK);
    assert_int_equal(ich_window_set_size(w, 32, 32, ICH_RESIZE_BILINEAR), ICH_OK);
    ich_dataset_options o;
    ich_dataset_options_init(&o);
    o.window = w;
    o.batch_size = 5;
    o.shuffle = 0;
    o.workers = 0;
    o.model = m;
    ich_dataset *ds = NULL;
    assert_int_equal(ich_dataset_open_csv(csv, f->images, &o, &ds), ICH_OK);
    ich_window_free(w);
    return ds;
}

/* A dataset opened with a model holds the columns in the model's order. */
static void test_dataset_option(void **state)
{
    fixture *f = *state;
    ich_model *m = model(NULL, 6);
    ich_dataset *a = open_csv(f, f->standard_csv, NULL), *b = open_csv(f, f->tutorial_csv, m);
    const ich_labels *la = ich_dataset_labels(a), *lb = ich_dataset_labels(b);
    assert_int_equal(ich_labels_rows(la), ich_labels_rows(lb));
    for (int c = 0; c < 6; c++)
        assert_string_equal(ich_labels_column_name(lb, c), STANDARD[c]);
    float ya[6], yb[6];
    float *image = malloc(3 * 32 * 32 * sizeof *image);
    for (int64_t i = 0; i < ich_dataset_length(a); i++) {
        assert_int_equal(ich_dataset_get(a, i, 0, 0, image, 3 * 32 * 32, ya, 6), ICH_OK);
        assert_int_equal(ich_dataset_get(b, i, 0, 0, image, 3 * 32 * 32, yb, 6), ICH_OK);
        assert_memory_equal(ya, yb, sizeof ya);
    }
    free(image);
    /* and refused, naming the CSV, when a label is missing */
    char bad_csv[1024];
    tu_join(bad_csv, sizeof bad_csv, f->dir, "five.csv");
    const char *text = "ID,Any,epidural,intraparenchymal,intraventricular,subarachnoid\n";
    assert_int_equal(tu_write_file(bad_csv, text, strlen(text)), 0);
    ich_dataset_options o;
    ich_dataset_options_init(&o);
    o.model = m;
    o.workers = 0;
    ich_dataset *c = (ich_dataset *)1;
    assert_int_equal(ich_dataset_open_csv(bad_csv, f->images, &o, &c), ICH_ERR_SHAPE);
    assert_null(c);
    assert_non_null(strstr(ich_last_error(), bad_csv));
    assert_non_null(strstr(ich_last_error(), "missing: subdural"));
    ich_dataset_free(b);
    ich_dataset_free(a);
    ich_model_free(m);
}

/* ich_evaluate() and ich_train() on a model with "ich.labels": the
 * tutorial-order dataset is put in the model's order batch by batch (the
 * loss, balanced class weights and accuracy are those of the standard
 * order); a dataset without the model's labels is refused. */
static void test_train_matches_by_name(void **state)
{
    fixture *f = *state;
    ich_dataset *a = open_csv(f, f->standard_csv, NULL), *b = open_csv(f, f->tutorial_csv, NULL);
    double loss[2], accuracy[2], train_loss[2];
    for (int k = 0; k < 2; k++) {
        ich_model *m = model("any,epidural,intraparenchymal,intraventricular,subarachnoid,"
                             "subdural", 6);
        ich_dataset *ds = k ? b : a;
        assert_int_equal(ich_evaluate(m, ds, NULL, -1, &loss[k], &accuracy[k]), ICH_OK);
        ich_optimizer *opt = NULL;
        assert_int_equal(ich_optimizer_create(m, NULL, &opt), ICH_OK);
        ich_train_options t;
        ich_train_options_init(&t);
        t.epochs = 1;
        t.balanced = 1;
        ich_history *h = NULL;
        assert_int_equal(ich_train(m, opt, ds, ds, &t, &h), ICH_OK);
        ich_epoch_stats s = {.size = sizeof s};
        assert_int_equal(ich_history_get(h, 0, &s), ICH_OK);
        train_loss[k] = s.train_loss + s.val_loss + s.val_accuracy;
        ich_history_free(h);
        ich_optimizer_free(opt);
        ich_model_free(m);
    }
    assert_true(loss[0] == loss[1]);
    assert_true(accuracy[0] == accuracy[1]);
    assert_true(train_loss[0] == train_loss[1]);
    /* a model whose labels the dataset lacks */
    ich_model *m = model("any,epidural,intraparenchymal,intraventricular,subarachnoid,bleed", 6);
    assert_int_equal(ich_evaluate(m, b, NULL, -1, NULL, NULL), ICH_ERR_SHAPE);
    assert_non_null(strstr(ich_last_error(), "missing: bleed"));
    assert_non_null(strstr(ich_last_error(), "not a label of the model: subdural"));
    ich_model_free(m);
    ich_dataset_free(b);
    ich_dataset_free(a);
}

/* Resuming: the checkpoint's "ich.labels" (here not the standard order)
 * decide the matching, even for a model created without them; the run
 * continues as the uninterrupted one with the checkpoint's column order. */
static void test_resume_uses_checkpoint_labels(void **state)
{
    fixture *f = *state;
    static const char *order = "subdural,any,epidural,intraparenchymal,intraventricular,"
                               "subarachnoid";
    char dir[1024], last[1100];
    tu_join(dir, sizeof dir, f->dir, "resume_run");
    snprintf(last, sizeof last, "%s/last.safetensors", dir);
    ich_dataset *a = open_csv(f, f->standard_csv, NULL), *b = open_csv(f, f->tutorial_csv, NULL);
    double loss[2];
    for (int k = 0; k < 2; k++) {
        ich_model *m = model(k == 0 ? order : NULL, 6);
        ich_optimizer *opt = NULL;
        assert_int_equal(ich_optimizer_create(m, NULL, &opt), ICH_OK);
        ich_train_options t;
        ich_train_options_init(&t);
        t.epochs = k + 1;
        t.checkpoint_dir = dir;
        t.resume = k ? last : NULL;
        ich_history *h = NULL;
        assert_int_equal(ich_train(m, opt, k ? b : a, NULL, &t, &h), ICH_OK);
        ich_epoch_stats s = {.size = sizeof s};
        assert_int_equal(ich_history_get(h, k, &s), ICH_OK);
        loss[k] = s.train_loss;
        assert_string_equal(ich_model_metadata(m, "ich.labels"), order);
        ich_history_free(h);
        ich_optimizer_free(opt);
        ich_model_free(m);
    }
    /* the second epoch on tutorial-order labels matched to the checkpoint's order */
    ich_model *m = model(order, 6);
    ich_optimizer *opt = NULL;
    assert_int_equal(ich_optimizer_create(m, NULL, &opt), ICH_OK);
    ich_train_options t;
    ich_train_options_init(&t);
    t.epochs = 2;
    ich_history *h = NULL;
    assert_int_equal(ich_train(m, opt, a, NULL, &t, &h), ICH_OK);
    ich_epoch_stats s = {.size = sizeof s};
    assert_int_equal(ich_history_get(h, 1, &s), ICH_OK);
    assert_true(s.train_loss == loss[1]);
    ich_history_free(h);
    ich_optimizer_free(opt);
    ich_model_free(m);
    ich_dataset_free(b);
    ich_dataset_free(a);
}

int main(void)
{
    ich_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reorder),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_unnamed),
        cmocka_unit_test(test_report_same_numbers),
        cmocka_unit_test(test_dataset_option),
        cmocka_unit_test(test_train_matches_by_name),
        cmocka_unit_test(test_resume_uses_checkpoint_labels),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
