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
 * file failed or was skipped. The work is one library call,
 * ich_preprocess_folder() (<ich/pipeline.h>); this program parses the
 * options, draws the progress bar and prints the summary.
 *
 *   ich-preprocess scans/ images/ --windows blood,brain,bone --size 256
 *   ich-preprocess scans/ images/ --recipe tutorial     # the tutorial's steps
 */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ich/ich.h>

#include "common.h"

/* libich's matrix products run on OpenBLAS, whose load-time initialiser
 * starts a pool of (CPUs - 1) threads that spin (sched_yield) for about
 * 0.1 s waiting for work: CPU time taken from the workers on every run
 * (a tenth of ich-preprocess's on 300 slices), and preprocessing does no
 * matrix product. OpenBLAS's fork handler, blas_thread_shutdown_, stops
 * them (its next threaded product starts them again), so it is called
 * when the loaded BLAS has it. (Setting OPENBLAS_NUM_THREADS from the
 * program is too late: the initialiser has run before main.) */
static void stop_blas_threads(void)
{
    int (*shutdown)(void);
    *(void **)&shutdown = dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
    if (shutdown)
        shutdown();
}

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

int main(int argc, char **argv)
{
    options opts;
    const char *in_dir, *out_dir;
    stop_blas_threads();
    if (parse_options(argc, argv, &opts, &in_dir, &out_dir) != 0)
        return 2;
    opts.quiet |= other_rank(); /* under mpirun: rank 0 alone prints progress and summary */
    ich_window *window = make_window(&opts);
    if (!window)
        return 2;
    show_warnings("ich-preprocess"); /* each bad or skipped file, by name */
    ich_preprocess_options po;
    ich_preprocess_options_init(&po);
    po.threads = opts.threads;
    po.overwrite = opts.force;
    /* the callback also when the bar is hidden: it stops the work on Ctrl-C */
    progress_bar bar = {now(), "img", opts.quiet || !isatty(STDERR_FILENO)};
    po.progress = show_progress;
    po.progress_user = &bar;
    catch_interrupt();
    ich_preprocess_summary done;
    memset(&done, 0, sizeof done);
    done.size = sizeof done;
    ich_status st = ich_preprocess_folder(in_dir, out_dir, window, &po, &done);
    double elapsed = now() - bar.start;
    if (!bar.hidden && done.files)
        fputc('\n', stderr);
    ich_window_free(window);
    if (st != ICH_OK)
        return report_failure("ich-preprocess", st); /* 130 after Ctrl-C */
    if (done.files == 0 && !other_rank())
        fprintf(stderr, "ich-preprocess: no DICOM files under %s\n", in_dir);
    char ranks[32] = ""; /* under mpirun: the counts are every rank's */
    if (ich_dist_size() > 1)
        snprintf(ranks, sizeof ranks, " x %d ranks", (int)ich_dist_size());
    if (!opts.quiet)
        printf("ich-preprocess: %lld converted, %lld already there, %lld failed, of %lld DICOM "
               "files in %.2f s (%.1f images/s, %d threads%s)\n",
               (long long)done.converted, (long long)done.existing, (long long)done.failed,
               (long long)done.files, elapsed,
               elapsed > 0 ? (double)done.converted / elapsed : 0.0, (int)done.threads, ranks);
    return done.failed > 0 || done.skipped > 0;
}
