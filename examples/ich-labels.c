/*
 * ich-labels — the pipeline's first two steps: labels and sampling.
 *
 * RSNA ships its labels in a "long" CSV, one row per image and subtype
 * (ID_<image>_<subtype>,<0|1>, 4.5 million rows, some twice); training wants
 * one row per image with six columns. `pivot` reads a long or wide CSV,
 * checks that "any" is the OR of the subtypes (and fixes it with --fix-any)
 * and writes the wide table. `propagate` turns labels given per scan (a
 * folder per patient, a sub-folder per scan) into one row per slice file,
 * the tutorial's first step. `sample` draws N images per label, seeded, so
 * that rare hemorrhage types are as frequent as common ones in training.
 * `stats` prints the rows and positives per label of a label CSV.
 *
 *   ich-labels pivot stage_2_train.csv labels.csv --fix-any
 *   ich-labels sample labels.csv sample.csv --per-label 10000 --seed 1
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ich/ich.h>

#include "common.h"

static const char *program = "ich-labels";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-labels COMMAND ARGUMENTS [options]\n"
            "Label CSVs of the hemorrhage pipeline.\n\n"
            "  pivot IN.csv OUT.csv [--fix-any]\n"
            "        long (RSNA ID,Label) or wide CSV in, wide CSV out (one row per image);\n"
            "        prints positives per label and rows whose any is not the OR of the\n"
            "        subtypes; --fix-any sets any to that OR\n"
            "  propagate ROOT SCANS.csv OUT.csv\n"
            "        ROOT/<patient>/<scan>/<slice>.dcm|png and one label row per scan\n"
            "        (patient, scan and label columns) -> one row per slice\n"
            "  sample IN.csv OUT.csv --per-label N [--seed S] [--no-negatives]\n"
            "        N images positive for each label (all when fewer) plus N without any\n"
            "        positive label (unless --no-negatives), seeded\n"
            "  stats IN.csv\n"
            "        rows and positives per label\n\n"
            "  --quiet   print only errors (stats still prints its table: that is its result)\n"
            "  --help    this text\n"
            "Exit status: 0 done, 1 failed, 2 bad usage.\n");
}

static int quiet;

/* libich's warnings (missing scan folders, any mismatches) go to stderr. */
static void print_log(ich_log_level level, const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "%s: %s\n", level >= ICH_LOG_ERROR ? "error" : "warning", message);
}

static int fail(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", program, what, ich_last_error());
    return 1;
}

static int read_labels(const char *path, ich_labels **labels)
{
    if (!quiet)
        fprintf(stderr, "reading %s ...\n", path);
    double start = now();
    if (ich_labels_read(path, labels) != ICH_OK)
        return fail("read");
    if (!quiet)
        fprintf(stderr, "  %" PRId64 " images in %.1f s\n", ich_labels_rows(*labels),
                now() - start);
    return 0;
}

/* Rows, then one line per label with its positives and their share
 * (pivot, propagate and sample print it only without --quiet). */
static int print_stats(const ich_labels *labels)
{
    int32_t columns = ich_labels_columns(labels);
    int64_t rows = ich_labels_rows(labels);
    int64_t counts[ICH_LABELS_MAX_COLUMNS];
    if (ich_labels_positives(labels, counts, columns) != ICH_OK)
        return fail("stats");
    printf("rows: %" PRId64 "\n", rows);
    printf("%-18s %10s %8s\n", "label", "positives", "share");
    for (int32_t c = 0; c < columns; c++)
        printf("%-18s %10" PRId64 " %7.2f%%\n", ich_labels_column_name(labels, c), counts[c],
               rows ? 100.0 * (double)counts[c] / (double)rows : 0.0);
    return 0;
}

static int write_labels(const ich_labels *labels, const char *path)
{
    if (ich_labels_write(labels, path) != ICH_OK)
        return fail("write");
    if (!quiet)
        fprintf(stderr, "wrote %s (%" PRId64 " rows)\n", path, ich_labels_rows(labels));
    return 0;
}

static int cmd_pivot(const char *in, const char *out, int fix_any)
{
    ich_labels *labels = NULL;
    if (read_labels(in, &labels))
        return 1;
    int64_t mismatches = 0;
    ich_status st = ich_labels_check_any(labels, fix_any, &mismatches);
    int rc = 0;
    if (st == ICH_ERR_NOT_FOUND) {
        if (!quiet)
            printf("no \"any\" column: any check skipped\n");
    } else if (st != ICH_OK) {
        rc = fail("check any");
    } else if (!quiet) {
        printf("any != OR of the subtypes: %" PRId64 " rows%s\n", mismatches,
               fix_any && mismatches ? " (fixed)" : "");
    }
    if (!rc && !quiet)
        rc = print_stats(labels);
    if (!rc)
        rc = write_labels(labels, out);
    ich_labels_free(labels);
    return rc;
}

static int cmd_propagate(const char *root, const char *scans, const char *out)
{
    ich_labels *labels = NULL;
    if (!quiet)
        fprintf(stderr, "listing %s ...\n", root);
    if (ich_labels_propagate(root, scans, &labels) != ICH_OK)
        return fail("propagate");
    int rc = quiet ? 0 : print_stats(labels);
    if (!rc)
        rc = write_labels(labels, out);
    ich_labels_free(labels);
    return rc;
}

static int cmd_sample(const char *in, const char *out, const ich_sample_options *options)
{
    ich_labels *labels = NULL, *sample = NULL;
    if (read_labels(in, &labels))
        return 1;
    int rc = 0;
    if (ich_labels_sample(labels, options, &sample) != ICH_OK)
        rc = fail("sample");
    if (!rc && !quiet)
        rc = print_stats(sample);
    if (!rc)
        rc = write_labels(sample, out);
    ich_labels_free(sample);
    ich_labels_free(labels);
    return rc;
}

static int cmd_stats(const char *in)
{
    ich_labels *labels = NULL;
    if (read_labels(in, &labels))
        return 1;
    int rc = print_stats(labels);
    ich_labels_free(labels);
    return rc;
}

static int parse_i64(const char *text, int64_t lo, const char *what, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo) {
        fprintf(stderr, "%s: %s must be an integer >= %lld, not \"%s\"\n", program, what,
                (long long)lo, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int bad_usage(const char *message)
{
    if (message)
        fprintf(stderr, "%s: %s\n", program, message);
    usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"fix-any", no_argument, 0, 'f'},     {"per-label", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},  {"no-negatives", no_argument, 0, 'N'},
        {"quiet", no_argument, 0, 'q'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int fix_any = 0, have_per_label = 0;
    ich_sample_options sample;
    ich_sample_options_init(&sample);
    int64_t value;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fix_any = 1; break;
        case 'n':
            if (parse_i64(optarg, 1, "--per-label", &value))
                return 2;
            sample.per_label = value;
            have_per_label = 1;
            break;
        case 's':
            if (parse_i64(optarg, 0, "--seed", &value))
                return 2;
            sample.seed = (uint64_t)value;
            break;
        case 'N': sample.negatives = 0; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: return bad_usage(NULL);
        }
    }
    if (optind >= argc)
        return bad_usage("no command");
    const char *command = argv[optind];
    char **args = argv + optind + 1;
    int nargs = argc - optind - 1;
    ich_set_log_callback(print_log, NULL, quiet ? ICH_LOG_ERROR : ICH_LOG_WARNING);

    if (strcmp(command, "pivot") == 0) {
        if (nargs != 2)
            return bad_usage("pivot takes IN.csv OUT.csv");
        return cmd_pivot(args[0], args[1], fix_any);
    }
    if (strcmp(command, "propagate") == 0) {
        if (nargs != 3)
            return bad_usage("propagate takes ROOT SCANS.csv OUT.csv");
        return cmd_propagate(args[0], args[1], args[2]);
    }
    if (strcmp(command, "sample") == 0) {
        if (nargs != 2)
            return bad_usage("sample takes IN.csv OUT.csv");
        if (!have_per_label)
            return bad_usage("sample needs --per-label N");
        return cmd_sample(args[0], args[1], &sample);
    }
    if (strcmp(command, "stats") == 0) {
        if (nargs != 1)
            return bad_usage("stats takes IN.csv");
        return cmd_stats(args[0]);
    }
    fprintf(stderr, "%s: unknown command \"%s\"\n", program, command);
    return bad_usage(NULL);
}
