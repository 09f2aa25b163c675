/* ich_predict_files() and ich_predict_folder(): DICOM files or folders ->
 * the model's probabilities, to a callback or a predictions CSV
 * (<ich/pipeline.h>). ich-predict and Python's ich.predict_files() and
 * ich.predict_folder() run this; it used to live in the example program
 * (and, a second time, in Python). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "core/options.h"
#include "core/parallel.h"
#include "data/dicom_files.h"
#include "dist/comm.h"
#include "dist/shard.h"
#include "ich/dicom.h"
#include "ich/labels.h"
#include "ich/model.h"
#include "ich/pipeline.h"
#include "ich/window.h"

#define OPTIONS_V1_SIZE ICH_OPTIONS_V1_SIZE(ich_predict_options, progress_user)
#define SUMMARY_V1_SIZE ICH_OPTIONS_V1_SIZE(ich_predict_summary, skipped)

void (ich_predict_options_init)(ich_predict_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_predict_options defaults;
    memset(&defaults, 0, sizeof defaults);
    defaults.size = sizeof defaults;
    defaults.threshold = 0.5f;
    defaults.batch_size = 16;
    defaults.format = ICH_PREDICT_CSV;
    ich_options_init_write(caller, &defaults, sizeof defaults, OPTIONS_V1_SIZE);
}

static ich_status read_options(const ich_predict_options *in, ich_predict_options *out,
                               const char *function)
{
    ich_predict_options_init(out);
    ich_status st = ich_options_merge(out, sizeof *out, in, OPTIONS_V1_SIZE, function);
    if (st != ICH_OK)
        return st;
    if (out->batch_size < 1 || out->batch_size > 65536)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: batch_size is %d, expected 1..65536",
                        function, (int)out->batch_size);
    if (out->threads < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: threads is %d, expected 0 (one per CPU) or more", function,
                        (int)out->threads);
    if (!isfinite(out->threshold))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: threshold is not finite", function);
    if (out->format != ICH_PREDICT_CSV && out->format != ICH_PREDICT_RSNA)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: format %d is not csv (0) or rsna (1)", function, (int)out->format);
    return ICH_OK;
}

/* The summary is checked before the work, so that the counts reach it (as
 * far as the caller's size, ich_options_write()) also when the work fails. */
static ich_status check_summary(const ich_predict_summary *summary, const char *what)
{
    if (summary && !ich_options_size(summary, sizeof *summary, SUMMARY_V1_SIZE, what))
        return ICH_ERR_INVALID_ARGUMENT;
    return ICH_OK;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The image ID of a file: its name without folder and .dcm/.dicom suffix. */
static void image_id(const char *path, char *id, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcasecmp(base + n - 4, ".dcm") == 0)
        n -= 4;
    else if (n > 6 && strcasecmp(base + n - 6, ".dicom") == 0)
        n -= 6;
    snprintf(id, size, "%.*s", (int)n, base);
}

/* ---- The inputs ----------------------------------------------------------- */

typedef struct walk_report {
    ich_prediction_fn fn;
    void *user;
    int stopped;
} walk_report;

static int report_skipped(void *user, const char *path, const char *reason)
{
    walk_report *w = user;
    if (w->fn && w->fn(w->user, path, NULL, NULL, 0, reason))
        w->stopped = 1;
    return w->stopped;
}

/* Each path: a regular file as it is, a folder's DICOM files in path
 * order; anything else refused before a file is opened. */
static ich_status collect(const char *const *paths, int64_t count, ich_found_files *files,
                          walk_report *report, int64_t *skipped)
{
    for (int64_t i = 0; i < count; i++) {
        const char *path = paths[i];
        struct stat st;
        if (!path)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_predict_files: paths[%lld] is NULL",
                            (long long)i);
        if (stat(path, &st) != 0)
            return ich_fail(errno == ENOENT ? ICH_ERR_NOT_FOUND : ICH_ERR_IO, "%s: %s", path,
                            errno == ENOENT ? "no such file or folder" : strerror(errno));
        ich_status status;
        if (S_ISDIR(st.st_mode)) {
            int64_t walked = 0;
            status = ich_find_dicom_files(path, files, report_skipped, report, &walked);
            *skipped += walked;
            if (report->stopped)
                return ich_fail(ICH_ERR_CANCELLED, "predict: cancelled");
        } else if (S_ISREG(st.st_mode)) {
            const char *base = strrchr(path, '/');
            status = ich_found_files_add(files, path, base ? base + 1 : path);
        } else { /* a FIFO would block the reader */
            status = ich_fail(ICH_ERR_IO, "%s: not a regular file or folder", path);
        }
        if (status != ICH_OK)
            return status;
    }
    return ICH_OK;
}

/* ---- Batches ----------------------------------------------------------------- */

typedef struct predictor {
    ich_model *model;
    const ich_window *window;
    const ich_predict_options *opts;
    ich_prediction_fn fn;
    void *user;
    ich_predict_summary *done;
    const ich_found_files *files;
    size_t per_image;
    int32_t outputs;
    /* the batch being read: slot k is files->items[first + k] */
    size_t first;
    float *images;      /* batch_size x per_image, slot order */
    ich_status *status; /* per slot */
    char **problem;     /* per slot: the failure's message (malloc) */
    float *probs;       /* batch_size x outputs, slot order */
} predictor;

/* Read and window one file of the batch into its slot (worker threads). */
static ich_status load_slot(void *context, int64_t slot, int worker)
{
    (void)worker;
    predictor *p = context;
    const char *path = p->files->items[p->first + (size_t)slot].path;
    ich_dicom *dicom = NULL;
    ich_status st = ich_dicom_read(path, &dicom);
    if (st == ICH_OK) /* MONOCHROME1 too */
        st = ich_window_apply_dicom_f32(p->window, dicom, p->images + (size_t)slot * p->per_image,
                                        p->per_image);
    ich_dicom_free(dicom);
    p->status[slot] = st;
    if (st != ICH_OK) {
        const char *error = ich_last_error();
        /* Name the file even when the error does not. */
        size_t n = strlen(path) + strlen(error) + 3;
        if ((p->problem[slot] = malloc(n)) != NULL) {
            if (strstr(error, path))
                snprintf(p->problem[slot], n, "%s", error);
            else
                snprintf(p->problem[slot], n, "%s: %s", path, error);
        }
    }
    return st;
}

/* Predict the slots that loaded (moved together, in order). When the
 * library refuses non-finite probabilities (ICH_ERR_FORMAT), the images
 * are predicted one by one so that only the failing ones are lost. */
static ich_status predict_loaded(predictor *p, size_t n)
{
    size_t kept = 0;
    size_t *slot_of = malloc((n ? n : 1) * sizeof *slot_of);
    if (!slot_of)
        return ich_fail(ICH_ERR_NO_MEMORY, "predict: out of memory");
    for (size_t k = 0; k < n; k++) {
        if (p->status[k] != ICH_OK)
            continue;
        if (kept != k)
            memmove(p->images + kept * p->per_image, p->images + k * p->per_image,
                    p->per_image * sizeof *p->images);
        slot_of[kept++] = k;
    }
    size_t outputs = (size_t)p->outputs;
    ich_status st = kept ? ich_model_predict(p->model, p->images, (int32_t)kept,
                                             p->opts->threshold, p->probs, kept * outputs)
                         : ICH_OK;
    if (st == ICH_ERR_FORMAT) {
        st = ICH_OK;
        for (size_t i = 0; i < kept; i++) {
            size_t k = slot_of[i];
            ich_status one = ich_model_predict(p->model, p->images + i * p->per_image, 1,
                                               p->opts->threshold, p->probs + i * outputs,
                                               outputs);
            if (one == ICH_OK)
                continue;
            p->status[k] = one;
            char id[256];
            image_id(p->files->items[p->first + k].path, id, sizeof id);
            const char *error = ich_last_error();
            size_t len = strlen(id) + strlen(error) + 3;
            if ((p->problem[k] = malloc(len)) != NULL)
                snprintf(p->problem[k], len, "%s: %s", id, error);
        }
    }
    /* Rows back to their slots' positions, last first (i <= slot). */
    for (size_t i = kept; st == ICH_OK && i-- > 0;)
        if (slot_of[i] != i)
            memmove(p->probs + slot_of[i] * outputs, p->probs + i * outputs,
                    outputs * sizeof *p->probs);
    free(slot_of);
    return st;
}

/* Give the batch's results to fn, in file order; failures logged and
 * counted, or (stop_on_failure) the first one returned. */
static ich_status deliver(predictor *p, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const char *path = p->files->items[p->first + k].path;
        char id[256];
        image_id(path, id, sizeof id);
        const float *row = NULL;
        const char *problem = NULL;
        if (p->status[k] == ICH_OK) {
            row = p->probs + k * (size_t)p->outputs;
            p->done->predicted++;
        } else {
            problem = p->problem[k] ? p->problem[k] : "out of memory";
            if (p->opts->stop_on_failure)
                return ich_fail(p->status[k], "%s", problem);
            ich_log(ICH_LOG_WARNING, "skipped %s", problem);
            p->done->failed++;
        }
        if (p->fn && p->fn(p->user, path, id, row, p->outputs, problem))
            return ich_fail(ICH_ERR_CANCELLED, "predict: cancelled");
    }
    return ICH_OK;
}

static ich_status run_batches(predictor *p)
{
    size_t total = p->files->count, batch = (size_t)p->opts->batch_size;
    if (batch > total)
        batch = total ? total : 1;
    p->images = malloc(batch * p->per_image * sizeof *p->images);
    p->probs = malloc(batch * (size_t)p->outputs * sizeof *p->probs);
    p->status = calloc(batch, sizeof *p->status);
    p->problem = calloc(batch, sizeof *p->problem);
    ich_status st = ICH_OK;
    if (!p->images || !p->probs || !p->status || !p->problem)
        st = ich_fail(ICH_ERR_NO_MEMORY, "predict: out of memory for a batch of %zu images",
                      batch);
    double last = seconds_now();
    for (p->first = 0; st == ICH_OK && p->first < total; p->first += batch) {
        size_t n = total - p->first < batch ? total - p->first : batch;
        for (size_t k = 0; k < n; k++) {
            free(p->problem[k]);
            p->problem[k] = NULL;
        }
        st = ich_parallel_for((int64_t)n, p->opts->threads, load_slot, p, NULL, NULL,
                              "predict: reading", NULL);
        if (st == ICH_OK)
            st = predict_loaded(p, n);
        if (st == ICH_OK)
            st = deliver(p, n);
        /* A few times a second and once at the end. */
        double t = seconds_now();
        int end = p->first + n == total;
        if (st == ICH_OK && p->opts->progress && (end || t - last >= 0.1)) {
            last = t;
            if (p->opts->progress(p->opts->progress_user, (int64_t)(p->first + n),
                                  (int64_t)total, "predict"))
                st = ich_fail(ICH_ERR_CANCELLED, "predict: cancelled");
        }
    }
    for (size_t k = 0; p->problem && k < batch; k++)
        free(p->problem[k]);
    free(p->problem);
    free(p->status);
    free(p->probs);
    free(p->images);
    return st;
}

/* The recipe must make exactly the model's input (a recipe that keeps each
 * slice's size is checked per file). */
static ich_status check_recipe(const ich_model *model, const ich_window *window,
                               int32_t shape[3])
{
    ich_status st = ich_model_input_shape(model, &shape[0], &shape[1], &shape[2]);
    if (st != ICH_OK)
        return st;
    if (ich_window_get_neighbors(window) > 0)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "predict: the recipe takes %d neighbouring slices on each side; "
                        "prediction reads single slices",
                        (int)ich_window_get_neighbors(window));
    int32_t c, r, w;
    st = ich_window_output_shape(window, shape[1], shape[2], &c, &r, &w);
    if (st == ICH_OK && (c != shape[0] || r != shape[1] || w != shape[2]))
        st = ich_fail(ICH_ERR_SHAPE,
                      "predict: the recipe makes %dx%dx%d images; the model takes %dx%dx%d",
                      (int)c, (int)r, (int)w, (int)shape[0], (int)shape[1], (int)shape[2]);
    return st;
}

/* A checksum of the list of files, for the ranks to compare. */
static uint64_t list_hash(const ich_found_files *files)
{
    uint64_t hash = ICH_SHARD_HASH_START;
    for (size_t i = 0; i < files->count; i++)
        hash = ich_shard_hash(hash, files->items[i].path, strlen(files->items[i].path) + 1);
    return hash;
}

/* Sharded (ich_predict_folder() under several ranks): every rank collects
 * the same files (ranks other than 0 quietly, so that each skipped entry
 * is reported once) and predicts its block of whole batches; `done` then
 * counts every rank's. Otherwise all the files, here. */
static ich_status predict_collected(predictor *p, const char *const *paths, int64_t count,
                                    walk_report *report, int sharded)
{
    ich_found_files files = {0};
    int32_t rank = sharded ? ich_comm_rank() : 0, ranks = sharded ? ich_comm_size() : 1;
    ich_log_mute_thread(rank != 0);
    ich_status st = collect(paths, count, &files, report, &p->done->skipped);
    ich_log_mute_thread(0);
    p->done->files = (int64_t)files.count;
    if (ranks > 1) {
        st = ich_shard_agree(st, "predict: finding the DICOM files");
        if (st == ICH_OK)
            st = ich_shard_same(list_hash(&files), "DICOM files");
    }
    int64_t first, end;
    ich_shard_block((int64_t)files.count, p->opts->batch_size, rank, ranks, &first, &end);
    /* a view of this rank's block */
    ich_found_files share = {files.items + first, (size_t)(end - first), 0};
    p->files = &share;
    double start = ich_shard_now();
    if (st == ICH_OK)
        st = run_batches(p);
    if (ranks > 1) {
        int64_t counts[2] = {p->done->predicted, p->done->failed};
        st = ich_shard_agree_work(st, ich_shard_now() - start, "predict");
        if (st == ICH_OK)
            st = ich_comm_allreduce_int64(counts, 2, "predict: the counts");
        p->done->predicted = counts[0];
        p->done->failed = counts[1];
    }
    if (st == ICH_OK && rank == 0)
        ich_log(ICH_LOG_INFO, "predict: %lld predicted, %lld failed, of %lld files",
                (long long)p->done->predicted, (long long)p->done->failed,
                (long long)p->done->files);
    ich_found_files_free(&files);
    return st;
}

/* ich_predict_files(), and with `sharded` this rank's share of the work of
 * ich_predict_folder() under several ranks (fn then sees that share). */
static ich_status predict_paths(ich_model *model, const char *const *paths, int64_t count,
                                const ich_predict_options *options, ich_prediction_fn fn,
                                void *user, ich_predict_summary *summary, int sharded)
{
    static const char function[] = "ich_predict_files";
    static const char summary_what[] = "ich_predict_files: summary";
    ich_predict_summary done;
    memset(&done, 0, sizeof done);
    done.size = sizeof done;
    if (!model || (!paths && count > 0) || count < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: %s", function,
                        !model ? "NULL model" : count < 0 ? "negative count" : "NULL paths");
    ich_predict_options opts;
    ich_status st = read_options(options, &opts, function);
    if (st == ICH_OK)
        st = check_summary(summary, summary_what);
    if (st != ICH_OK)
        return st;
    ich_window *owned = NULL;
    const ich_window *window = opts.window;
    if (!window) {
        st = ich_model_input_window(model, &owned);
        window = owned;
    }
    int32_t shape[3];
    if (st == ICH_OK)
        st = check_recipe(model, window, shape);
    walk_report report = {fn, user, 0};
    if (st == ICH_OK) {
        predictor p = {model, window, &opts, fn, user, &done, NULL,
                       (size_t)shape[0] * (size_t)shape[1] * (size_t)shape[2],
                       ich_model_outputs(model), 0, NULL, NULL, NULL, NULL};
        st = predict_collected(&p, paths, count, &report, sharded);
    }
    ich_window_free(owned);
    if (summary)
        ich_options_write(summary, &done, sizeof done, SUMMARY_V1_SIZE, summary_what);
    return st;
}

ich_status ich_predict_files(ich_model *model, const char *const *paths, int64_t count,
                             const ich_predict_options *options, ich_prediction_fn fn,
                             void *user, ich_predict_summary *summary)
{
    return predict_paths(model, paths, count, options, fn, user, summary, 0);
}

/* ---- The predictions file --------------------------------------------------- */

typedef struct csv_rows {
    ich_buf buf;
    const ich_labels *names;
    int rsna;
} csv_rows;

static int add_row(void *user, const char *path, const char *id, const float *probabilities,
                   int32_t outputs, const char *problem)
{
    (void)path;
    (void)problem;
    csv_rows *rows = user;
    if (!probabilities)
        return 0;
    if (rows->rsna) {
        for (int32_t c = 0; c < outputs; c++) /* RSNA IDs already start with "ID_" */
            ich_buf_printf(&rows->buf, "%s%s_%s,%.9g\n", strncmp(id, "ID_", 3) ? "ID_" : "", id,
                           ich_labels_column_name(rows->names, c), (double)probabilities[c]);
        return rows->buf.failed;
    }
    ich_buf_append(&rows->buf, id, strlen(id));
    for (int32_t c = 0; c < outputs; c++)
        ich_buf_printf(&rows->buf, ",%.9g", (double)probabilities[c]);
    ich_buf_append(&rows->buf, "\n", 1);
    return rows->buf.failed; /* out of memory: stop (reported below) */
}

/* The header line of the predictions file. */
static void header_line(ich_buf *buf, const ich_labels *names, int rsna)
{
    if (rsna) {
        ich_buf_append(buf, "ID,Label\n", 9);
        return;
    }
    ich_buf_append(buf, "ID", 2);
    for (int32_t c = 0; c < ich_labels_columns(names); c++)
        ich_buf_printf(buf, ",%s", ich_labels_column_name(names, c));
    ich_buf_append(buf, "\n", 1);
}

/* Every rank's rows (rank 0 of 1: its own) to rank 0, in rank order, which
 * is file order; rank 0 writes them under the header, atomically. */
static ich_status write_rows(const csv_rows *rows, const char *out_path)
{
    ich_comm_gathered all;
    ich_status st = ich_comm_gather(rows->buf.data, rows->buf.length, 0, &all,
                                    "predict: the predictions");
    if (st != ICH_OK || ich_comm_rank() != 0)
        return st;
    ich_buf file = {0};
    header_line(&file, rows->names, rows->rsna);
    ich_buf_append(&file, all.data, all.offsets[all.ranks]);
    ich_comm_gathered_free(&all);
    st = file.failed ? ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for the predictions",
                                out_path)
                     : ich_write_file_atomic(out_path, file.data, file.length, 0);
    ich_buf_free(&file);
    return st;
}

ich_status ich_predict_folder(ich_model *model, const char *input, const char *out_path,
                              const ich_predict_options *options, ich_predict_summary *summary)
{
    static const char function[] = "ich_predict_folder";
    static const char summary_what[] = "ich_predict_folder: summary";
    if (!model || !input || !out_path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL %s", function,
                        !model ? "model" : !input ? "input" : "out_path");
    ich_predict_options opts;
    ich_status st = read_options(options, &opts, function);
    if (st == ICH_OK)
        st = check_summary(summary, summary_what);
    if (st == ICH_OK) /* under mpirun, a communicator that cannot start is refused */
        st = ich_comm_start();
    ich_labels *names = NULL;
    if (st == ICH_OK)
        st = ich_labels_of_model(model, &names);
    if (st != ICH_OK)
        return st;
    csv_rows rows = {{0}, names, opts.format == ICH_PREDICT_RSNA};
    st = predict_paths(model, &input, 1, &opts, add_row, &rows, summary, 1);
    if (rows.buf.failed)
        st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for the predictions", out_path);
    /* out of memory on one rank only: every rank ends */
    st = ich_shard_agree(st, "predict: the predictions");
    if (st == ICH_OK)
        st = ich_shard_agree(write_rows(&rows, out_path), "predict: writing the predictions");
    ich_buf_free(&rows.buf);
    ich_labels_free(names);
    return st;
}
