/*
 * ich-augment — the pipeline's offline augmentation step.
 *
 * Reads the training split's label CSV (after ich-split) and tops up its
 * minority labels: for each label with fewer than --target positive rows
 * (default: as many as the most common label), it draws rows positive for
 * that label and writes augmented copies of their images IMAGE_DIR/<id>.png
 * as OUT_DIR/<id>_aug_<k>.png (flips, rotation, brightness/contrast, blur,
 * elastic deformation: --recipe), then writes the training CSV with the new
 * rows after the old ones. A copy counts for every label its image
 * carries. Seeded: the same --seed gives the same files. Pass OUT_DIR =
 * IMAGE_DIR to keep all training images in one folder. Exit status 1 when
 * a label stays under the target (no positive row, or images unreadable).
 *
 *   ich-augment splits/train.csv images/ images/ --target 2000 --seed 1
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ich/ich.h>

#include "common.h"

#define DEFAULT_RECIPE \
    "hflip:0.5,rotate:0.7:15,brightness_contrast:0.5:0.1:0.1,blur:0.2:0.5:1.5,elastic:0.3:30:5"

typedef struct options {
    const char *train_csv, *image_dir, *out_dir, *out_csv, *recipe;
    int64_t target;
    uint64_t seed;
    int threads;
    int quiet;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-augment TRAIN.csv IMAGE_DIR OUT_DIR [options]\n"
            "Write augmented copies of minority-label training images until every label has\n"
            "--target positive rows, and the training CSV with the new rows.\n\n"
            "  --target N       positives wanted per label (default 0: the largest label's count)\n"
            "  --recipe SPEC    transforms, e.g. \"hflip:0.5,rotate:0.5:15,blur:0.2:0.5:1.5\"\n"
            "                   (default " DEFAULT_RECIPE ")\n"
            "  --seed S         random seed (default 0)\n"
            "  --threads N      worker threads (default: all cores)\n"
            "  --out-csv PATH   the new training CSV (default OUT_DIR/train_augmented.csv)\n"
            "  --quiet          no progress bar or tables\n"
            "  --help           this text\n");
}

static int parse_count(const char *text, const char *what, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < 0 || v > hi) {
        fprintf(stderr, "ich-augment: %s must be an integer in 0..%lld, not \"%s\"\n", what, hi,
                text);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"target", required_argument, 0, 't'}, {"recipe", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 's'},   {"threads", required_argument, 0, 'j'},
        {"out-csv", required_argument, 0, 'o'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    *o = (options){.recipe = DEFAULT_RECIPE};
    long long v;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't': if (parse_count(optarg, "--target", INT64_MAX, &v)) return -1; o->target = v; break;
        case 's': if (parse_count(optarg, "--seed", INT64_MAX, &v)) return -1; o->seed = (uint64_t)v; break;
        case 'j': if (parse_count(optarg, "--threads", 1024, &v)) return -1; o->threads = (int)v; break;
        case 'r': o->recipe = optarg; break;
        case 'o': o->out_csv = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (argc - optind != 3) {
        usage(stderr);
        return -1;
    }
    o->train_csv = argv[optind];
    o->image_dir = argv[optind + 1];
    o->out_dir = argv[optind + 2];
    return 0;
}

/* Warnings (an unreadable image, a label without positives) go to stderr. */
static void print_log(ich_log_level level, const char *message, void *user)
{
    (void)level;
    (void)user;
    fprintf(stderr, "\rich-augment: %s\n", message);
}

static int count_positives(const ich_labels *t, int64_t *counts)
{
    if (ich_labels_positives(t, counts, ich_labels_columns(t)) != ICH_OK) {
        fprintf(stderr, "ich-augment: %s\n", ich_last_error());
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    ich_augment *augment = NULL;
    if (ich_augment_create(&augment) != ICH_OK || ich_augment_parse(augment, o.recipe) != ICH_OK) {
        fprintf(stderr, "ich-augment: --recipe: %s\n", ich_last_error());
        ich_augment_free(augment);
        return 2;
    }
    ich_set_log_callback(print_log, NULL, ICH_LOG_WARNING);
    ich_labels *train = NULL, *result = NULL;
    char default_csv[4096];
    snprintf(default_csv, sizeof default_csv, "%s/train_augmented.csv", o.out_dir);
    const char *out_csv = o.out_csv ? o.out_csv : default_csv;
    int status = 1;
    int64_t before[ICH_LABELS_MAX_COLUMNS], after[ICH_LABELS_MAX_COLUMNS];
    if (ich_labels_read(o.train_csv, &train) != ICH_OK) {
        fprintf(stderr, "ich-augment: %s\n", ich_last_error());
        goto done;
    }
    if (count_positives(train, before) != 0)
        goto done;
    int32_t columns = ich_labels_columns(train);
    int64_t target = o.target;
    for (int32_t c = 0; c < columns && o.target == 0; c++)
        target = before[c] > target ? before[c] : target;

    char recipe[4096];
    ich_augment_describe(augment, recipe, sizeof recipe);
    if (!o.quiet)
        printf("ich-augment: %" PRId64 " training rows, target %" PRId64
               " positives per label, recipe \"%s\"\n",
               ich_labels_rows(train), target, recipe);
    ich_augment_offline_options opt;
    ich_augment_offline_options_init(&opt);
    opt.target = target;
    opt.seed = o.seed;
    opt.threads = o.threads;
    double start = now();
    int bar = !o.quiet && isatty(STDERR_FILENO);
    progress_bar bar_state = {start, "source images", !bar};
    opt.progress = show_progress; /* also without a bar: it stops the work on Ctrl-C */
    opt.progress_user = &bar_state;
    catch_interrupt();
    ich_status st = ich_augment_offline(augment, train, o.image_dir, o.out_dir, &opt, &result);
    if (bar)
        fputc('\n', stderr);
    if (st != ICH_OK) {
        status = report_failure("ich-augment", st);
        goto done;
    }
    if (ich_labels_write(result, out_csv) != ICH_OK) {
        fprintf(stderr, "ich-augment: %s\n", ich_last_error());
        goto done;
    }
    if (count_positives(result, after) != 0)
        goto done;
    status = 0;
    if (!o.quiet)
        printf("%-20s %10s %10s\n", "label", "before", "after");
    for (int32_t c = 0; c < columns; c++) {
        if (!o.quiet)
            printf("%-20s %10" PRId64 " %10" PRId64 "%s\n", ich_labels_column_name(train, c),
                   before[c], after[c], after[c] < target ? "  (under the target)" : "");
        if (after[c] < target)
            status = 1;
    }
    if (!o.quiet)
        printf("ich-augment: %" PRId64 " new images in %s, %" PRId64 " rows in %s (%.2f s)\n",
               ich_labels_rows(result) - ich_labels_rows(train), o.out_dir,
               ich_labels_rows(result), out_csv, now() - start);
done:
    ich_labels_free(result);
    ich_labels_free(train);
    ich_augment_free(augment);
    return status;
}
