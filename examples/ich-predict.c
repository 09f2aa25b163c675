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
 * status is then 1. The work is one library call, ich_predict_folder()
 * (<ich/pipeline.h>); this program parses the options, opens the model
 * and prints the summary.
 *
 *   ich-predict model.safetensors scans/ --out predictions.csv --format rsna
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ich/ich.h>

#include "common.h"

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

/* The output columns' names are the checkpoint's "ich.labels", or the
 * RSNA six for a 6-output checkpoint without them (the library's one
 * rule, ich_labels_of_model()): checked here so the message names the
 * checkpoint before any file is read. */
static int check_labels(const char *path, const ich_model *model)
{
    ich_labels *names = NULL;
    if (ich_labels_of_model(model, &names)) {
        fprintf(stderr, "ich-predict: %s: %s\n", path, ich_last_error());
        return -1;
    }
    ich_labels_free(names);
    return 0;
}

static int open_model(const char *path, const recipe_options *recipe, ich_model **model,
                      ich_window **window)
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
    return check_labels(path, *model);
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
    o.quiet |= other_rank(); /* under mpirun: rank 0 alone prints progress and summary */
    if (use_backend("ich-predict", o.backend, o.quiet))
        return 1;
    show_warnings("ich-predict"); /* each bad or skipped file, by name */
    ich_model *model = NULL;
    ich_window *window = NULL;
    rc = open_model(checkpoint, &o.recipe, &model, &window) ? 1 : 0;
    ich_predict_options po;
    ich_predict_options_init(&po);
    po.window = window;
    po.threshold = o.threshold;
    po.batch_size = o.batch;
    po.threads = o.threads;
    po.format = o.rsna ? ICH_PREDICT_RSNA : ICH_PREDICT_CSV;
    /* the callback also when quiet: it stops the work on Ctrl-C */
    progress_bar bar = {now(), "images", o.quiet};
    po.progress = show_progress;
    po.progress_user = &bar;
    catch_interrupt();
    ich_predict_summary done;
    memset(&done, 0, sizeof done);
    done.size = sizeof done;
    ich_status st = rc ? ICH_OK : ich_predict_folder(model, input, o.out, &po, &done);
    if (!rc && st != ICH_OK) {
        if (!bar.hidden && done.files)
            fputc('\n', stderr);
        rc = report_failure("ich-predict", st); /* 130 after Ctrl-C */
    } else if (!rc) {
        if (!bar.hidden && done.files)
            fputc('\n', stderr);
        if (!o.quiet)
            printf("%lld predicted, %lld failed -> %s\n", (long long)done.predicted,
                   (long long)done.failed, o.out);
        if (done.files == 0 && !other_rank())
            fprintf(stderr, "ich-predict: no DICOM files in %s\n", input);
        rc = done.failed || done.skipped || done.files == 0;
    }
    ich_window_free(window);
    ich_model_free(model);
    return rc;
}
