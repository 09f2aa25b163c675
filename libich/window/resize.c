/* Separable resizing, row by row: bilinear (half-pixel centres, no
 * antialiasing), area (exact fractional-overlap averaging) and PIL's
 * antialiased bilinear (a triangle filter widened by the shrink factor).
 * Per-axis tables of source indices and weights are computed once per
 * call. Float images: each output row combines a few input rows (vertical
 * pass), then resamples that row (horizontal pass). 8-bit images: PIL's
 * order and arithmetic (horizontal pass, round to 8 bits, vertical pass,
 * round), with its fixed-point weights, so the result is PIL's to the bit. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/vectorize.h"
#include "window/resize.h"

/* Per output coordinate, `width` consecutive inputs from first[o] with
 * weights[o * width + k]. Every output has the same number of taps (short
 * ones are padded with zero weights), which keeps the inner loops simple. */
typedef struct axis {
    int32_t width;
    int halving; /* two taps, output o from input 2 o: contiguous loads */
    int32_t *first;
    float *weights;
    int32_t *fixed; /* the weights in PIL's fixed point, for 8-bit images */
} axis;

/* PIL's fixed point for 8-bit images: 22 fractional bits (32 - 8 - 2, so
 * a sum of 8-bit values times weights fits in 32 bits), rounded half away
 * from zero (Resample.c, normalize_coeffs_8bpc). */
#define FIXED_BITS 22

static int32_t to_fixed(double w)
{
    return (int32_t)(w < 0 ? -0.5 + w * (1 << FIXED_BITS) : 0.5 + w * (1 << FIXED_BITS));
}

static void axis_free(axis *a)
{
    free(a->first);
    free(a->weights);
    free(a->fixed);
}

static int axis_alloc(axis *a, int32_t out, int32_t width)
{
    a->width = width;
    a->first = malloc((size_t)out * sizeof *a->first);
    a->weights = calloc((size_t)out * (size_t)width, sizeof *a->weights);
    a->fixed = calloc((size_t)out * (size_t)width, sizeof *a->fixed);
    return a->first && a->weights && a->fixed ? 0 : -1;
}

/* Fixed-point weights from the float ones (methods other than PIL's). */
static void axis_fix_from_float(axis *a, int32_t out)
{
    for (size_t i = 0; i < (size_t)out * (size_t)a->width; i++)
        a->fixed[i] = to_fixed(a->weights[i]);
}

/* Bilinear as PyTorch's interpolate(align_corners=False): source coordinate
 * (o + 0.5) * in/out - 0.5, clamped at 0, two taps. */
static int axis_bilinear(axis *a, int32_t in, int32_t out)
{
    if (axis_alloc(a, out, in > 1 ? 2 : 1) != 0)
        return -1;
    float scale = (float)in / (float)out;
    for (int32_t o = 0; o < out; o++) {
        float src = scale * ((float)o + 0.5f) - 0.5f;
        if (src < 0)
            src = 0;
        int32_t i0 = (int32_t)src;
        float l1 = src - (float)i0;
        float *w = a->weights + (size_t)o * a->width;
        if (a->width == 1) {
            a->first[o] = 0;
            w[0] = 1.0f;
        } else if (i0 < in - 1) {
            a->first[o] = i0;
            w[0] = 1.0f - l1;
            w[1] = l1;
        } else { /* the last input alone: shift left, zero weight first */
            a->first[o] = in - 2;
            w[1] = 1.0f;
        }
    }
    return 0;
}

/* Area: output o covers input [o * s, (o + 1) * s) with s = in / out; each
 * input pixel weighs the length of its overlap divided by s. */
static int axis_area(axis *a, int32_t in, int32_t out)
{
    double s = (double)in / (double)out;
    int32_t width = (int32_t)ceil(s) + 1;
    if (width > in)
        width = in;
    if (axis_alloc(a, out, width) != 0)
        return -1;
    for (int32_t o = 0; o < out; o++) {
        double start = o * s, end = (o + 1) * s;
        int32_t first = (int32_t)floor(start);
        int32_t last = (int32_t)ceil(end) - 1;
        if (last > in - 1)
            last = in - 1;
        int32_t shifted = first < in - width ? first : in - width;
        a->first[o] = shifted;
        float *w = a->weights + (size_t)o * width;
        for (int32_t i = first; i <= last; i++) {
            double overlap = fmin(end, i + 1.0) - fmax(start, (double)i);
            w[i - shifted] = (float)(fmax(overlap, 0.0) / s);
        }
    }
    return 0;
}

static double triangle(double x)
{
    x = x < 0 ? -x : x;
    return x < 1 ? 1 - x : 0;
}

/* PIL's Image.resize(BILINEAR) (Resample.c, precompute_coeffs): output o is
 * centred at (o + 0.5) * scale; when shrinking (scale > 1) the triangle is
 * stretched by scale, so every input pixel contributes (antialiasing). The
 * taps are those within the support, rounded as PIL rounds them, and the
 * weights are normalised to sum to 1. Computed in double as PIL does. */
static int axis_antialias(axis *a, int32_t in, int32_t out)
{
    const double scale = (double)in / out, filterscale = scale < 1 ? 1 : scale;
    const double support = filterscale; /* the triangle's support is 1 */
    int32_t width = (int32_t)ceil(support) * 2 + 1;
    if (width > in)
        width = in;
    if (axis_alloc(a, out, width) != 0)
        return -1;
    for (int32_t o = 0; o < out; o++) {
        double center = (o + 0.5) * scale, total = 0;
        int32_t lo = (int32_t)(center - support + 0.5), hi = (int32_t)(center + support + 0.5);
        lo = lo < 0 ? 0 : lo;
        hi = hi > in ? in : hi;
        for (int32_t i = lo; i < hi; i++)
            total += triangle((i - center + 0.5) / filterscale);
        int32_t shifted = lo < in - width ? lo : in - width;
        a->first[o] = shifted;
        for (int32_t i = lo; i < hi; i++) {
            double w = triangle((i - center + 0.5) / filterscale);
            w = total != 0 ? w / total : w;
            a->weights[(size_t)o * width + (i - shifted)] = (float)w;
            a->fixed[(size_t)o * width + (i - shifted)] = to_fixed(w);
        }
    }
    return 0;
}

static int axis_make(axis *a, int32_t in, int32_t out, ich_resize_method method)
{
    a->first = NULL;
    a->weights = NULL;
    a->fixed = NULL;
    int rc = method == ICH_RESIZE_ANTIALIAS ? axis_antialias(a, in, out)
             : method == ICH_RESIZE_AREA    ? axis_area(a, in, out)
                                            : axis_bilinear(a, in, out);
    if (rc == 0 && method != ICH_RESIZE_ANTIALIAS)
        axis_fix_from_float(a, out);
    a->halving = rc == 0 && a->width == 2;
    for (int32_t o = 0; rc == 0 && o < out && a->halving; o++)
        a->halving = a->first[o] == 2 * o;
    if (rc != 0)
        axis_free(a);
    return rc;
}

/* One row resampled: out[o] = sum_k w[o][k] * in[first[o] + k]. */
ICH_VECTORIZE
static void resample_row(const float *in, const axis *ax, float *out, int32_t out_cols)
{
    const int32_t width = ax->width;
    if (ax->halving) {
        /* the same sums with contiguous loads, which vectorise (the gather
         * below does not): 512 -> 256, the usual CT case (issue 16) */
        for (int32_t o = 0; o < out_cols; o++)
            out[o] = ax->weights[2 * o] * in[2 * o] + ax->weights[2 * o + 1] * in[2 * o + 1];
        return;
    }
    if (width == 2) { /* bilinear: the common case, kept branch-free */
        for (int32_t o = 0; o < out_cols; o++) {
            const float *s = in + ax->first[o];
            const float *w = ax->weights + 2 * (size_t)o;
            out[o] = w[0] * s[0] + w[1] * s[1];
        }
        return;
    }
    for (int32_t o = 0; o < out_cols; o++) {
        const float *s = in + ax->first[o];
        const float *w = ax->weights + (size_t)o * width;
        float acc = 0;
        for (int32_t k = 0; k < width; k++)
            acc += w[k] * s[k];
        out[o] = acc;
    }
}

/* dst = sum_k w[k] * rows[k], whole rows at a time: vectorises. */
ICH_VECTORIZE
static void combine_rows(const float *const *rows, const float *w, int32_t width, int32_t cols,
                         float *dst)
{
    for (int32_t c = 0; c < cols; c++)
        dst[c] = 0;
    for (int32_t k = 0; k < width; k++) {
        const float *src = rows[k];
        const float wk = w[k];
        for (int32_t c = 0; c < cols; c++)
            dst[c] += wk * src[c];
    }
}

/* Both axes' filters (columns, then rows); nothing to free on failure. */
static ich_status axes_make(axis *ax, axis *ay, int32_t in_rows, int32_t in_cols,
                            int32_t out_rows, int32_t out_cols, ich_resize_method method)
{
    if (axis_make(ax, in_cols, out_cols, method) != 0)
        return ich_fail(ICH_ERR_NO_MEMORY, "resize: out of memory");
    if (axis_make(ay, in_rows, out_rows, method) != 0) {
        axis_free(ax);
        return ich_fail(ICH_ERR_NO_MEMORY, "resize: out of memory");
    }
    return ICH_OK;
}

ich_status ich_resize_rows(int32_t in_rows, int32_t in_cols, int32_t out_rows, int32_t out_cols,
                           ich_resize_method method, ich_fill_row_fn fill, ich_take_row_fn take,
                           void *ctx)
{
    axis ax, ay;
    ich_status made = axes_make(&ax, &ay, in_rows, in_cols, out_rows, out_cols, method);
    if (made != ICH_OK)
        return made;
    /* Input rows live in a ring of ay.width slots: output row o needs rows
     * first[o] .. first[o] + width - 1, and first[] never decreases. */
    const int32_t slots = ay.width;
    float *ring = malloc((size_t)slots * in_cols * sizeof *ring);
    int32_t *ring_row = malloc((size_t)slots * sizeof *ring_row);
    float *column_pass = malloc((size_t)in_cols * sizeof *column_pass);
    float *out = malloc((size_t)out_cols * sizeof *out);
    const float **rows = malloc((size_t)slots * sizeof *rows);
    ich_status st = ICH_OK;
    if (!ring || !ring_row || !column_pass || !out || !rows) {
        st = ich_fail(ICH_ERR_NO_MEMORY, "resize: out of memory");
    } else {
        for (int32_t i = 0; i < slots; i++)
            ring_row[i] = -1;
        for (int32_t o = 0; o < out_rows; o++) {
            for (int32_t k = 0; k < slots; k++) {
                int32_t r = ay.first[o] + k;
                float *slot = ring + (size_t)(r % slots) * in_cols;
                if (ring_row[r % slots] != r) {
                    fill(ctx, r, slot);
                    ring_row[r % slots] = r;
                }
                rows[k] = slot;
            }
            combine_rows(rows, ay.weights + (size_t)o * slots, slots, in_cols, column_pass);
            resample_row(column_pass, &ax, out, out_cols);
            take(ctx, o, out);
        }
    }
    free(ring);
    free(ring_row);
    free(column_pass);
    free(out);
    free(rows);
    axis_free(&ax);
    axis_free(&ay);
    return st;
}

/* ---- 8-bit images, as PIL ---------------------------------------------- */

static uint8_t clip8(int64_t acc)
{
    if (acc <= 0)
        return 0;
    if (acc >= ((int64_t)256 << FIXED_BITS))
        return 255;
    return (uint8_t)(acc >> FIXED_BITS);
}

/* out[o] = round(sum_k fixed[o][k] * in[(first[o] + k) * stride]) for
 * `count` outputs spaced `out_stride` apart. */
static void resample_u8(const uint8_t *in, size_t stride, const axis *ax, int32_t count,
                        uint8_t *out, size_t out_stride)
{
    for (int32_t o = 0; o < count; o++) {
        const uint8_t *s = in + (size_t)ax->first[o] * stride;
        const int32_t *w = ax->fixed + (size_t)o * ax->width;
        int64_t acc = (int64_t)1 << (FIXED_BITS - 1); /* rounds half up */
        for (int32_t k = 0; k < ax->width; k++)
            acc += (int64_t)s[(size_t)k * stride] * w[k];
        out[(size_t)o * out_stride] = clip8(acc);
    }
}

ich_status ich_resize_u8(const uint8_t *in, int32_t in_rows, int32_t in_cols, uint8_t *out,
                         int32_t out_rows, int32_t out_cols, ich_resize_method method)
{
    axis ax, ay;
    ich_status made = axes_make(&ax, &ay, in_rows, in_cols, out_rows, out_cols, method);
    if (made != ICH_OK)
        return made;
    /* PIL resamples the rows first and keeps that pass as an 8-bit image. */
    uint8_t *wide = malloc((size_t)in_rows * out_cols);
    ich_status st = wide ? ICH_OK : ich_fail(ICH_ERR_NO_MEMORY, "resize: out of memory");
    if (wide) {
        for (int32_t r = 0; r < in_rows; r++)
            resample_u8(in + (size_t)r * in_cols, 1, &ax, out_cols, wide + (size_t)r * out_cols, 1);
        for (int32_t c = 0; c < out_cols; c++)
            resample_u8(wide + c, (size_t)out_cols, &ay, out_rows, out + c, (size_t)out_cols);
    }
    free(wide);
    axis_free(&ax);
    axis_free(&ay);
    return st;
}
