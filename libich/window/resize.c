/* Separable resizing of float32 planes: bilinear (half-pixel centres, no
 * antialiasing) and area (exact fractional-overlap averaging). Both are
 * written as a horizontal pass into `scratch` and a vertical pass, with
 * per-axis tables of source indices and weights computed once per call. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "window/resize.h"

/* One output coordinate's sources: `count` consecutive inputs from `first`. */
typedef struct taps {
    int32_t first;
    int32_t count;
    int32_t weight_offset; /* into the weight array */
} taps;

typedef struct axis {
    taps *taps;
    float *weights;
} axis;

static void axis_free(axis *a)
{
    free(a->taps);
    free(a->weights);
}

/* Bilinear as PyTorch's interpolate(align_corners=False): source coordinate
 * (o + 0.5) * in/out - 0.5, clamped at 0, two taps. */
static int axis_bilinear(axis *a, int32_t in, int32_t out)
{
    a->taps = malloc((size_t)out * sizeof *a->taps);
    a->weights = malloc((size_t)out * 2 * sizeof *a->weights);
    if (!a->taps || !a->weights)
        return -1;
    float scale = (float)in / (float)out;
    for (int32_t o = 0; o < out; o++) {
        float src = scale * ((float)o + 0.5f) - 0.5f;
        if (src < 0)
            src = 0;
        int32_t i0 = (int32_t)src;
        int32_t step = i0 < in - 1 ? 1 : 0;
        float l1 = src - (float)i0;
        a->taps[o] = (taps){i0, 1 + step, 2 * o};
        a->weights[2 * o] = step ? 1.0f - l1 : 1.0f;
        a->weights[2 * o + 1] = step ? l1 : 0.0f;
    }
    return 0;
}

/* Area: output o covers input [o * s, (o + 1) * s) with s = in / out; each
 * input pixel weighs the length of its overlap divided by s. */
static int axis_area(axis *a, int32_t in, int32_t out)
{
    double s = (double)in / (double)out;
    int32_t max_taps = (int32_t)ceil(s) + 2;
    a->taps = malloc((size_t)out * sizeof *a->taps);
    a->weights = malloc((size_t)out * (size_t)max_taps * sizeof *a->weights);
    if (!a->taps || !a->weights)
        return -1;
    int32_t offset = 0;
    for (int32_t o = 0; o < out; o++) {
        double start = o * s, end = (o + 1) * s;
        int32_t first = (int32_t)floor(start);
        int32_t last = (int32_t)ceil(end) - 1;
        if (last > in - 1)
            last = in - 1;
        a->taps[o] = (taps){first, last - first + 1, offset};
        for (int32_t i = first; i <= last; i++) {
            double overlap = fmin(end, i + 1.0) - fmax(start, (double)i);
            a->weights[offset++] = (float)(fmax(overlap, 0.0) / s);
        }
    }
    return 0;
}

static int axis_make(axis *a, int32_t in, int32_t out, ich_resize_method method)
{
    a->taps = NULL;
    a->weights = NULL;
    int rc = method == ICH_RESIZE_AREA ? axis_area(a, in, out) : axis_bilinear(a, in, out);
    if (rc != 0)
        axis_free(a);
    return rc;
}

/* Resample along rows: out[r][o] = sum_k w[k] * in[r][first + k]. */
static void pass_horizontal(const float *in, int32_t rows, int32_t in_cols, const axis *ax,
                            float *out, int32_t out_cols)
{
    for (int32_t r = 0; r < rows; r++) {
        const float *src = in + (size_t)r * in_cols;
        float *dst = out + (size_t)r * out_cols;
        for (int32_t o = 0; o < out_cols; o++) {
            const taps t = ax->taps[o];
            const float *w = ax->weights + t.weight_offset;
            float acc = 0;
            for (int32_t k = 0; k < t.count; k++)
                acc += w[k] * src[t.first + k];
            dst[o] = acc;
        }
    }
}

/* Resample along columns by combining whole rows: vectorises over columns. */
static void pass_vertical(const float *in, int32_t cols, const axis *ay, float *out,
                          int32_t out_rows)
{
    for (int32_t o = 0; o < out_rows; o++) {
        const taps t = ay->taps[o];
        const float *w = ay->weights + t.weight_offset;
        float *dst = out + (size_t)o * cols;
        for (int32_t c = 0; c < cols; c++)
            dst[c] = 0;
        for (int32_t k = 0; k < t.count; k++) {
            const float *src = in + (size_t)(t.first + k) * cols;
            const float wk = w[k];
            for (int32_t c = 0; c < cols; c++)
                dst[c] += wk * src[c];
        }
    }
}

size_t ich_resize_scratch(int32_t in_rows, int32_t in_cols, int32_t out_rows, int32_t out_cols)
{
    size_t a = (size_t)in_rows * out_cols, b = (size_t)out_rows * in_cols;
    return a > b ? a : b;
}

ich_status ich_resize_plane(const float *in, int32_t in_rows, int32_t in_cols, float *out,
                            int32_t out_rows, int32_t out_cols, ich_resize_method method,
                            float *scratch)
{
    axis ax, ay;
    if (axis_make(&ax, in_cols, out_cols, method) != 0)
        return ich_fail(ICH_ERR_NO_MEMORY, "resize: out of memory");
    if (axis_make(&ay, in_rows, out_rows, method) != 0) {
        axis_free(&ax);
        return ich_fail(ICH_ERR_NO_MEMORY, "resize: out of memory");
    }
    /* Shrinking rows first leaves the slower horizontal pass fewer rows. */
    if (out_rows < in_rows) {
        pass_vertical(in, in_cols, &ay, scratch, out_rows);
        pass_horizontal(scratch, out_rows, in_cols, &ax, out, out_cols);
    } else {
        pass_horizontal(in, in_rows, in_cols, &ax, scratch, out_cols);
        pass_vertical(scratch, out_cols, &ay, out, out_rows);
    }
    axis_free(&ax);
    axis_free(&ay);
    return ICH_OK;
}
