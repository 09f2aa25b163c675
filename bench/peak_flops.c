/* The machine's measured float32 FMA peak, per core and for N threads: the
 * denominator of the "% of peak" figures of bench/run_cnn.sh (see
 * bench/README.md).
 *
 * Each thread runs independent chains of fused multiply-adds on registers
 * only (no memory traffic): with AVX-512 16 chains of 16 lanes, with AVX2
 * 12 chains of 8 lanes. Enough chains to cover the FMA latency on every
 * current x86 core (latency 4-5 cycles x 2 FMA pipes = 8-10 chains in
 * flight), so the figure is the throughput of the FMA units at the clock the
 * core runs at while it does this. One FMA counts as 2 FLOP. Each figure is
 * the best of several repetitions, so that a short disturbance by other
 * work on the machine lowers it less.
 *
 *   peak_flops [--threads N] [--seconds S] [--isa avx512|avx2]
 *
 * Without --isa, ONEDNN_MAX_CPU_ISA limits it as it limits oneDNN (AVX2,
 * AVX2_VNNI, SSE41: the AVX2 chains even where the CPU has AVX-512), so the
 * "% of peak" of a run limited to AVX2 is taken against the AVX2 peak.
 *
 * Prints a line per figure and a last machine-readable line
 *   RESULT isa=avx512f lanes=16 chains=16 threads=N peak1_gflops=X peakn_gflops=Y
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* acc = acc * m + c converges (to c / (1 - m)) instead of overflowing or
 * becoming denormal, so every iteration runs at full speed. */
#define FMA_M 0.99999994f
#define FMA_C 1e-7f

__attribute__((target("avx512f"))) static float chains_avx512(int64_t iterations)
{
    const __m512 m = _mm512_set1_ps(FMA_M), c = _mm512_set1_ps(FMA_C);
    __m512 a0 = _mm512_set1_ps(0.0f), a1 = _mm512_set1_ps(0.1f), a2 = _mm512_set1_ps(0.2f),
           a3 = _mm512_set1_ps(0.3f), a4 = _mm512_set1_ps(0.4f), a5 = _mm512_set1_ps(0.5f),
           a6 = _mm512_set1_ps(0.6f), a7 = _mm512_set1_ps(0.7f), a8 = _mm512_set1_ps(0.8f),
           a9 = _mm512_set1_ps(0.9f), a10 = _mm512_set1_ps(1.0f), a11 = _mm512_set1_ps(1.1f),
           a12 = _mm512_set1_ps(1.2f), a13 = _mm512_set1_ps(1.3f), a14 = _mm512_set1_ps(1.4f),
           a15 = _mm512_set1_ps(1.5f);
    for (int64_t i = 0; i < iterations; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c);
        a1 = _mm512_fmadd_ps(a1, m, c);
        a2 = _mm512_fmadd_ps(a2, m, c);
        a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c);
        a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c);
        a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c);
        a9 = _mm512_fmadd_ps(a9, m, c);
        a10 = _mm512_fmadd_ps(a10, m, c);
        a11 = _mm512_fmadd_ps(a11, m, c);
        a12 = _mm512_fmadd_ps(a12, m, c);
        a13 = _mm512_fmadd_ps(a13, m, c);
        a14 = _mm512_fmadd_ps(a14, m, c);
        a15 = _mm512_fmadd_ps(a15, m, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    __m512 t = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                             _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15)));
    return _mm512_reduce_add_ps(_mm512_add_ps(s, t));
}

__attribute__((target("avx2,fma"))) static float chains_avx2(int64_t iterations)
{
    const __m256 m = _mm256_set1_ps(FMA_M), c = _mm256_set1_ps(FMA_C);
    __m256 a0 = _mm256_set1_ps(0.0f), a1 = _mm256_set1_ps(0.1f), a2 = _mm256_set1_ps(0.2f),
           a3 = _mm256_set1_ps(0.3f), a4 = _mm256_set1_ps(0.4f), a5 = _mm256_set1_ps(0.5f),
           a6 = _mm256_set1_ps(0.6f), a7 = _mm256_set1_ps(0.7f), a8 = _mm256_set1_ps(0.8f),
           a9 = _mm256_set1_ps(0.9f), a10 = _mm256_set1_ps(1.0f), a11 = _mm256_set1_ps(1.1f);
    for (int64_t i = 0; i < iterations; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c);
        a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c);
        a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c);
        a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c);
        a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}

typedef struct kernel {
    const char *isa;
    int lanes, chains;
    float (*run)(int64_t iterations);
} kernel;

static const kernel AVX512 = {"avx512f", 16, 16, chains_avx512};
static const kernel AVX2 = {"avx2", 8, 12, chains_avx2};

typedef struct job {
    const kernel *k;
    int64_t iterations;
    pthread_barrier_t *start;
    float result;
} job;

static void *thread_main(void *arg)
{
    job *j = arg;
    pthread_barrier_wait(j->start);
    j->result = j->k->run(j->iterations);
    return NULL;
}

static volatile float sink; /* keeps the results, so the work is not dropped */

/* GFLOP/s of `threads` threads each running `iterations` iterations, timed
 * from the moment all have started until the last has finished. */
static double measure(const kernel *k, int threads, int64_t iterations)
{
    pthread_t tid[256];
    job jobs[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    int started = 0;
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){k, iterations, &start, 0};
        if (pthread_create(&tid[i], NULL, thread_main, &jobs[i]) != 0)
            break;
        started++;
    }
    if (started < threads) { /* cannot happen short of resource exhaustion */
        fprintf(stderr, "peak_flops: cannot start %d threads\n", threads);
        exit(1);
    }
    pthread_barrier_wait(&start);
    double t0 = now();
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        sink += jobs[i].result;
    }
    double t = now() - t0;
    pthread_barrier_destroy(&start);
    double flops = 2.0 * k->lanes * k->chains * (double)iterations * threads;
    return flops / t * 1e-9;
}

/* Best of `repeats` runs of about `seconds` each. */
static double best_of(const kernel *k, int threads, double seconds, int repeats)
{
    /* Calibrate: grow the count until one thread takes 20 ms. */
    int64_t iterations = 1 << 16;
    for (;;) {
        double t0 = now();
        sink += k->run(iterations);
        double t = now() - t0;
        if (t > 0.02) {
            iterations = (int64_t)(iterations * (seconds / t)) + 1;
            break;
        }
        iterations *= 2;
    }
    double best = 0;
    for (int r = 0; r < repeats; r++) {
        double g = measure(k, threads, iterations);
        if (g > best)
            best = g;
    }
    return best;
}

static int usage(void)
{
    fprintf(stderr, "usage: peak_flops [--threads N] [--seconds S] [--isa avx512|avx2]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int threads = 2;
    double seconds = 0.25;
    const char *want = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: peak_flops [--threads N] [--seconds S] [--isa avx512|avx2]\n"
                   "Measures the float32 FMA peak (GFLOP/s) of 1 thread and of N threads\n"
                   "(default 2), S seconds per repetition (default 0.25), best of 5.\n");
            return 0;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            want = argv[++i];
        } else {
            return usage();
        }
    }
    if (threads < 1 || threads > 256 || !(seconds > 0 && seconds <= 60))
        return usage();

    __builtin_cpu_init();
    const kernel *k = NULL;
    int has512 = __builtin_cpu_supports("avx512f");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const char *limit = getenv("ONEDNN_MAX_CPU_ISA");
    if (!want && limit && *limit && strncasecmp(limit, "AVX512", 6) != 0
        && strncasecmp(limit, "AMX", 3) != 0 && strcasecmp(limit, "ALL") != 0) {
        if (strncasecmp(limit, "AVX2", 4) != 0) {
            fprintf(stderr, "peak_flops: ONEDNN_MAX_CPU_ISA=%s: no FMA chains below AVX2\n", limit);
            return 1;
        }
        want = "avx2";
    }
    if (!want)
        k = has512 ? &AVX512 : has2 ? &AVX2 : NULL;
    else if (strcmp(want, "avx512") == 0 || strcmp(want, "avx512f") == 0)
        k = has512 ? &AVX512 : NULL;
    else if (strcmp(want, "avx2") == 0)
        k = has2 ? &AVX2 : NULL;
    else
        return usage();
    if (!k) {
        fprintf(stderr, "peak_flops: this CPU has no %s with FMA\n", want ? want : "AVX2");
        return 1;
    }

    const int repeats = 5;
    double one = best_of(k, 1, seconds, repeats);
    double all = threads == 1 ? one : best_of(k, threads, seconds, repeats);
    printf("FMA peak (%s, %d chains of %d float32 lanes, best of %d):\n", k->isa, k->chains,
           k->lanes, repeats);
    printf("  1 thread:  %8.1f GFLOP/s\n", one);
    if (threads > 1)
        printf("  %d threads: %8.1f GFLOP/s (%.2fx one thread)\n", threads, all, all / one);
    printf("RESULT isa=%s lanes=%d chains=%d threads=%d peak1_gflops=%.1f peakn_gflops=%.1f\n",
           k->isa, k->lanes, k->chains, threads, one, all);
    return 0;
}
