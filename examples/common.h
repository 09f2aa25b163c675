/*
 * Shared by the example programs: a clock, a progress bar for the
 * library's progress callback (ich_progress_fn in <ich/core.h>), libich's
 * warnings on stderr, choosing the backend, and the input recipe's
 * command-line options (--recipe, --windows, --size, --resize, --minmax,
 * --quantize, --normalize). Finding a folder's DICOM files is libich's
 * (<ich/pipeline.h>).
 *
 *   progress_bar bar = {now(), "slices"};
 *   options.progress = show_progress;     // libich calls it a few times a second
 *   options.progress_user = &bar;
 *
 * Ctrl-C: catch_interrupt() turns the first SIGINT into a flag that
 * show_progress(), ich-train's callback and the thread's cancel check
 * (looked at between a network's layers) return, so the library stops the
 * work cleanly (nothing half-written stays) and returns ICH_ERR_CANCELLED;
 * the program then says "interrupted" and exits with status 130 (128 +
 * SIGINT, what a shell reports for a program that Ctrl-C killed), see
 * exit_status(). A second Ctrl-C kills it at once.
 */
#ifndef ICH_EXAMPLES_COMMON_H
#define ICH_EXAMPLES_COMMON_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Seconds on a monotonic clock. */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- Ctrl-C ---------------------------------------------------------------- */

/* Set by the first SIGINT after catch_interrupt(). */
static volatile sig_atomic_t interrupted;

static inline void on_interrupt(int signo)
{
    (void)signo;
    interrupted = 1;
}

static inline int interrupt_requested(void *user)
{
    (void)user;
    return interrupted;
}

/* From now on the first Ctrl-C sets `interrupted` (the progress callbacks
 * then ask libich to stop, and so does the thread's cancel check, which
 * libich looks at between a network's layers: a batch of a large network
 * takes seconds on a CPU); SA_RESETHAND: a second one kills as usual. */
static inline void catch_interrupt(void)
{
    ich_set_cancel_check(interrupt_requested, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_interrupt;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
}

/* Exit status after a failed libich call: 130 when Ctrl-C cancelled it
 * (as a shell reports a program killed by SIGINT), else 1. */
static inline int exit_status(ich_status status)
{
    return status == ICH_ERR_CANCELLED ? 130 : 1;
}

/* Say why a libich call failed: "program: interrupted" after Ctrl-C,
 * else "program: message". Returns exit_status(status). */
static inline int report_failure(const char *program, ich_status status)
{
    if (status == ICH_ERR_CANCELLED)
        fprintf(stderr, "%s: interrupted (%s)\n", program, ich_last_error());
    else
        fprintf(stderr, "%s: %s\n", program, ich_last_error());
    return exit_status(status);
}

/* ---- Progress bar ------------------------------------------------------------ */

typedef struct progress_bar {
    double start; /* now() when the work began */
    const char *unit; /* what is counted: "slices", "files", ... */
    int hidden;   /* 1: draw nothing (--quiet, or stderr is not a terminal) */
} progress_bar;

/* Draws "what [#####     ] done/total  rate unit/s  ETA s" on stderr,
 * over the previous bar; print a newline when the work is done. Returns
 * non-zero after Ctrl-C (catch_interrupt()) so that libich stops. */
static inline int show_progress(void *user, int64_t done, int64_t total, const char *what)
{
    const progress_bar *bar = user;
    if (interrupted)
        return 1;
    if (bar->hidden)
        return 0;
    double elapsed = now() - bar->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    int width = 30, filled = total ? (int)(width * done / total) : width;
    fprintf(stderr, "\r%s [%.*s%*s] %" PRId64 "/%" PRId64 "  %.0f %s/s  ETA %.0fs ", what,
            filled, "##############################", width - filled, "", done, total, rate,
            bar->unit, rate > 0 ? (double)(total - done) / rate : 0.0);
    return 0;
}

/* libich's warnings (an image left out, an ID refused because it would
 * leave its folder, a file that cannot be read) on stderr as "program:
 * message", over a progress bar. */
static inline void log_to_stderr(ich_log_level level, const char *message, void *user)
{
    (void)level;
    fprintf(stderr, "\r%s: %s\n", (const char *)user, message);
}

static inline void show_warnings(const char *program)
{
    ich_set_log_callback(log_to_stderr, (void *)program, ICH_LOG_WARNING);
}

/* ---- Several ranks (mpirun) ------------------------------------------------ */

/* Whether this process is a rank other than 0 of a run that mpirun (or
 * srun) started: ich-preprocess, ich-predict and ich-evaluate then share
 * the files with the other ranks (<ich/dist.h>), and only rank 0 draws
 * the progress bar and prints the summary; every rank still prints its
 * own warnings (the bad files of its share) and errors. A process whose
 * communicator cannot start says 0: the library call then fails with the
 * reason, which it prints. */
static inline int other_rank(void)
{
    return ich_dist_rank() > 0;
}

/* Choose where the network runs (--backend auto|cpu|cuda; NULL: the
 * ICH_BACKEND environment variable, else auto) and say which on stderr
 * unless quiet. 0 on success, else prints why and returns 1. */
static inline int use_backend(const char *program, const char *name, int quiet)
{
    char text[512];
    if ((name && ich_backend_select(name) != ICH_OK) ||
        ich_backend_describe(NULL, text, sizeof text) != ICH_OK) {
        fprintf(stderr, "%s: %s\n", program, ich_last_error());
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "%s: running on %s\n", program, text);
    return 0;
}

/* ---- The input recipe on the command line --------------------------------- */

/* The tutorial's preprocessing (--recipe tutorial): raw min-max (no window),
 * the uint8 step, Pillow's antialiased bilinear resize, Normalize(0.380,
 * 0.236). Its size is the network's (512 for the tutorial's ConvNet). */
#define TUTORIAL_RECIPE                                                                   \
    "windows=none;mode=minmax;size=512x512;resize=antialias;quantize=1;mean=0.38;"     \
    "std=0.236;neighbors=0"

/* Options that describe a recipe, shared by ich-preprocess, ich-train,
 * ich-predict and ich-evaluate; each given one overrides the base recipe
 * (--recipe, else the program's own). */
typedef struct recipe_options {
    const char *recipe;  /* --recipe TEXT|tutorial|FILE */
    const char *windows; /* --windows LIST, "none": no window */
    int size;            /* --size N, -1: not given */
    int resize;          /* --resize METHOD, -1: not given */
    int minmax;          /* --minmax */
    int quantize;        /* --quantize */
    int normalize;       /* --normalize MEAN/STD[,MEAN/STD...]: how many pairs */
    float mean[ICH_WINDOW_MAX_CHANNELS], std[ICH_WINDOW_MAX_CHANNELS];
} recipe_options;

enum { RECIPE_OPT_RECIPE = 900, RECIPE_OPT_WINDOWS, RECIPE_OPT_SIZE, RECIPE_OPT_RESIZE,
       RECIPE_OPT_MINMAX, RECIPE_OPT_QUANTIZE, RECIPE_OPT_NORMALIZE };

/* getopt_long entries; put them first in a program's table. */
#define RECIPE_LONGOPTS                                                                  \
    {"recipe", required_argument, 0, RECIPE_OPT_RECIPE},                                 \
    {"windows", required_argument, 0, RECIPE_OPT_WINDOWS},                               \
    {"size", required_argument, 0, RECIPE_OPT_SIZE},                                     \
    {"resize", required_argument, 0, RECIPE_OPT_RESIZE},                                 \
    {"minmax", no_argument, 0, RECIPE_OPT_MINMAX},                                       \
    {"quantize", no_argument, 0, RECIPE_OPT_QUANTIZE},                                   \
    {"normalize", required_argument, 0, RECIPE_OPT_NORMALIZE}

#define RECIPE_HELP                                                                        \
    "  --recipe TEXT       the whole input recipe as one line (a checkpoint's\n"          \
    "                      \"ich.recipe\", ich-preprocess's OUTPUT_DIR/recipe.txt),\n"   \
    "                      the path of a file holding it, or \"tutorial\"\n"             \
    "                      (" TUTORIAL_RECIPE ")\n"                                       \
    "                      the options below change single items of it:\n"             \
    "  --windows LIST      windows as channels: presets (brain, subdural, blood, bone,\n" \
    "                      stroke, soft_tissue) or CENTER/WIDTH; none: no window\n"      \
    "  --size N            output N x N pixels (0: each slice's own size)\n"            \
    "  --resize METHOD     bilinear, area or antialias (Pillow's bilinear, as\n"         \
    "                      torchvision's Resize)\n"                                      \
    "  --minmax            per-image min-max scaling (the tutorial's); with no\n"       \
    "                      --windows (or --windows none) on the raw pixels\n"           \
    "  --quantize          the tutorial's uint8 step before the resize\n"               \
    "  --normalize M/S     normalise the network's input: (v - M) / S, one M/S pair or\n" \
    "                      one per channel, comma-separated (the tutorial: 0.380/0.236)\n"

static inline void recipe_options_init(recipe_options *r)
{
    memset(r, 0, sizeof *r);
    r->size = -1;
    r->resize = -1;
}

static inline int recipe_options_given(const recipe_options *r)
{
    return r->recipe || r->windows || r->size >= 0 || r->resize >= 0 || r->minmax ||
           r->quantize || r->normalize;
}

/* --normalize M/S[,M/S...] into r->mean/std; 0, or -1 when malformed. */
static inline int recipe_parse_normalize(const char *text, recipe_options *r)
{
    int count = 0;
    const char *p = text;
    while (*p && count < ICH_WINDOW_MAX_CHANNELS) {
        char *end;
        r->mean[count] = strtof(p, &end);
        if (end == p || *end != '/')
            return -1;
        p = end + 1;
        r->std[count] = strtof(p, &end);
        if (end == p || (*end && *end != ','))
            return -1;
        count++;
        if (*end == ',' && !end[1])
            return -1; /* a trailing comma */
        p = *end ? end + 1 : end;
    }
    if (*p || count == 0)
        return -1;
    r->normalize = count;
    return 0;
}

/* Handle one getopt code: 1 handled, 0 not a recipe option, -1 bad value
 * (printed). */
static inline int recipe_option(int code, const char *arg, recipe_options *r, const char *program)
{
    char *end;
    long v;
    switch (code) {
    case RECIPE_OPT_RECIPE: r->recipe = arg; return 1;
    case RECIPE_OPT_WINDOWS: r->windows = arg; return 1;
    case RECIPE_OPT_MINMAX: r->minmax = 1; return 1;
    case RECIPE_OPT_QUANTIZE: r->quantize = 1; return 1;
    case RECIPE_OPT_NORMALIZE:
        if (recipe_parse_normalize(arg, r) == 0)
            return 1;
        fprintf(stderr, "%s: --normalize must be MEAN/STD or MEAN/STD,MEAN/STD,... (at most %d "
                        "pairs), not \"%s\"\n", program, ICH_WINDOW_MAX_CHANNELS, arg);
        return -1;
    case RECIPE_OPT_SIZE:
        v = strtol(arg, &end, 10);
        if (end == arg || *end || v < 0 || v > 16384) {
            fprintf(stderr, "%s: --size must be an integer in 0..16384, not \"%s\"\n", program, arg);
            return -1;
        }
        r->size = (int)v;
        return 1;
    case RECIPE_OPT_RESIZE:
        r->resize = strcmp(arg, "bilinear") == 0   ? ICH_RESIZE_BILINEAR
                    : strcmp(arg, "area") == 0      ? ICH_RESIZE_AREA
                    : strcmp(arg, "antialias") == 0 ? ICH_RESIZE_ANTIALIAS
                                                    : -1;
        if (r->resize < 0)
            fprintf(stderr, "%s: --resize must be bilinear, area or antialias, not \"%s\"\n",
                    program, arg);
        return r->resize < 0 ? -1 : 1;
    default: return 0;
    }
}

/* --recipe's text: "tutorial", a recipe line, or a file that holds one. */
static inline ich_status recipe_read(const char *arg, ich_window **out)
{
    if (strcmp(arg, "tutorial") == 0)
        return ich_window_from_string(TUTORIAL_RECIPE, out);
    if (strchr(arg, '='))
        return ich_window_from_string(arg, out);
    char text[ICH_WINDOW_STRING_MAX] = "";
    FILE *f = fopen(arg, "r");
    if (!f)
        return ich_window_from_string(arg, out); /* not a file: say what is wrong with it */
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    text[strcspn(text, "\r\n")] = '\0'; /* one line */
    return ich_window_from_string(text, out);
}

/* A new recipe: `base` (may be NULL: an empty recipe) changed by the
 * single-item options. --windows replaces the windows, --size the size
 * (keeping the method unless --resize is given); --minmax and --quantize
 * turn those on. On failure ich_last_error() or a printed line says why. */
static inline ich_status recipe_build(const recipe_options *r, const ich_window *base,
                                      ich_window **out)
{
    ich_window *w = NULL;
    int32_t rows = 0, cols = 0;
    ich_resize_method method = ICH_RESIZE_BILINEAR;
    float mean[ICH_WINDOW_MAX_CHANNELS], std[ICH_WINDOW_MAX_CHANNELS];
    int norm = ich_window_get_normalization(base, mean, std);
    if (base)
        ich_window_get_size(base, &rows, &cols, &method);
    if (r->size >= 0)
        rows = cols = r->size;
    if (r->resize >= 0)
        method = (ich_resize_method)r->resize;
    ich_status st = ich_window_create(&w);
    if (!st && r->windows && strcmp(r->windows, "none") != 0)
        st = ich_window_add_list(w, r->windows);
    for (int i = 0; !st && !r->windows && i < ich_window_count(base); i++) {
        float center, width;
        ich_window_get(base, i, &center, &width);
        st = ich_window_add(w, center, width);
    }
    if (!st)
        st = ich_window_set_mode(w, r->minmax ? ICH_WINDOW_MINMAX : ich_window_get_mode(base));
    if (!st)
        st = ich_window_set_size(w, rows, cols, method);
    if (!st)
        st = ich_window_set_quantize(w, r->quantize || ich_window_get_quantize(base));
    if (!st)
        st = r->normalize ? ich_window_set_normalization(w, r->mean, r->std, r->normalize)
                          : ich_window_set_normalization(w, mean, std, norm);
    if (!st)
        st = ich_window_set_neighbors(w, ich_window_get_neighbors(base));
    if (st) {
        ich_window_free(w);
        w = NULL;
    }
    *out = w;
    return st;
}

/* The recipe the options describe on top of `base`: --recipe replaces
 * the base, the other options change it. */
static inline ich_status recipe_from_options(const recipe_options *r, const ich_window *base,
                                             ich_window **out)
{
    ich_window *given = NULL;
    if (r->recipe) {
        ich_status st = recipe_read(r->recipe, &given);
        if (st)
            return st;
        base = given;
    }
    ich_status st = recipe_build(r, base, out);
    ich_window_free(given);
    return st;
}

/* The input recipe for a trained model (ich-predict, ich-evaluate): its
 * checkpoint's, changed by the recipe options; a checkpoint without one is
 * refused (ICH_ERR_NOT_FOUND) unless the options give one (--recipe, or
 * --windows/--minmax on top of an empty recipe at the model's size). The
 * result is checked against the model's input. */
static inline ich_status recipe_for_model(const recipe_options *r, ich_model *model,
                                          ich_window **out)
{
    ich_window *base = NULL;
    *out = NULL;
    ich_status st = ich_model_input_window(model, &base);
    if (st == ICH_ERR_NOT_FOUND && recipe_options_given(r)) {
        int32_t channels, rows = 0, columns = 0;
        ich_model_input_shape(model, &channels, &rows, &columns);
        st = ich_window_create(&base);
        if (!st)
            st = ich_window_set_size(base, rows, columns, ICH_RESIZE_BILINEAR);
    }
    if (!st && recipe_options_given(r)) {
        ich_window *changed = NULL;
        st = recipe_from_options(r, base, &changed);
        ich_window_free(base);
        base = changed;
    }
    if (!st)
        st = ich_model_set_input_window(model, base);
    if (st)
        ich_window_free(base);
    else
        *out = base;
    return st;
}

#endif
