/* Benchmark of the CNN on the CPU: the tutorial's ConvNet (libich's
 * "tutorial" preset, 1 x 512 x 512 input, 6 outputs) trained and run for
 * inference with libich, the same work bench/cnn_reference.py does with
 * PyTorch. bench/run_cnn.sh compiles and runs it; see bench/README.md.
 *
 *   bench_cnn train|infer [--threads N] [--batch B] [--warmup W] [--steps S]
 *                         [--preset NAME]
 *
 * --preset: any libich preset (default tutorial); run_cnn.sh uses tutorial,
 *        ichnet, efficientnet_v2_s and convnext_tiny (the input shape is the
 *        preset's: 3 x 256 x 256 for the last three).
 *   bench_cnn flops
 *
 * train: the step API on one fixed random batch (6 random 0/1 targets per
 *        image): ich_model_forward (training mode), ich_loss_bce_with_logits,
 *        ich_model_backward, ich_optimizer_step (Adam, PyTorch's defaults),
 *        ich_model_zero_grad. W warm-up steps (default 1) are not timed,
 *        then S steps (default 2) are.
 * infer: evaluation mode, ich_model_forward of the same batch.
 * flops: the forward FLOPs per image of the tutorial network (2 x the
 *        multiply-adds of each convolution and linear layer).
 *
 * ICH_PROFILE=1 prints libich's per-layer profile (time per call of each
 * layer's forward and backward, the backward's input and weight gradients,
 * reorders, GFLOP/s, share, and % of ICH_PROFILE_PEAK GFLOP/s when set:
 * run_cnn.sh sets it to the peak it measured; libich/nn/model.c) and the
 * oneDNN implementation each primitive got.
 *
 * ich_set_threads(N) (default 2) sets the threads. Peak memory is
 * VmHWM (peak resident memory), raw and minus the baseline taken at
 * the start (libich and its libraries loaded, no model, no data). Run one
 * measurement per process. Prints a readable line and
 *   RESULT side=libich model=NAME mode=train batch=B threads=T steps=S seconds=...
 *          images_per_s=... best_images_per_s=... maxrss_kib=... base_kib=...
 *          loss_first=... loss_last=... page_faults_per_step=... cpu_seconds=...
 * (cpu_seconds: the process's CPU time over the timed steps, all threads;
 * best_images_per_s: the fastest single step, the figure least disturbed
 * by other work on a shared machine). Exit status 0, 1 on a libich error, 2 on bad usage.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ich/ich.h"
#include "ich/model.h"
#include "ich/optim.h"

#define OUTPUTS_MAX 64
#define STEPS_MAX 1000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process (all threads), seconds. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Peak resident memory of this process image, in KiB: VmHWM from
 * /proc/self/status. Not getrusage's ru_maxrss, which Linux carries over
 * exec from the parent that forked us (a test runner's peak would show up
 * as ours). */
static long maxrss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* Page faults of this process so far (minor + major): a step that maps
 * fresh memory pays one per 4 KiB page (the kernel zeroes it). */
static long page_faults(void)
{
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0)
        return -1;
    return u.ru_minflt + u.ru_majflt;
}

static int fail(const char *what, ich_status st)
{
    fprintf(stderr, "bench_cnn: %s: %s: %s\n", what, ich_status_string(st), ich_last_error());
    return 1;
}

/* ---- FLOPs -------------------------------------------------------------- */

/* The tutorial network, as the issue and include/ich/model.h describe it. */
typedef struct conv_stage {
    const char *name;
    int in, out, kernel;
} conv_stage;

static const conv_stage TUTORIAL_CONVS[] = {
    {"conv1", 1, 50, 5}, {"conv2", 50, 120, 5}, {"conv3", 120, 100, 5}, {"conv4", 100, 72, 4}};

/* Forward FLOPs per image: each conv (stride 1, no padding) is followed by
 * ReLU and a 2 x 2 max pool (floor), then fc1 (C*H*W -> 50) and fc2
 * (50 -> 6). Prints a line per layer when `print`. */
static double tutorial_forward_flops(int print)
{
    int64_t size = 512, channels = 1;
    double total = 0;
    for (size_t i = 0; i < sizeof TUTORIAL_CONVS / sizeof TUTORIAL_CONVS[0]; i++) {
        const conv_stage *s = &TUTORIAL_CONVS[i];
        int64_t out = size - s->kernel + 1;
        double flops = 2.0 * s->out * out * out * s->in * s->kernel * s->kernel;
        if (print)
            printf("%-6s out %dx%lldx%lld %8.3f GFLOP\n", s->name, s->out, (long long)out,
                   (long long)out, flops * 1e-9);
        total += flops;
        size = out / 2;
        channels = s->out;
    }
    int64_t features = channels * size * size;
    double fc1 = 2.0 * features * 50, fc2 = 2.0 * 50 * 6;
    if (print)
        printf("fc1    out 50 (%lld in) %8.3f GFLOP\nfc2    out 6 %8.6f GFLOP\n",
               (long long)features, fc1 * 1e-9, fc2 * 1e-9);
    return total + fc1 + fc2;
}

/* ---- The measurement ---------------------------------------------------- */

typedef struct settings {
    int train;
    int threads, batch, warmup, steps;
    const char *preset;
} settings;

/* One fixed batch: uniform [0, 1) pixels, targets 1 with probability 0.3. */
static void fill_batch(float *images, size_t image_count, float *targets, size_t target_count)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < image_count + target_count; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        float u = (float)(x >> 40) * (1.0f / 16777216.0f);
        if (i < image_count)
            images[i] = u;
        else
            targets[i - image_count] = u < 0.3f ? 1.0f : 0.0f;
    }
}

typedef struct run_state {
    ich_model *model;
    ich_optimizer *optimizer;
    const float *images, *targets;
    float *logits, *grad;
    int32_t n, outputs;
} run_state;

/* One training step; *value receives the loss. */
static ich_status train_step(run_state *r, float *value)
{
    size_t count = (size_t)r->n * r->outputs;
    ich_status st = ich_model_forward(r->model, r->images, r->n, r->logits, count);
    if (st == ICH_OK)
        st = ich_loss_bce_with_logits(r->logits, r->targets, r->n, r->outputs, NULL, NULL, value,
                                      r->grad);
    if (st == ICH_OK)
        st = ich_model_backward(r->model, r->grad, count);
    if (st == ICH_OK)
        st = ich_optimizer_step(r->optimizer);
    if (st == ICH_OK)
        st = ich_model_zero_grad(r->model);
    return st;
}

/* One inference pass; *value receives the mean |logit| (uses the output). */
static ich_status infer_step(run_state *r, float *value)
{
    size_t count = (size_t)r->n * r->outputs;
    ich_status st = ich_model_forward(r->model, r->images, r->n, r->logits, count);
    double sum = 0;
    for (size_t i = 0; i < count; i++)
        sum += fabsf(r->logits[i]);
    *value = (float)(sum / (double)count);
    return st;
}

static int measure(const settings *s)
{
    ich_set_threads(s->threads);
    long base = maxrss_kib();

    run_state r = {0};
    ich_status st = ich_model_create_preset(s->preset, &r.model);
    if (st != ICH_OK)
        return fail("ich_model_create_preset", st);
    int32_t c = 0, h = 0, w = 0;
    ich_model_input_shape(r.model, &c, &h, &w);
    r.outputs = ich_model_outputs(r.model);
    r.n = s->batch;
    if (c < 1 || h < 1 || w < 1 || r.outputs < 1 || r.outputs > OUTPUTS_MAX) {
        fprintf(stderr, "bench_cnn: unexpected model shape %dx%dx%d -> %d\n", c, h, w, r.outputs);
        ich_model_free(r.model);
        return 1;
    }
    size_t image_count = (size_t)r.n * c * h * w, out_count = (size_t)r.n * r.outputs;
    float *images = malloc(image_count * sizeof *images);
    float *targets = malloc(out_count * sizeof *targets);
    r.logits = malloc(out_count * sizeof *r.logits);
    r.grad = malloc(out_count * sizeof *r.grad);
    int rc = 1;
    if (!images || !targets || !r.logits || !r.grad) {
        fprintf(stderr, "bench_cnn: out of memory\n");
        goto done;
    }
    fill_batch(images, image_count, targets, out_count);
    r.images = images;
    r.targets = targets;

    if (s->train) {
        ich_optimizer_options o;
        ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
        o.lr = 1e-3;
        st = ich_optimizer_create(r.model, &o, &r.optimizer);
        if (st == ICH_OK)
            st = ich_model_set_training(r.model, 1);
    } else {
        st = ich_model_set_training(r.model, 0);
    }
    if (st != ICH_OK) {
        rc = fail(s->train ? "ich_optimizer_create" : "ich_model_set_training", st);
        goto done;
    }

    ich_status (*step)(run_state *, float *) = s->train ? train_step : infer_step;
    float first = NAN, last = NAN;
    for (int i = 0; i < s->warmup; i++) {
        if ((st = step(&r, &last)) != ICH_OK) {
            rc = fail("warm-up step", st);
            goto done;
        }
        if (i == 0)
            first = last;
    }
    double step_seconds[STEPS_MAX];
    long step_faults[STEPS_MAX];
    long faults0 = page_faults();
    double cpu0 = cpu_now();
    double t0 = now();
    for (int i = 0; i < s->steps; i++) {
        double t = now();
        long f = page_faults();
        if ((st = step(&r, &last)) != ICH_OK) {
            rc = fail("step", st);
            goto done;
        }
        step_seconds[i] = now() - t;
        step_faults[i] = page_faults() - f;
        if (s->warmup == 0 && i == 0)
            first = last;
    }
    double seconds = now() - t0;
    double cpu_seconds = cpu_now() - cpu0;
    long faults = (page_faults() - faults0) / s->steps;
    long peak = maxrss_kib();
    if (!isfinite(first) || !isfinite(last)) {
        fprintf(stderr, "bench_cnn: non-finite %s (%g, %g)\n", s->train ? "loss" : "output",
                first, last);
        goto done;
    }
    double rate = (double)s->batch * s->steps / seconds, best = step_seconds[0];
    for (int i = 1; i < s->steps; i++)
        best = step_seconds[i] < best ? step_seconds[i] : best;
    printf("libich %s %s: batch %d, %d threads, %d steps in %.2f s = %.3f images/s (steps:",
           s->preset, s->train ? "train" : "infer", s->batch, s->threads, s->steps, seconds, rate);
    for (int i = 0; i < s->steps; i++)
        printf(" %.2f", step_seconds[i]);
    printf(" s); peak memory %.0f MiB above baseline %.0f MiB; %ld page faults per step (steps:",
           (peak - base) / 1024.0, base / 1024.0, faults);
    for (int i = 0; i < s->steps; i++)
        printf(" %ld", step_faults[i]);
    printf("); %s %.4f -> %.4f\n", s->train ? "loss" : "mean |logit|",
           first, last);
    printf("RESULT side=libich model=%s mode=%s batch=%d threads=%d steps=%d seconds=%.4f "
           "images_per_s=%.4f best_images_per_s=%.4f maxrss_kib=%ld base_kib=%ld loss_first=%.6g "
           "loss_last=%.6g page_faults_per_step=%ld cpu_seconds=%.4f\n",
           s->preset, s->train ? "train" : "infer", s->batch, s->threads, s->steps, seconds, rate,
           s->batch / best, peak, base, first, last, faults, cpu_seconds);
    rc = 0;
done:
    ich_optimizer_free(r.optimizer);
    ich_model_free(r.model);
    free(images);
    free(targets);
    free(r.logits);
    free(r.grad);
    return rc;
}

/* ---- Command line ------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: bench_cnn train|infer [--threads N] [--batch B] [--warmup W] "
                    "[--steps S] [--preset NAME]\n       bench_cnn flops\n");
    return 2;
}

static int positive(const char *text, int minimum, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < minimum || v > 100000)
        return 0;
    *out = (int)v;
    return 1;
}

/* ICH_PROFILE=1: libich's per-layer table (logged when the model is
 * freed) and oneDNN's implementation of each primitive, on stdout. */
static void print_log(ich_log_level level, const char *message, void *user)
{
    (void)level;
    (void)user;
    printf("%s\n", message);
}

int main(int argc, char **argv)
{
    const char *profile = getenv("ICH_PROFILE");
    if (profile && *profile && strcmp(profile, "0") != 0)
        ich_set_log_callback(print_log, NULL, ICH_LOG_DEBUG);
    if (argc == 2 && strcmp(argv[1], "flops") == 0) {
        double f = tutorial_forward_flops(1);
        printf("RESULT side=libich mode=flops forward_flops=%.0f\n", f);
        return 0;
    }
    if (argc < 2 || (strcmp(argv[1], "train") != 0 && strcmp(argv[1], "infer") != 0))
        return usage();
    settings s = {.train = strcmp(argv[1], "train") == 0, .threads = 2, .batch = 16,
                  .warmup = 1, .steps = 2, .preset = "tutorial"};
    for (int i = 2; i < argc; i++) {
        int ok = i + 1 < argc;
        if (ok && strcmp(argv[i], "--threads") == 0)
            ok = positive(argv[++i], 1, &s.threads);
        else if (ok && strcmp(argv[i], "--batch") == 0)
            ok = positive(argv[++i], 1, &s.batch);
        else if (ok && strcmp(argv[i], "--warmup") == 0)
            ok = positive(argv[++i], 0, &s.warmup);
        else if (ok && strcmp(argv[i], "--steps") == 0)
            ok = positive(argv[++i], 1, &s.steps) && s.steps <= STEPS_MAX;
        else if (ok && strcmp(argv[i], "--preset") == 0)
            s.preset = argv[++i];
        else
            ok = 0;
        if (!ok)
            return usage();
    }
    return measure(&s);
}
