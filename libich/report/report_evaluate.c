/* The evaluation report (ich_evaluate_report): predict every labelled image
 * with a checkpoint, accumulate the metrics, and write the report folder
 * (HTML page, SVG plots, CSV and JSON) from report.h and svg.h pieces.
 *
 * A cascade model's probabilities are gated (ich_model_predict(): the
 * subtypes are 0 where P(any) is not above the threshold). The decisions
 * and rankings (confusion, accuracy, F1, AUC, AP, predictions.csv) use
 * those, what users get; the losses (BCE, RSNA weighted log loss) use the
 * ungated ones, sigmoid of each logit, from a second ich_metrics: a gated
 * 0 on a positive subtype costs the log of the clamp (about 16 nats), so
 * a few "any" misses turned a BCE of 0.75 into 7.5 (issue 14), and the
 * losses would no longer be those the stages are trained on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "core/options.h"
#include "data/dataset_internal.h"
#include "dist/comm.h"
#include "dist/shard.h"
#include "report/report.h"
#include "report/svg.h"
#include "ich/dataset.h"
#include "ich/labels.h"
#include "ich/metrics.h"
#include "ich/model.h"
#include "ich/report.h"
#include "ich/train.h"
#include "ich/window.h"
#include "nn/model_internal.h"
#include "train/train_internal.h"
#include "window/window_internal.h"

void (ich_evaluate_options_init)(ich_evaluate_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_evaluate_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->batch_size = 16;
    options->threshold = 0.5f;
    options->bootstrap = 1000;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_evaluate_options, progress_user));
}

/* Everything one evaluation holds; freed by run_free. */
typedef struct eval_run {
    ich_evaluate_options opt;
    const char *checkpoint;
    ich_model *model;
    ich_dataset *dataset;
    ich_metrics *metrics;
    ich_metrics *loss_metrics; /* cascade models: the ungated probabilities, for the losses */
    int32_t classes;
    const char *names[ICH_METRICS_MAX_CLASSES];
    /* This rank's images, then (on rank 0, gather_results()) every rank's: */
    int64_t count;     /* images predicted */
    float *probs;      /* count x classes */
    float *truth;      /* count x classes: the labels */
    float *ungated;    /* count x classes, cascade models: for the losses */
    int64_t *rows;     /* each prediction's row of the label table */
    int64_t evaluated; /* images predicted by every rank */
    int64_t left_out;  /* rows left out, by every rank */
} eval_run;

static void run_free(eval_run *run)
{
    ich_metrics_free(run->metrics);
    ich_metrics_free(run->loss_metrics);
    ich_dataset_free(run->dataset);
    ich_model_free(run->model);
    free(run->probs);
    free(run->truth);
    free(run->ungated);
    free(run->rows);
}

/* The caller's recipe (options.window) or the checkpoint's; a checkpoint
 * without one is refused (ich_model_input_window()), never guessed. */
static ich_status input_recipe(const eval_run *run, ich_window **window)
{
    if (run->opt.window)
        return ich_window_copy(run->opt.window, window);
    ich_status st = ich_model_input_window(run->model, window);
    if (st == ICH_ERR_NOT_FOUND) {
        char why[512];
        snprintf(why, sizeof why, "%s", ich_last_error());
        st = ich_fail(st, "%s: %s", run->checkpoint, why);
    }
    return st;
}

/* The label CSV with its columns matched to the model's labels by name,
 * in the model's output order (never by position: issue 11). */
static ich_status read_matched(const eval_run *run, const char *labels_csv, ich_labels **out)
{
    ich_labels *read = NULL;
    ich_status st = ich_labels_read(labels_csv, &read);
    if (!st)
        st = ich_labels_match_model(read, run->model, labels_csv, run->checkpoint, out);
    ich_labels_free(read);
    return st;
}

/* Load the model and open the dataset with the input recipe, in table
 * order. */
static ich_status open_inputs(eval_run *run, const char *labels_csv, const char *image_dir)
{
    ich_status st = ich_model_load(run->checkpoint, &run->model);
    ich_labels *matched = NULL;
    if (!st)
        st = read_matched(run, labels_csv, &matched);
    if (st)
        return st;
    ich_window *window = NULL;
    if ((st = input_recipe(run, &window))) {
        ich_labels_free(matched);
        return st;
    }
    ich_dataset_options dopt;
    ich_dataset_options_init(&dopt);
    dopt.window = window;
    dopt.neighbors = ich_window_get_neighbors(window);
    dopt.batch_size = run->opt.batch_size;
    dopt.shuffle = 0;
    dopt.workers = 0; /* predict_share() loads its batches with opt.workers threads */
    st = ich_dataset_open(matched, image_dir, &dopt, &run->dataset);
    ich_window_free(window);
    ich_labels_free(matched);
    if (st)
        return st;
    const ich_labels *labels = ich_dataset_labels(run->dataset);
    run->classes = ich_labels_columns(labels);
    if (run->classes != ich_model_outputs(run->model) || run->classes > ICH_METRICS_MAX_CLASSES)
        return ich_fail(ICH_ERR_SHAPE, "%s has %d label columns, but the model %s has %d outputs",
                        labels_csv, run->classes, run->checkpoint,
                        ich_model_outputs(run->model));
    for (int32_t c = 0; c < run->classes; c++)
        run->names[c] = ich_labels_column_name(labels, c);
    st = ich_metrics_create(run->names, run->classes, 0, &run->metrics);
    if (!st && ich_model_cascade_stages(run->model) > 0)
        st = ich_metrics_create(run->names, run->classes, 0, &run->loss_metrics);
    return st;
}

/* Predict this rank's samples (a block of whole batches of the table's:
 * dist/shard.h; all of them in a single process), batch by batch, into
 * run->probs, run->truth, run->ungated and run->rows. */
static ich_status predict_share(eval_run *run)
{
    int32_t channels, rows, cols, labels;
    ich_status st = ich_dataset_sample_shape(run->dataset, &channels, &rows, &cols, &labels);
    if (st)
        return st;
    int64_t first, end;
    size_t batch = (size_t)run->opt.batch_size, image = (size_t)channels * rows * cols;
    ich_shard_block(ich_dataset_length(run->dataset), run->opt.batch_size, ich_comm_rank(),
                    ich_comm_size(), &first, &end);
    size_t share = (size_t)(end - first), values = (share ? share : 1) * (size_t)labels;
    float *images = malloc(batch * image * sizeof *images);
    run->probs = malloc(values * sizeof *run->probs);
    run->truth = malloc(values * sizeof *run->truth);
    run->ungated = run->loss_metrics ? malloc(values * sizeof *run->ungated) : NULL;
    run->rows = malloc((share ? share : 1) * sizeof *run->rows);
    if (!images || !run->probs || !run->truth || !run->rows || (run->loss_metrics && !run->ungated))
        st = ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
    for (int64_t b = first; !st && b < end; b += (int64_t)batch) {
        int32_t n = (int32_t)(end - b < (int64_t)batch ? end - b : (int64_t)batch), loaded = 0;
        size_t at = (size_t)run->count * labels;
        st = ich_dataset_load_range(run->dataset, b, n, run->opt.workers, images,
                                    run->truth + at, run->rows + run->count, &loaded);
        if (!st && loaded > 0)
            st = ich_model_predict_ungated(run->model, images, loaded, run->opt.threshold,
                                           run->probs + at, (size_t)loaded * labels,
                                           run->ungated ? run->ungated + at : NULL);
        if (st)
            break;
        run->count += loaded;
        if (run->opt.progress && run->opt.progress(run->opt.progress_user, b + n - first,
                                                   end - first, "evaluating"))
            st = ich_fail(ICH_ERR_CANCELLED, "ich_evaluate_report: cancelled");
    }
    free(images);
    return st;
}

/* Every rank's `count` x `width` bytes at *array to rank 0, in rank order:
 * rank 0's *array then holds them all. */
static ich_status gather_array(void **array, int64_t count, size_t width, const char *what)
{
    ich_comm_gathered all;
    ich_status st = ich_comm_gather(*array, (size_t)count * width, 0, &all, what);
    if (st != ICH_OK || ich_comm_rank() != 0)
        return st;
    free(*array);
    *array = all.data; /* taken from the result */
    free(all.offsets);
    return ICH_OK;
}

/* The counts to every rank (every rank then fails alike when no image
 * could be read), the predictions to rank 0, in table order: the rows and
 * values a single process has. */
static ich_status gather_results(eval_run *run)
{
    const ich_dataset *ds = run->dataset;
    int64_t counts[2] = {run->count, ich_dataset_left_out(ds) - ich_dataset_left_at_open(ds)};
    ich_status st = ich_comm_allreduce_int64(counts, 2, "evaluate: the counts");
    run->evaluated = counts[0];
    run->left_out = ich_dataset_left_at_open(ds) + counts[1];
    if (!st && counts[0] == 0)
        st = ich_fail(ICH_ERR_NOT_FOUND, "ich_evaluate_report: no image could be read");
    size_t row = (size_t)run->classes * sizeof(float);
    if (!st)
        st = gather_array((void **)&run->probs, run->count, row, "evaluate: the probabilities");
    if (!st)
        st = gather_array((void **)&run->truth, run->count, row, "evaluate: the labels");
    if (!st && run->loss_metrics)
        st = gather_array((void **)&run->ungated, run->count, row, "evaluate: the losses");
    if (!st)
        st = gather_array((void **)&run->rows, run->count, sizeof *run->rows,
                          "evaluate: the rows");
    if (!st && ich_comm_rank() == 0)
        run->count = run->evaluated;
    return st;
}

/* Rank 0: the metrics of every prediction (ich_metrics_update() takes the
 * rows one by one: the same sums however they were batched). */
static ich_status score(eval_run *run)
{
    ich_status st = ich_metrics_update(run->metrics, run->probs, run->truth, run->count,
                                       run->classes);
    if (!st && run->loss_metrics)
        st = ich_metrics_update(run->loss_metrics, run->ungated, run->truth, run->count,
                                run->classes);
    return st;
}

/* Write `buf` as out_dir/name. */
static ich_status write_named(const char *out_dir, const char *name, const ich_buf *buf)
{
    char *path = ich_path_join(out_dir, name);
    if (!path)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
    ich_status st = ich_report_write(path, buf);
    free(path);
    return st;
}

static ich_status write_table_csv(const char *out_dir, const char *name, const ich_table *t)
{
    ich_buf csv = {0};
    ich_status st = ich_table_csv(t, &csv);
    if (!st)
        st = write_named(out_dir, name, &csv);
    ich_buf_free(&csv);
    return st;
}

/* predictions.csv: ID and one probability per class, in table order. */
static ich_status write_predictions(const eval_run *run, const char *out_dir)
{
    const char *header[ICH_METRICS_MAX_CLASSES + 1] = {"ID"};
    for (int32_t c = 0; c < run->classes; c++)
        header[c + 1] = run->names[c];
    ich_table *t = ich_table_create(run->classes + 1, header);
    if (!t)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
    const ich_labels *labels = ich_dataset_labels(run->dataset);
    for (int64_t i = 0; i < run->count; i++) {
        ich_table_text(t, ich_labels_id(labels, run->rows[i]));
        for (int32_t c = 0; c < run->classes; c++)
            ich_table_number(t, run->probs[i * run->classes + c]);
    }
    ich_status st = write_table_csv(out_dir, "predictions.csv", t);
    ich_table_free(t);
    return st;
}

/* A value, or NaN when its bit is not set in `defined`. */
static double value(double x, uint32_t defined, uint32_t bit)
{
    return (defined & bit) ? x : NAN;
}

static const char *const METRIC_COLUMNS[] = {
    "class", "positives", "negatives", "tn", "fp", "fn", "tp", "accuracy", "precision",
    "recall", "specificity", "f1", "auc", "auc_low", "auc_high", "average_precision",
    "youden_threshold", "youden_j", "bce", "rsna_log_loss", "samples"};
enum { METRIC_COLUMN_COUNT = 21 };

static void class_row(ich_table *t, const char *name, const ich_metrics_class_result *r)
{
    const ich_metrics_at *a = &r->at_half;
    ich_table_text(t, name);
    ich_table_integer(t, r->positives);
    ich_table_integer(t, r->negatives);
    ich_table_integer(t, a->tn);
    ich_table_integer(t, a->fp);
    ich_table_integer(t, a->fn);
    ich_table_integer(t, a->tp);
    ich_table_number(t, value(a->accuracy, a->defined, ICH_METRIC_ACCURACY));
    ich_table_number(t, value(a->precision, a->defined, ICH_METRIC_PRECISION));
    ich_table_number(t, value(a->recall, a->defined, ICH_METRIC_RECALL));
    ich_table_number(t, value(a->specificity, a->defined, ICH_METRIC_SPECIFICITY));
    ich_table_number(t, value(a->f1, a->defined, ICH_METRIC_F1));
    ich_table_number(t, value(r->auc, r->defined, ICH_METRIC_AUC));
    ich_table_number(t, value(r->auc_low, r->defined, ICH_METRIC_AUC_CI));
    ich_table_number(t, value(r->auc_high, r->defined, ICH_METRIC_AUC_CI));
    ich_table_number(t, value(r->average_precision, r->defined, ICH_METRIC_AVERAGE_PRECISION));
    ich_table_number(t, value(r->youden_threshold, r->defined, ICH_METRIC_YOUDEN));
    ich_table_number(t, value(r->youden_j, r->defined, ICH_METRIC_YOUDEN));
    ich_table_undefined(t); /* bce, rsna_log_loss, samples: overall only */
    ich_table_undefined(t);
    ich_table_undefined(t);
}

/* The "overall" row: element-wise accuracy, macro F1/AUC/AP, the losses. */
static void overall_row(ich_table *t, const ich_metrics_summary_result *s)
{
    ich_table_text(t, "overall");
    for (int i = 0; i < 6; i++)
        ich_table_undefined(t);
    ich_table_number(t, value(s->accuracy_overall, s->defined, ICH_METRIC_ACCURACY));
    for (int i = 0; i < 3; i++)
        ich_table_undefined(t);
    ich_table_number(t, value(s->macro_f1, s->defined, ICH_METRIC_F1));
    ich_table_number(t, value(s->macro_auc, s->defined, ICH_METRIC_AUC));
    ich_table_undefined(t);
    ich_table_undefined(t);
    ich_table_number(t, value(s->macro_average_precision, s->defined,
                              ICH_METRIC_AVERAGE_PRECISION));
    ich_table_undefined(t);
    ich_table_undefined(t);
    ich_table_number(t, value(s->bce, s->defined, ICH_METRIC_BCE));
    ich_table_number(t, value(s->rsna_log_loss, s->defined, ICH_METRIC_RSNA_LOG_LOSS));
    ich_table_integer(t, s->samples);
}

/* Per-class results and the summary, fetched once. */
typedef struct eval_results {
    ich_metrics_class_result cls[ICH_METRICS_MAX_CLASSES];
    ich_metrics_summary_result summary;
} eval_results;

static ich_status fetch_results(const eval_run *run, eval_results *res)
{
    ich_metrics_options mopt;
    ich_metrics_options_init(&mopt);
    mopt.bootstrap = run->opt.bootstrap;
    mopt.seed = run->opt.seed;
    ich_status st = ich_metrics_compute(run->metrics, &mopt);
    for (int32_t c = 0; !st && c < run->classes; c++) {
        res->cls[c].size = sizeof res->cls[c];
        st = ich_metrics_class(run->metrics, c, &res->cls[c]);
    }
    res->summary.size = sizeof res->summary;
    if (!st)
        st = ich_metrics_summary(run->metrics, &res->summary);
    if (!st && run->loss_metrics) {
        /* a cascade: the losses of the ungated probabilities (top of file) */
        ich_metrics_summary_result ungated = {.size = sizeof ungated};
        mopt.bootstrap = 0;
        st = ich_metrics_compute(run->loss_metrics, &mopt);
        if (!st)
            st = ich_metrics_summary(run->loss_metrics, &ungated);
        const uint32_t losses = ICH_METRIC_BCE | ICH_METRIC_RSNA_LOG_LOSS;
        res->summary.bce = ungated.bce;
        res->summary.rsna_log_loss = ungated.rsna_log_loss;
        res->summary.defined = (res->summary.defined & ~losses) | (ungated.defined & losses);
    }
    return st;
}

static ich_status write_metrics_csv(const eval_run *run, const eval_results *res,
                                    const char *out_dir)
{
    ich_table *t = ich_table_create(METRIC_COLUMN_COUNT, METRIC_COLUMNS);
    if (!t)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
    for (int32_t c = 0; c < run->classes; c++)
        class_row(t, run->names[c], &res->cls[c]);
    overall_row(t, &res->summary);
    ich_status st = write_table_csv(out_dir, "metrics.csv", t);
    ich_table_free(t);
    return st;
}

static void json_at(ich_json *j, const ich_metrics_at *a)
{
    ich_json_object_begin(j);
    ich_json_key(j, "threshold");
    ich_json_number(j, a->threshold);
    ich_json_key(j, "confusion");
    ich_json_array_begin(j);
    ich_json_array_begin(j);
    ich_json_integer(j, a->tn);
    ich_json_integer(j, a->fp);
    ich_json_array_end(j);
    ich_json_array_begin(j);
    ich_json_integer(j, a->fn);
    ich_json_integer(j, a->tp);
    ich_json_array_end(j);
    ich_json_array_end(j);
    const char *keys[] = {"accuracy", "precision", "recall", "specificity", "f1"};
    double vals[] = {a->accuracy, a->precision, a->recall, a->specificity, a->f1};
    uint32_t bits[] = {ICH_METRIC_ACCURACY, ICH_METRIC_PRECISION, ICH_METRIC_RECALL,
                       ICH_METRIC_SPECIFICITY, ICH_METRIC_F1};
    for (int i = 0; i < 5; i++) {
        ich_json_key(j, keys[i]);
        ich_json_number(j, value(vals[i], a->defined, bits[i]));
    }
    ich_json_object_end(j);
}

static void json_class(ich_json *j, const char *name, const ich_metrics_class_result *r)
{
    ich_json_object_begin(j);
    ich_json_key(j, "name");
    ich_json_string(j, name);
    ich_json_key(j, "positives");
    ich_json_integer(j, r->positives);
    ich_json_key(j, "negatives");
    ich_json_integer(j, r->negatives);
    ich_json_key(j, "at_0.5");
    json_at(j, &r->at_half);
    ich_json_key(j, "auc");
    ich_json_number(j, value(r->auc, r->defined, ICH_METRIC_AUC));
    ich_json_key(j, "auc_ci");
    if (r->defined & ICH_METRIC_AUC_CI) {
        ich_json_array_begin(j);
        ich_json_number(j, r->auc_low);
        ich_json_number(j, r->auc_high);
        ich_json_array_end(j);
    } else {
        ich_json_null(j);
    }
    ich_json_key(j, "average_precision");
    ich_json_number(j, value(r->average_precision, r->defined, ICH_METRIC_AVERAGE_PRECISION));
    ich_json_key(j, "youden_threshold");
    ich_json_number(j, value(r->youden_threshold, r->defined, ICH_METRIC_YOUDEN));
    ich_json_key(j, "youden_j");
    ich_json_number(j, value(r->youden_j, r->defined, ICH_METRIC_YOUDEN));
    ich_json_key(j, "at_youden");
    if (r->defined & ICH_METRIC_YOUDEN)
        json_at(j, &r->at_youden);
    else
        ich_json_null(j);
    ich_json_object_end(j);
}

static ich_status write_metrics_json(const eval_run *run, const eval_results *res,
                                     const char *out_dir)
{
    const ich_metrics_summary_result *s = &res->summary;
    ich_json j = {0};
    ich_json_object_begin(&j);
    ich_json_key(&j, "checkpoint");
    ich_json_string(&j, run->checkpoint);
    ich_json_key(&j, "samples");
    ich_json_integer(&j, s->samples);
    ich_json_key(&j, "rows_left_out");
    ich_json_integer(&j, run->left_out);
    ich_json_key(&j, "classes");
    ich_json_array_begin(&j);
    for (int32_t c = 0; c < run->classes; c++)
        json_class(&j, run->names[c], &res->cls[c]);
    ich_json_array_end(&j);
    ich_json_key(&j, "overall");
    ich_json_object_begin(&j);
    const char *keys[] = {"accuracy_overall", "bce", "rsna_log_loss", "macro_auc",
                          "macro_average_precision", "macro_f1"};
    double vals[] = {s->accuracy_overall, s->bce, s->rsna_log_loss, s->macro_auc,
                     s->macro_average_precision, s->macro_f1};
    uint32_t bits[] = {ICH_METRIC_ACCURACY, ICH_METRIC_BCE, ICH_METRIC_RSNA_LOG_LOSS,
                       ICH_METRIC_AUC, ICH_METRIC_AVERAGE_PRECISION, ICH_METRIC_F1};
    for (int i = 0; i < 6; i++) {
        ich_json_key(&j, keys[i]);
        ich_json_number(&j, value(vals[i], s->defined, bits[i]));
    }
    ich_json_object_end(&j);
    ich_json_object_end(&j);
    char *path = ich_path_join(out_dir, "metrics.json");
    ich_status st = path ? ich_json_write(&j, path)
                         : ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
    free(path);
    ich_json_free(&j);
    return st;
}

/* Write the SVG as out_dir/name and inline it in the page. */
static ich_status add_figure(ich_buf *page, const char *out_dir, const char *name,
                             const ich_buf *svg, const char *caption)
{
    ich_status st = write_named(out_dir, name, svg);
    if (!st)
        ich_html_figure(page, svg->data, caption, name);
    return st;
}

static ich_status roc_figure(const eval_run *run, const eval_results *res, ich_buf *page,
                             const char *out_dir)
{
    ich_svg_series series[ICH_METRICS_MAX_CLASSES];
    double *points[ICH_METRICS_MAX_CLASSES][2] = {{0}};
    char legend[ICH_METRICS_MAX_CLASSES][96];
    ich_status st = ICH_OK;
    for (int32_t c = 0; c < run->classes && !st; c++) {
        const ich_metrics_class_result *r = &res->cls[c];
        int64_t n = r->roc_points;
        points[c][0] = malloc((size_t)(n ? n : 1) * sizeof(double));
        points[c][1] = malloc((size_t)(n ? n : 1) * sizeof(double));
        if (!points[c][0] || !points[c][1]) {
            st = ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
            break;
        }
        st = ich_metrics_roc(run->metrics, c, points[c][0], points[c][1], NULL, n);
        if (r->defined & ICH_METRIC_AUC)
            snprintf(legend[c], sizeof legend[c], "%.40s (AUC %.3f)", run->names[c], r->auc);
        else
            snprintf(legend[c], sizeof legend[c], "%.40s (AUC undefined)", run->names[c]);
        /* a class without positives or negatives has no curve: legend entry only */
        int64_t drawn = (r->defined & ICH_METRIC_AUC) ? n : 0;
        series[c] = (ich_svg_series){legend[c], points[c][0], points[c][1], drawn, 0};
    }
    ich_buf svg = {0};
    if (!st) {
        ich_svg_chart chart = {.title = "ROC curves", .x_label = "false positive rate",
                               .y_label = "true positive rate", .series = series,
                               .series_count = run->classes, .legend = ICH_SVG_LEGEND_AUTO,
                               .diagonal = 1, .x_min = 0, .x_max = 1, .y_min = 0, .y_max = 1};
        st = ich_svg_line_chart(&chart, &svg);
    }
    if (!st)
        st = add_figure(page, out_dir, "roc.svg", &svg,
                        "ROC curves of all classes; the dashed diagonal is chance.");
    ich_buf_free(&svg);
    for (int32_t c = 0; c < run->classes; c++) {
        free(points[c][0]);
        free(points[c][1]);
    }
    return st;
}

/* A file-name-safe version of a class name. */
static void safe_name(const char *name, char *out, size_t size)
{
    size_t i = 0;
    for (; name[i] && i + 1 < size; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
        out[i] = ok ? ch : '_';
    }
    out[i] = '\0';
}

static ich_status confusion_figures(const eval_run *run, const eval_results *res,
                                    ich_buf *page, const char *out_dir)
{
    ich_status st = ICH_OK;
    for (int32_t c = 0; c < run->classes && !st; c++) {
        const ich_metrics_at *a = &res->cls[c].at_half;
        const int64_t counts[2][2] = {{a->tn, a->fp}, {a->fn, a->tp}};
        char title[96], file[96], safe[64];
        snprintf(title, sizeof title, "%.60s, predicted when p > 0.5", run->names[c]);
        safe_name(run->names[c], safe, sizeof safe);
        snprintf(file, sizeof file, "confusion_%s.svg", safe);
        ich_buf svg = {0};
        st = ich_svg_confusion_matrix(title, counts, &svg);
        if (!st)
            st = add_figure(page, out_dir, file, &svg, title);
        ich_buf_free(&svg);
    }
    return st;
}

/* One per-epoch chart of the history: training (solid) and validation
 * (dashed, when the run had validation). */
static ich_status history_chart(const ich_history *h, int loss, ich_buf *page,
                                const char *out_dir)
{
    int32_t n = ich_history_length(h);
    double *x = malloc((size_t)n * sizeof *x), *train = malloc((size_t)n * sizeof *train),
           *val = malloc((size_t)n * sizeof *val);
    ich_status st = (x && train && val) ? ICH_OK
                                         : ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
    int has_val = 0;
    for (int32_t i = 0; !st && i < n; i++) {
        ich_epoch_stats e = {.size = sizeof e};
        st = ich_history_get(h, i, &e);
        x[i] = e.epoch + 1;
        train[i] = loss ? e.train_loss : e.train_accuracy;
        val[i] = loss ? e.val_loss : e.val_accuracy;
        has_val |= isfinite(val[i]);
    }
    ich_svg_series series[2] = {{"training", x, train, n, 0}, {"validation", x, val, n, 1}};
    ich_svg_chart chart = {.title = loss ? "Loss per epoch" : "Accuracy per epoch",
                           .x_label = "epoch", .y_label = loss ? "loss" : "accuracy",
                           .series = series, .series_count = has_val ? 2 : 1,
                           .markers = 1};
    if (!loss) {
        chart.y_min = 0;
        chart.y_max = 1;
    }
    if (!st && n > 0 && x[n - 1] < 5) {
        /* Few epochs: a fixed 1..5 axis keeps the ticks on whole epochs. */
        chart.x_min = 1;
        chart.x_max = 5;
    }
    ich_buf svg = {0};
    if (!st)
        st = ich_svg_line_chart(&chart, &svg);
    if (!st)
        st = add_figure(page, out_dir, loss ? "loss.svg" : "accuracy.svg", &svg,
                        loss ? "Training (solid) and validation (dashed) loss per epoch."
                             : "Training (solid) and validation (dashed) element-wise "
                               "accuracy per epoch.");
    ich_buf_free(&svg);
    free(x);
    free(train);
    free(val);
    return st;
}

/* The loss and accuracy curves, or a note when the checkpoint has no
 * (readable) training history. */
static ich_status history_figures(const eval_run *run, ich_buf *page, const char *out_dir)
{
    ich_html_heading(page, "Training history");
    const char *text = ich_model_metadata(run->model, "ich.history");
    ich_history *h = NULL;
    ich_status st = ICH_OK;
    if (text && !(st = ich_history_new(&h)) && ich_history_parse(h, text, run->checkpoint)) {
        ich_log(ICH_LOG_WARNING, "%s: unreadable \"ich.history\" (%s): no training curves",
                run->checkpoint, ich_last_error());
        ich_history_free(h);
        h = NULL;
    }
    if (st)
        return st;
    if (!h || ich_history_length(h) == 0) {
        ich_html_paragraph(page, "The checkpoint holds no training history: no loss or "
                                 "accuracy curves.");
    } else {
        st = history_chart(h, 1, page, out_dir);
        if (!st)
            st = history_chart(h, 0, page, out_dir);
    }
    ich_history_free(h);
    return st;
}

/* The page's per-class table: the numbers at 0.5, AUC with its CI, AP and
 * Youden's threshold. */
static ich_status class_table(const eval_run *run, const eval_results *res, ich_buf *page)
{
    static const char *const header[] = {"class", "positives", "negatives", "accuracy",
                                         "precision", "recall", "specificity", "F1", "AUC",
                                         "AUC 95% CI", "AP", "Youden threshold"};
    ich_table *t = ich_table_create(12, header);
    if (!t)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
    for (int32_t c = 0; c < run->classes; c++) {
        const ich_metrics_class_result *r = &res->cls[c];
        const ich_metrics_at *a = &r->at_half;
        ich_table_text(t, run->names[c]);
        ich_table_integer(t, r->positives);
        ich_table_integer(t, r->negatives);
        ich_table_number(t, value(a->accuracy, a->defined, ICH_METRIC_ACCURACY));
        ich_table_number(t, value(a->precision, a->defined, ICH_METRIC_PRECISION));
        ich_table_number(t, value(a->recall, a->defined, ICH_METRIC_RECALL));
        ich_table_number(t, value(a->specificity, a->defined, ICH_METRIC_SPECIFICITY));
        ich_table_number(t, value(a->f1, a->defined, ICH_METRIC_F1));
        ich_table_number(t, value(r->auc, r->defined, ICH_METRIC_AUC));
        if (r->defined & ICH_METRIC_AUC_CI) {
            char ci[64];
            snprintf(ci, sizeof ci, "%.3f \xe2\x80\x93 %.3f", r->auc_low, r->auc_high);
            ich_table_text(t, ci);
        } else {
            ich_table_undefined(t);
        }
        ich_table_number(t, value(r->average_precision, r->defined,
                                  ICH_METRIC_AVERAGE_PRECISION));
        ich_table_number(t, value(r->youden_threshold, r->defined, ICH_METRIC_YOUDEN));
    }
    ich_status st = ich_html_table(page, t, "Per class, predicted positive when p > 0.5 (AUC "
                                            "and AP do not depend on a threshold; Youden's "
                                            "threshold t predicts p >= t, as scikit-learn)");
    ich_table_free(t);
    return st;
}

static ich_status overall_table(const eval_results *res, ich_buf *page)
{
    const ich_metrics_summary_result *s = &res->summary;
    static const char *const header[] = {"samples", "accuracy (element-wise)", "BCE",
                                         "RSNA weighted log loss", "macro AUC", "macro AP",
                                         "macro F1"};
    ich_table *t = ich_table_create(7, header);
    if (!t)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
    ich_table_integer(t, s->samples);
    ich_table_number(t, value(s->accuracy_overall, s->defined, ICH_METRIC_ACCURACY));
    ich_table_number(t, value(s->bce, s->defined, ICH_METRIC_BCE));
    ich_table_number(t, value(s->rsna_log_loss, s->defined, ICH_METRIC_RSNA_LOG_LOSS));
    ich_table_number(t, value(s->macro_auc, s->defined, ICH_METRIC_AUC));
    ich_table_number(t, value(s->macro_average_precision, s->defined,
                              ICH_METRIC_AVERAGE_PRECISION));
    ich_table_number(t, value(s->macro_f1, s->defined, ICH_METRIC_F1));
    ich_status st = ich_html_table(page, t, "Overall");
    ich_table_free(t);
    return st;
}

/* report.html with every figure, writing the SVG files on the way. */
static ich_status write_page(const eval_run *run, const eval_results *res,
                             const char *labels_csv, const char *image_dir,
                             const char *out_dir)
{
    ich_buf page = {0}, text = {0};
    ich_html_begin(&page, "Evaluation report");
    ich_buf_printf(&text, "Checkpoint %s evaluated on %lld images of %s (labels %s), %d "
                          "classes. Undefined values (a class without positives or "
                          "negatives, a zero denominator) are shown as \"undefined\".",
                   run->checkpoint, (long long)run->count, image_dir, labels_csv,
                   run->classes);
    int64_t left_out = run->left_out;
    if (left_out > 0)
        ich_buf_printf(&text, " %lld rows of the label table were left out (no image, or an "
                              "image that could not be read): these numbers do not cover them.",
                       (long long)left_out);
    if (run->loss_metrics)
        ich_buf_printf(&text, " This is a cascade model: its subtype probabilities count only "
                              "where P(any) > %g (they are 0 elsewhere), as predictions give "
                              "them; the confusion matrices, accuracy, F1, AUC, AP and "
                              "predictions.csv use these gated probabilities. The losses (BCE, "
                              "RSNA weighted log loss) are computed from the ungated "
                              "probabilities, the sigmoid of each logit, as each stage is "
                              "trained.",
                       run->opt.threshold > 0 ? (double)run->opt.threshold : 0.5);
    ich_html_paragraph(&page, text.data ? text.data : "");
    ich_buf_free(&text);
    ich_html_heading(&page, "Summary");
    ich_status st = overall_table(res, &page);
    if (!st) {
        ich_html_heading(&page, "Per class");
        st = class_table(run, res, &page);
    }
    if (!st) {
        ich_html_heading(&page, "ROC curves");
        st = roc_figure(run, res, &page, out_dir);
    }
    if (!st) {
        ich_html_heading(&page, "Confusion matrices");
        st = confusion_figures(run, res, &page, out_dir);
    }
    if (!st)
        st = history_figures(run, &page, out_dir);
    ich_html_end(&page);
    if (!st)
        st = write_named(out_dir, "report.html", &page);
    ich_buf_free(&page);
    return st;
}

/* Score the predictions and write the report folder (rank 0). */
static ich_status write_report(eval_run *run, eval_results *res, const char *labels_csv,
                               const char *image_dir, const char *out_dir)
{
    ich_status st = score(run);
    if (!st)
        st = fetch_results(run, res);
    if (!st && (st = ich_make_dirs(out_dir)) == ICH_OK)
        st = write_predictions(run, out_dir);
    if (!st)
        st = write_metrics_csv(run, res, out_dir);
    if (!st)
        st = write_metrics_json(run, res, out_dir);
    if (!st)
        st = write_page(run, res, labels_csv, image_dir, out_dir);
    return st;
}

/* The first version of ich_evaluate_summary (see <ich/report.h>). */
#define SUMMARY_V1_SIZE ICH_OPTIONS_V1_SIZE(ich_evaluate_summary, left_out)

static void fill_summary(const eval_run *run, ich_evaluate_summary *summary)
{
    if (!summary)
        return;
    int64_t left_out = run->left_out;
    ich_evaluate_summary s = {.size = sizeof s};
    s.evaluated = run->evaluated;
    s.left_out = left_out;
    s.rows = run->evaluated + left_out;
    /* Only the caller's summary->size bytes are written; checked at the start. */
    (void)ich_options_write(summary, &s, sizeof s, SUMMARY_V1_SIZE, "ich_evaluate_report");
}

ich_status ich_evaluate_report(const char *checkpoint, const char *labels_csv,
                               const char *image_dir, const char *out_dir,
                               const ich_evaluate_options *options)
{
    if (!checkpoint || !labels_csv || !image_dir || !out_dir)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_evaluate_report: NULL argument");
    eval_run run = {.checkpoint = checkpoint};
    ich_evaluate_options_init(&run.opt);
    ich_status st = ich_options_merge(&run.opt, sizeof run.opt, options,
                                      ICH_OPTIONS_V1_SIZE(ich_evaluate_options, progress_user),
                                      "ich_evaluate_report");
    if (st)
        return st;
    if (run.opt.batch_size < 1 || run.opt.workers < 0 || run.opt.bootstrap < 0 ||
        !(run.opt.threshold >= 0 && run.opt.threshold <= 1))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_evaluate_report: bad options (batch_size %d, workers %d, "
                        "bootstrap %d, threshold %g)",
                        run.opt.batch_size, run.opt.workers, run.opt.bootstrap,
                        (double)run.opt.threshold);
    if (run.opt.summary && !ich_options_size(run.opt.summary, sizeof *run.opt.summary,
                                             SUMMARY_V1_SIZE, "ich_evaluate_report: summary"))
        return ICH_ERR_INVALID_ARGUMENT;
    if ((st = ich_comm_start())) /* under mpirun, a communicator that cannot start is refused */
        return st;
    eval_results *res = calloc(1, sizeof *res);
    if (!res)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_evaluate_report: out of memory");
    /* Every rank opens the inputs (ranks other than 0 quietly: each row
     * left out is reported once) and predicts its share; rank 0 alone
     * scores and writes (dist/shard.h). */
    ich_log_mute_thread(ich_comm_rank() != 0);
    st = open_inputs(&run, labels_csv, image_dir);
    ich_log_mute_thread(0);
    st = ich_shard_agree(st, "evaluate: opening the inputs");
    if (!st) {
        double start = ich_shard_now();
        st = predict_share(&run); /* then the time it took */
        st = ich_shard_agree_work(st, ich_shard_now() - start, "evaluate: predicting");
    }
    if (!st)
        st = gather_results(&run);
    if (!st) {
        ich_status written = ich_comm_rank() == 0
                                 ? write_report(&run, res, labels_csv, image_dir, out_dir)
                                 : ICH_OK;
        st = ich_shard_agree(written, "evaluate: writing the report");
    }
    if (!st)
        fill_summary(&run, run.opt.summary);
    free(res);
    run_free(&run);
    return st;
}
