/* Tests for <ich/window.h>: presets, recipe configuration and its errors,
 * output shapes, apply_u8/apply_f32 against a naive reference written from
 * the formulas in window.h, DICOM -> PNG, and concurrent use of one recipe. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include <stb_image.h>

#include "ich/ich.h"
#include "test_util.h"

/* ---- Naive reference ----------------------------------------------------- */

/* What a recipe holds, as the test configures it. */
typedef struct recipe {
    int nwin;
    float center[ICH_WINDOW_MAX_CHANNELS];
    float width[ICH_WINDOW_MAX_CHANNELS];
    ich_window_mode mode;
    int32_t out_rows, out_cols; /* 0: keep the input size */
    ich_resize_method method;
    int nnorm; /* 0, 1 or channels */
    float mean[ICH_WINDOW_MAX_CHANNELS];
    float std[ICH_WINDOW_MAX_CHANNELS];
} recipe;

static int ref_channels(const recipe *r)
{
    return r->nwin ? r->nwin : 1;
}

/* Step 1: map to [0, 1], channel-planar, float32 in the header's order. */
static void ref_map(const recipe *r, const float *hu, int n, float *v)
{
    int channels = ref_channels(r);
    for (int c = 0; c < channels; c++) {
        float *o = v + (size_t)c * n;
        if (r->mode == ICH_WINDOW_LINEAR) {
            float width = r->width[c];
            float lo = r->center[c] - width / 2.0f;
            for (int i = 0; i < n; i++) {
                float t = (hu[i] - lo) / width;
                if (t < 0.0f)
                    t = 0.0f;
                if (t > 1.0f)
                    t = 1.0f;
                o[i] = t;
            }
        } else {
            for (int i = 0; i < n; i++) {
                float x = hu[i];
                if (r->nwin) {
                    float lo = r->center[c] - r->width[c] / 2.0f;
                    float hi = lo + r->width[c];
                    if (x < lo)
                        x = lo;
                    if (x > hi)
                        x = hi;
                }
                o[i] = x;
            }
            float mn = o[0], mx = o[0];
            for (int i = 1; i < n; i++) {
                if (o[i] < mn)
                    mn = o[i];
                if (o[i] > mx)
                    mx = o[i];
            }
            float den = (mx - mn) + 1e-5f;
            for (int i = 0; i < n; i++)
                o[i] = (o[i] - mn) / den;
        }
    }
}

/* One axis of a resize: for each output index, up to `MAXTAP` (index,
 * weight) pairs, computed in double. */
#define MAXTAP 64
typedef struct taps {
    int count;
    int index[MAXTAP];
    double weight[MAXTAP];
} taps;

/* Bilinear, half-pixel centres, no antialiasing, with the source coordinate
 * computed in float32 exactly as PyTorch's upsample_bilinear2d
 * (align_corners=False) does: scale = in / out, src = scale * (j + 0.5) - 0.5,
 * clamped at 0, lambda = src - (int)src. */
static void bilinear_taps(int in, int out, taps *t)
{
    float scale = (float)in / (float)out;
    for (int j = 0; j < out; j++) {
        float src = scale * ((float)j + 0.5f) - 0.5f;
        if (src < 0.0f)
            src = 0.0f;
        int i0 = (int)src;
        if (i0 > in - 1)
            i0 = in - 1;
        int i1 = i0 < in - 1 ? i0 + 1 : i0;
        float l1 = src - (float)i0;
        float l0 = 1.0f - l1;
        t[j].count = 2;
        t[j].index[0] = i0;
        t[j].weight[0] = l0;
        t[j].index[1] = i1;
        t[j].weight[1] = l1;
    }
}

/* Area: output j covers [j*s, (j+1)*s) of the input, s = in/out; the mean
 * of the covered input, fractional pixels weighted by their coverage. */
static void area_taps(int in, int out, taps *t)
{
    double scale = (double)in / (double)out;
    for (int j = 0; j < out; j++) {
        double start = j * scale, end = (j + 1) * scale;
        if (end > in)
            end = in;
        t[j].count = 0;
        for (int i = (int)floor(start); i < in && i < end; i++) {
            double a = start > i ? start : i;
            double b = end < i + 1 ? end : i + 1;
            if (b - a <= 0)
                continue;
            assert_true(t[j].count < MAXTAP);
            t[j].index[t[j].count] = i;
            t[j].weight[t[j].count] = (b - a) / (end - start);
            t[j].count++;
        }
    }
}

/* Step 2 in double: resize one plane. */
static void ref_resize(const float *src, int in_rows, int in_cols, int out_rows, int out_cols,
                       ich_resize_method method, double *dst)
{
    taps *ty = calloc((size_t)out_rows, sizeof *ty);
    taps *tx = calloc((size_t)out_cols, sizeof *tx);
    assert_non_null(ty);
    assert_non_null(tx);
    if (method == ICH_RESIZE_BILINEAR) {
        bilinear_taps(in_rows, out_rows, ty);
        bilinear_taps(in_cols, out_cols, tx);
    } else {
        area_taps(in_rows, out_rows, ty);
        area_taps(in_cols, out_cols, tx);
    }
    for (int y = 0; y < out_rows; y++)
        for (int x = 0; x < out_cols; x++) {
            double acc = 0;
            for (int a = 0; a < ty[y].count; a++)
                for (int b = 0; b < tx[x].count; b++)
                    acc += ty[y].weight[a] * tx[x].weight[b] *
                           src[(size_t)ty[y].index[a] * in_cols + tx[x].index[b]];
            dst[(size_t)y * out_cols + x] = acc;
        }
    free(ty);
    free(tx);
}

/* Pseudo-random HU values over the whole CT range, with quarter fractions,
 * plus the window edges of the usual presets. */
static float *make_hu(int rows, int cols, uint32_t seed)
{
    int n = rows * cols;
    float *hu = malloc((size_t)n * sizeof *hu);
    assert_non_null(hu);
    for (int i = 0; i < n; i++)
        hu[i] = (float)((int)(tu_rand(&seed) % 4600) - 1200) + (float)(tu_rand(&seed) % 4) * 0.25f;
    const float edges[] = {0.0f, 80.0f, 40.0f, -32.5f, 182.5f, -800.0f, 2000.0f, -1024.0f, 3071.0f};
    for (size_t k = 0; k < sizeof edges / sizeof edges[0] && (int)k < n; k++)
        hu[(k * 7919u) % (unsigned)n] = edges[k];
    return hu;
}

/* Build the library's recipe from the test's. */
static ich_window *build(const recipe *r)
{
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_non_null(w);
    for (int i = 0; i < r->nwin; i++)
        assert_int_equal(ich_window_add(w, r->center[i], r->width[i]), ICH_OK);
    assert_int_equal(ich_window_count(w), r->nwin);
    assert_int_equal(ich_window_set_mode(w, r->mode), ICH_OK);
    assert_int_equal(ich_window_set_size(w, r->out_rows, r->out_cols, r->method), ICH_OK);
    if (r->nnorm)
        assert_int_equal(ich_window_set_normalization(w, r->mean, r->std, r->nnorm), ICH_OK);
    return w;
}

/* Apply `r` to a generated slice with the library and the reference and
 * compare: exact without resize, tolerant (1e-5; u8 within a rounding
 * boundary) with resize. */
static void check_case(const char *what, const recipe *r, int in_rows, int in_cols,
                       uint32_t seed)
{
    ich_window *w = build(r);
    float *hu = make_hu(in_rows, in_cols, seed);
    int n = in_rows * in_cols;
    int channels = ref_channels(r);
    int resized = r->out_rows != 0;
    int orows = resized ? r->out_rows : in_rows;
    int ocols = resized ? r->out_cols : in_cols;
    int on = orows * ocols;

    int32_t sc = -1, sr = -1, scol = -1;
    assert_int_equal(ich_window_output_shape(w, in_rows, in_cols, &sc, &sr, &scol), ICH_OK);
    if (sc != channels || sr != orows || scol != ocols)
        fail_msg("%s: output shape %dx%dx%d, expected %dx%dx%d", what, sc, sr, scol, channels,
                 orows, ocols);

    /* Reference. */
    float *v = malloc((size_t)channels * n * sizeof *v);
    double *rv = malloc((size_t)channels * on * sizeof *rv);
    assert_non_null(v);
    assert_non_null(rv);
    ref_map(r, hu, n, v);
    if (resized)
        for (int c = 0; c < channels; c++)
            ref_resize(v + (size_t)c * n, in_rows, in_cols, orows, ocols, r->method,
                       rv + (size_t)c * on);

    /* uint8, HWC. */
    size_t count = (size_t)channels * on;
    uint8_t *u8 = malloc(count + 1);
    assert_non_null(u8);
    ich_status st = ich_window_apply_u8(w, hu, in_rows, in_cols, u8, count);
    if (st != ICH_OK)
        fail_msg("%s: apply_u8: %s (%s)", what, ich_status_string(st), ich_last_error());
    for (int c = 0; c < channels; c++)
        for (int i = 0; i < on; i++) {
            int got = u8[(size_t)i * channels + c];
            if (!resized) {
                int expect = (uint8_t)(v[(size_t)c * n + i] * 255.0f);
                if (got != expect)
                    fail_msg("%s: u8 channel %d pixel %d = %d, expected %d (v %.9g, hu %.9g)",
                             what, c, i, got, expect, v[(size_t)c * n + i], hu[i]);
            } else {
                double x = rv[(size_t)c * on + i] * 255.0;
                int lo = (int)floor(x - 1e-3), hi = (int)floor(x + 1e-3);
                lo = lo < 0 ? 0 : lo > 255 ? 255 : lo;
                hi = hi < 0 ? 0 : hi > 255 ? 255 : hi;
                if (got < lo || got > hi)
                    fail_msg("%s: u8 channel %d pixel %d (row %d col %d) = %d, expected %.6f*255",
                             what, c, i, i / ocols, i % ocols, got, rv[(size_t)c * on + i]);
            }
        }
    /* Wrong sizes. */
    assert_int_equal(ich_window_apply_u8(w, hu, in_rows, in_cols, u8, count - 1), ICH_ERR_SHAPE);
    assert_int_equal(ich_window_apply_u8(w, hu, in_rows, in_cols, u8, count + 1), ICH_ERR_SHAPE);

    /* float32, CHW, normalised. */
    float *f32 = malloc((count + 1) * sizeof *f32);
    assert_non_null(f32);
    st = ich_window_apply_f32(w, hu, in_rows, in_cols, f32, count);
    if (st != ICH_OK)
        fail_msg("%s: apply_f32: %s (%s)", what, ich_status_string(st), ich_last_error());
    for (int c = 0; c < channels; c++) {
        float mean = 0.0f, std = 1.0f;
        if (r->nnorm) {
            mean = r->mean[r->nnorm == 1 ? 0 : c];
            std = r->std[r->nnorm == 1 ? 0 : c];
        }
        for (int i = 0; i < on; i++) {
            float got = f32[(size_t)c * on + i];
            if (!resized) {
                float expect = (v[(size_t)c * n + i] - mean) / std;
                if (got != expect)
                    fail_msg("%s: f32 channel %d pixel %d = %.9g, expected %.9g", what, c, i,
                             got, expect);
            } else {
                double expect = (rv[(size_t)c * on + i] - mean) / std;
                if (!(fabs(got - expect) <= 1e-5))
                    fail_msg("%s: f32 channel %d pixel %d (row %d col %d) = %.9g, expected %.9g",
                             what, c, i, i / ocols, i % ocols, got, expect);
            }
        }
    }
    assert_int_equal(ich_window_apply_f32(w, hu, in_rows, in_cols, f32, count - 1),
                     ICH_ERR_SHAPE);
    assert_int_equal(ich_window_apply_f32(w, hu, in_rows, in_cols, f32, count + 1),
                     ICH_ERR_SHAPE);
    assert_int_equal(ich_window_apply_f32(w, hu, in_rows, in_cols, f32, 0), ICH_ERR_SHAPE);

    free(f32);
    free(u8);
    free(rv);
    free(v);
    free(hu);
    ich_window_free(w);
}

static recipe make_recipe(ich_window_mode mode, const char *presets)
{
    recipe r;
    memset(&r, 0, sizeof r);
    r.mode = mode;
    /* presets: a string of letters, one per window. */
    for (const char *p = presets; *p; p++) {
        float c = 0, w = 0;
        switch (*p) {
        case 'l': c = 75; w = 215; break;    /* blood */
        case 'b': c = 40; w = 80; break;     /* brain */
        case 'o': c = 600; w = 2800; break;  /* bone */
        case 's': c = 80; w = 200; break;    /* subdural */
        case 'x': c = -37.3f; w = 123.7f; break; /* odd numbers */
        default: fail_msg("bad preset letter %c", *p);
        }
        r.center[r.nwin] = c;
        r.width[r.nwin] = w;
        r.nwin++;
    }
    return r;
}

static void set_norm1(recipe *r)
{
    r->nnorm = 1;
    r->mean[0] = 0.380f;
    r->std[0] = 0.236f;
}

static void set_norm_each(recipe *r)
{
    static const float means[] = {0.380f, 0.1f, 0.7f, 0.33f};
    static const float stds[] = {0.236f, 0.3f, 0.17f, 1.7f};
    r->nnorm = ref_channels(r);
    for (int c = 0; c < r->nnorm; c++) {
        r->mean[c] = means[c % 4];
        r->std[c] = stds[c % 4];
    }
}

/* ---- Presets ------------------------------------------------------------- */

static void test_presets(void **state)
{
    (void)state;
    const struct {
        const char *name;
        float center, width;
    } presets[] = {
        {"brain", 40, 80},    {"subdural", 80, 200},      {"blood", 75, 215},
        {"bone", 600, 2800},  {"stroke", 40, 40},         {"soft_tissue", 40, 350},
        {"soft", 40, 350},    {"BRAIN", 40, 80},          {"Blood", 75, 215},
        {"bOnE", 600, 2800},  {"Soft_Tissue", 40, 350},   {"SUBDURAL", 80, 200},
        {"Stroke", 40, 40},   {"SOFT", 40, 350},
    };
    for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
        float c = -1, w = -1;
        ich_status st = ich_window_preset(presets[k].name, &c, &w);
        if (st != ICH_OK)
            fail_msg("preset %s: %s", presets[k].name, ich_status_string(st));
        assert_true(c == presets[k].center);
        assert_true(w == presets[k].width);
        /* Either out pointer may be NULL. */
        c = -1;
        assert_int_equal(ich_window_preset(presets[k].name, &c, NULL), ICH_OK);
        assert_true(c == presets[k].center);
        w = -1;
        assert_int_equal(ich_window_preset(presets[k].name, NULL, &w), ICH_OK);
        assert_true(w == presets[k].width);
        assert_int_equal(ich_window_preset(presets[k].name, NULL, NULL), ICH_OK);
    }

    ich_clear_error();
    float c = 0, w = 0;
    assert_int_equal(ich_window_preset("nosuch", &c, &w), ICH_ERR_NOT_FOUND);
    /* The message lists the presets. */
    const char *msg = ich_last_error();
    assert_non_null(strstr(msg, "brain"));
    assert_non_null(strstr(msg, "bone"));
    assert_non_null(strstr(msg, "subdural"));
    assert_int_equal(ich_window_preset("brains", &c, &w), ICH_ERR_NOT_FOUND);
    assert_int_equal(ich_window_preset("brai", &c, &w), ICH_ERR_NOT_FOUND);
    assert_int_not_equal(ich_window_preset("", &c, &w), ICH_OK);
    assert_int_equal(ich_window_preset(NULL, &c, &w), ICH_ERR_INVALID_ARGUMENT);
    ich_clear_error();
}

/* ---- Create, add, get ---------------------------------------------------- */

static void test_create_free(void **state)
{
    (void)state;
    assert_int_equal(ich_window_create(NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_non_null(w);
    assert_int_equal(ich_window_count(w), 0);
    float c, width;
    assert_int_equal(ich_window_get(w, 0, &c, &width), ICH_ERR_INVALID_ARGUMENT);
    /* Empty LINEAR recipe: no output shape. */
    assert_int_equal(ich_window_output_shape(w, 10, 10, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    ich_window_free(w);
    ich_window_free(NULL);
}

static void test_add_get(void **state)
{
    (void)state;
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add(w, 40, 80), ICH_OK);
    assert_int_equal(ich_window_add(w, -37.25f, 0.5f), ICH_OK);
    assert_int_equal(ich_window_count(w), 2);
    float c = 0, width = 0;
    assert_int_equal(ich_window_get(w, 0, &c, &width), ICH_OK);
    assert_true(c == 40 && width == 80);
    assert_int_equal(ich_window_get(w, 1, &c, &width), ICH_OK);
    assert_true(c == -37.25f && width == 0.5f);
    assert_int_equal(ich_window_get(w, 2, &c, &width), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_get(w, -1, &c, &width), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_get(NULL, 0, &c, &width), ICH_ERR_INVALID_ARGUMENT);

    /* Bad windows change nothing. */
    const float bad[][2] = {
        {40, 0}, {40, -1}, {40, NAN}, {40, INFINITY}, {40, -INFINITY}, {NAN, 80},
        {INFINITY, 80}, {-INFINITY, 80},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (ich_window_add(w, bad[k][0], bad[k][1]) != ICH_ERR_INVALID_ARGUMENT)
            fail_msg("ich_window_add(%g, %g) accepted", bad[k][0], bad[k][1]);
        assert_int_equal(ich_window_count(w), 2);
    }
    assert_int_equal(ich_window_add(NULL, 40, 80), ICH_ERR_INVALID_ARGUMENT);

    /* Up to ICH_WINDOW_MAX_CHANNELS. */
    while (ich_window_count(w) < ICH_WINDOW_MAX_CHANNELS)
        assert_int_equal(ich_window_add(w, (float)ich_window_count(w), 10), ICH_OK);
    assert_int_equal(ich_window_add(w, 1, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_count(w), ICH_WINDOW_MAX_CHANNELS);
    assert_int_equal(ich_window_get(w, ICH_WINDOW_MAX_CHANNELS - 1, &c, &width), ICH_OK);
    assert_true(c == (float)(ICH_WINDOW_MAX_CHANNELS - 1) && width == 10);
    ich_window_free(w);
}

static void expect_windows(ich_window *w, int n, const float *expect)
{
    assert_int_equal(ich_window_count(w), n);
    for (int i = 0; i < n; i++) {
        float c = 0, width = 0;
        assert_int_equal(ich_window_get(w, i, &c, &width), ICH_OK);
        if (c != expect[2 * i] || width != expect[2 * i + 1])
            fail_msg("window %d is %g/%g, expected %g/%g", i, c, width, expect[2 * i],
                     expect[2 * i + 1]);
    }
}

static void test_add_list(void **state)
{
    (void)state;
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "blood,brain,bone"), ICH_OK);
    const float e1[] = {75, 215, 40, 80, 600, 2800};
    expect_windows(w, 3, e1);
    assert_int_equal(ich_window_add_list(w, "40/80,600/2800"), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "-100/300,2.5/0.5"), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "BLOOD,Soft"), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "soft_tissue"), ICH_OK);
    const float e2[] = {75, 215, 40, 80, 600, 2800, 40, 80, 600, 2800, -100, 300, 2.5f, 0.5f,
                        75, 215, 40, 350, 40, 350};
    expect_windows(w, 10, e2);

    /* Bad lists append nothing. */
    const struct {
        const char *list;
        ich_status status; /* ICH_OK here: any error */
    } bad[] = {
        {"blood,,bone", ICH_ERR_INVALID_ARGUMENT},
        {"40/0", ICH_ERR_INVALID_ARGUMENT},
        {"40/abc", ICH_ERR_INVALID_ARGUMENT},
        {"nosuch", ICH_ERR_NOT_FOUND},
        {"blood,nosuch", ICH_ERR_NOT_FOUND},
        {"brain,40/0", ICH_ERR_INVALID_ARGUMENT},
        {"", ICH_ERR_INVALID_ARGUMENT},
        {"blood,", ICH_ERR_INVALID_ARGUMENT},
        {",blood", ICH_ERR_INVALID_ARGUMENT},
        {"40/", ICH_ERR_INVALID_ARGUMENT},
        {"40/-80", ICH_ERR_INVALID_ARGUMENT},
        {"40/80x", ICH_ERR_INVALID_ARGUMENT},
        {"40/inf", ICH_ERR_INVALID_ARGUMENT},
        {"/80", ICH_OK},
        {"abc/80", ICH_OK},
        {"nan/80", ICH_OK},
        {"40/80/3", ICH_OK},
        /* Would pass ICH_WINDOW_MAX_CHANNELS (10 + 7 = 17). */
        {"blood,brain,bone,blood,brain,bone,brain", ICH_ERR_INVALID_ARGUMENT},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ich_status st = ich_window_add_list(w, bad[k].list);
        if (bad[k].status != ICH_OK ? st != bad[k].status : st == ICH_OK)
            fail_msg("add_list(\"%s\") gave %s, expected %s", bad[k].list, ich_status_string(st),
                     bad[k].status != ICH_OK ? ich_status_string(bad[k].status) : "an error");
        expect_windows(w, 10, e2);
    }
    assert_int_equal(ich_window_add_list(w, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_add_list(NULL, "blood"), ICH_ERR_INVALID_ARGUMENT);
    expect_windows(w, 10, e2);
    /* Exactly reaching the maximum is fine. */
    assert_int_equal(ich_window_add_list(w, "blood,brain,bone,1/1,2/2,3/3"), ICH_OK);
    assert_int_equal(ich_window_count(w), ICH_WINDOW_MAX_CHANNELS);
    ich_window_free(w);
}

/* ---- Mode, size, normalisation, output shape ----------------------------- */

static void test_setters(void **state)
{
    (void)state;
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);

    assert_int_equal(ich_window_set_mode(w, ICH_WINDOW_MINMAX), ICH_OK);
    assert_int_equal(ich_window_set_mode(w, ICH_WINDOW_LINEAR), ICH_OK);
    assert_int_equal(ich_window_set_mode(w, (ich_window_mode)2), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_mode(w, (ich_window_mode)-1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_mode(NULL, ICH_WINDOW_LINEAR), ICH_ERR_INVALID_ARGUMENT);

    assert_int_equal(ich_window_set_size(w, 256, 128, ICH_RESIZE_BILINEAR), ICH_OK);
    assert_int_equal(ich_window_set_size(w, 16384, 16384, ICH_RESIZE_AREA), ICH_OK);
    assert_int_equal(ich_window_set_size(w, 0, 0, ICH_RESIZE_AREA), ICH_OK);
    const int32_t bad_sizes[][2] = {{-1, 10}, {10, -1}, {0, 10}, {10, 0}, {16385, 10},
                                    {10, 16385}, {-5, -5}, {INT32_MAX, 10}};
    for (size_t k = 0; k < sizeof bad_sizes / sizeof bad_sizes[0]; k++)
        if (ich_window_set_size(w, bad_sizes[k][0], bad_sizes[k][1], ICH_RESIZE_BILINEAR) !=
            ICH_ERR_INVALID_ARGUMENT)
            fail_msg("set_size(%d, %d) accepted", bad_sizes[k][0], bad_sizes[k][1]);
    assert_int_equal(ich_window_set_size(w, 10, 10, (ich_resize_method)3),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_size(w, 10, 10, (ich_resize_method)-1),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_size(NULL, 10, 10, ICH_RESIZE_BILINEAR),
                     ICH_ERR_INVALID_ARGUMENT);

    const float mean[ICH_WINDOW_MAX_CHANNELS + 1] = {0.38f, 0.5f, 0.5f};
    float std[ICH_WINDOW_MAX_CHANNELS + 1];
    for (int i = 0; i <= ICH_WINDOW_MAX_CHANNELS; i++)
        std[i] = 0.25f;
    assert_int_equal(ich_window_set_normalization(w, mean, std, 1), ICH_OK);
    assert_int_equal(ich_window_set_normalization(w, mean, std, 3), ICH_OK);
    assert_int_equal(ich_window_set_normalization(w, mean, std, ICH_WINDOW_MAX_CHANNELS), ICH_OK);
    assert_int_equal(ich_window_set_normalization(w, NULL, NULL, 0), ICH_OK);
    assert_int_equal(ich_window_set_normalization(w, NULL, std, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_normalization(w, mean, NULL, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_normalization(w, mean, std, ICH_WINDOW_MAX_CHANNELS + 1),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_normalization(w, mean, std, -1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_normalization(NULL, mean, std, 1), ICH_ERR_INVALID_ARGUMENT);
    const float bad_std[] = {0.0f, -0.1f, NAN, INFINITY, -0.0f};
    for (size_t k = 0; k < sizeof bad_std / sizeof bad_std[0]; k++) {
        float s3[3] = {0.25f, bad_std[k], 0.25f};
        if (ich_window_set_normalization(w, mean, s3, 3) != ICH_ERR_INVALID_ARGUMENT)
            fail_msg("std %g accepted", bad_std[k]);
    }
    const float bad_mean[] = {NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof bad_mean / sizeof bad_mean[0]; k++) {
        float m3[3] = {0.5f, 0.5f, bad_mean[k]};
        if (ich_window_set_normalization(w, m3, std, 3) != ICH_ERR_INVALID_ARGUMENT)
            fail_msg("mean %g accepted", bad_mean[k]);
    }
    ich_window_free(w);
}

static void test_output_shape(void **state)
{
    (void)state;
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    int32_t c = -1, r = -1, col = -1;
    /* LINEAR without windows is an error; MINMAX without windows gives one channel. */
    assert_int_equal(ich_window_output_shape(w, 512, 512, &c, &r, &col), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_mode(w, ICH_WINDOW_MINMAX), ICH_OK);
    assert_int_equal(ich_window_output_shape(w, 512, 400, &c, &r, &col), ICH_OK);
    assert_int_equal(c, 1);
    assert_int_equal(r, 512);
    assert_int_equal(col, 400);

    assert_int_equal(ich_window_add_list(w, "blood,brain,bone"), ICH_OK);
    assert_int_equal(ich_window_output_shape(w, 512, 400, &c, &r, &col), ICH_OK);
    assert_int_equal(c, 3);
    assert_int_equal(r, 512);
    assert_int_equal(col, 400);
    assert_int_equal(ich_window_set_size(w, 224, 256, ICH_RESIZE_AREA), ICH_OK);
    assert_int_equal(ich_window_output_shape(w, 512, 400, &c, &r, &col), ICH_OK);
    assert_int_equal(c, 3);
    assert_int_equal(r, 224);
    assert_int_equal(col, 256);
    /* NULL out pointers are allowed. */
    c = r = col = -1;
    assert_int_equal(ich_window_output_shape(w, 512, 400, NULL, &r, NULL), ICH_OK);
    assert_int_equal(r, 224);
    assert_int_equal(ich_window_output_shape(w, 512, 400, &c, NULL, NULL), ICH_OK);
    assert_int_equal(c, 3);
    assert_int_equal(ich_window_output_shape(w, 512, 400, NULL, NULL, &col), ICH_OK);
    assert_int_equal(col, 256);
    assert_int_equal(ich_window_output_shape(w, 512, 400, NULL, NULL, NULL), ICH_OK);
    /* Back to the input size. */
    assert_int_equal(ich_window_set_size(w, 0, 0, ICH_RESIZE_BILINEAR), ICH_OK);
    assert_int_equal(ich_window_output_shape(w, 37, 53, &c, &r, &col), ICH_OK);
    assert_int_equal(r, 37);
    assert_int_equal(col, 53);

    assert_int_equal(ich_window_output_shape(w, 0, 10, &c, &r, &col), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_output_shape(w, 10, 0, &c, &r, &col), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_output_shape(w, -1, 10, &c, &r, &col), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_output_shape(w, 10, -1, &c, &r, &col), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_output_shape(NULL, 10, 10, &c, &r, &col),
                     ICH_ERR_INVALID_ARGUMENT);
    ich_window_free(w);
}

/* ---- Apply against the reference ----------------------------------------- */

static void test_apply_linear(void **state)
{
    (void)state;
    recipe r = make_recipe(ICH_WINDOW_LINEAR, "b");
    check_case("linear brain", &r, 48, 64, 1);
    r = make_recipe(ICH_WINDOW_LINEAR, "x");
    check_case("linear odd window", &r, 33, 17, 2);
    r = make_recipe(ICH_WINDOW_LINEAR, "lbo");
    check_case("linear blood,brain,bone", &r, 48, 64, 3);
    set_norm1(&r);
    check_case("linear 3ch norm count 1", &r, 48, 64, 4);
    set_norm_each(&r);
    check_case("linear 3ch norm per channel", &r, 37, 53, 5);
    r = make_recipe(ICH_WINDOW_LINEAR, "x");
    set_norm1(&r);
    check_case("linear 1ch norm", &r, 20, 30, 6);
    r = make_recipe(ICH_WINDOW_LINEAR, "lbos");
    set_norm_each(&r);
    check_case("linear 4ch norm per channel", &r, 9, 11, 7);
    r = make_recipe(ICH_WINDOW_LINEAR, "b");
    check_case("linear 1x1", &r, 1, 1, 8);
}

static void test_apply_minmax(void **state)
{
    (void)state;
    recipe r = make_recipe(ICH_WINDOW_MINMAX, "b");
    check_case("minmax brain", &r, 48, 64, 11);
    r = make_recipe(ICH_WINDOW_MINMAX, "lbo");
    check_case("minmax 3ch", &r, 48, 64, 12);
    set_norm_each(&r);
    check_case("minmax 3ch norm per channel", &r, 37, 53, 13);
    r = make_recipe(ICH_WINDOW_MINMAX, "");
    check_case("minmax no windows", &r, 48, 64, 14);
    set_norm1(&r);
    check_case("minmax no windows norm", &r, 25, 31, 15);
    /* A constant slice: max - min = 0, v = 0 everywhere. */
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_set_mode(w, ICH_WINDOW_MINMAX), ICH_OK);
    float hu[12];
    for (int i = 0; i < 12; i++)
        hu[i] = 123.5f;
    uint8_t u8[12];
    float f[12];
    assert_int_equal(ich_window_apply_u8(w, hu, 3, 4, u8, 12), ICH_OK);
    assert_int_equal(ich_window_apply_f32(w, hu, 3, 4, f, 12), ICH_OK);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(u8[i], 0);
        assert_true(f[i] == 0.0f);
    }
    ich_window_free(w);
}

static void test_apply_resize(void **state)
{
    (void)state;
    const ich_resize_method methods[2] = {ICH_RESIZE_BILINEAR, ICH_RESIZE_AREA};
    const char *names[2] = {"bilinear", "area"};
    for (int m = 0; m < 2; m++) {
        char what[128];
        recipe r = make_recipe(ICH_WINDOW_LINEAR, "lbo");
        r.method = methods[m];
        set_norm_each(&r);
        /* Shrink by 2: 48x64 -> 24x32. */
        r.out_rows = 24;
        r.out_cols = 32;
        snprintf(what, sizeof what, "%s 48x64->24x32 3ch", names[m]);
        check_case(what, &r, 48, 64, 21);
        /* Non-integer shrink: 50x50 -> 37x37, and 50x40 -> 37x29. */
        r.out_rows = 37;
        r.out_cols = 37;
        snprintf(what, sizeof what, "%s 50x50->37x37 3ch", names[m]);
        check_case(what, &r, 50, 50, 22);
        r.out_rows = 37;
        r.out_cols = 29;
        snprintf(what, sizeof what, "%s 50x40->37x29 3ch", names[m]);
        check_case(what, &r, 50, 40, 23);
        /* Grow: 16x16 -> 40x40, 16x12 -> 40x30. */
        r.out_rows = 40;
        r.out_cols = 40;
        snprintf(what, sizeof what, "%s 16x16->40x40 3ch", names[m]);
        check_case(what, &r, 16, 16, 24);
        r.out_rows = 40;
        r.out_cols = 30;
        snprintf(what, sizeof what, "%s 16x12->40x30 3ch", names[m]);
        check_case(what, &r, 16, 12, 25);
        /* Same size: values pass through. */
        r.out_rows = 20;
        r.out_cols = 30;
        snprintf(what, sizeof what, "%s 20x30->20x30 3ch", names[m]);
        check_case(what, &r, 20, 30, 26);

        /* One channel, normalisation count 1. */
        r = make_recipe(ICH_WINDOW_LINEAR, "b");
        r.method = methods[m];
        set_norm1(&r);
        r.out_rows = 37;
        r.out_cols = 37;
        snprintf(what, sizeof what, "%s 50x50->37x37 1ch", names[m]);
        check_case(what, &r, 50, 50, 27);
        r.out_rows = 40;
        r.out_cols = 40;
        snprintf(what, sizeof what, "%s 16x16->40x40 1ch", names[m]);
        check_case(what, &r, 16, 16, 28);

        /* MINMAX with resize (min/max over the input slice). */
        r = make_recipe(ICH_WINDOW_MINMAX, "lbo");
        r.method = methods[m];
        r.out_rows = 24;
        r.out_cols = 32;
        snprintf(what, sizeof what, "%s minmax 48x64->24x32", names[m]);
        check_case(what, &r, 48, 64, 29);
        r = make_recipe(ICH_WINDOW_MINMAX, "");
        r.method = methods[m];
        set_norm1(&r);
        r.out_rows = 40;
        r.out_cols = 30;
        snprintf(what, sizeof what, "%s minmax no windows 16x12->40x30", names[m]);
        check_case(what, &r, 16, 12, 30);

        /* Mixed: fewer rows, more columns. */
        r = make_recipe(ICH_WINDOW_LINEAR, "bo");
        r.method = methods[m];
        r.out_rows = 18;
        r.out_cols = 50;
        snprintf(what, sizeof what, "%s 30x20->18x50 2ch", names[m]);
        check_case(what, &r, 30, 20, 31);
        /* To and from a single pixel. */
        r.out_rows = 1;
        r.out_cols = 1;
        snprintf(what, sizeof what, "%s 7x5->1x1", names[m]);
        check_case(what, &r, 7, 5, 32);
        r.out_rows = 4;
        r.out_cols = 3;
        snprintf(what, sizeof what, "%s 1x1->4x3", names[m]);
        check_case(what, &r, 1, 1, 33);
    }
}

static void test_apply_errors(void **state)
{
    (void)state;
    float hu[6] = {0, 10, 20, 30, 40, 50};
    uint8_t u8[18];
    float f[18];
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    /* LINEAR without windows. */
    assert_int_equal(ich_window_apply_u8(w, hu, 2, 3, u8, 6), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_f32(w, hu, 2, 3, f, 6), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_add_list(w, "blood,brain,bone"), ICH_OK);
    assert_int_equal(ich_window_apply_u8(w, hu, 2, 3, u8, 18), ICH_OK);
    assert_int_equal(ich_window_apply_f32(w, hu, 2, 3, f, 18), ICH_OK);

    assert_int_equal(ich_window_apply_u8(NULL, hu, 2, 3, u8, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_u8(w, NULL, 2, 3, u8, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_u8(w, hu, 2, 3, NULL, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_u8(w, hu, 0, 3, u8, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_u8(w, hu, 2, -3, u8, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_u8(w, hu, 2, 3, u8, 6), ICH_ERR_SHAPE);
    assert_int_equal(ich_window_apply_u8(w, hu, 2, 3, u8, 0), ICH_ERR_SHAPE);
    assert_int_equal(ich_window_apply_f32(NULL, hu, 2, 3, f, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_f32(w, NULL, 2, 3, f, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_f32(w, hu, 2, 3, NULL, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_f32(w, hu, -2, 3, f, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_f32(w, hu, 2, 0, f, 18), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_apply_f32(w, hu, 2, 3, f, 17), ICH_ERR_SHAPE);
    assert_int_equal(ich_window_apply_f32(w, hu, 2, 3, f, 19), ICH_ERR_SHAPE);

    /* Normalisation for 2 channels on a 3-channel recipe: the float output
     * cannot be normalised; the 8-bit output does not use it. */
    const float mean[2] = {0.5f, 0.5f}, std[2] = {0.25f, 0.25f};
    assert_int_equal(ich_window_set_normalization(w, mean, std, 2), ICH_OK);
    assert_int_not_equal(ich_window_apply_f32(w, hu, 2, 3, f, 18), ICH_OK);
    assert_int_equal(ich_window_apply_u8(w, hu, 2, 3, u8, 18), ICH_OK);
    /* Removing normalisation: float output is v itself. */
    assert_int_equal(ich_window_set_normalization(w, NULL, NULL, 0), ICH_OK);
    assert_int_equal(ich_window_apply_f32(w, hu, 2, 3, f, 18), ICH_OK);
    recipe r = make_recipe(ICH_WINDOW_LINEAR, "lbo");
    float v[18];
    ref_map(&r, hu, 6, v);
    for (int i = 0; i < 18; i++)
        assert_true(f[i] == v[i]);
    ich_window_free(w);
}

/* ---- DICOM -> PNG -------------------------------------------------------- */

#define CT_ROWS 30
#define CT_COLS 40

static void write_ct(const char *path)
{
    static int16_t px[CT_ROWS * CT_COLS];
    uint32_t seed = 777;
    for (int i = 0; i < CT_ROWS * CT_COLS; i++)
        px[i] = (int16_t)(tu_rand(&seed) % 3000); /* 0..2999: HU -1024..1975 */
    ich_ct_slice s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    s.rows = CT_ROWS;
    s.columns = CT_COLS;
    s.pixels = px;
    s.rescale_slope = 1.0;
    s.rescale_intercept = -1024.0;
    assert_int_equal(ich_dicom_write_ct(path, &s), ICH_OK);
}

/* Convert with ich_window_dicom_to_png and compare the decoded PNG with
 * ich_window_apply_u8 on the slice's HU values. */
static void check_png(ich_window *w, const char *dcm, const char *png, int channels)
{
    ich_status st = ich_window_dicom_to_png(w, dcm, png);
    if (st != ICH_OK)
        fail_msg("dicom_to_png: %s (%s)", ich_status_string(st), ich_last_error());
    ich_dicom *d = NULL;
    assert_int_equal(ich_dicom_read(dcm, &d), ICH_OK);
    int32_t c, r, col;
    assert_int_equal(ich_window_output_shape(w, CT_ROWS, CT_COLS, &c, &r, &col), ICH_OK);
    assert_int_equal(c, channels);
    size_t count = (size_t)c * r * col;
    uint8_t *expect = malloc(count);
    assert_non_null(expect);
    assert_int_equal(ich_window_apply_u8(w, ich_dicom_hu(d), CT_ROWS, CT_COLS, expect, count),
                     ICH_OK);
    ich_dicom_free(d);

    int width = 0, height = 0, comp = 0;
    unsigned char *img = stbi_load(png, &width, &height, &comp, 0);
    if (!img)
        fail_msg("stb_image cannot decode %s: %s", png, stbi_failure_reason());
    assert_int_equal(width, col);
    assert_int_equal(height, r);
    assert_int_equal(comp, channels);
    assert_memory_equal(img, expect, count);
    stbi_image_free(img);
    free(expect);
}

static void test_dicom_to_png(void **state)
{
    const char *dir = *state;
    char dcm[512], png[512];
    tu_join(dcm, sizeof dcm, dir, "ct.dcm");
    write_ct(dcm);

    /* RGB, resized. */
    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "blood,brain,bone"), ICH_OK);
    assert_int_equal(ich_window_set_size(w, 21, 33, ICH_RESIZE_BILINEAR), ICH_OK);
    tu_join(png, sizeof png, dir, "rgb.png");
    check_png(w, dcm, png, 3);
    /* Same file again: replaced. */
    assert_int_equal(ich_window_set_size(w, 0, 0, ICH_RESIZE_AREA), ICH_OK);
    check_png(w, dcm, png, 3);
    ich_window_free(w);

    /* Gray. */
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "brain"), ICH_OK);
    tu_join(png, sizeof png, dir, "gray.png");
    check_png(w, dcm, png, 1);
    ich_window_free(w);

    /* MINMAX without windows: one channel. */
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_set_mode(w, ICH_WINDOW_MINMAX), ICH_OK);
    tu_join(png, sizeof png, dir, "minmax.png");
    check_png(w, dcm, png, 1);
    ich_window_free(w);

    /* Only the written files, no temporaries. */
    char names[512];
    assert_int_equal(tu_dir_count(dir, names, sizeof names), 4);
}

static void test_dicom_to_png_errors(void **state)
{
    const char *dir = *state;
    char dcm[512], png[512], missing[512], junk[512];
    tu_join(dcm, sizeof dcm, dir, "ct.dcm");
    tu_join(png, sizeof png, dir, "out.png");
    tu_join(missing, sizeof missing, dir, "missing.dcm");
    tu_join(junk, sizeof junk, dir, "junk.dcm");
    write_ct(dcm);
    assert_int_equal(tu_write_file(junk, "not a dicom file at all", 23), 0);

    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    /* LINEAR without windows. */
    assert_int_not_equal(ich_window_dicom_to_png(w, dcm, png), ICH_OK);
    assert_false(tu_exists(png));

    /* Two and four channels cannot be a PNG here. */
    assert_int_equal(ich_window_add_list(w, "blood,brain"), ICH_OK);
    assert_int_equal(ich_window_dicom_to_png(w, dcm, png), ICH_ERR_UNSUPPORTED);
    assert_false(tu_exists(png));
    assert_int_equal(ich_window_add_list(w, "bone,stroke"), ICH_OK);
    assert_int_equal(ich_window_dicom_to_png(w, dcm, png), ICH_ERR_UNSUPPORTED);
    assert_false(tu_exists(png));
    ich_window_free(w);

    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "blood,brain,bone"), ICH_OK);
    ich_clear_error();
    assert_int_equal(ich_window_dicom_to_png(w, missing, png), ICH_ERR_IO);
    assert_non_null(strstr(ich_last_error(), "missing.dcm"));
    assert_false(tu_exists(png));
    assert_int_equal(ich_window_dicom_to_png(w, junk, png), ICH_ERR_FORMAT);
    assert_false(tu_exists(png));
    char bad_png[512];
    tu_join(bad_png, sizeof bad_png, dir, "no/such/dir/out.png");
    assert_int_equal(ich_window_dicom_to_png(w, dcm, bad_png), ICH_ERR_IO);

    assert_int_equal(ich_window_dicom_to_png(NULL, dcm, png), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_dicom_to_png(w, NULL, png), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_dicom_to_png(w, dcm, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_false(tu_exists(png));
    ich_window_free(w);

    /* Only the two inputs are there. */
    char names[512];
    int n = tu_dir_count(dir, names, sizeof names);
    if (n != 2)
        fail_msg("directory holds [%s], expected only ct.dcm and junk.dcm", names);
}

/* ---- Concurrency ---------------------------------------------------------- */

#define CONC_ROWS 96
#define CONC_COLS 80
#define CONC_OUT_ROWS 56
#define CONC_OUT_COLS 64
#define CONC_CHANNELS 3
#define CONC_COUNT (CONC_CHANNELS * CONC_OUT_ROWS * CONC_OUT_COLS)

struct conc_arg {
    const ich_window *window;
    const float *hu;
    const uint8_t *ref_u8;
    const float *ref_f32;
    const char *dcm;
    char png[512];
    int mismatches;
    int failures;
};

static void *conc_thread(void *p)
{
    struct conc_arg *a = p;
    uint8_t *u8 = malloc(CONC_COUNT);
    float *f = malloc(CONC_COUNT * sizeof *f);
    if (!u8 || !f) {
        a->failures++;
        free(u8);
        free(f);
        return NULL;
    }
    for (int it = 0; it < 10; it++) {
        if (ich_window_apply_u8(a->window, a->hu, CONC_ROWS, CONC_COLS, u8, CONC_COUNT) != ICH_OK)
            a->failures++;
        else if (memcmp(u8, a->ref_u8, CONC_COUNT) != 0)
            a->mismatches++;
        if (ich_window_apply_f32(a->window, a->hu, CONC_ROWS, CONC_COLS, f, CONC_COUNT) != ICH_OK)
            a->failures++;
        else if (memcmp(f, a->ref_f32, CONC_COUNT * sizeof *f) != 0)
            a->mismatches++;
    }
    if (ich_window_dicom_to_png(a->window, a->dcm, a->png) != ICH_OK)
        a->failures++;
    free(u8);
    free(f);
    return NULL;
}

static void test_concurrent_apply(void **state)
{
    const char *dir = *state;
    char dcm[512];
    tu_join(dcm, sizeof dcm, dir, "ct.dcm");
    write_ct(dcm);

    ich_window *w = NULL;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add_list(w, "blood,brain,bone"), ICH_OK);
    assert_int_equal(ich_window_set_size(w, CONC_OUT_ROWS, CONC_OUT_COLS, ICH_RESIZE_AREA),
                     ICH_OK);
    const float mean[3] = {0.38f, 0.2f, 0.5f}, std[3] = {0.236f, 0.3f, 0.17f};
    assert_int_equal(ich_window_set_normalization(w, mean, std, 3), ICH_OK);
    const ich_window *cw = w;

    float *hu = make_hu(CONC_ROWS, CONC_COLS, 4242);
    uint8_t *ref_u8 = malloc(CONC_COUNT);
    float *ref_f32 = malloc(CONC_COUNT * sizeof *ref_f32);
    assert_non_null(ref_u8);
    assert_non_null(ref_f32);
    assert_int_equal(ich_window_apply_u8(cw, hu, CONC_ROWS, CONC_COLS, ref_u8, CONC_COUNT), ICH_OK);
    assert_int_equal(ich_window_apply_f32(cw, hu, CONC_ROWS, CONC_COLS, ref_f32, CONC_COUNT),
                     ICH_OK);
    char ref_png[512];
    tu_join(ref_png, sizeof ref_png, dir, "ref.png");
    assert_int_equal(ich_window_dicom_to_png(cw, dcm, ref_png), ICH_OK);
    size_t ref_png_size = 0;
    uint8_t *ref_png_bytes = tu_read_file(ref_png, &ref_png_size);
    assert_non_null(ref_png_bytes);

    struct conc_arg args[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t].window = cw;
        args[t].hu = hu;
        args[t].ref_u8 = ref_u8;
        args[t].ref_f32 = ref_f32;
        args[t].dcm = dcm;
        char name[32];
        snprintf(name, sizeof name, "t%d.png", t);
        tu_join(args[t].png, sizeof args[t].png, dir, name);
    }
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, conc_thread, &args[t]), 0);
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    for (int t = 0; t < 4; t++) {
        if (args[t].failures || args[t].mismatches)
            fail_msg("thread %d: %d failed calls, %d results differing", t, args[t].failures,
                     args[t].mismatches);
        size_t size = 0;
        uint8_t *bytes = tu_read_file(args[t].png, &size);
        assert_non_null(bytes);
        int w1, h1, c1, w2, h2, c2;
        unsigned char *a = stbi_load_from_memory(bytes, (int)size, &w1, &h1, &c1, 0);
        unsigned char *b = stbi_load_from_memory(ref_png_bytes, (int)ref_png_size, &w2, &h2, &c2, 0);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(w1, w2);
        assert_int_equal(h1, h2);
        assert_int_equal(c1, c2);
        assert_memory_equal(a, b, (size_t)w1 * h1 * c1);
        stbi_image_free(a);
        stbi_image_free(b);
        free(bytes);
    }
    /* ct.dcm, ref.png and one PNG per thread. */
    assert_int_equal(tu_dir_count(dir, NULL, 0), 6);
    free(ref_png_bytes);
    free(ref_u8);
    free(ref_f32);
    free(hu);
    ich_window_free(w);
}

/* ---- Antialiased resize, the uint8 step, recipes as text --------------- */

/* Shrinking 8 -> 4 by 2 with Pillow's bilinear: the triangle is stretched
 * to a support of 2, so output o weighs inputs 2o-1 .. 2o+2 by 1,3,3,1
 * (normalised; at the left edge input -1 is missing: 3,3,1 / 7). Worked
 * out by hand from the filter, not from the library's tables. */
static void aa_reference_8_to_4(const float *in, float *out)
{
    static const float taps[4][8] = {
        {3 / 7.f, 3 / 7.f, 1 / 7.f, 0, 0, 0, 0, 0},
        {0, 1 / 8.f, 3 / 8.f, 3 / 8.f, 1 / 8.f, 0, 0, 0},
        {0, 0, 0, 1 / 8.f, 3 / 8.f, 3 / 8.f, 1 / 8.f, 0},
        {0, 0, 0, 0, 0, 1 / 7.f, 3 / 7.f, 3 / 7.f},
    };
    float rows[8][4];
    for (int r = 0; r < 8; r++)
        for (int o = 0; o < 4; o++) {
            rows[r][o] = 0;
            for (int i = 0; i < 8; i++)
                rows[r][o] += taps[o][i] * in[r * 8 + i];
        }
    for (int o = 0; o < 4; o++)
        for (int c = 0; c < 4; c++) {
            out[o * 4 + c] = 0;
            for (int i = 0; i < 8; i++)
                out[o * 4 + c] += taps[o][i] * rows[i][c];
        }
}

static void test_antialias_shrink(void **state)
{
    (void)state;
    ich_window *w;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_add(w, 50, 100), ICH_OK); /* v = hu / 100 */
    assert_int_equal(ich_window_set_size(w, 4, 4, ICH_RESIZE_ANTIALIAS), ICH_OK);
    float hu[64], v[64], want[16], got[16];
    for (int i = 0; i < 64; i++) {
        hu[i] = (float)((i * 37) % 101);
        v[i] = hu[i] / 100.0f;
    }
    aa_reference_8_to_4(v, want);
    assert_int_equal(ich_window_apply_f32(w, hu, 8, 8, got, 16), ICH_OK);
    for (int i = 0; i < 16; i++)
        assert_float_equal(got[i], want[i], 1e-5);
    /* plain bilinear takes 2 of the 8 inputs only: it must differ here */
    assert_int_equal(ich_window_set_size(w, 4, 4, ICH_RESIZE_BILINEAR), ICH_OK);
    assert_int_equal(ich_window_apply_f32(w, hu, 8, 8, got, 16), ICH_OK);
    float most = 0;
    for (int i = 0; i < 16; i++)
        most = fmaxf(most, fabsf(got[i] - want[i]));
    assert_true(most > 0.05f);
    ich_window_free(w);
}

/* Enlarging: PIL's bilinear then is the half-pixel triangle (support 1),
 * the same as ICH_RESIZE_BILINEAR away from the edges and at them. */
static void test_antialias_enlarge(void **state)
{
    (void)state;
    ich_window *a, *b;
    assert_int_equal(ich_window_create(&a), ICH_OK);
    assert_int_equal(ich_window_create(&b), ICH_OK);
    assert_int_equal(ich_window_add(a, 500, 1000), ICH_OK);
    assert_int_equal(ich_window_add(b, 500, 1000), ICH_OK);
    assert_int_equal(ich_window_set_size(a, 13, 11, ICH_RESIZE_ANTIALIAS), ICH_OK);
    assert_int_equal(ich_window_set_size(b, 13, 11, ICH_RESIZE_BILINEAR), ICH_OK);
    float hu[35], fa[143], fb[143];
    for (int i = 0; i < 35; i++)
        hu[i] = (float)((i * 53) % 997);
    assert_int_equal(ich_window_apply_f32(a, hu, 5, 7, fa, 143), ICH_OK);
    assert_int_equal(ich_window_apply_f32(b, hu, 5, 7, fb, 143), ICH_OK);
    for (int i = 0; i < 143; i++)
        assert_float_equal(fa[i], fb[i], 1e-5);
    ich_window_free(a);
    ich_window_free(b);
}

/* The uint8 step: q = trunc(v * 255), the resize on q rounded to 8 bits
 * after each pass (Pillow's order: rows first), float output q / 255
 * normalised. Reference: the 8 -> 4 weights above in double, rounded. */
static void test_quantize(void **state)
{
    (void)state;
    ich_window *w;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_set_mode(w, ICH_WINDOW_MINMAX), ICH_OK);
    assert_int_equal(ich_window_set_quantize(w, 1), ICH_OK);
    float hu[64];
    for (int i = 0; i < 64; i++)
        hu[i] = (float)((i * 29) % 64) * 13.0f - 400.0f;
    /* no resize: the uint8 step alone, as numpy's astype(uint8) */
    float mn = -400.0f, range = 63 * 13.0f + 1e-5f, f[64];
    uint8_t q[64], u8[64];
    for (int i = 0; i < 64; i++)
        q[i] = (uint8_t)((hu[i] - mn) / range * 255.0f);
    assert_int_equal(ich_window_apply_u8(w, hu, 8, 8, u8, 64), ICH_OK);
    assert_memory_equal(u8, q, 64);
    const float mean = 0.38f, std = 0.236f;
    assert_int_equal(ich_window_set_normalization(w, &mean, &std, 1), ICH_OK);
    assert_int_equal(ich_window_apply_f32(w, hu, 8, 8, f, 64), ICH_OK);
    for (int i = 0; i < 64; i++)
        assert_float_equal(f[i], ((float)q[i] / 255.0f - mean) / std, 1e-6);
    /* 8 -> 4 with the rounding after each pass */
    static const double taps[4][8] = {
        {3 / 7., 3 / 7., 1 / 7., 0, 0, 0, 0, 0}, {0, 1 / 8., 3 / 8., 3 / 8., 1 / 8., 0, 0, 0},
        {0, 0, 0, 1 / 8., 3 / 8., 3 / 8., 1 / 8., 0}, {0, 0, 0, 0, 0, 1 / 7., 3 / 7., 3 / 7.}};
    uint8_t wide[8][4], want[16], got[16];
    for (int r = 0; r < 8; r++)
        for (int o = 0; o < 4; o++) {
            double acc = 0;
            for (int i = 0; i < 8; i++)
                acc += taps[o][i] * q[r * 8 + i];
            wide[r][o] = (uint8_t)floor(acc + 0.5);
        }
    for (int o = 0; o < 4; o++)
        for (int c = 0; c < 4; c++) {
            double acc = 0;
            for (int i = 0; i < 8; i++)
                acc += taps[o][i] * wide[i][c];
            want[o * 4 + c] = (uint8_t)floor(acc + 0.5);
        }
    assert_int_equal(ich_window_set_size(w, 4, 4, ICH_RESIZE_ANTIALIAS), ICH_OK);
    assert_int_equal(ich_window_apply_u8(w, hu, 8, 8, got, 16), ICH_OK);
    for (int i = 0; i < 16; i++)
        if (abs((int)got[i] - (int)want[i]) > 0) /* ties are not expected with these values */
            fail_msg("pixel %d: %d, want %d", i, got[i], want[i]);
    float f16[16];
    assert_int_equal(ich_window_apply_f32(w, hu, 8, 8, f16, 16), ICH_OK);
    for (int i = 0; i < 16; i++)
        assert_float_equal(f16[i], ((float)want[i] / 255.0f - mean) / std, 1e-6);
    assert_int_equal(ich_window_set_quantize(w, 2), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_quantize(NULL, 1), ICH_ERR_INVALID_ARGUMENT);
    ich_window_free(w);
}

static void test_getters(void **state)
{
    (void)state;
    ich_window *w;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    int32_t rows = -1, cols = -1;
    ich_resize_method method = ICH_RESIZE_AREA;
    assert_int_equal(ich_window_get_size(w, &rows, &cols, &method), ICH_OK);
    assert_true(rows == 0 && cols == 0 && method == ICH_RESIZE_BILINEAR);
    assert_int_equal(ich_window_get_mode(w), ICH_WINDOW_LINEAR);
    assert_int_equal(ich_window_get_quantize(w), 0);
    assert_int_equal(ich_window_get_neighbors(w), 0);
    assert_int_equal(ich_window_get_normalization(w, NULL, NULL), 0);
    const float mean[3] = {0.1f, 0.2f, 0.3f}, std[3] = {1, 2, 3};
    assert_int_equal(ich_window_set_mode(w, ICH_WINDOW_MINMAX), ICH_OK);
    assert_int_equal(ich_window_set_size(w, 30, 40, ICH_RESIZE_ANTIALIAS), ICH_OK);
    assert_int_equal(ich_window_set_quantize(w, 1), ICH_OK);
    assert_int_equal(ich_window_set_neighbors(w, 2), ICH_OK);
    assert_int_equal(ich_window_set_normalization(w, mean, std, 3), ICH_OK);
    assert_int_equal(ich_window_get_size(w, &rows, &cols, &method), ICH_OK);
    assert_true(rows == 30 && cols == 40 && method == ICH_RESIZE_ANTIALIAS);
    assert_int_equal(ich_window_get_mode(w), ICH_WINDOW_MINMAX);
    assert_int_equal(ich_window_get_quantize(w), 1);
    assert_int_equal(ich_window_get_neighbors(w), 2);
    float m[ICH_WINDOW_MAX_CHANNELS], s[ICH_WINDOW_MAX_CHANNELS];
    assert_int_equal(ich_window_get_normalization(w, m, s), 3);
    assert_memory_equal(m, mean, sizeof mean);
    assert_memory_equal(s, std, sizeof std);
    assert_int_equal(ich_window_set_neighbors(w, 17), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_set_neighbors(w, -1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_get_size(NULL, &rows, &cols, &method), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_get_normalization(NULL, m, s), 0);
    ich_window_free(w);
}

/* Every setting survives to_string -> from_string, and the text is the
 * documented one. */
static void test_string_round_trip(void **state)
{
    (void)state;
    ich_window *w, *back;
    char text[ICH_WINDOW_STRING_MAX], again[ICH_WINDOW_STRING_MAX];
    size_t length = 0;
    assert_int_equal(ich_window_create(&w), ICH_OK);
    assert_int_equal(ich_window_to_string(w, text, sizeof text, &length), ICH_OK);
    assert_string_equal(text, "windows=none;mode=linear;size=keep;resize=bilinear;quantize=0;"
                              "mean=none;std=none;neighbors=0");
    assert_int_equal(length, strlen(text));
    assert_int_equal(ich_window_add_list(w, "blood,brain,-12.5/0.125"), ICH_OK);
    const float mean[3] = {0.38f, 1e-7f, -3.25f}, std[3] = {0.236f, 1e30f, 7};
    assert_int_equal(ich_window_set_normalization(w, mean, std, 3), ICH_OK);
    assert_int_equal(ich_window_set_size(w, 512, 384, ICH_RESIZE_AREA), ICH_OK);
    assert_int_equal(ich_window_set_mode(w, ICH_WINDOW_MINMAX), ICH_OK);
    assert_int_equal(ich_window_set_quantize(w, 1), ICH_OK);
    assert_int_equal(ich_window_set_neighbors(w, 3), ICH_OK);
    assert_int_equal(ich_window_to_string(w, text, sizeof text, &length), ICH_OK);
    assert_string_equal(text, "windows=75/215,40/80,-12.5/0.125;mode=minmax;size=512x384;"
                              "resize=area;quantize=1;mean=0.38,1e-07,-3.25;"
                              "std=0.236,1e+30,7;neighbors=3");
    assert_int_equal(ich_window_from_string(text, &back), ICH_OK);
    assert_int_equal(ich_window_to_string(back, again, sizeof again, NULL), ICH_OK);
    assert_string_equal(again, text);
    float c, wd, m[16], s[16];
    assert_int_equal(ich_window_count(back), 3);
    assert_int_equal(ich_window_get(back, 2, &c, &wd), ICH_OK);
    assert_true(c == -12.5f && wd == 0.125f);
    assert_int_equal(ich_window_get_normalization(back, m, s), 3);
    assert_memory_equal(m, mean, sizeof mean);
    assert_memory_equal(s, std, sizeof std);
    ich_window_free(back);
    /* a buffer too small: the length is still reported, nothing written */
    char small[16] = "untouched";
    assert_int_equal(ich_window_to_string(w, small, sizeof small, &length), ICH_ERR_SHAPE);
    assert_int_equal(length, strlen(text));
    assert_string_equal(small, "untouched");
    assert_int_equal(ich_window_to_string(NULL, text, sizeof text, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_to_string(w, NULL, 0, NULL), ICH_ERR_INVALID_ARGUMENT);
    /* the longest recipe fits ICH_WINDOW_STRING_MAX */
    ich_window *big;
    assert_int_equal(ich_window_create(&big), ICH_OK);
    float bm[16], bs[16];
    for (int i = 0; i < 16; i++) {
        assert_int_equal(ich_window_add(big, -1.23456789e30f, 9.87654321e37f), ICH_OK);
        bm[i] = -1.17549435e-38f;
        bs[i] = 3.40282347e38f;
    }
    assert_int_equal(ich_window_set_normalization(big, bm, bs, 16), ICH_OK);
    assert_int_equal(ich_window_set_size(big, 16384, 16384, ICH_RESIZE_ANTIALIAS), ICH_OK);
    assert_int_equal(ich_window_set_neighbors(big, 16), ICH_OK);
    assert_int_equal(ich_window_to_string(big, text, sizeof text, NULL), ICH_OK);
    assert_int_equal(ich_window_from_string(text, &back), ICH_OK);
    assert_int_equal(ich_window_to_string(back, again, sizeof again, NULL), ICH_OK);
    assert_string_equal(again, text);
    ich_window_free(back);
    ich_window_free(big);
    ich_window_free(w);
}

/* The tutorial's recipe from its text applies as the same calls do. */
static void test_string_tutorial(void **state)
{
    (void)state;
    ich_window *a, *b;
    assert_int_equal(ich_window_from_string("windows=none;mode=minmax;size=4x4;resize=antialias;"
                                            "quantize=1;mean=0.38;std=0.236;neighbors=0", &a),
                     ICH_OK);
    assert_int_equal(ich_window_create(&b), ICH_OK);
    const float mean = 0.38f, std = 0.236f;
    assert_int_equal(ich_window_set_mode(b, ICH_WINDOW_MINMAX), ICH_OK);
    assert_int_equal(ich_window_set_quantize(b, 1), ICH_OK);
    assert_int_equal(ich_window_set_size(b, 4, 4, ICH_RESIZE_ANTIALIAS), ICH_OK);
    assert_int_equal(ich_window_set_normalization(b, &mean, &std, 1), ICH_OK);
    float hu[100], fa[16], fb[16];
    for (int i = 0; i < 100; i++)
        hu[i] = (float)((i * 71) % 100) * 20.0f - 1000.0f;
    assert_int_equal(ich_window_apply_f32(a, hu, 10, 10, fa, 16), ICH_OK);
    assert_int_equal(ich_window_apply_f32(b, hu, 10, 10, fb, 16), ICH_OK);
    assert_memory_equal(fa, fb, sizeof fa);
    ich_window_free(a);
    ich_window_free(b);
}

/* Hostile or broken text: ICH_ERR_FORMAT with a message, never a crash. */
static void test_string_errors(void **state)
{
    (void)state;
#define GOOD_TAIL_NO_NEIGHBORS "mode=linear;size=keep;resize=bilinear;quantize=0;mean=none;std=none"
#define GOOD_TAIL "mode=linear;size=keep;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0"
    static const char *const bad[] = {
        "",
        ";",
        "windows",
        "windows=40/80",                                    /* keys missing */
        "windows=40/80;" GOOD_TAIL ";mode=linear",          /* twice */
        "windows=40/80;" GOOD_TAIL ";colour=red",           /* unknown */
        "windows=40/80;" GOOD_TAIL ";",                     /* empty item */
        "windows=;" GOOD_TAIL,
        "windows=40;" GOOD_TAIL,
        "windows=40/;" GOOD_TAIL,
        "windows=/80;" GOOD_TAIL,
        "windows=40/0;" GOOD_TAIL,
        "windows=40/-80;" GOOD_TAIL,
        "windows=40/80,;" GOOD_TAIL,
        "windows=40/80,,1/2;" GOOD_TAIL,
        "windows=nan/80;" GOOD_TAIL,
        "windows=40/inf;" GOOD_TAIL,
        "windows=1e999/80;" GOOD_TAIL,
        "windows=40/1e39;" GOOD_TAIL,
        "windows= 40/80;" GOOD_TAIL,
        "windows=+40/80;" GOOD_TAIL,
        "windows=40/80x;" GOOD_TAIL,
        "windows=brain;" GOOD_TAIL,
        "windows=1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1,1/1;" GOOD_TAIL,
        "windows=40/80;mode=LINEAR;size=keep;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=0x0;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=16385x2;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=2x;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=x2;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=-2x2;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=99999999999999999999x2;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=keep;resize=cubic;quantize=0;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=2;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=;mean=none;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=0;mean=0.5;std=none;neighbors=0",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=0;mean=0.5;std=0;neighbors=0",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=0;mean=0.5,;std=1,;neighbors=0",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=0;mean=1,2;std=1;neighbors=0",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=0;mean=none;std=none;neighbors=17",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=0;mean=none;std=none;neighbors=-1",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=0;mean=none;std=none;neighbors=1x",
        "windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0 ",
        "windows=40/80 ;mode=linear;size=keep;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
        " windows=40/80;mode=linear;size=keep;resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ich_window *w = (ich_window *)&w; /* must come back NULL */
        ich_status st = ich_window_from_string(bad[i], &w);
        if (st != ICH_ERR_FORMAT)
            fail_msg("\"%s\": status %d, want ICH_ERR_FORMAT", bad[i], st);
        assert_null(w);
        assert_true(strncmp(ich_last_error(), "recipe", 6) == 0);
    }
    /* far too long, and a long run of separators */
    char long_text[3 * ICH_WINDOW_STRING_MAX];
    memset(long_text, ';', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    ich_window *w;
    assert_int_equal(ich_window_from_string(long_text, &w), ICH_ERR_FORMAT);
    assert_int_equal(ich_window_from_string(long_text + 2 * ICH_WINDOW_STRING_MAX + 10, &w),
                     ICH_ERR_FORMAT);
    assert_int_equal(ich_window_from_string(NULL, &w), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_window_from_string("windows=40/80;" GOOD_TAIL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    /* any order is accepted */
    assert_int_equal(ich_window_from_string("neighbors=1;" GOOD_TAIL_NO_NEIGHBORS ";windows=40/80",
                                            &w), ICH_OK);
    assert_int_equal(ich_window_get_neighbors(w), 1);
    ich_window_free(w);
#undef GOOD_TAIL
#undef GOOD_TAIL_NO_NEIGHBORS
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_create_free),
        cmocka_unit_test(test_add_get),
        cmocka_unit_test(test_add_list),
        cmocka_unit_test(test_setters),
        cmocka_unit_test(test_output_shape),
        cmocka_unit_test(test_apply_linear),
        cmocka_unit_test(test_apply_minmax),
        cmocka_unit_test(test_apply_resize),
        cmocka_unit_test(test_apply_errors),
        cmocka_unit_test(test_antialias_shrink),
        cmocka_unit_test(test_antialias_enlarge),
        cmocka_unit_test(test_quantize),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_string_round_trip),
        cmocka_unit_test(test_string_tutorial),
        cmocka_unit_test(test_string_errors),
        cmocka_unit_test_setup_teardown(test_dicom_to_png, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_dicom_to_png_errors, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_concurrent_apply, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
