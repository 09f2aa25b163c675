/*
 * ich-train — the pipeline's training step.
 *
 * Trains a CNN on labelled slices (the training CSV of ich-split, images in
 * IMAGE_DIR as DICOM <id>.dcm or preprocessed PNG <id>.png), validating on
 * --val after every epoch: BCE-with-logits (optionally with balanced class
 * weights), Adam/AdamW/SGD, learning rate reduced on plateau, early
 * stopping that ends with the best epoch's weights, optional warm-up with
 * all but the last layer frozen. Writes OUT/best.safetensors,
 * OUT/last.safetensors (resumable checkpoints that also carry the input
 * recipe and label names, so ich-evaluate and ich-predict need nothing
 * else) and OUT/history.csv. A progress bar shows loss, accuracy and ETA;
 * each epoch ends with a summary line. A cascade model (--model "cascade
 * [any NAME] [subtype NAME]") trains its stages in turn ("any", then the
 * subtypes on the any-positive images), each warmed up and fine-tuned
 * (include/ich/train.h); --joint trains both at once as before. Exit
 * status: 0 trained, 1 failed, 2 bad usage.
 *
 *   ich-train splits/train.csv images/ --val splits/val.csv --model ichnet \
 *             --epochs 20 --balanced --out runs/ichnet
 *
 * Under an MPI launcher (mpirun -np N ich-train ..., srun) the N ranks
 * train data-parallel (include/ich/dist.h, include/ich/train.h): each a
 * share of every batch of --batch-size, the same weights on every rank;
 * rank 0 alone prints and writes --out.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ich/ich.h>

#include "common.h"

typedef struct options {
    const char *train_csv, *image_dir, *val_csv, *model, *augment, *out, *resume;
    recipe_options recipe; /* --recipe, --windows, --size, ... */
    const char *backend; /* --backend, NULL: $ICH_BACKEND */
    const char *math;    /* --math, NULL: $ICH_CUDA_MATH */
    const char *pretrained[8]; /* --pretrained [STAGE=]FILE, in order */
    int npretrained;
    int epochs, batch_size, threads, workers, patience, warmup, balanced, quiet;
    int joint, stage_epochs[2]; /* --joint, --stage-epochs A,B */
    double lr, weight_decay, clip, finetune; /* --finetune-lr-factor */
    int optimizer; /* ich_optimizer_kind, -1: Adam */
    unsigned long long seed;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-train TRAIN.csv IMAGE_DIR [options]\n"
            "Train a CNN on the labelled images; checkpoints and history.csv go to --out.\n\n"
            "  --val CSV           validation labels (images in IMAGE_DIR); without it the\n"
            "                      training loss drives the schedule and early stopping\n"
            "  --model M           a preset: tutorial, ichnet, cascade, or torchvision's\n"
            "                      resnet18, resnet50, efficientnet_v2_s, efficientnet_v2_m,\n"
            "                      convnext_tiny, convnext_small, with options\n"
            "                      \"NAME [input CxHxW] [outputs N]\" (default 3x224x224, 6);\n"
            "                      a model spec (\"input 3x64x64, conv 8 3, relu, gap,\n"
            "                      linear 6\"), or a .safetensors file to start from\n"
            "                      (default ichnet)\n"
            "  --epochs N          total epochs (default 10)\n"
            "  --batch-size N      (default 16)\n"
            "  --optimizer NAME    adam, adamw or sgd (default adam)\n"
            "  --lr X              learning rate (default: the optimizer's, Adam 0.001)\n"
            "  --weight-decay X    (default: the optimizer's)\n"
            "  --balanced          positive class weights negatives/positives per label\n"
            "  --clip X            clip the gradient norm to X (default off)\n"
            "  --patience N        early stopping patience in epochs (default 5; 0 off)\n"
            "  --warmup-epochs N   first N epochs train only the last layer (default 0;\n"
            "                      a cascade in stages: of each stage, its head, default 1)\n"
            "Cascade (--model \"cascade [any NAME] [subtype NAME] [input CxHxW]\", the\n"
            "stages' presets, \"small\" for libich's small nets): stage one \"any\" on\n"
            "every image, then stage two the subtypes on the any-positive images, each\n"
            "warmed up, then fine-tuned, with its own schedule and early stopping:\n"
            "  --stage-epochs A,B  epochs of stage one and two (default --epochs each;\n"
            "                      -1 skips a stage)\n"
            "  --finetune-lr-factor X  after the warm-up the lr is X times --lr\n"
            "                      (default 0.1)\n"
            "  --joint             train both stages at once (subtype loss masked by any)\n"
            "  --augment SPEC      online augmentation, e.g. \"hflip:0.5,rotate:0.5:15\"\n"
            "The input recipe (stored in the checkpoints as \"ich.recipe\"); by default\n"
            "the --model file's, else IMAGE_DIR/recipe.txt (written by ich-preprocess),\n"
            "else for --model tutorial the tutorial's (--recipe tutorial), else\n"
            "blood,brain,bone (brain for 1 channel) at the model's size, bilinear.\n"
            "It must make the model's input: libich's presets have fixed sizes\n"
            "(tutorial 512, ichnet and cascade 256); the torchvision ones take input.\n"
            RECIPE_HELP
            "Other options:\n"
            "  --threads N         compute threads (default: all cores)\n"
            "  --backend NAME      auto, cpu or cuda (default: $ICH_BACKEND, else auto)\n"
            "  --math MODE         the GPU's arithmetic: fp32, tf32 or bf16 (bfloat16\n"
            "                      mixed precision) (default: $ICH_CUDA_MATH, else fp32)\n"
            "  --workers N         image loading threads (default 2)\n"
            "  --seed S            shuffling, augmentation, initial weights (default 0)\n"
            "  --out DIR           output folder (default checkpoints)\n"
            "  --resume CKPT       continue the run saved in CKPT (last.safetensors)\n"
            "  --pretrained FILE   start from a backbone (safetensors, e.g. converted by\n"
            "                      python3 -m ich.pretrained X.pth FILE): tensors whose\n"
            "                      name and shape fit are loaded, the rest stay new (the\n"
            "                      head); STAGE=FILE loads into one cascade stage (any=,\n"
            "                      subtype=); repeatable\n"
            "  --quiet             no progress bar or summary lines\n"
            "Under mpirun -np N (or srun) the N ranks train data-parallel: each a share\n"
            "of every batch (--batch-size is the global batch), rank 0 alone prints and\n"
            "writes --out; --threads then counts per rank (default: the cores the\n"
            "launcher bound the rank to).\n"
            "  --help              this text\n");
}

static int bad(const char *option, const char *text, const char *want)
{
    fprintf(stderr, "ich-train: %s must be %s, not \"%s\"\n", option, want, text);
    return -1;
}

static int parse_int(const char *text, int lo, int hi, const char *option, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        char want[64];
        snprintf(want, sizeof want, "an integer in %d..%d", lo, hi);
        return bad(option, text, want);
    }
    *out = (int)v;
    return 0;
}

static int parse_double(const char *text, const char *option, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < 0)
        return bad(option, text, "a number >= 0");
    *out = v;
    return 0;
}

static int parse_optimizer(const char *text, int *out)
{
    if (strcasecmp(text, "adam") == 0)
        *out = ICH_OPTIM_ADAM;
    else if (strcasecmp(text, "adamw") == 0)
        *out = ICH_OPTIM_ADAMW;
    else if (strcasecmp(text, "sgd") == 0)
        *out = ICH_OPTIM_SGD;
    else
        return bad("--optimizer", text, "adam, adamw or sgd");
    return 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    enum { VAL = 256, MODEL, EPOCHS, BATCH, LR, OPTIM, WD, BALANCED, CLIP, PATIENCE, WARMUP,
           AUGMENT, THREADS, WORKERS, SEED, OUT, RESUME, QUIET, HELP,
           BACKEND, MATH, PRETRAINED, JOINT, STAGE_EPOCHS, FINETUNE };
    static const struct option longopts[] = {
        {"val", required_argument, 0, VAL},         {"model", required_argument, 0, MODEL},
        {"epochs", required_argument, 0, EPOCHS},   {"batch-size", required_argument, 0, BATCH},
        {"lr", required_argument, 0, LR},           {"optimizer", required_argument, 0, OPTIM},
        {"weight-decay", required_argument, 0, WD}, {"balanced", no_argument, 0, BALANCED},
        {"clip", required_argument, 0, CLIP},       {"patience", required_argument, 0, PATIENCE},
        {"warmup-epochs", required_argument, 0, WARMUP},
        RECIPE_LONGOPTS,
        {"augment", required_argument, 0, AUGMENT}, {"threads", required_argument, 0, THREADS},
        {"workers", required_argument, 0, WORKERS}, {"seed", required_argument, 0, SEED},
        {"out", required_argument, 0, OUT},         {"resume", required_argument, 0, RESUME},
        {"quiet", no_argument, 0, QUIET},           {"help", no_argument, 0, HELP},
        {"backend", required_argument, 0, BACKEND}, {"math", required_argument, 0, MATH},
        {"pretrained", required_argument, 0, PRETRAINED},
        {"joint", no_argument, 0, JOINT},           {"stage-epochs", required_argument, 0,
                                                     STAGE_EPOCHS},
        {"finetune-lr-factor", required_argument, 0, FINETUNE},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->epochs = 10;
    o->batch_size = 16;
    o->threads = 0;
    o->workers = 2;
    o->patience = 5;
    o->warmup = -1; /* 0, or 1 for a cascade in stages */
    o->finetune = 0.1;
    o->lr = o->weight_decay = -1; /* the optimizer's defaults */
    o->optimizer = ICH_OPTIM_ADAM;
    o->out = "checkpoints";
    recipe_options_init(&o->recipe);
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int rc = recipe_option(c, optarg, &o->recipe, "ich-train");
        if (rc < 0)
            return -1;
        if (rc > 0)
            continue;
        switch (c) {
        case VAL: o->val_csv = optarg; break;
        case MODEL: o->model = optarg; break;
        case EPOCHS: rc = parse_int(optarg, 0, 100000, "--epochs", &o->epochs); break;
        case BATCH: rc = parse_int(optarg, 1, 65536, "--batch-size", &o->batch_size); break;
        case LR: rc = parse_double(optarg, "--lr", &o->lr); break;
        case OPTIM: rc = parse_optimizer(optarg, &o->optimizer); break;
        case WD: rc = parse_double(optarg, "--weight-decay", &o->weight_decay); break;
        case BALANCED: o->balanced = 1; break;
        case CLIP: rc = parse_double(optarg, "--clip", &o->clip); break;
        case PATIENCE: rc = parse_int(optarg, 0, 100000, "--patience", &o->patience); break;
        case WARMUP: rc = parse_int(optarg, 0, 100000, "--warmup-epochs", &o->warmup); break;
        case AUGMENT: o->augment = optarg; break;
        case THREADS: rc = parse_int(optarg, 1, 1024, "--threads", &o->threads); break;
        case WORKERS: rc = parse_int(optarg, 0, 64, "--workers", &o->workers); break;
        case SEED: {
            char *end;
            errno = 0;
            o->seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                rc = bad("--seed", optarg, "an integer in 0..2^64-1");
            break;
        }
        case OUT: o->out = optarg; break;
        case RESUME: o->resume = optarg; break;
        case QUIET: o->quiet = 1; break;
        case BACKEND: o->backend = optarg; break;
        case MATH:
            o->math = optarg;
            if (strcmp(optarg, "fp32") && strcmp(optarg, "tf32") && strcmp(optarg, "bf16"))
                rc = bad("--math", optarg, "fp32, tf32 or bf16");
            break;
        case PRETRAINED:
            if (o->npretrained == 8)
                rc = bad("--pretrained", optarg, "at most 8 of them");
            else
                o->pretrained[o->npretrained++] = optarg;
            break;
        case JOINT: o->joint = 1; break;
        case FINETUNE:
            rc = parse_double(optarg, "--finetune-lr-factor", &o->finetune);
            if (!rc && !(o->finetune > 0))
                rc = bad("--finetune-lr-factor", optarg, "a number > 0");
            break;
        case STAGE_EPOCHS: {
            char a[32] = "", *comma = strchr(optarg, ',');
            snprintf(a, sizeof a, "%.*s", comma ? (int)(comma - optarg) : 0, optarg);
            if (!comma || parse_int(a, -1, 100000, "--stage-epochs", &o->stage_epochs[0]) ||
                parse_int(comma + 1, -1, 100000, "--stage-epochs", &o->stage_epochs[1]))
                rc = comma ? -1 : bad("--stage-epochs", optarg, "two epoch counts A,B");
            break;
        }
        case HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (rc)
            return -1;
    }
    if (argc - optind != 2) {
        usage(stderr);
        return -1;
    }
    o->train_csv = argv[optind];
    o->image_dir = argv[optind + 1];
    return 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "ich-train: %s%s%s\n", what, *what ? ": " : "", ich_last_error());
    return 1;
}

/* ---- The model ------------------------------------------------------------ */

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A saved model (file: *loaded set), a preset or a spec; --resume alone
 * means the resumed checkpoint's network. New networks get weights from
 * --seed. */
static ich_status make_model(const options *o, ich_model **model, int *loaded)
{
    const char *name = o->model ? o->model : o->resume ? o->resume : "ichnet";
    size_t n = strlen(name);
    int looks_like_file = n > 12 && strcmp(name + n - 12, ".safetensors") == 0;
    *loaded = is_file(name) || looks_like_file;
    if (*loaded)
        return ich_model_load(name, model);
    /* a preset with its options ("resnet18 input 1x256x256"), else a spec */
    ich_status st = ich_model_create_preset(name, model);
    if (st == ICH_ERR_NOT_FOUND)
        st = ich_model_create(name, model);
    if (!st)
        st = ich_model_init_weights(*model, o->seed);
    return st;
}

/* --pretrained: the names of the tensors skipped and new, listed up to a few. */
typedef struct pretrained_names {
    char skipped[400], fresh[400];
    int nskipped, nfresh;
} pretrained_names;

static void on_pretrained_tensor(void *user, int32_t kind, const char *name, const char *detail)
{
    (void)detail;
    pretrained_names *p = user;
    if (kind == ICH_PRETRAINED_LOADED)
        return;
    char *list = kind == ICH_PRETRAINED_SKIPPED ? p->skipped : p->fresh;
    int *n = kind == ICH_PRETRAINED_SKIPPED ? &p->nskipped : &p->nfresh;
    size_t at = strlen(list);
    if (*n < 6)
        snprintf(list + at, sizeof p->skipped - at, "%s%s", *n ? ", " : " (", name);
    else if (*n == 6)
        snprintf(list + at, sizeof p->skipped - at, ", ...");
    (*n)++;
}

/* Each --pretrained [STAGE=]FILE into the new model (prefix "STAGE."), with
 * its line: what was loaded, skipped and left new. */
static int load_pretrained(const options *o, ich_model *model)
{
    for (int i = 0; i < o->npretrained; i++) {
        const char *arg = o->pretrained[i], *eq = strchr(arg, '='), *file = arg;
        char prefix[128] = "";
        if (eq && !is_file(arg) && eq - arg < (int)sizeof prefix - 1 && !memchr(arg, '/', eq - arg)) {
            snprintf(prefix, sizeof prefix, "%.*s.", (int)(eq - arg), arg);
            file = eq + 1;
        }
        pretrained_names names;
        memset(&names, 0, sizeof names);
        ich_pretrained_report report = {.size = sizeof report, .tensor_fn = on_pretrained_tensor,
                                        .tensor_user = &names};
        if (ich_model_load_pretrained(model, file, prefix, &report))
            return fail("--pretrained");
        if (!o->quiet)
            printf("pretrained %s%s%.*s: %d tensors loaded, %d skipped%s%s, %d new%s%s\n", file,
                   prefix[0] ? " into " : "", (int)(prefix[0] ? strlen(prefix) - 1 : 0), prefix,
                   report.loaded, report.skipped, names.skipped, names.nskipped ? ")" : "",
                   report.fresh, names.fresh, names.nfresh ? ")" : "");
    }
    return 0;
}

/* ---- The input recipe -------------------------------------------------------- */

static int is_tutorial(const options *o)
{
    return o->model && strcasecmp(o->model, "tutorial") == 0;
}

/* The recipe before the options change it: the model file's, the PNG
 * folder's recipe.txt, the tutorial's for its preset, or the windows the
 * channel count suggests at the model's size. */
static ich_status base_recipe(const options *o, const ich_model *model, ich_window **out)
{
    if (ich_model_input_window(model, out) == ICH_OK)
        return ICH_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/recipe.txt", o->image_dir);
    if (is_file(path)) {
        if (!o->quiet)
            fprintf(stderr, "ich-train: the input recipe of %s\n", path);
        return recipe_read(path, out);
    }
    int32_t channels = 0, rows = 0, columns = 0;
    ich_model_input_shape(model, &channels, &rows, &columns);
    ich_status st = is_tutorial(o) ? ich_window_from_string(TUTORIAL_RECIPE, out)
                                   : ich_window_create(out);
    if (!st && !is_tutorial(o))
        st = ich_window_add_list(*out, channels == 1 ? "brain" : "blood,brain,bone");
    if (!st) {
        ich_resize_method method = ICH_RESIZE_BILINEAR;
        ich_window_get_size(*out, NULL, NULL, &method);
        st = ich_window_set_size(*out, rows, columns, method);
    }
    return st;
}

/* The recipe the datasets apply (ich_train() stores it in the checkpoints).
 * Exit status 2 when it cannot make the model's input. */
static int choose_recipe(const options *o, ich_model *model, ich_window **out)
{
    ich_window *base = NULL;
    ich_status st = o->recipe.recipe ? ICH_OK : base_recipe(o, model, &base);
    if (!st)
        st = recipe_from_options(&o->recipe, base, out);
    ich_window_free(base);
    /* the check ich_train() makes, here so that a bad --size is a usage error */
    if (!st)
        st = ich_model_set_input_window(model, *out);
    if (st) {
        char why[1024];
        snprintf(why, sizeof why, "%s", ich_last_error());
        int32_t channels = 0, rows = 0, columns = 0, c = 0, r = 0, w = 0;
        ich_model_input_shape(model, &channels, &rows, &columns);
        if (*out && ich_window_output_shape(*out, rows, columns, &c, &r, &w) == ICH_OK)
            fprintf(stderr, "ich-train: the input recipe makes %dx%dx%d images, the model "
                            "takes %dx%dx%d (channels x rows x columns): %s; --recipe, "
                            "--windows, --size change the recipe\n",
                    c * (2 * ich_window_get_neighbors(*out) + 1), r, w, channels, rows,
                    columns, why);
        else
            fprintf(stderr, "ich-train: the input recipe: %s\n", why);
        ich_window_free(*out);
        *out = NULL;
        return 2;
    }
    char text[ICH_WINDOW_STRING_MAX];
    if (!o->quiet && ich_window_to_string(*out, text, sizeof text, NULL) == ICH_OK)
        fprintf(stderr, "ich-train: input recipe %s\n", text);
    return 0;
}

/* ---- Progress ------------------------------------------------------------------ */

typedef struct display {
    int quiet;
    double last_draw; /* now() of the last bar drawn */
    int64_t val_batches;
    int has_val;
} display;

/* "epoch 3/10 train [######    ] 12/40  loss 0.2345  acc 0.9120  ETA 34s";
 * the ETA counts a validation batch as a third of a training batch. */
/* "stage 1/2 (any) " in a staged cascade run, else "". */
static const char *stage_label(const ich_train_progress *p)
{
    if (p->stages != 2)
        return "";
    return p->stage == 0 ? "stage 1/2 (any) " : "stage 2/2 (subtypes) ";
}

static void show_bar(const ich_train_progress *p, int64_t val_batches)
{
    int training = p->phase == ICH_TRAIN_PHASE_TRAIN;
    double per_batch = p->batch ? p->elapsed / (double)p->batch : 0;
    double eta = training ? per_batch * ((double)(p->batches - p->batch) + 0.3 * (double)val_batches)
                          : 0;
    int width = 24, filled = p->batches ? (int)(width * p->batch / p->batches) : width;
    fprintf(stderr, "\r%sepoch %d/%d %s [%.*s%*s] %lld/%lld  loss %.4f  acc %.4f  ETA %.0fs   ",
            stage_label(p), p->epoch + 1, p->epochs, training ? "train" : "val  ", filled,
            "########################", width - filled, "", (long long)p->batch,
            (long long)p->batches, p->loss, p->accuracy, eta);
}

static int on_progress(void *user, const ich_train_progress *p)
{
    display *d = user;
    if (interrupted) /* Ctrl-C (catch_interrupt()) */
        return 1;
    if (d->quiet)
        return 0;
    if (p->phase != ICH_TRAIN_PHASE_EPOCH) {
        /* A few times a second is enough for the eye. */
        if (now() - d->last_draw >= 0.2 || p->batch == p->batches) {
            show_bar(p, d->val_batches);
            d->last_draw = now();
        }
        return 0;
    }
    const ich_epoch_stats *s = p->stats;
    fprintf(stderr, "\r%*s\r", 100, "");
    printf("%sepoch %d/%d  train loss %.4f acc %.4f", stage_label(p), p->epoch + 1, p->epochs,
           s->train_loss, s->train_accuracy);
    if (d->has_val && !isnan(s->val_loss))
        printf("  val loss %.4f acc %.4f", s->val_loss, s->val_accuracy);
    printf("  lr %.3g  %.1fs\n", s->lr, s->seconds);
    fflush(stdout);
    return 0;
}

/* ---- Main ------------------------------------------------------------------------ */

typedef struct run {
    ich_model *model;
    ich_optimizer *optimizer;
    ich_window *window;
    ich_augment *augment;
    ich_dataset *train, *val;
    ich_history *history;
    int loaded; /* the model came from a file: its labels are set */
} run;

static void run_free(run *r)
{
    ich_history_free(r->history);
    ich_dataset_free(r->train);
    ich_dataset_free(r->val);
    ich_augment_free(r->augment);
    ich_window_free(r->window);
    ich_optimizer_free(r->optimizer);
    ich_model_free(r->model);
}

static int open_datasets(const options *o, run *r)
{
    if (o->augment && (ich_augment_create(&r->augment) ||
                       ich_augment_parse(r->augment, o->augment))) {
        fprintf(stderr, "ich-train: --augment: %s\n", ich_last_error());
        return 2;
    }
    ich_dataset_options d;
    ich_dataset_options_init(&d);
    d.window = r->window;
    d.neighbors = ich_window_get_neighbors(r->window);
    d.augment = r->augment;
    d.batch_size = o->batch_size;
    d.seed = o->seed;
    d.workers = o->workers;
    /* a resumed or fine-tuned model's outputs have names: the CSVs' label
     * columns are matched to them by name (a new model takes the training
     * CSV's order, stored as its "ich.labels") */
    d.model = r->loaded ? r->model : NULL;
    if (ich_dataset_open_csv(o->train_csv, o->image_dir, &d, &r->train))
        return fail("training data");
    if (!o->val_csv)
        return 0;
    d.augment = NULL;
    d.shuffle = 0;
    if (ich_dataset_open_csv(o->val_csv, o->image_dir, &d, &r->val))
        return fail("validation data");
    return 0;
}

static int make_optimizer(const options *o, run *r)
{
    ich_optimizer_options oo;
    ich_optimizer_options_init(&oo, (ich_optimizer_kind)o->optimizer);
    if (o->lr >= 0)
        oo.lr = o->lr;
    if (o->weight_decay >= 0)
        oo.weight_decay = o->weight_decay;
    if (ich_optimizer_create(r->model, &oo, &r->optimizer)) {
        fprintf(stderr, "ich-train: optimizer: %s\n", ich_last_error());
        return 2;
    }
    return 0;
}

/* Training went on without the images that could not be used (each named
 * above by libich's warnings); the run still counts as failed, as every
 * program here exits 1 when a file failed. */
static int report_left_out(const run *r)
{
    int64_t left = ich_dataset_left_out(r->train) + ich_dataset_left_out(r->val);
    if (left == 0)
        return 0;
    fprintf(stderr, "ich-train: %lld images were left out (missing or unreadable: see the "
                    "warnings); the checkpoints were trained without them\n",
            (long long)left);
    return 1;
}

static void print_summary(const options *o, const run *r)
{
    int32_t best = ich_history_best_epoch(r->history), n = ich_history_length(r->history);
    if (n == 0) {
        printf("ich-train: nothing to do (%d epochs already done)\n", o->epochs);
        return;
    }
    ich_epoch_stats s = {.size = sizeof s};
    ich_history_get(r->history, best, &s);
    printf("ich-train: %d epochs%s; best epoch %d%s: %s loss %.4f, accuracy %.4f\n", n,
           ich_history_stopped_early(r->history) ? " (stopped early)" : "", best + 1,
           s.stage == 1 ? " of stage 2 (subtypes)" : s.stage == 0 ? " of stage 1 (any)" : "",
           o->val_csv ? "val" : "train", o->val_csv ? s.val_loss : s.train_loss,
           o->val_csv ? s.val_accuracy : s.train_accuracy);
    printf("ich-train: %s/best.safetensors, %s/last.safetensors, %s/history.csv\n", o->out,
           o->out, o->out);
}

/* Under an MPI launcher: this rank's place (the other ranks print nothing);
 * -1 when launched as several ranks but the communicator cannot start. */
static int join_ranks(options *o)
{
    int32_t rank = ich_dist_rank();
    if (rank < 0)
        return fail("distributed run");
    if (rank > 0)
        o->quiet = 1;
    return 0;
}

static int train_main(int argc, char **argv);

int main(int argc, char **argv)
{
    int rc = train_main(argc, argv);
    if (rc != 0)
        ich_dist_mark_failed(); /* end the other ranks rather than leave them waiting */
    return rc;
}

static int train_main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o))
        return 2;
    if (join_ranks(&o))
        return 1;
    if (o.threads)
        ich_set_threads(o.threads);
    /* read by the CUDA backend when it starts (include/ich/backend.h) */
    if (o.math)
        setenv("ICH_CUDA_MATH", o.math, 1);
    if (!o.quiet)
        show_warnings("ich-train"); /* rows left out of the datasets, by ID */
    if (use_backend("ich-train", o.backend, o.quiet))
        return 1;
    run r = {0};
    int rc = 0;
    if (o.npretrained && o.resume) {
        fprintf(stderr, "ich-train: --pretrained with --resume: the run resumes its own "
                        "weights; start a new run from the pretrained ones\n");
        return 2;
    }
    if (make_model(&o, &r.model, &r.loaded))
        rc = fail(o.model ? o.model : "model");
    if (!rc)
        rc = load_pretrained(&o, r.model);
    if (!rc)
        rc = choose_recipe(&o, r.model, &r.window);
    if (!rc)
        rc = open_datasets(&o, &r);
    if (!rc)
        rc = make_optimizer(&o, &r);
    if (!rc) {
        display d = {o.quiet, 0, r.val ? ich_dataset_batches(r.val) : 0, r.val != NULL};
        ich_train_options t;
        ich_train_options_init(&t);
        t.epochs = o.epochs;
        t.balanced = o.balanced;
        t.clip_norm = o.clip;
        t.patience = o.patience;
        int staged = !o.joint && ich_model_cascade_stages(r.model) == 2;
        t.warmup_epochs = o.warmup >= 0 ? o.warmup : staged ? 1 : 0;
        t.staged = o.joint ? 0 : -1;
        t.stage_epochs[0] = o.stage_epochs[0];
        t.stage_epochs[1] = o.stage_epochs[1];
        t.finetune_lr_factor = o.finetune;
        t.checkpoint_dir = o.out;
        t.resume = o.resume;
        t.progress = on_progress;
        t.progress_user = &d;
        catch_interrupt();
        ich_status st = ich_train(r.model, r.optimizer, r.train, r.val, &t, &r.history);
        if (st == ICH_ERR_CANCELLED) {
            fprintf(stderr, "\nich-train: interrupted; the checkpoints of finished epochs "
                            "stay in %s\n", o.out);
            rc = exit_status(st);
        } else if (st)
            rc = fail(st == ICH_ERR_SHAPE ? "the model does not fit the data" : "training");
        else if (!o.quiet)
            print_summary(&o, &r);
        if (st == ICH_ERR_SHAPE)
            rc = 2;
        if (!rc)
            rc = report_left_out(&r);
    }
    run_free(&r);
    return rc;
}
