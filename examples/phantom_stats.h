/*
 * ich-phantom --stats: the phantom's realism report, measured on the slices
 * the options describe, from the generator's own tissue map
 * (ich_phantom_tissues) and the slices as written (ich_phantom_slice):
 *   - HU per tissue (pixels whose 5x5 neighbourhood is that one tissue, so
 *     that partial volume, up to the softest kernel's reach, does not blur
 *     the numbers; air without the padding some studies write outside the
 *     reconstruction circle): mean, sd, 5th, 50th and 95th percentiles, and
 *     a histogram over fixed HU bins;
 *   - noise: its sd and lag-1 autocorrelation in brain, as the difference
 *     from the same slice drawn without noise (real CT: 3-8 HU, correlated);
 *   - lesions: per series and type, positive slices, largest area in a
 *     slice and volume, with their distribution; label prevalence per slice.
 * Only the public API, as any user's program would do it.
 */
#ifndef ICH_EXAMPLES_PHANTOM_STATS_H
#define ICH_EXAMPLES_PHANTOM_STATS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ich/ich.h>

static const char *const STATS_TISSUE[ICH_PHANTOM_TISSUE_COUNT] = {
    "air", "soft tissue", "fat", "bone", "CSF", "grey matter", "white matter", "dura",
    "calcification", "oedema", "headrest", "sinus air", "epidural", "intraparenchymal",
    "intraventricular", "subarachnoid", "subdural"};

/* Histogram bin edges, HU (the last bin is open). */
static const double STATS_EDGES[] = {-1100, -500, -100, -20, 0, 10, 20, 30, 40,
                                     50,    60,   70,   80,  90, 100, 300, 1000};
#define STATS_BINS ((int)(sizeof STATS_EDGES / sizeof *STATS_EDGES))

/* Per tissue: a 1-HU histogram from -1100 to 2100 for the percentiles. */
#define STATS_LO (-1100)
#define STATS_SPAN 3200

typedef struct stats_tissue {
    long count;
    double sum, sum2;
    long *hu; /* STATS_SPAN counts */
} stats_tissue;

typedef struct stats_lesion {
    int slices;
    long largest; /* pixels in its largest slice */
    long pixels;  /* over all slices */
} stats_lesion;

typedef struct stats_state {
    stats_tissue tissue[ICH_PHANTOM_TISSUE_COUNT];
    double noise_sum2, noise_lag, noise_sum;
    long noise_n, noise_lag_n;
    long slices, positive[6];
    stats_lesion *lesions; /* one per series and type that bled */
    long lesion_count, lesion_cap;
} stats_state;

static int stats_interior(const uint8_t *t, int rows, int columns, int i)
{
    int r = i / columns, c = i % columns;
    if (r < 2 || c < 2 || r >= rows - 2 || c >= columns - 2)
        return 0;
    for (int dr = -2; dr <= 2; dr++)
        for (int dc = -2; dc <= 2; dc++)
            if (t[(r + dr) * columns + c + dc] != t[i])
                return 0;
    return 1;
}

static void stats_add_tissues(stats_state *s, const float *hu, const uint8_t *t, int rows,
                              int columns)
{
    for (int i = 0; i < rows * columns; i++) {
        if (t[i] >= ICH_PHANTOM_TISSUE_COUNT || !stats_interior(t, rows, columns, i))
            continue;
        if (t[i] == ICH_PHANTOM_AIR && hu[i] < -1500)
            continue; /* padding (-3024 or -2000 HU), not air */
        stats_tissue *x = &s->tissue[t[i]];
        x->count++;
        x->sum += hu[i];
        x->sum2 += (double)hu[i] * hu[i];
        int bin = (int)floor(hu[i]) - STATS_LO;
        bin = bin < 0 ? 0 : bin >= STATS_SPAN ? STATS_SPAN - 1 : bin;
        x->hu[bin]++;
    }
}

/* Noise = noisy - clean over interior brain; sums for sd and lag 1. */
static void stats_add_noise(stats_state *s, const float *a, const float *b, const uint8_t *t,
                            int rows, int columns)
{
    for (int i = 0; i + 1 < rows * columns; i++) {
        int brain = t[i] == ICH_PHANTOM_GREY || t[i] == ICH_PHANTOM_WHITE;
        if (!brain || !stats_interior(t, rows, columns, i))
            continue;
        double e = a[i] - b[i];
        s->noise_sum += e;
        s->noise_sum2 += e * e;
        s->noise_n++;
        if (t[i + 1] == t[i] && stats_interior(t, rows, columns, i + 1)) {
            s->noise_lag += e * (a[i + 1] - b[i + 1]);
            s->noise_lag_n++;
        }
    }
}

static double stats_percentile(const stats_tissue *x, double q)
{
    long want = (long)(q * (x->count - 1)), seen = 0;
    for (int b = 0; b < STATS_SPAN; b++) {
        seen += x->hu[b];
        if (seen > want)
            return b + STATS_LO;
    }
    return STATS_LO + STATS_SPAN;
}

static void stats_print_tissues(const stats_state *s)
{
    printf("HU per tissue (pixels inside a 5x5 block of the tissue, noise included)\n");
    printf("%-17s %10s %7s %6s %6s %6s %6s\n", "tissue", "pixels", "mean", "sd", "p5", "p50",
           "p95");
    for (int k = 0; k < ICH_PHANTOM_TISSUE_COUNT; k++) {
        const stats_tissue *x = &s->tissue[k];
        if (x->count == 0)
            continue;
        double mean = x->sum / x->count, var = x->sum2 / x->count - mean * mean;
        printf("%-17s %10ld %7.1f %6.1f %6.0f %6.0f %6.0f\n", STATS_TISSUE[k], x->count, mean,
               sqrt(var > 0 ? var : 0), stats_percentile(x, 0.05), stats_percentile(x, 0.5),
               stats_percentile(x, 0.95));
    }
    printf("\nHU histograms, %% of each tissue's pixels per bin (bins start at):\n%-17s",
           "tissue");
    for (int b = 0; b < STATS_BINS; b++)
        printf(" %5.0f", STATS_EDGES[b]);
    printf("\n");
    for (int k = 0; k < ICH_PHANTOM_TISSUE_COUNT; k++) {
        const stats_tissue *x = &s->tissue[k];
        if (x->count == 0)
            continue;
        printf("%-17s", STATS_TISSUE[k]);
        for (int b = 0; b < STATS_BINS; b++) {
            double lo = STATS_EDGES[b], hi = b + 1 < STATS_BINS ? STATS_EDGES[b + 1] : 1e9;
            long n = 0;
            for (int v = 0; v < STATS_SPAN; v++)
                if (v + STATS_LO >= lo && v + STATS_LO < hi)
                    n += x->hu[v];
            if (n == 0)
                printf("     .");
            else
                printf(" %5.1f", 100.0 * n / x->count);
        }
        printf("\n");
    }
}

static int stats_compare_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static void stats_print_lesions(const stats_state *s, double mm, double thick)
{
    static const char *const NAMES[6] = {"any", "epidural", "intraparenchymal",
                                         "intraventricular", "subarachnoid", "subdural"};
    printf("\nlabels: share of %ld slices positive\n", s->slices);
    for (int c = 0; c < 6; c++)
        printf("  %-17s %6.2f%%\n", NAMES[c], 100.0 * s->positive[c] / (s->slices ? s->slices : 1));
    long n = s->lesion_count;
    printf("\nlesions (one per series and type): %ld\n", n);
    if (n == 0)
        return;
    long *area = malloc(n * sizeof *area), *volume = malloc(n * sizeof *volume);
    long *span = malloc(n * sizeof *span);
    for (long k = 0; k < n; k++) {
        area[k] = s->lesions[k].largest;
        volume[k] = s->lesions[k].pixels;
        span[k] = s->lesions[k].slices;
    }
    qsort(area, n, sizeof *area, stats_compare_long);
    qsort(volume, n, sizeof *volume, stats_compare_long);
    qsort(span, n, sizeof *span, stats_compare_long);
    double px = mm * mm;
    printf("  %-28s %8s %8s %8s %8s %8s\n", "", "min", "p10", "median", "p90", "max");
    printf("  %-28s %8.1f %8.1f %8.1f %8.1f %8.1f\n", "largest area in a slice, mm^2",
           area[0] * px, area[n / 10] * px, area[n / 2] * px, area[n * 9 / 10] * px,
           area[n - 1] * px);
    printf("  %-28s %8.2f %8.2f %8.2f %8.2f %8.2f\n", "volume, ml", volume[0] * px * thick / 1000,
           volume[n / 10] * px * thick / 1000, volume[n / 2] * px * thick / 1000,
           volume[n * 9 / 10] * px * thick / 1000, volume[n - 1] * px * thick / 1000);
    printf("  %-28s %8ld %8ld %8ld %8ld %8ld\n", "slices spanned", span[0], span[n / 10],
           span[n / 2], span[n * 9 / 10], span[n - 1]);
    free(area);
    free(volume);
    free(span);
}

/* One series: count its lesions' pixels by type over its slices. */
static int stats_series(stats_state *s, const ich_phantom_options *o, int p, int st, float *a,
                        float *b, uint8_t *t)
{
    ich_phantom_options clean = *o;
    clean.noise = 0;
    size_t n = (size_t)o->rows * o->columns;
    stats_lesion les[5];
    memset(les, 0, sizeof les);
    for (int k = 0; k < o->slices; k++) {
        float labels[6];
        if (ich_phantom_slice(o, p, st, k, a, n, labels, NULL, 0) != ICH_OK ||
            ich_phantom_tissues(o, p, st, k, t, n) != ICH_OK)
            return -1;
        stats_add_tissues(s, a, t, o->rows, o->columns);
        if (k == o->slices / 2 && o->noise > 0) { /* noise on one slice a series */
            if (ich_phantom_slice(&clean, p, st, k, b, n, NULL, NULL, 0) != ICH_OK)
                return -1;
            stats_add_noise(s, a, b, t, o->rows, o->columns);
        }
        s->slices++;
        for (int c = 0; c < 6; c++)
            s->positive[c] += labels[c] != 0;
        long count[5] = {0};
        for (size_t i = 0; i < n; i++)
            if (t[i] >= ICH_PHANTOM_EPIDURAL && t[i] < ICH_PHANTOM_TISSUE_COUNT)
                count[t[i] - ICH_PHANTOM_EPIDURAL]++;
        for (int c = 0; c < 5; c++) {
            les[c].pixels += count[c];
            les[c].slices += labels[c + 1] != 0;
            les[c].largest = count[c] > les[c].largest ? count[c] : les[c].largest;
        }
    }
    for (int c = 0; c < 5; c++) {
        if (les[c].slices == 0)
            continue;
        if (s->lesion_count == s->lesion_cap) {
            s->lesion_cap = s->lesion_cap ? 2 * s->lesion_cap : 64;
            s->lesions = realloc(s->lesions, s->lesion_cap * sizeof *s->lesions);
            if (!s->lesions)
                return -1;
        }
        s->lesions[s->lesion_count++] = les[c];
    }
    return 0;
}

/* The whole report on stdout; 0, or 1 when drawing failed. */
static int phantom_stats(const ich_phantom_options *o)
{
    stats_state s;
    memset(&s, 0, sizeof s);
    size_t n = (size_t)o->rows * o->columns;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    uint8_t *t = malloc(n);
    int failed = !a || !b || !t;
    for (int k = 0; k < ICH_PHANTOM_TISSUE_COUNT && !failed; k++)
        failed = !(s.tissue[k].hu = calloc(STATS_SPAN, sizeof(long)));
    for (int p = 0; p < o->patients && !failed; p++)
        for (int st = 0; st < o->studies_per_patient && !failed; st++)
            failed = stats_series(&s, o, p, st, a, b, t) != 0;
    if (!failed) {
        double mm = 230.0 / (o->rows > o->columns ? o->rows : o->columns);
        printf("ich-phantom --stats: %d patients x %d studies x %d slices of %dx%d, seed %llu\n\n",
               (int)o->patients, (int)o->studies_per_patient, (int)o->slices, (int)o->rows,
               (int)o->columns, (unsigned long long)o->seed);
        stats_print_tissues(&s);
        if (s.noise_n > 0) {
            double mean = s.noise_sum / s.noise_n, var = s.noise_sum2 / s.noise_n - mean * mean;
            printf("\nnoise in brain (noisy - noise-free slice): sd %.2f HU, lag-1 "
                   "autocorrelation %.2f\n", sqrt(var),
                   (s.noise_lag / s.noise_lag_n - mean * mean) / var);
        }
        stats_print_lesions(&s, mm, 120.0 / o->slices);
    } else {
        fprintf(stderr, "ich-phantom: --stats failed: %s\n", ich_last_error());
    }
    for (int k = 0; k < ICH_PHANTOM_TISSUE_COUNT; k++)
        free(s.tissue[k].hu);
    free(s.lesions);
    free(a);
    free(b);
    free(t);
    return failed;
}

#endif
