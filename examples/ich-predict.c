/*
 * ich-predict — the pipeline's prediction step.
 *
 * Loads a checkpoint, rebuilds the input recipe it was trained with (its
 * "ich.recipe" metadata: see ich_model_input_window(); a checkpoint without
 * one is refused unless --recipe or --windows/--minmax give it), reads one DICOM file or every DICOM file under
 * a folder (*.dcm, *.dicom, or any file with the DICM marker), and predicts
 * the probability of each label per image, in batches (ich_model_predict():
 * for the cascade preset the subtypes count only where "any" fires). Writes
 * CSV "ID,any,epidural,..." or the RSNA submission format "ID,Label" with
 * rows "ID_<image>_<label>", atomically. A bad file is reported and skipped;
 * so are FIFOs, devices and broken links in a folder (never opened; each
 * real file is read once, whatever symbolic links lead to it); the exit
 * status is then 1.
 *
 *   ich-predict model.safetensors scans/ --out predictions.csv --format rsna
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ich/ich.h>

#include "common.h"

#define MAX_LABELS 64

typedef struct options {
    const char *out;
    int rsna;
    float threshold;
    int batch;
    int threads;
    int quiet;
    const char *backend; /* --backend, NULL: $ICH_BACKEND */
    recipe_options recipe;
} options;

typedef struct file_list {
    char **items;
    size_t count, capacity;
    int64_t skipped; /* FIFOs, devices, broken links in the folder */
} file_list;

/* Label names of the outputs, as the library reads them from the
 * checkpoint (ich_labels_of_model()). */
typedef struct label_names {
    ich_labels *table;
    const char *names[MAX_LABELS];
    int count;
} label_names;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-predict CHECKPOINT INPUT [options]\n"
            "Predict hemorrhage probabilities for one DICOM file or a folder of them.\n"
            "  --out FILE          output file (default predictions.csv)\n"
            "  --format csv|rsna   csv: ID,any,epidural,... per image (default);\n"
            "                      rsna: ID,Label with rows ID_<image>_<label>\n"
            "  --threshold X       cascade models: P(any) <= X zeroes the subtypes "
            "(default 0.5)\n"
            "  --batch-size N      images per forward pass (default 16)\n"
            "  --threads N         compute threads (default: one per CPU)\n"
            "  --backend NAME      auto, cpu or cuda (default: $ICH_BACKEND, else auto)\n"
            "  --quiet             no progress bar or summary\n"
            "  --help              this text\n"
            "The input recipe is the checkpoint's (\"ich.recipe\"); a checkpoint without\n"
            "one is refused unless these give it (they also change a checkpoint's):\n"
            RECIPE_HELP
            "Exit status: 0 ok, 1 a file or the checkpoint failed, 2 bad usage.\n");
}

static int parse_int(const char *text, int lo, int hi, const char *what, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "ich-predict: %s must be an integer in %d..%d, not \"%s\"\n", what, lo,
                hi, text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_options(int argc, char **argv, options *o, const char **checkpoint,
                         const char **input)
{
    static const struct option longopts[] = {
        RECIPE_LONGOPTS,
        {"out", required_argument, 0, 'o'},        {"format", required_argument, 0, 'f'},
        {"threshold", required_argument, 0, 't'},  {"batch-size", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 'j'},    {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},             {"backend", required_argument, 0, 'B'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->out = "predictions.csv";
    o->threshold = 0.5f;
    o->batch = 16;
    recipe_options_init(&o->recipe);
    int c, handled;
    char *end;
    while ((c = getopt_long(argc, argv, "o:f:t:b:j:qhB:", longopts, NULL)) != -1) {
        if ((handled = recipe_option(c, optarg, &o->recipe, "ich-predict")) != 0) {
            if (handled < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'o': o->out = optarg; break;
        case 'f':
            if (strcmp(optarg, "csv") && strcmp(optarg, "rsna")) {
                fprintf(stderr, "ich-predict: --format must be csv or rsna, not \"%s\"\n", optarg);
                return 2;
            }
            o->rsna = strcmp(optarg, "rsna") == 0;
            break;
        case 't':
            o->threshold = strtof(optarg, &end);
            if (end == optarg || *end || !(o->threshold > 0 && o->threshold < 1)) {
                fprintf(stderr, "ich-predict: --threshold must be in (0, 1), not \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_int(optarg, 1, 4096, "--batch-size", &o->batch))
                return 2;
            break;
        case 'j':
            if (parse_int(optarg, 0, 1024, "--threads", &o->threads))
                return 2;
            break;
        case 'q': o->quiet = 1; break;
        case 'B': o->backend = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    *checkpoint = argv[optind];
    *input = argv[optind + 1];
    return 0;
}

/* ---- Input files ----------------------------------------------------------------- */


static int add_file(file_list *list, const char *path)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 64;
        char **items = realloc(list->items, capacity * sizeof *items);
        if (!items)
            return -1;
        list->items = items;
        list->capacity = capacity;
    }
    return (list->items[list->count++] = strdup(path)) ? 0 : -1;
}

static int add_found(void *user, const char *path, const char *relative)
{
    (void)relative;
    return add_file(user, path);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One file, or every DICOM file under a folder, sorted so the output order
 * does not depend on the file system. */
static int find_inputs(const char *input, file_list *list)
{
    struct stat st;
    if (stat(input, &st) != 0) {
        fprintf(stderr, "ich-predict: %s: no such file or folder\n", input);
        return -1;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) { /* a FIFO would block */
        fprintf(stderr, "ich-predict: %s: not a regular file or folder\n", input);
        return -1;
    }
    int rc = 0;
    if (S_ISDIR(st.st_mode)) /* each real file once: no symbolic link loops, no FIFOs */
        rc = (list->skipped = find_dicom_files("ich-predict", input, add_found, list)) < 0;
    else
        rc = add_file(list, input);
    if (!rc)
        qsort(list->items, list->count, sizeof *list->items, by_name);
    return rc;
}

/* The image ID: the file name without its folder and .dcm/.dicom suffix. */
static void image_id(const char *path, char *id, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (has_suffix(base, ".dcm"))
        n -= 4;
    else if (has_suffix(base, ".dicom"))
        n -= 6;
    snprintf(id, size, "%.*s", (int)n, base);
}

/* ---- Labels ---------------------------------------------------------------------- */

/* The output columns' names: the checkpoint's "ich.labels", or the RSNA
 * six for a 6-output checkpoint without them (the library's one rule). */
static int read_labels(const char *path, const ich_model *model, label_names *l)
{
    if (ich_labels_of_model(model, &l->table)) {
        fprintf(stderr, "ich-predict: %s: %s\n", path, ich_last_error());
        return -1;
    }
    l->count = ich_labels_columns(l->table);
    for (int c = 0; c < l->count && c < MAX_LABELS; c++)
        l->names[c] = ich_labels_column_name(l->table, c);
    return 0;
}

/* ---- Prediction ------------------------------------------------------------------ */

typedef struct results {
    char (*ids)[256];
    float *probabilities; /* count x outputs */
    size_t count;
    size_t failed;
} results;

/* Window one file into `image` (channels x rows x columns floats). */
static int load_image(const ich_window *window, const char *path, float *image, size_t count)
{
    ich_dicom *dicom = NULL;
    ich_status st = ich_dicom_read(path, &dicom);
    if (!st)
        st = ich_window_apply_dicom_f32(window, dicom, image, count); /* MONOCHROME1 too */
    ich_dicom_free(dicom);
    if (st)
        fprintf(stderr, "\nich-predict: skipped %s: %s\n", path, ich_last_error());
    return st ? -1 : 0;
}

/* Predict a batch whose IDs are at r->ids[r->count...]. When the library
 * refuses a non-finite probability (ICH_ERR_FORMAT), the images are
 * predicted one by one: each one that fails is reported by its ID and
 * skipped (counted as failed), the others kept. */
static int predict_batch(ich_model *model, const options *o, const float *images, int32_t n,
                         size_t per_image, results *r)
{
    size_t outputs = (size_t)ich_model_outputs(model);
    float *out = r->probabilities + r->count * outputs;
    ich_status st = n ? ich_model_predict(model, images, n, o->threshold, out,
                                          (size_t)n * outputs)
                      : ICH_OK;
    if (st == ICH_ERR_FORMAT) {
        size_t kept = 0;
        for (int32_t k = 0; k < n; k++) {
            float *row = r->probabilities + (r->count + kept) * outputs;
            if (ich_model_predict(model, images + (size_t)k * per_image, 1, o->threshold, row,
                                  outputs)) {
                fprintf(stderr, "\nich-predict: skipped %s: %s\n", r->ids[r->count + (size_t)k],
                        ich_last_error());
                r->failed++;
                continue;
            }
            memmove(r->ids[r->count + kept], r->ids[r->count + (size_t)k], sizeof r->ids[0]);
            kept++;
        }
        r->count += kept;
        return 0;
    }
    if (st) {
        fprintf(stderr, "\nich-predict: prediction failed: %s\n", ich_last_error());
        return -1;
    }
    r->count += (size_t)n;
    return 0;
}

static int predict_all(ich_model *model, const ich_window *window, const file_list *files,
                       const options *o, results *r)
{
    int32_t channels, rows, columns;
    ich_model_input_shape(model, &channels, &rows, &columns);
    size_t per_image = (size_t)channels * (size_t)rows * (size_t)columns;
    float *images = malloc(per_image * (size_t)o->batch * sizeof *images);
    r->ids = calloc(files->count ? files->count : 1, sizeof *r->ids);
    r->probabilities = calloc(files->count ? files->count : 1,
                              (size_t)ich_model_outputs(model) * sizeof(float));
    if (!images || !r->ids || !r->probabilities) {
        free(images);
        fprintf(stderr, "ich-predict: out of memory\n");
        return -1;
    }
    progress_bar bar = {now(), "images", 0};
    int32_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < files->count && !rc; i++) {
        if (load_image(window, files->items[i], images + (size_t)n * per_image, per_image)) {
            r->failed++;
        } else {
            image_id(files->items[i], r->ids[r->count + (size_t)n], sizeof r->ids[0]);
            n++;
        }
        if (n == o->batch || i + 1 == files->count) {
            rc = predict_batch(model, o, images, n, per_image, r);
            n = 0;
            if (!o->quiet)
                show_progress(&bar, (int64_t)(i + 1), (int64_t)files->count, "predict");
        }
    }
    if (!o->quiet && files->count)
        fputc('\n', stderr);
    free(images);
    return rc;
}

/* ---- Output ---------------------------------------------------------------------- */

static void write_rows(FILE *f, const results *r, const label_names *l, int rsna)
{
    if (rsna) {
        fputs("ID,Label\n", f);
        for (size_t i = 0; i < r->count; i++)
            for (int c = 0; c < l->count; c++) /* RSNA IDs already start with "ID_" */
                fprintf(f, "%s%s_%s,%.9g\n", strncmp(r->ids[i], "ID_", 3) ? "ID_" : "",
                        r->ids[i], l->names[c], (double)r->probabilities[i * (size_t)l->count + (size_t)c]);
        return;
    }
    fputs("ID", f);
    for (int c = 0; c < l->count; c++)
        fprintf(f, ",%s", l->names[c]);
    fputc('\n', f);
    for (size_t i = 0; i < r->count; i++) {
        fputs(r->ids[i], f);
        for (int c = 0; c < l->count; c++)
            fprintf(f, ",%.9g", (double)r->probabilities[i * (size_t)l->count + (size_t)c]);
        fputc('\n', f);
    }
}

/* Written to PATH.tmp.PID and renamed, so PATH is never half-written. */
static int write_output(const char *path, const results *r, const label_names *l, int rsna)
{
    size_t n = strlen(path) + 32;
    char *temp = malloc(n);
    if (!temp)
        return -1;
    snprintf(temp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(temp, "w");
    int ok = f != NULL;
    if (f) {
        write_rows(f, r, l, rsna);
        ok = !ferror(f);
        ok = fclose(f) == 0 && ok;
    }
    ok = ok && rename(temp, path) == 0;
    if (!ok) {
        fprintf(stderr, "ich-predict: cannot write %s\n", path);
        remove(temp);
    }
    free(temp);
    return ok ? 0 : -1;
}

/* ---- Main ------------------------------------------------------------------------ */

static int open_model(const char *path, const recipe_options *recipe, ich_model **model,
                      ich_window **window, label_names *l)
{
    if (ich_model_load(path, model)) {
        fprintf(stderr, "ich-predict: %s\n", ich_last_error());
        return -1;
    }
    if (recipe_for_model(recipe, *model, window)) {
        fprintf(stderr, "ich-predict: %s: %s\n", path, ich_last_error());
        return -1;
    }
    if (ich_window_get_neighbors(*window) > 0) {
        fprintf(stderr, "ich-predict: %s: the model takes %d neighbouring slices on each side; "
                        "ich-predict reads single slices (use ich-evaluate)\n",
                path, ich_window_get_neighbors(*window));
        return -1;
    }
    return read_labels(path, *model, l);
}

int main(int argc, char **argv)
{
    options o;
    const char *checkpoint, *input;
    int rc = parse_options(argc, argv, &o, &checkpoint, &input);
    if (rc)
        return rc;
    if (o.threads)
        ich_set_threads(o.threads);
    if (use_backend("ich-predict", o.backend, o.quiet))
        return 1;
    ich_model *model = NULL;
    ich_window *window = NULL;
    static label_names labels;
    file_list files = {0};
    results r = {0};
    rc = open_model(checkpoint, &o.recipe, &model, &window, &labels) || find_inputs(input, &files) ||
                 predict_all(model, window, &files, &o, &r) ||
                 write_output(o.out, &r, &labels, o.rsna)
             ? 1
             : 0;
    if (!rc && !o.quiet)
        printf("%zu predicted, %zu failed -> %s\n", r.count, r.failed, o.out);
    if (!rc && (r.failed || files.skipped || files.count == 0)) {
        if (files.count == 0)
            fprintf(stderr, "ich-predict: no DICOM files in %s\n", input);
        rc = 1;
    }
    for (size_t i = 0; i < files.count; i++)
        free(files.items[i]);
    free(files.items);
    free(r.ids);
    free(r.probabilities);
    ich_window_free(window);
    ich_labels_free(labels.table);
    ich_model_free(model);
    return rc;
}
