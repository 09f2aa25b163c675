/*
 * ich-preprocess — the pipeline's preprocessing step.
 *
 * Walks INPUT_DIR recursively, and for every DICOM file (*.dcm, *.dicom, or
 * any file with the DICM marker) reads the slice in Hounsfield units,
 * applies the clinical windows (default blood, brain and bone, stacked as
 * the R, G and B channels), resizes it (default 256 x 256) and writes
 * OUTPUT_DIR/<same sub-folder>/<file stem>.png, and the recipe's one-line
 * text as OUTPUT_DIR/recipe.txt (for ich-train --recipe). Each real file is
 * converted once (symbolic links are followed, but a link to "." or to a
 * parent does not loop); FIFOs, devices and broken links are named and
 * skipped. Work is shared by all cores; a bad file is reported and skipped;
 * existing outputs are kept unless --force. The exit status is 1 when any
 * file failed or was skipped.
 *
 *   ich-preprocess scans/ images/ --windows blood,brain,bone --size 256
 *   ich-preprocess scans/ images/ --recipe tutorial     # the tutorial's steps
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ich/ich.h>

#include "common.h"

typedef struct job {
    char *input;
    char *output;
} job;

typedef struct job_list {
    job *items;
    size_t count, capacity;
} job_list;

typedef struct options {
    recipe_options recipe;
    int threads;
    int force;
    int quiet;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-preprocess INPUT_DIR OUTPUT_DIR [options]\n"
            "Convert every DICOM slice under INPUT_DIR into a windowed PNG under OUTPUT_DIR.\n\n"
            "The recipe (default: --windows blood,brain,bone --size 256 --resize bilinear;\n"
            "a PNG takes 1 or 3 channels; --normalize only goes into recipe.txt):\n"
            RECIPE_HELP
            "Other options:\n"
            "  --threads N         worker threads (default: all cores)\n"
            "  --force             overwrite existing PNGs (default: skip them)\n"
            "  --quiet             no progress bar or summary\n"
            "  --help              this text\n");
}

static int parse_int(const char *text, int lo, int hi, const char *what, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "ich-preprocess: %s must be an integer in %d..%d, not \"%s\"\n", what, lo,
                hi, text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_options(int argc, char **argv, options *o, const char **in, const char **out)
{
    static const struct option longopts[] = {
        RECIPE_LONGOPTS,
        {"threads", required_argument, 0, 't'}, {"force", no_argument, 0, 'f'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    recipe_options_init(&o->recipe);
    o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int c, handled;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if ((handled = recipe_option(c, optarg, &o->recipe, "ich-preprocess")) != 0) {
            if (handled < 0)
                return -1;
            continue;
        }
        switch (c) {
        case 't': if (parse_int(optarg, 1, 1024, "--threads", &o->threads)) return -1; break;
        case 'f': o->force = 1; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return -1;
    }
    *in = argv[optind];
    *out = argv[optind + 1];
    return 0;
}

/* ---- Finding the DICOM files -------------------------------------------- */

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* "sub/IM1.dcm" -> "sub/IM1.png" (a dot in a folder name is not an
 * extension). */
static char *png_name(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - name) : strlen(name);
    char *s = malloc(stem + 5);
    if (s) {
        memcpy(s, name, stem);
        memcpy(s + stem, ".png", 5);
    }
    return s;
}

static int add_job(job_list *list, char *input, char *output)
{
    if (!input || !output) {
        free(input);
        free(output);
        return -1;
    }
    if (list->count == list->capacity) {
        size_t cap = list->capacity ? 2 * list->capacity : 256;
        job *items = realloc(list->items, cap * sizeof *items);
        if (!items)
            return -1;
        list->items = items;
        list->capacity = cap;
    }
    list->items[list->count++] = (job){input, output};
    return 0;
}

static int by_input(const void *a, const void *b)
{
    return strcmp(((const job *)a)->input, ((const job *)b)->input);
}

typedef struct collecting {
    const char *out_dir;
    job_list *list;
} collecting;

static int add_found(void *user, const char *path, const char *relative)
{
    collecting *c = user;
    char *png = png_name(relative);
    int rc = add_job(c->list, strdup(path), png ? join(c->out_dir, png) : NULL);
    free(png);
    return rc;
}

/* Collect jobs under in_dir, mirroring sub-folders under out_dir: each real
 * file once (find_dicom_files(): no symbolic link loops, no FIFOs). The
 * number of entries skipped, or -1 on failure. */
static int64_t collect(const char *in_dir, const char *out_dir, job_list *list)
{
    collecting c = {out_dir, list};
    return find_dicom_files("ich-preprocess", in_dir, add_found, &c);
}

static int make_dirs(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
                free(copy);
                return -1;
            }
            if (!saved)
                break;
            *p = saved;
        }
    }
    free(copy);
    return 0;
}

static int make_parent_dir(const char *file)
{
    char *copy = strdup(file);
    char *slash = copy ? strrchr(copy, '/') : NULL;
    int rc = 0;
    if (slash) {
        *slash = '\0';
        rc = make_dirs(copy);
    }
    free(copy);
    return rc;
}

/* ---- Parallel conversion -------------------------------------------------- */

typedef struct shared {
    const job_list *jobs;
    const ich_window *window;
    const options *opts;
    atomic_size_t next;
    atomic_size_t done, converted, skipped, failed;
    pthread_mutex_t report_lock; /* one error line at a time */
} shared;

static void *worker(void *arg)
{
    shared *s = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&s->next, 1);
        if (i >= s->jobs->count)
            break;
        const job *j = &s->jobs->items[i];
        if (!s->opts->force && access(j->output, F_OK) == 0) {
            atomic_fetch_add(&s->skipped, 1);
        } else if (make_parent_dir(j->output) != 0) {
            pthread_mutex_lock(&s->report_lock);
            fprintf(stderr, "\rich-preprocess: %s: cannot create folder: %s\n", j->output,
                    strerror(errno));
            pthread_mutex_unlock(&s->report_lock);
            atomic_fetch_add(&s->failed, 1);
        } else if (ich_window_dicom_to_png(s->window, j->input, j->output) != ICH_OK) {
            pthread_mutex_lock(&s->report_lock);
            fprintf(stderr, "\rich-preprocess: skipped: %s\n", ich_last_error());
            pthread_mutex_unlock(&s->report_lock);
            atomic_fetch_add(&s->failed, 1);
        } else {
            atomic_fetch_add(&s->converted, 1);
        }
        atomic_fetch_add(&s->done, 1);
    }
    return NULL;
}

static void progress(shared *s, double start)
{
    size_t done = atomic_load(&s->done), total = s->jobs->count;
    double elapsed = now() - start;
    double rate = elapsed > 0 ? done / elapsed : 0;
    int width = 30, filled = total ? (int)(width * done / total) : width;
    pthread_mutex_lock(&s->report_lock);
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu  %.0f img/s  ETA %.0fs ", filled,
            "##############################", width - filled, "", done, total, rate,
            rate > 0 ? (total - done) / rate : 0.0);
    pthread_mutex_unlock(&s->report_lock);
}

static int run(const job_list *jobs, const ich_window *window, const options *opts)
{
    shared s = {jobs, window, opts, 0, 0, 0, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    int n = opts->threads < (int)jobs->count ? opts->threads : (int)jobs->count;
    pthread_t *threads = calloc(n > 0 ? (size_t)n : 1, sizeof *threads);
    if (!threads)
        return 1;
    double start = now();
    int started = 0;
    for (; started < n; started++)
        if (pthread_create(&threads[started], NULL, worker, &s) != 0)
            break;
    if (started == 0)
        worker(&s); /* no thread could start: do the work here */
    int bar = !opts->quiet && isatty(STDERR_FILENO);
    while (bar && atomic_load(&s.done) < jobs->count) {
        progress(&s, start);
        usleep(100 * 1000);
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    if (bar)
        progress(&s, start), fputc('\n', stderr);
    double elapsed = now() - start;
    if (!opts->quiet)
        printf("ich-preprocess: %zu converted, %zu already there, %zu failed, of %zu DICOM files "
               "in %.2f s (%.1f images/s, %d threads)\n",
               (size_t)s.converted, (size_t)s.skipped, (size_t)s.failed, jobs->count, elapsed,
               elapsed > 0 ? s.converted / elapsed : 0.0, n);
    return s.failed ? 1 : 0;
}

/* The default recipe (blood, brain, bone; 256 x 256), or with --minmax and
 * no --windows the raw pixels' min-max (the tutorial's), changed by the
 * options. */
static ich_window *make_window(const options *o)
{
    const recipe_options *r = &o->recipe;
    ich_window *base = NULL, *w = NULL;
    int raw_minmax = r->minmax && !r->windows;
    ich_status st = ICH_OK;
    if (!r->recipe) {
        st = ich_window_create(&base);
        if (!st && !raw_minmax)
            st = ich_window_add_list(base, "blood,brain,bone");
        if (!st)
            st = ich_window_set_size(base, 256, 256, ICH_RESIZE_BILINEAR);
    }
    if (!st)
        st = recipe_from_options(r, base, &w);
    ich_window_free(base);
    int32_t channels = 0;
    if (!st)
        st = ich_window_output_shape(w, 1, 1, &channels, NULL, NULL);
    if (st) {
        fprintf(stderr, "ich-preprocess: %s\n", ich_last_error());
        ich_window_free(w);
        return NULL;
    }
    if (channels != 1 && channels != 3) {
        fprintf(stderr, "ich-preprocess: a PNG needs 1 or 3 channels, not %d\n", channels);
        ich_window_free(w);
        return NULL;
    }
    return w;
}

/* OUT_DIR/recipe.txt: the recipe's line, so training on these PNGs can
 * record how to make its input from a DICOM slice. */
static int write_recipe(const ich_window *w, const char *out_dir)
{
    char text[ICH_WINDOW_STRING_MAX];
    char *path = join(out_dir, "recipe.txt");
    FILE *f = path ? fopen(path, "w") : NULL;
    int ok = f && ich_window_to_string(w, text, sizeof text, NULL) == ICH_OK &&
             fprintf(f, "%s\n", text) > 0;
    ok = f && fclose(f) == 0 && ok;
    if (!ok)
        fprintf(stderr, "ich-preprocess: cannot write %s\n", path ? path : "recipe.txt");
    free(path);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    options opts;
    const char *in_dir, *out_dir;
    /* Each slice needs a few megabytes of buffers. By default glibc maps
     * and unmaps blocks that large for every image, and the page faults
     * cost a quarter of the run; keep them on the heap instead. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    if (parse_options(argc, argv, &opts, &in_dir, &out_dir) != 0)
        return 2;
    ich_window *window = make_window(&opts);
    if (!window)
        return 2;
    job_list jobs = {0};
    int64_t skipped = collect(in_dir, out_dir, &jobs);
    int status = skipped < 0 ? 1 : 0;
    if (status == 0 && make_dirs(out_dir) != 0) {
        fprintf(stderr, "ich-preprocess: %s: cannot create folder: %s\n", out_dir, strerror(errno));
        status = 1;
    }
    if (status == 0 && write_recipe(window, out_dir) != 0)
        status = 1;
    if (status == 0) {
        qsort(jobs.items, jobs.count, sizeof *jobs.items, by_input);
        if (jobs.count == 0)
            fprintf(stderr, "ich-preprocess: no DICOM files under %s\n", in_dir);
        status = run(&jobs, window, &opts) || skipped > 0;
    }
    for (size_t i = 0; i < jobs.count; i++) {
        free(jobs.items[i].input);
        free(jobs.items[i].output);
    }
    free(jobs.items);
    ich_window_free(window);
    return status;
}
