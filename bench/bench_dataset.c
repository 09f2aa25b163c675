/* Benchmark of the dataset handle: DICOM -> HU -> blood, brain, bone ->
 * 256 x 256 bilinear -> float32 batches of 16 (NCHW), as a training loop
 * consumes them. bench/run_dataset.sh compiles and runs it; see
 * bench/README.md.
 *
 *   bench_dataset make DIR SLICES   write the inputs: DIR/labels.csv and
 *                                   DIR/images/*.dcm (the phantom when
 *                                   libich has it, else random 512 x 512
 *                                   slices written with ich_dicom_write_ct)
 *   bench_dataset run DIR WORKERS [EPOCHS]
 *                                   time EPOCHS epochs (default 2) after an
 *                                   untimed warm-up epoch and print
 *                                   "workers W: N images in T s = R images/s
 *                                   (C s CPU)"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "ich/ich.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static int fail(const char *what, ich_status st)
{
    fprintf(stderr, "bench_dataset: %s: %s: %s\n", what, ich_status_string(st), ich_last_error());
    return 1;
}

/* Random head-CT-like values when the phantom is not there. */
static int make_random(const char *dir, int slices)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/images", dir);
    mkdir(dir, 0755);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/labels.csv", dir);
    FILE *csv = fopen(path, "w");
    if (!csv) {
        perror(path);
        return 1;
    }
    fprintf(csv, "ID,any,epidural,intraparenchymal,intraventricular,subarachnoid,subdural\n");
    int16_t *px = malloc(512 * 512 * sizeof *px);
    uint32_t x = 12345;
    for (int i = 0; i < slices && px; i++) {
        for (int k = 0; k < 512 * 512; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            px[k] = (int16_t)(x % 2000);
        }
        ich_ct_slice s = {.size = sizeof s, .rows = 512, .columns = 512, .pixels = px,
                          .rescale_slope = 1, .rescale_intercept = -1024};
        s.image_position[2] = i;
        snprintf(path, sizeof path, "%s/images/ID_%06d.dcm", dir, i);
        ich_status st = ich_dicom_write_ct(path, &s);
        if (st != ICH_OK) {
            free(px);
            fclose(csv);
            return fail(path, st);
        }
        fprintf(csv, "ID_%06d,%d,0,0,0,0,0\n", i, i % 2);
    }
    free(px);
    return fclose(csv) == 0 ? 0 : 1;
}

static int make(const char *dir, int slices)
{
    ich_phantom_options o;
    ich_phantom_options_init(&o);
    o.seed = 1;
    o.slices = 30;
    o.patients = (slices + 29) / 30;
    o.threads = 0;
    int64_t written = 0;
    ich_status st = ich_phantom_write(dir, &o, &written);
    if (st == ICH_OK && written > 0) {
        printf("inputs: %lld phantom slices of 512x512\n", (long long)written);
        return 0;
    }
    printf("inputs: %d random slices of 512x512 (phantom: %s)\n", slices, ich_status_string(st));
    return make_random(dir, slices);
}

static int run(const char *dir, int workers, int epochs)
{
    char csv[4096], images[4096];
    snprintf(csv, sizeof csv, "%s/labels.csv", dir);
    snprintf(images, sizeof images, "%s/images", dir);
    ich_dataset_options o;
    ich_dataset_options_init(&o);
    o.batch_size = 16;
    o.workers = workers;
    o.prefetch = workers > 2 ? workers : 2;
    ich_dataset *ds;
    ich_status st = ich_dataset_open_csv(csv, images, &o, &ds);
    if (st != ICH_OK)
        return fail("open", st);
    int32_t c, r, w, l;
    ich_dataset_sample_shape(ds, &c, &r, &w, &l);
    size_t image_count = (size_t)16 * c * r * w, label_count = (size_t)16 * l;
    float *x = malloc(image_count * sizeof *x), *y = malloc(label_count * sizeof *y);
    if (!x || !y)
        return 1;
    int64_t total = 0;
    double sum = 0; /* touch the output, as training would */
    double t0 = 0, c0 = 0;
    /* Epoch 0 warms up (threads, their malloc arenas, caches): not timed. */
    for (int e = 0; e <= epochs; e++) {
        if (e == 1) {
            total = 0;
            t0 = now();
            c0 = cpu_seconds();
        }
        ich_dataset_start_epoch(ds, e);
        for (;;) {
            int32_t count;
            st = ich_dataset_next_batch(ds, x, image_count, y, label_count, &count, NULL);
            if (st != ICH_OK)
                return fail("next_batch", st);
            if (count == 0)
                break;
            total += count;
            sum += x[0] + x[image_count - 1];
        }
    }
    double t = now() - t0, cpu = cpu_seconds() - c0;
    printf("workers %d: %lld images (%dx%dx%d) in %.3f s = %.1f images/s (%.2f s CPU)%s\n",
           workers, (long long)total, c, r, w, t, total / t, cpu, sum == sum ? "" : " ");
    free(x);
    free(y);
    ich_dataset_free(ds);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "make") == 0)
        return make(argv[2], atoi(argv[3]));
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "run") == 0)
        return run(argv[2], atoi(argv[3]), argc == 5 ? atoi(argv[4]) : 2);
    fprintf(stderr, "usage: bench_dataset make DIR SLICES | run DIR WORKERS [EPOCHS]\n");
    return 2;
}
