/*
 * ich-evaluate — the pipeline's evaluation step.
 *
 * Loads a checkpoint, predicts every image of a labelled set (a label CSV,
 * wide or RSNA's long format, and a folder of DICOM or PNG images) with the
 * input recipe stored in the checkpoint (a checkpoint without one is
 * refused unless --recipe or --windows/--minmax give it), and writes a report folder: a
 * self-contained report.html (summary, per-class table, figures inline),
 * roc.svg, confusion_<class>.svg, loss.svg and accuracy.svg (from the
 * checkpoint's training history), metrics.csv, metrics.json and
 * predictions.csv (ich_evaluate_report() in <ich/report.h>).
 *
 *   ich-evaluate model.safetensors test_labels.csv images/ report/
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ich/ich.h>

#include "common.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-evaluate CHECKPOINT LABELS.csv IMAGE_DIR OUT_DIR [options]\n"
            "Evaluate a checkpoint on labelled images and write a report folder\n"
            "(report.html, roc.svg, confusion_*.svg, loss.svg, accuracy.svg,\n"
            "metrics.csv, metrics.json, predictions.csv).\n"
            "  --batch-size N   images per prediction batch (default 16)\n"
            "  --threads N      compute threads (default: one per CPU)\n"
            "  --backend NAME   auto, cpu or cuda (default: $ICH_BACKEND, else auto)\n"
            "  --quiet          no progress output\n"
            "  --help           this text\n"
            "The input recipe is the checkpoint's (\"ich.recipe\"); a checkpoint without\n"
            "one is refused unless these give it (they also change a checkpoint's):\n"
            RECIPE_HELP
            "Exit status: 0 ok, 1 evaluation failed or label rows left out (the report\n"
            "then covers the rest and says how many), 2 bad usage.\n");
}

static int parse_int(const char *text, long lo, long hi, const char *name, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "ich-evaluate: %s must be an integer in %ld..%ld, not \"%s\"\n", name,
                lo, hi, text);
        return 1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    int batch = 16, threads = 0, quiet = 0, c, handled;
    const char *backend = NULL;
    recipe_options recipe;
    recipe_options_init(&recipe);
    static const struct option longopts[] = {
        RECIPE_LONGOPTS,
        {"batch-size", required_argument, 0, 'b'}, {"threads", required_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},            {"help", no_argument, 0, 'h'},
        {"backend", required_argument, 0, 'B'},    {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "b:j:qhB:", longopts, NULL)) != -1) {
        if ((handled = recipe_option(c, optarg, &recipe, "ich-evaluate")) != 0) {
            if (handled < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'b':
            if (parse_int(optarg, 1, 65536, "--batch-size", &batch))
                return 2;
            break;
        case 'j':
            if (parse_int(optarg, 0, 1024, "--threads", &threads))
                return 2;
            break;
        case 'q': quiet = 1; break;
        case 'B': backend = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != 4) {
        usage(stderr);
        return 2;
    }
    const char *checkpoint = argv[optind], *labels = argv[optind + 1],
               *images = argv[optind + 2], *out = argv[optind + 3];
    ich_set_threads(threads);
    if (!quiet)
        show_warnings("ich-evaluate"); /* rows left out of the dataset, by ID */
    /* under mpirun: rank 0 alone prints progress and the summary; every
     * rank its warnings (the images of its share) */
    quiet |= other_rank();
    if (use_backend("ich-evaluate", backend, quiet))
        return 1;
    ich_evaluate_options options;
    ich_evaluate_options_init(&options);
    options.batch_size = batch;
    ich_window *window = NULL;
    if (recipe_options_given(&recipe)) {
        /* the recipe the options give, checked against the checkpoint's model */
        ich_model *model = NULL;
        ich_status st = ich_model_load(checkpoint, &model);
        if (!st)
            st = recipe_for_model(&recipe, model, &window);
        ich_model_free(model);
        if (st) {
            fprintf(stderr, "ich-evaluate: %s: %s\n", checkpoint, ich_last_error());
            return 2;
        }
        options.window = window;
    }
    progress_bar bar = {now(), "images", quiet};
    options.progress = show_progress; /* also when quiet: it stops the work on Ctrl-C */
    options.progress_user = &bar;
    catch_interrupt();
    ich_evaluate_summary summary = {.size = sizeof summary};
    options.summary = &summary;
    ich_status st = ich_evaluate_report(checkpoint, labels, images, out, &options);
    ich_window_free(window);
    if (!quiet)
        fputc('\n', stderr);
    if (st == ICH_ERR_CANCELLED)
        return report_failure("ich-evaluate", st);
    if (st) {
        fprintf(stderr, "ich-evaluate: %s: %s\n", ich_status_string(st), ich_last_error());
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "ich-evaluate: report written to %s/report.html (%.1f s)\n", out,
                now() - bar.start);
    if (summary.left_out > 0) {
        /* the report covers the rest; the status says it is incomplete */
        if (!other_rank())
            fprintf(stderr,
                    "ich-evaluate: %lld of %lld label rows left out (no image, or an image that "
                    "could not be read); exit status 1\n",
                    (long long)summary.left_out, (long long)summary.rows);
        return 1;
    }
    return 0;
}
