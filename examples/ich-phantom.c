/*
 * ich-phantom — the pipeline's built-in data step.
 *
 * The RSNA brain-CT data cannot be shipped, so this writes a synthetic
 * stand-in with ich_phantom_write(): patients, each with studies of one
 * axial series from the skull base to the vertex, as real CT DICOM files
 * made to pass for head CT (anatomy varying by patient and level, the
 * skull base, grey and white matter, CSF spaces, calcifications, CT noise
 * texture and artifacts, and the five hemorrhage types as they appear;
 * <ich/phantom.h> has the details),
 * with the RSNA-style labels.csv (ID_<image>_<subtype>,Label), metadata.csv
 * and scans.csv (scan-level labels). Images go to OUTPUT_DIR/images/,
 * flat like RSNA's or as <patient>/<scan>/ folders. Everything follows from
 * the options and the seed: the same command gives the same bytes.
 *
 *   ich-phantom data/ --patients 20 --slices 24 --size 512 --seed 0
 *   ich-phantom --stats --patients 20      (the realism report, nothing written)
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ich/ich.h>

#include "common.h"
#include "phantom_stats.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-phantom OUTPUT_DIR [options]\n"
            "       ich-phantom --stats [options]\n"
            "Write a synthetic head-CT dataset: OUTPUT_DIR/images/ID_<image>.dcm (or\n"
            "images/<patient>/<scan>/ with --layout tree), labels.csv (RSNA long format),\n"
            "metadata.csv and scans.csv.\n\n"
            "  --patients P     number of patients, 1..100000 (default 20)\n"
            "  --studies S      studies per patient, one series each, 1..100 (default 1)\n"
            "  --slices N       slices per series, 1..1000 (default 24)\n"
            "  --size N         rows and columns, 16..4096 (default 512)\n"
            "  --prevalence X   share of series with a hemorrhage, 0..1 (default 0.5)\n"
            "  --noise SD       scanner noise in HU, 0..500 (default 6)\n"
            "  --layout L       flat or tree (default flat)\n"
            "  --vary-intercept each series gets rescale intercept -1024, -1000 or 0\n"
            "                   (default: -1024 for all; the HU are the same)\n"
            "  --stats          write nothing: print the realism report of the slices\n"
            "                   these options describe (HU per tissue with histograms,\n"
            "                   noise level and texture, lesion sizes, label shares)\n"
            "  --threads N      worker threads, 0 = one per core (default 0)\n"
            "  --seed S         random seed, 0..2^64-1 (default 0)\n"
            "  --quiet          no progress bar or summary\n"
            "  --help           show this help\n");
}

/* Parse a whole number in [lo, hi]; 0 on success. */
static int parse_uint(const char *option, const char *text, uint64_t lo, uint64_t hi,
                      uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text ? text : "", &end, 10);
    if (!text || !*text || *end || text[0] == '-' || errno == ERANGE || v < lo || v > hi) {
        fprintf(stderr, "ich-phantom: %s needs a whole number from %" PRIu64 " to %" PRIu64
                        ", got '%s'\n", option, lo, hi, text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_real(const char *option, const char *text, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(text ? text : "", &end);
    if (!text || !*text || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "ich-phantom: %s needs a number from %g to %g, got '%s'\n", option, lo,
                hi, text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

/* Parse argv into options; returns 0, or the exit status (2 bad usage, or
 * -1 after --help). */
static int parse_args(int argc, char **argv, ich_phantom_options *o, const char **out_dir,
                      int *quiet, int *stats)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u = 0;
        double d = 0;
        int bad = 0;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(arg, "--quiet")) {
            *quiet = 1;
            continue;
        } else if (!strcmp(arg, "--stats")) {
            *stats = 1;
            continue;
        } else if (!strcmp(arg, "--vary-intercept")) {
            o->vary_intercept = 1;
            continue;
        } else if (!strcmp(arg, "--patients")) {
            bad = parse_uint(arg, value, 1, 100000, &u) || (o->patients = (int32_t)u, 0);
        } else if (!strcmp(arg, "--studies")) {
            bad = parse_uint(arg, value, 1, 100, &u) || (o->studies_per_patient = (int32_t)u, 0);
        } else if (!strcmp(arg, "--slices")) {
            bad = parse_uint(arg, value, 1, 1000, &u) || (o->slices = (int32_t)u, 0);
        } else if (!strcmp(arg, "--size")) {
            bad = parse_uint(arg, value, 16, 4096, &u) || (o->rows = o->columns = (int32_t)u, 0);
        } else if (!strcmp(arg, "--threads")) {
            bad = parse_uint(arg, value, 0, 1024, &u) || (o->threads = (int32_t)u, 0);
        } else if (!strcmp(arg, "--seed")) {
            bad = parse_uint(arg, value, 0, UINT64_MAX, &u) || (o->seed = u, 0);
        } else if (!strcmp(arg, "--prevalence")) {
            bad = parse_real(arg, value, 0, 1, &d) || (o->prevalence = d, 0);
        } else if (!strcmp(arg, "--noise")) {
            bad = parse_real(arg, value, 0, 500, &d) || (o->noise = d, 0);
        } else if (!strcmp(arg, "--layout")) {
            if (value && !strcmp(value, "flat")) {
                o->layout = ICH_PHANTOM_FLAT;
            } else if (value && !strcmp(value, "tree")) {
                o->layout = ICH_PHANTOM_TREE;
            } else {
                fprintf(stderr, "ich-phantom: --layout needs flat or tree, got '%s'\n",
                        value ? value : "");
                bad = 1;
            }
        } else if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "ich-phantom: unknown option '%s' (try --help)\n", arg);
            return 2;
        } else if (!*out_dir) {
            *out_dir = arg;
            continue;
        } else {
            fprintf(stderr, "ich-phantom: one OUTPUT_DIR only, got '%s' too\n", arg);
            return 2;
        }
        if (bad)
            return 2;
        i++; /* the option's value */
    }
    if (!*out_dir && !*stats) {
        usage(stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    ich_phantom_options o;
    ich_phantom_options_init(&o);
    const char *out_dir = NULL;
    int quiet = 0, stats = 0;
    int rc = parse_args(argc, argv, &o, &out_dir, &quiet, &stats);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (stats)
        return phantom_stats(&o);

    double start = now();
    int bar = !quiet && isatty(STDERR_FILENO);
    progress_bar bar_state = {start, "slices", !bar};
    o.progress = show_progress; /* also without a bar: it stops the work on Ctrl-C */
    o.progress_user = &bar_state;
    catch_interrupt();
    int64_t written = 0;
    ich_status st = ich_phantom_write(out_dir, &o, &written);
    if (bar)
        fputc('\n', stderr);
    if (st != ICH_OK)
        return report_failure("ich-phantom", st);
    if (!quiet)
        printf("ich-phantom: %" PRId64 " slices of %dx%d (%d patients x %d studies x %d slices) "
               "in %s/images, labels in %s/labels.csv, %.2f s\n", written, (int)o.rows,
               (int)o.columns, (int)o.patients, (int)o.studies_per_patient, (int)o.slices,
               out_dir, out_dir, now() - start);
    return 0;
}
