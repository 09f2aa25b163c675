/* The scanner: what a real CT adds to the anatomy. Noise with a CT-like
 * texture (white noise through the reconstruction kernel, so neighbouring
 * pixels are correlated, and the same kernel blurs edges: partial volume),
 * beam-hardening streaks and the dark Hounsfield bar between the petrous
 * bones, a darker band under the inner table at the skull base, the
 * headrest behind the head, and the rescale intercept of the files. */
#include <math.h>

#include "phantom/phantom_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

double ich_phantom_intercept(const ich_phantom_options *o, int32_t patient, int32_t study)
{
    if (!o->vary_intercept)
        return -1024.0;
    /* The common values: most scanners -1024, some -1000, some store HU
     * directly (intercept 0). A stream of its own: the pixels do not change. */
    ich_rng r = ich_phantom_stream(o->seed, TAG_NOISE, patient, (uint64_t)study << 24 | 0xFFFFFF);
    double u = ich_rng_uniform(&r);
    return u < 0.6 ? -1024.0 : u < 0.85 ? -1000.0 : 0.0;
}

void ich_phantom_make_streaks(uint64_t seed, int32_t patient, int32_t study, slice_geo *g)
{
    g->streaks = 0;
    if (g->t >= 0.22)
        return;
    ich_rng r = ich_phantom_stream(seed, TAG_NOISE, patient,
                                   (uint64_t)study << 24 | 0xFFFFFE);
    ich_rng_skip(&r, (uint64_t)(g->t * 1000) * 8);
    g->streaks = 2 + (int)ich_rng_below(&r, 3);
    for (int k = 0; k < g->streaks; k++) {
        /* A line through a point of a petrous ridge, mostly dark. */
        double u = ich_rng_uniform(&r), side = ich_rng_uniform(&r) < 0.5 ? -1 : 1;
        double x0 = side * (12 + 33 * u), y0 = 24 * u, angle = ich_rng_range(&r, 0, PH_PI);
        g->streak_a[k] = cos(angle);
        g->streak_b[k] = sin(angle);
        g->streak_c[k] = g->streak_a[k] * x0 + g->streak_b[k] * y0;
        g->streak_hu[k] = ich_rng_uniform(&r) < 0.75 ? -ich_rng_range(&r, 6, 20)
                                                     : ich_rng_range(&r, 4, 12);
    }
}

double ich_phantom_artifacts(const slice_geo *g, double x, double y, double inside, double hu)
{
    if (g->t >= 0.3 || inside < 0)
        return hu;
    /* Beam hardening under the dense skull base: a darker band. */
    if (inside < 3)
        hu -= 6 * (1 - inside / 3) * (0.3 - g->t) / 0.3;
    if (g->t < 0.2 && fabs(x) < 34) { /* the Hounsfield bar */
        double d = (y - 8) / 3, q = 1 + d * d;
        hu -= 16 / (q * q);
    }
    for (int k = 0; k < g->streaks; k++) {
        double d = (g->streak_a[k] * x + g->streak_b[k] * y - g->streak_c[k]) / 0.7;
        hu += g->streak_hu[k] / (1 + d * d);
    }
    return hu;
}

void ich_phantom_headrest(const anatomy *A, const slice_geo *g, double out, double y, pixel *p)
{
    if (y < 0.3 * A->half_length * g->scale)
        return;
    double gap = A->headrest_gap;
    if (out >= gap && out < gap + 3.5) { /* the cradle's plastic shell */
        p->tissue = T_HEADREST;
        p->hu = 90;
    } else if (gap > 2 && out > 0.3 && out < gap) { /* a foam pad */
        p->tissue = T_HEADREST;
        p->hu = -820;
    }
}


double ich_phantom_white_sd(double target, int kernel)
{
    /* The share of white noise's sd a kernel keeps, per axis the root of
     * the sum of its squared weights: [1 2 1]/4 6/16, twice 70/256, [1 6
     * 1]/8 38/64; in 2D the product of two axes. */
    double keep = kernel == PH_KERNEL_SOFT ? 70.0 / 256 : kernel == PH_KERNEL_SHARP ? 38.0 / 64
                                                                                     : 6.0 / 16;
    return target / keep;
}

/* The kernel is integer arithmetic (exact): let the compiler vectorize it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("tree-vectorize")
#endif

/* One row through [1 w 1] (a sum of w + 2 times the mean), the ends
 * repeated. Inlined into kernel_pass's two constant-w copies: w * x is
 * then a shift or an add, not a multiplication. */
static inline __attribute__((always_inline)) void kernel_row(const int16_t *in, int32_t *out,
                                                            int32_t columns, int32_t w)
{
    if (columns == 1) {
        out[0] = (w + 2) * in[0];
        return;
    }
    out[0] = (w + 1) * in[0] + in[1];
    for (int32_t c = 1; c + 1 < columns; c++)
        out[c] = in[c - 1] + w * in[c] + in[c + 1];
    out[columns - 1] = in[columns - 2] + (w + 1) * in[columns - 1];
}

/* One pass of [1 w 1]^2 / 2^shift, (w + 2)^2 = 2^shift. */
static inline __attribute__((always_inline)) void kernel_pass(int16_t *image, int32_t *ring, int32_t rows, int32_t columns, int32_t w,
                        int shift)
{
    /* Separable and in integers (exact, the same everywhere): each row
     * through the kernel into a ring of three rows, then each output row
     * from three of them, rounded. Row r is written only after row r + 1
     * was read, so the image is filtered in place. */
    int32_t *h[3] = {ring, ring + columns, ring + 2 * (size_t)columns};
    int32_t half = 1 << (shift - 1);
    kernel_row(image, h[0], columns, w);
    for (int32_t r = 0; r < rows; r++) {
        const int32_t *mid = h[r % 3], *up = r > 0 ? h[(r + 2) % 3] : mid;
        const int32_t *down = mid;
        if (r + 1 < rows) {
            kernel_row(image + (size_t)(r + 1) * columns, h[(r + 1) % 3], columns, w);
            down = h[(r + 1) % 3];
        }
        int16_t *out = image + (size_t)r * columns;
        for (int32_t c = 0; c < columns; c++)
            out[c] = (int16_t)((up[c] + w * mid[c] + down[c] + half) >> shift);
    }
}

/* The two kernels' passes with their weights as constants. */
static void pass_121(int16_t *image, int32_t *ring, int32_t rows, int32_t columns)
{
    kernel_pass(image, ring, rows, columns, 2, 4);
}

static void pass_161(int16_t *image, int32_t *ring, int32_t rows, int32_t columns)
{
    kernel_pass(image, ring, rows, columns, 6, 6);
}

void ich_phantom_kernel(int16_t *image, int32_t *ring, int32_t rows, int32_t columns,
                        int kernel)
{
    if (kernel == PH_KERNEL_SHARP) {
        pass_161(image, ring, rows, columns);
        return;
    }
    pass_121(image, ring, rows, columns);
    if (kernel == PH_KERNEL_SOFT)
        pass_121(image, ring, rows, columns);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
