/* Tests for <ich/augment.h> and ich_png_read() of <ich/image.h>.
 *
 * Each transform is checked against an independent reference written here
 * (index arithmetic for flips, a naive bilinear rotation, a naive 2-D
 * gaussian convolution, the brightness/contrast formula), with the random
 * parameters taken from ich_augment_choose(); then the recipe's
 * probabilities, seeding, 8-bit/float agreement and text form; PNG reading
 * with damaged files; and offline augmentation of a small table. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

/* ---- Helpers ------------------------------------------------------------- */

static float *random_f32(int c, int h, int w, uint32_t seed)
{
    size_t n = (size_t)c * h * w;
    float *px = malloc(n * sizeof *px);
    assert_non_null(px);
    seed = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++)
        px[i] = (float)(tu_rand(&seed) % 100000) / 1000.0f; /* 0 .. 100 */
    return px;
}

static uint8_t *random_u8(size_t n, uint32_t seed)
{
    uint8_t *px = malloc(n);
    assert_non_null(px);
    seed = seed * 2654435761u + 7;
    for (size_t i = 0; i < n; i++)
        px[i] = (uint8_t)(tu_rand(&seed) >> 7);
    return px;
}

static float *copy_f32(const float *px, size_t n)
{
    float *out = malloc(n * sizeof *out);
    assert_non_null(out);
    memcpy(out, px, n * sizeof *out);
    return out;
}

static ich_augment *recipe(const char *spec)
{
    ich_augment *a = NULL;
    assert_int_equal(ich_augment_create(&a), ICH_OK);
    ich_status st = ich_augment_parse(a, spec);
    if (st != ICH_OK)
        fail_msg("parse \"%s\": %s", spec, ich_last_error());
    return a;
}

static ich_augment_choices choose(const ich_augment *a, uint64_t seed)
{
    ich_augment_choices c;
    ich_augment_choices_init(&c);
    assert_int_equal(ich_augment_choose(a, seed, &c), ICH_OK);
    return c;
}

static void assert_close(const float *got, const double *want, size_t n, double tol,
                         const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol))
            fail_msg("%s: value %zu is %.6f, reference %.6f", what, i, got[i], want[i]);
}

/* ---- Flips ----------------------------------------------------------------- */

static void test_flips_exact(void **state)
{
    (void)state;
    const int C = 3, H = 5, W = 7;
    float *src = random_f32(C, H, W, 1);
    const char *specs[] = {"hflip:1", "vflip:1", "hflip:1,vflip:1"};
    for (int s = 0; s < 3; s++) {
        ich_augment *a = recipe(specs[s]);
        int h = s != 1, v = s != 0;
        float *img = copy_f32(src, (size_t)C * H * W);
        assert_int_equal(ich_augment_apply_f32(a, 99, img, C, H, W), ICH_OK);
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int sy = v ? H - 1 - y : y, sx = h ? W - 1 - x : x;
                    assert_true(img[(c * H + y) * W + x] == src[(c * H + sy) * W + sx]);
                }
        /* 8-bit HWC: the same moves, exactly. */
        uint8_t *u = random_u8((size_t)H * W * C, 2), *u0 = malloc((size_t)H * W * C);
        memcpy(u0, u, (size_t)H * W * C);
        assert_int_equal(ich_augment_apply_u8(a, 5, u, H, W, C), ICH_OK);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++) {
                    int sy = v ? H - 1 - y : y, sx = h ? W - 1 - x : x;
                    assert_int_equal(u[(y * W + x) * C + c], u0[(sy * W + sx) * C + c]);
                }
        free(u);
        free(u0);
        free(img);
        ich_augment_free(a);
    }
    free(src);
}

/* ---- Rotation ---------------------------------------------------------------- */

/* Naive reference: for each output pixel, rotate its offset from the centre
 * back by the angle and interpolate the four neighbours, those outside the
 * image counting as the channel minimum. */
static double *reference_rotation(const float *src, int C, int H, int W, double degrees)
{
    double *out = malloc(sizeof(double) * C * H * W);
    double t = degrees * M_PI / 180.0, cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
    for (int c = 0; c < C; c++) {
        const float *p = src + (size_t)c * H * W;
        double lo = INFINITY;
        for (int i = 0; i < H * W; i++)
            lo = fmin(lo, p[i]);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double sx = cx + cos(t) * (x - cx) - sin(t) * (y - cy);
                double sy = cy + sin(t) * (x - cx) + cos(t) * (y - cy);
                int x0 = (int)floor(sx), y0 = (int)floor(sy);
                double fx = sx - x0, fy = sy - y0, v = 0;
                for (int dy = 0; dy <= 1; dy++)
                    for (int dx = 0; dx <= 1; dx++) {
                        int xx = x0 + dx, yy = y0 + dy;
                        double w = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
                        int in = xx >= 0 && xx < W && yy >= 0 && yy < H;
                        v += w * (in ? p[yy * W + xx] : lo);
                    }
                out[((size_t)c * H + y) * W + x] = v;
            }
    }
    return out;
}

static void test_rotation_matches_reference(void **state)
{
    (void)state;
    const int C = 3, H = 19, W = 26;
    float *src = random_f32(C, H, W, 3);
    ich_augment *a = recipe("rotate:1:30");
    double angles[8];
    for (uint64_t seed = 0; seed < 8; seed++) {
        ich_augment_choices ch = choose(a, seed);
        assert_true(ch.rotate);
        assert_true(ch.degrees >= -30 && ch.degrees <= 30);
        angles[seed] = ch.degrees;
        float *img = copy_f32(src, (size_t)C * H * W);
        assert_int_equal(ich_augment_apply_f32(a, seed, img, C, H, W), ICH_OK);
        double *want = reference_rotation(src, C, H, W, ch.degrees);
        assert_close(img, want, (size_t)C * H * W, 1e-3, "rotation");
        free(want);
        free(img);
    }
    assert_true(angles[0] != angles[1] && angles[1] != angles[2]);
    ich_augment_free(a);
    free(src);
}

static void test_rotation_special_angles(void **state)
{
    (void)state;
    const int C = 2, N = 9, H = 6, W = 11;
    float *sq = random_f32(C, N, N, 4), *rect = random_f32(C, H, W, 5);
    ich_augment_choices ch;
    ich_augment_choices_init(&ch);
    ch.rotate = 1;

    /* 0 degrees and a negligible angle: the image itself. */
    const double tiny[] = {0.0, 1e-9};
    for (int i = 0; i < 2; i++) {
        ch.degrees = tiny[i];
        float *img = copy_f32(rect, (size_t)C * H * W);
        assert_int_equal(ich_augment_apply_choices_f32(&ch, img, C, H, W), ICH_OK);
        for (int k = 0; k < C * H * W; k++)
            assert_true(fabsf(img[k] - rect[k]) <= 1e-4f);
        free(img);
    }
    /* +90 on a square: numpy's rot90, out[y][x] = in[x][N-1-y]; -90 the other way. */
    for (int sign = -1; sign <= 1; sign += 2) {
        ch.degrees = 90.0 * sign;
        float *img = copy_f32(sq, (size_t)C * N * N);
        assert_int_equal(ich_augment_apply_choices_f32(&ch, img, C, N, N), ICH_OK);
        for (int c = 0; c < C; c++)
            for (int y = 0; y < N; y++)
                for (int x = 0; x < N; x++) {
                    float want = sign > 0 ? sq[(c * N + x) * N + (N - 1 - y)]
                                          : sq[(c * N + (N - 1 - x)) * N + y];
                    assert_true(fabsf(img[(c * N + y) * N + x] - want) <= 1e-4f);
                }
        free(img);
    }
    /* 180 on a rectangle: both flips. */
    ch.degrees = 180;
    float *img = copy_f32(rect, (size_t)C * H * W);
    assert_int_equal(ich_augment_apply_choices_f32(&ch, img, C, H, W), ICH_OK);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                assert_true(fabsf(img[(c * H + y) * W + x] -
                                  rect[(c * H + H - 1 - y) * W + W - 1 - x]) <= 1e-4f);
    free(img);
    free(sq);
    free(rect);
}

/* ---- Blur -------------------------------------------------------------------- */

static double *reference_blur(const float *src, int C, int H, int W, double sigma)
{
    int r = (int)ceil(3 * sigma);
    double *out = malloc(sizeof(double) * C * H * W);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double sum = 0, wsum = 0;
                for (int j = -r; j <= r; j++)
                    for (int i = -r; i <= r; i++) {
                        int yy = y + j < 0 ? 0 : y + j >= H ? H - 1 : y + j;
                        int xx = x + i < 0 ? 0 : x + i >= W ? W - 1 : x + i;
                        double w = exp(-(i * i + j * j) / (2 * sigma * sigma));
                        sum += w * src[((size_t)c * H + yy) * W + xx];
                        wsum += w;
                    }
                out[((size_t)c * H + y) * W + x] = sum / wsum;
            }
    return out;
}

static void test_blur_matches_naive_convolution(void **state)
{
    (void)state;
    const int C = 3, H = 17, W = 23;
    float *src = random_f32(C, H, W, 6);
    ich_augment *a = recipe("blur:1:0.5:2.5");
    for (uint64_t seed = 10; seed < 14; seed++) {
        ich_augment_choices ch = choose(a, seed);
        assert_true(ch.blur && ch.blur_sigma >= 0.5 && ch.blur_sigma <= 2.5);
        float *img = copy_f32(src, (size_t)C * H * W);
        assert_int_equal(ich_augment_apply_f32(a, seed, img, C, H, W), ICH_OK);
        double *want = reference_blur(src, C, H, W, ch.blur_sigma);
        assert_close(img, want, (size_t)C * H * W, 1e-3, "blur");
        free(want);
        free(img);
    }
    /* A kernel wider than the image still clamps correctly. */
    ich_augment_choices ch;
    ich_augment_choices_init(&ch);
    ch.blur = 1;
    ch.blur_sigma = 4;
    float *img = copy_f32(src, 3 * 4 * 5);
    assert_int_equal(ich_augment_apply_choices_f32(&ch, img, 3, 4, 5), ICH_OK);
    double *want = reference_blur(src, 3, 4, 5, 4);
    assert_close(img, want, 3 * 4 * 5, 1e-3, "wide blur");
    free(want);
    free(img);
    ich_augment_free(a);
    free(src);
}

/* ---- Brightness and contrast -------------------------------------------------- */

static void test_brightness_contrast_formula(void **state)
{
    (void)state;
    const int C = 3, H = 8, W = 9;
    float *src = random_f32(C, H, W, 7);
    for (int i = 0; i < C * H * W; i++) /* channels with different ranges */
        src[i] = src[i] * (float)(1 + i / (H * W)) - 20;
    ich_augment *a = recipe("brightness_contrast:1:0.2:0.3");
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < C * H * W; i++)
        lo = fmin(lo, src[i]), hi = fmax(hi, src[i]);
    for (uint64_t seed = 0; seed < 6; seed++) {
        ich_augment_choices ch = choose(a, seed);
        assert_true(ch.brightness_contrast);
        assert_true(ch.contrast >= 0.7 && ch.contrast <= 1.3);
        assert_true(ch.brightness >= -0.2 && ch.brightness <= 0.2);
        float *img = copy_f32(src, (size_t)C * H * W);
        assert_int_equal(ich_augment_apply_f32(a, seed, img, C, H, W), ICH_OK);
        double want[3 * 8 * 9];
        for (int c = 0; c < C; c++) {
            double m = 0;
            for (int i = 0; i < H * W; i++)
                m += src[c * H * W + i];
            m /= H * W;
            for (int i = 0; i < H * W; i++)
                want[c * H * W + i] =
                    (src[c * H * W + i] - m) * ch.contrast + m + ch.brightness * (hi - lo);
        }
        assert_close(img, want, (size_t)C * H * W, 1e-3, "brightness/contrast");
        free(img);
    }
    ich_augment_free(a);
    free(src);
}

/* ---- Elastic -------------------------------------------------------------------- */

static void test_elastic(void **state)
{
    (void)state;
    const int C = 3, H = 48, W = 40;
    float *src = random_f32(1, H, W, 8);
    float *img3 = malloc(sizeof(float) * C * H * W);
    for (int c = 0; c < C; c++) /* three equal channels */
        memcpy(img3 + c * H * W, src, sizeof(float) * H * W);

    /* alpha 0: no displacement, the image itself. */
    ich_augment *zero = recipe("elastic:1:0:4");
    float *img = copy_f32(img3, (size_t)C * H * W);
    assert_int_equal(ich_augment_apply_f32(zero, 1, img, C, H, W), ICH_OK);
    assert_memory_equal(img, img3, sizeof(float) * C * H * W);
    free(img);

    ich_augment *a = recipe("elastic:1:40:4");
    ich_augment_choices ch = choose(a, 3);
    assert_true(ch.elastic && ch.elastic_alpha == 40 && ch.elastic_sigma == 4);
    img = copy_f32(img3, (size_t)C * H * W);
    assert_int_equal(ich_augment_apply_f32(a, 3, img, C, H, W), ICH_OK);
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < H * W; i++)
        lo = fminf(lo, src[i]), hi = fmaxf(hi, src[i]);
    int changed = 0;
    for (int i = 0; i < H * W; i++) {
        changed += fabsf(img[i] - src[i]) > 1e-3f;
        for (int c = 0; c < C; c++) {
            assert_true(img[c * H * W + i] >= lo - 1e-4f && img[c * H * W + i] <= hi + 1e-4f);
            assert_true(img[c * H * W + i] == img[i]); /* every channel moved alike */
        }
    }
    assert_true(changed > H * W / 2);
    /* A smooth field: a smooth image stays smooth (no tearing). */
    float *ramp = malloc(sizeof(float) * H * W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            ramp[y * W + x] = (float)x;
    assert_int_equal(ich_augment_apply_f32(a, 3, ramp, 1, H, W), ICH_OK);
    for (int y = 0; y < H; y++)
        for (int x = 1; x < W; x++)
            assert_true(fabsf(ramp[y * W + x] - ramp[y * W + x - 1]) < 3.0f);
    free(ramp);
    free(img);
    free(img3);
    free(src);
    ich_augment_free(zero);
    ich_augment_free(a);
}

/* ---- Probabilities, seeds, 8-bit against float ---------------------------------- */

static const char *full_recipe = "hflip:0.5,vflip:0.2,rotate:0.5:15,brightness_contrast:0.3:0.1:0.1,"
                                 "blur:0.2:0.5:1.5,elastic:0.2:30:5";

static void test_probabilities(void **state)
{
    (void)state;
    const int C = 2, H = 9, W = 10;
    float *src = random_f32(C, H, W, 9);
    ich_augment *never = recipe("hflip:0,vflip:0,rotate:0:15,brightness_contrast:0:0.1:0.1,"
                                "blur:0:0.5:1.5,elastic:0:30:5");
    ich_augment *always = recipe("hflip:1");
    ich_augment *half = recipe("hflip:0.5");
    ich_augment *empty = recipe("");
    int flips = 0;
    for (uint64_t seed = 0; seed < 300; seed++) {
        float *img = copy_f32(src, (size_t)C * H * W);
        assert_int_equal(ich_augment_apply_f32(never, seed, img, C, H, W), ICH_OK);
        assert_memory_equal(img, src, sizeof(float) * C * H * W);
        assert_int_equal(ich_augment_apply_f32(empty, seed, img, C, H, W), ICH_OK);
        assert_memory_equal(img, src, sizeof(float) * C * H * W);
        assert_int_equal(ich_augment_apply_f32(always, seed, img, C, H, W), ICH_OK);
        assert_true(img[0] == src[W - 1]);
        assert_true(choose(always, seed).hflip);
        flips += choose(half, seed).hflip;
        free(img);
    }
    assert_in_range(flips, 110, 190); /* 150 expected, sd 8.7 */
    ich_augment_free(never);
    ich_augment_free(always);
    ich_augment_free(half);
    ich_augment_free(empty);
    free(src);
}

static void test_seeds(void **state)
{
    (void)state;
    const int C = 3, H = 32, W = 32;
    float *src = random_f32(C, H, W, 10);
    ich_augment *a = recipe(full_recipe), *b = recipe(full_recipe);
    int different = 0;
    for (uint64_t seed = 0; seed < 20; seed++) {
        float *x = copy_f32(src, (size_t)C * H * W), *y = copy_f32(src, (size_t)C * H * W),
              *z = copy_f32(src, (size_t)C * H * W);
        assert_int_equal(ich_augment_apply_f32(a, seed, x, C, H, W), ICH_OK);
        assert_int_equal(ich_augment_apply_f32(b, seed, y, C, H, W), ICH_OK);
        assert_int_equal(ich_augment_apply_f32(a, seed + 1000, z, C, H, W), ICH_OK);
        assert_memory_equal(x, y, sizeof(float) * C * H * W);
        different += memcmp(x, z, sizeof(float) * C * H * W) != 0;
        free(x);
        free(y);
        free(z);
    }
    assert_true(different >= 15);
    /* Turning one transform off keeps the others' choices. */
    ich_augment *c = recipe(full_recipe);
    assert_int_equal(ich_augment_set_blur(c, 0, 0, 0), ICH_OK);
    for (uint64_t seed = 0; seed < 20; seed++) {
        ich_augment_choices p = choose(a, seed), q = choose(c, seed);
        assert_int_equal(p.hflip, q.hflip);
        assert_true(p.degrees == q.degrees);
        assert_int_equal(q.blur, 0);
    }
    ich_augment_free(a);
    ich_augment_free(b);
    ich_augment_free(c);
    free(src);
}

static void test_u8_agrees_with_f32(void **state)
{
    (void)state;
    const int C = 3, H = 40, W = 36;
    size_t n = (size_t)C * H * W;
    uint8_t *hwc = random_u8(n, 11);
    ich_augment *a = recipe("hflip:0.5,vflip:0.5,rotate:1:20,elastic:0.5:20:4,"
                            "brightness_contrast:1:0.2:0.3,blur:0.5:0.5:1.5");
    for (uint64_t seed = 0; seed < 12; seed++) {
        uint8_t *u = malloc(n);
        memcpy(u, hwc, n);
        float *f = malloc(n * sizeof *f);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++)
                    f[(c * H + y) * W + x] = hwc[(y * W + x) * C + c];
        assert_int_equal(ich_augment_apply_u8(a, seed, u, H, W, C), ICH_OK);
        assert_int_equal(ich_augment_apply_f32(a, seed, f, C, H, W), ICH_OK);
        int moved = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++) {
                    float v = f[(c * H + y) * W + x];
                    float want = roundf(v < 0 ? 0 : v > 255 ? 255 : v);
                    int got = u[(y * W + x) * C + c];
                    if (fabsf((float)got - want) > 1)
                        fail_msg("seed %d pixel (%d,%d,%d): u8 %d, f32 %.3f", (int)seed, y, x,
                                 c, got, v);
                    moved += got != hwc[(y * W + x) * C + c];
                }
        assert_true(moved > 0);
        free(u);
        free(f);
    }
    ich_augment_free(a);
    free(hwc);
}

/* ---- Text form ------------------------------------------------------------------ */

static void test_parse_describe_round_trip(void **state)
{
    (void)state;
    ich_augment *a = recipe(full_recipe);
    char text[512];
    assert_int_equal(ich_augment_describe(a, text, sizeof text), ICH_OK);
    assert_string_equal(text, full_recipe);
    ich_augment *b = recipe(text);
    char again[512];
    assert_int_equal(ich_augment_describe(b, again, sizeof again), ICH_OK);
    assert_string_equal(text, again);
    for (uint64_t seed = 0; seed < 10; seed++) {
        ich_augment_choices p = choose(a, seed), q = choose(b, seed);
        assert_memory_equal(&p, &q, sizeof p);
    }
    /* Spaces, the order of the header, exact numbers, p = 0 left out. */
    ich_augment *c = recipe(" rotate : 0.25 : 7.5 ,hflip:0.1, vflip:0 ");
    assert_int_equal(ich_augment_describe(c, text, sizeof text), ICH_OK);
    assert_string_equal(text, "hflip:0.1,rotate:0.25:7.5");
    assert_int_equal(ich_augment_set_elastic(c, 1.0 / 3, 12.345678901234567, 4), ICH_OK);
    assert_int_equal(ich_augment_describe(c, text, sizeof text), ICH_OK);
    ich_augment *d = recipe(text);
    ich_augment_choices p = choose(c, 1), q = choose(d, 1);
    assert_true(p.elastic_alpha == q.elastic_alpha && q.elastic_alpha == 12.345678901234567);
    /* Later items replace earlier ones of the same transform. */
    ich_augment *e = recipe("hflip:0.5,hflip:0.25");
    assert_int_equal(ich_augment_describe(e, text, sizeof text), ICH_OK);
    assert_string_equal(text, "hflip:0.25");
    /* The empty recipe, and too small a buffer. */
    ich_augment *f = recipe("");
    assert_int_equal(ich_augment_describe(f, text, sizeof text), ICH_OK);
    assert_string_equal(text, "");
    assert_int_equal(ich_augment_describe(a, text, 10), ICH_ERR_SHAPE);
    assert_string_equal(text, "");
    assert_int_equal(ich_augment_describe(NULL, text, sizeof text), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_describe(a, NULL, 10), ICH_ERR_INVALID_ARGUMENT);
    ich_augment *g[] = {a, b, c, d, e, f};
    for (int i = 0; i < 6; i++)
        ich_augment_free(g[i]);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        ich_status status;
        const char *in_message;
    } bad[] = {
        {"flop:0.5", ICH_ERR_NOT_FOUND, "flop"},
        {"hflip:0.5,rotation:0.5:10", ICH_ERR_NOT_FOUND, "rotation"},
        {"hflip", ICH_ERR_INVALID_ARGUMENT, "hflip"},
        {"hflip:", ICH_ERR_INVALID_ARGUMENT, "hflip"},
        {"hflip:abc", ICH_ERR_INVALID_ARGUMENT, "abc"},
        {"hflip:0.5x", ICH_ERR_INVALID_ARGUMENT, "0.5x"},
        {"hflip:0.5:3", ICH_ERR_INVALID_ARGUMENT, "hflip:0.5:3"},
        {"rotate:0.5", ICH_ERR_INVALID_ARGUMENT, "rotate"},
        {"rotate:0.5:ten", ICH_ERR_INVALID_ARGUMENT, "ten"},
        {"rotate:0.5:200", ICH_ERR_INVALID_ARGUMENT, "200"},
        {"rotate:0.5:-5", ICH_ERR_INVALID_ARGUMENT, "-5"},
        {"hflip:1.5", ICH_ERR_INVALID_ARGUMENT, "1.5"},
        {"vflip:-0.1", ICH_ERR_INVALID_ARGUMENT, "-0.1"},
        {"hflip:nan", ICH_ERR_INVALID_ARGUMENT, "nan"},
        {"rotate:0.5:inf", ICH_ERR_INVALID_ARGUMENT, "inf"},
        {"blur:0.5:2:1", ICH_ERR_INVALID_ARGUMENT, "blur"},
        {"blur:0.5:0:0", ICH_ERR_INVALID_ARGUMENT, "sigma_max"},
        {"elastic:0.5:30:0", ICH_ERR_INVALID_ARGUMENT, "sigma"},
        {"brightness_contrast:0.5:0.1", ICH_ERR_INVALID_ARGUMENT, "brightness_contrast"},
        {"hflip:0.5,,vflip:0.5", ICH_ERR_INVALID_ARGUMENT, "empty"},
        {"hflip:0.5,", ICH_ERR_INVALID_ARGUMENT, "empty"},
        {"hflip:1e999", ICH_ERR_INVALID_ARGUMENT, "1e999"},
    };
    ich_augment *a = recipe("vflip:0.3");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ich_status st = ich_augment_parse(a, bad[i].spec);
        if (st != bad[i].status)
            fail_msg("\"%s\": %s, expected %s", bad[i].spec, ich_status_string(st),
                     ich_status_string(bad[i].status));
        if (!strstr(ich_last_error(), bad[i].in_message))
            fail_msg("\"%s\": message \"%s\" does not name \"%s\"", bad[i].spec,
                     ich_last_error(), bad[i].in_message);
        char text[128];
        assert_int_equal(ich_augment_describe(a, text, sizeof text), ICH_OK);
        assert_string_equal(text, "vflip:0.3"); /* nothing changed */
    }
    assert_int_equal(ich_augment_parse(NULL, "hflip:1"), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_parse(a, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_augment_free(a);
}

static void test_setter_and_apply_errors(void **state)
{
    (void)state;
    ich_augment *a = NULL;
    assert_int_equal(ich_augment_create(NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_create(&a), ICH_OK);
    assert_int_equal(ich_augment_set_flip(NULL, 0.5, 0.5), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_flip(a, 0.5, 2), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_rotation(a, 0.5, NAN), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_rotation(a, 0.5, 181), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_brightness_contrast(a, 0.5, -0.1, 0.1),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_brightness_contrast(a, 0.5, 0.1, INFINITY),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_blur(a, 0.5, 1, 0.5), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_blur(a, 0.5, 1, 1001), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_elastic(a, 0.5, 10, 1001), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_blur(a, 0, 0, 0), ICH_OK); /* removing needs no sigma */
    assert_int_equal(ich_augment_set_elastic(a, 0.5, 10, 0), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_elastic(a, -0.5, 10, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_set_elastic(a, 0, 10, 0), ICH_OK);
    ich_augment_free(NULL);

    float px[12] = {0};
    uint8_t u[12] = {0};
    assert_int_equal(ich_augment_apply_f32(NULL, 0, px, 1, 3, 4), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_apply_f32(a, 0, NULL, 1, 3, 4), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_apply_f32(a, 0, px, 0, 3, 4), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_apply_f32(a, 0, px, 1, -3, 4), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_apply_u8(a, 0, u, 3, 0, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_apply_u8(a, 0, NULL, 3, 4, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_apply_u8(NULL, 0, u, 3, 4, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_apply_f32(a, 0, px, INT32_MAX, INT32_MAX, 4),
                     ICH_ERR_INVALID_ARGUMENT);

    ich_augment_choices ch;
    ich_augment_choices_init(&ch);
    assert_int_equal(ich_augment_choose(NULL, 0, &ch), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_choose(a, 0, NULL), ICH_ERR_INVALID_ARGUMENT);
    ch.size = 8;
    assert_int_equal(ich_augment_choose(a, 0, &ch), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_apply_choices_f32(&ch, px, 1, 3, 4), ICH_ERR_INVALID_ARGUMENT);
    ich_augment_choices_init(&ch);
    ch.blur = 1;
    ch.blur_sigma = NAN;
    assert_int_equal(ich_augment_apply_choices_f32(&ch, px, 1, 3, 4), ICH_ERR_INVALID_ARGUMENT);
    ich_augment_choices_init(&ch);
    ch.elastic = 1;
    ch.elastic_alpha = 5;
    assert_int_equal(ich_augment_apply_choices_u8(&ch, u, 3, 4, 1), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_apply_choices_u8(NULL, u, 3, 4, 1), ICH_ERR_INVALID_ARGUMENT);
    ich_augment_free(a);
}

/* A 3 x 256 x 256 image through the whole recipe, every transform on:
 * printed, and checked against a generous bound (sanitizer builds too). */
static void test_speed(void **state)
{
    (void)state;
    const int C = 3, N = 256;
    float *img = random_f32(C, N, N, 12);
    ich_augment *a = recipe("hflip:1,vflip:1,rotate:1:15,brightness_contrast:1:0.1:0.1,"
                            "blur:1:1.5:1.5,elastic:1:30:5");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int runs = 10;
    for (int i = 0; i < runs; i++)
        assert_int_equal(ich_augment_apply_f32(a, (uint64_t)i, img, C, N, N), ICH_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6) / runs;
    print_message("full recipe on 3x256x256 float: %.2f ms per image\n", ms);
    assert_true(ms < 200);
    ich_augment_free(a);
    free(img);
}

/* ---- PNG reading -------------------------------------------------------------------- */

static void test_png_read_round_trip(void **state)
{
    const char *dir = *state;
    const int sizes[][2] = {{1, 1}, {13, 7}, {64, 33}};
    for (int channels = 1; channels <= 4; channels++)
        for (int s = 0; s < 3; s++) {
            int w = sizes[s][0], h = sizes[s][1];
            char path[512];
            snprintf(path, sizeof path, "%s/rt_%d_%d.png", dir, channels, s);
            uint8_t *px = random_u8((size_t)w * h * channels, (uint32_t)(channels * 10 + s));
            assert_int_equal(ich_png_write(path, px, w, h, channels), ICH_OK);
            uint8_t *back = NULL;
            int32_t bw = 0, bh = 0, bc = 0;
            ich_status st = ich_png_read(path, &back, &bw, &bh, &bc);
            if (st != ICH_OK)
                fail_msg("%s: %s", path, ich_last_error());
            assert_int_equal(bw, w);
            assert_int_equal(bh, h);
            assert_int_equal(bc, channels);
            assert_memory_equal(back, px, (size_t)w * h * channels);
            ich_free(back);
            free(px);
        }
}

/* CRC-32 of PNG chunks (ISO 3309), bit by bit: slow and independent. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = crc & 1 ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
    }
    return ~crc;
}

static void test_png_read_errors(void **state)
{
    const char *dir = *state;
    char path[512], bad[512];
    uint8_t *px = NULL;
    int32_t w, h, c;
    snprintf(path, sizeof path, "%s/missing.png", dir);
    assert_int_equal(ich_png_read(path, &px, &w, &h, &c), ICH_ERR_IO);
    assert_null(px);
    assert_non_null(strstr(ich_last_error(), "missing.png"));
    assert_int_equal(ich_png_read(NULL, &px, &w, &h, &c), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_png_read(path, NULL, &w, &h, &c), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_png_read(path, &px, &w, NULL, &c), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_png_read(dir, &px, &w, &h, &c) != ICH_OK, 1); /* a folder */

    snprintf(bad, sizeof bad, "%s/text.png", dir);
    assert_int_equal(tu_write_file(bad, "hello, not a PNG\n", 17), 0);
    assert_int_equal(ich_png_read(bad, &px, &w, &h, &c), ICH_ERR_FORMAT);
    assert_non_null(strstr(ich_last_error(), "text.png"));

    /* A real PNG, then every truncation and a flipped byte at every place. */
    snprintf(path, sizeof path, "%s/good.png", dir);
    uint8_t *img = random_u8(20 * 12 * 3, 77);
    assert_int_equal(ich_png_write(path, img, 20, 12, 3), ICH_OK);
    size_t size = 0;
    uint8_t *data = tu_read_file(path, &size);
    assert_non_null(data);
    snprintf(bad, sizeof bad, "%s/damaged.png", dir);
    int cases = 0;
    for (size_t cut = 0; cut < size; cut++, cases++) {
        assert_int_equal(tu_write_file(bad, data, cut), 0);
        ich_status st = ich_png_read(bad, &px, &w, &h, &c);
        if (st != ICH_ERR_FORMAT)
            fail_msg("cut to %zu of %zu bytes: %s", cut, size, ich_status_string(st));
        assert_null(px);
        assert_non_null(strstr(ich_last_error(), "damaged.png"));
    }
    uint8_t *copy = malloc(size);
    for (size_t at = 0; at < size; at++, cases++) {
        memcpy(copy, data, size);
        copy[at] ^= (uint8_t)(1u << (at % 8)) | 0x10;
        assert_int_equal(tu_write_file(bad, copy, size), 0);
        ich_status st = ich_png_read(bad, &px, &w, &h, &c);
        if (st != ICH_ERR_FORMAT)
            fail_msg("byte %zu of %zu flipped: %s", at, size, ich_status_string(st));
        assert_null(px);
    }
    /* Damage inside chunks whose CRC is then made right again reaches the
     * decoder itself: it must refuse or decode, never crash. */
    int decoded = 0, refused = 0;
    for (size_t at = 8; at + 12 <= size;) {
        uint32_t length = (uint32_t)data[at] << 24 | (uint32_t)data[at + 1] << 16 |
                          (uint32_t)data[at + 2] << 8 | data[at + 3];
        for (size_t i = 0; i < length; i++) {
            memcpy(copy, data, size);
            copy[at + 8 + i] ^= (uint8_t)(0x5a + i);
            uint32_t crc = crc32_bitwise(copy + at + 4, length + 4);
            uint8_t *end = copy + at + 8 + length;
            end[0] = (uint8_t)(crc >> 24), end[1] = (uint8_t)(crc >> 16);
            end[2] = (uint8_t)(crc >> 8), end[3] = (uint8_t)crc;
            assert_int_equal(tu_write_file(bad, copy, size), 0);
            ich_status st = ich_png_read(bad, &px, &w, &h, &c);
            if (st == ICH_OK) {
                assert_true(w > 0 && h > 0 && c >= 1 && c <= 4);
                ich_free(px);
                decoded++;
            } else {
                assert_int_equal(st, ICH_ERR_FORMAT);
                refused++;
            }
        }
        at += 12 + length;
    }
    assert_true(refused > 0);
    print_message("%d damaged PNGs refused; %d with fixed CRCs: %d decoded, %d refused\n", cases,
                  decoded + refused, decoded, refused);
    assert_true(cases > 300);
    free(copy);
    free(data);
    free(img);
}

/* ---- Offline augmentation ---------------------------------------------------------- */

/* 12 images: six without a finding and six positive rows spread over the
 * five subtypes (epidural 1, intraparenchymal 2, intraventricular 1,
 * subarachnoid 1, subdural 2; any 6). */
static const float offline_rows[12][6] = {
    {0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0},
    {0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, {1, 1, 0, 0, 0, 0}, {1, 0, 1, 0, 0, 0},
    {1, 0, 1, 0, 0, 1}, {1, 0, 0, 0, 1, 0}, {1, 0, 0, 1, 0, 0}, {1, 0, 0, 0, 0, 1},
};

static ich_labels *offline_table(const char *image_dir)
{
    ich_labels *t = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    for (int r = 0; r < 12; r++) {
        char id[32], group[32], path[600];
        snprintf(id, sizeof id, "img%02d", r);
        snprintf(group, sizeof group, "P%d", r / 2);
        assert_int_equal(ich_labels_add(t, id, offline_rows[r], group), ICH_OK);
        snprintf(path, sizeof path, "%s/%s.png", image_dir, id);
        uint8_t *px = random_u8(16 * 10 * 3, (uint32_t)r + 100);
        assert_int_equal(ich_png_write(path, px, 16, 10, 3), ICH_OK);
        free(px);
    }
    return t;
}

static int progress_calls;
static int64_t progress_last_done, progress_last_total;

static int count_progress(void *user, int64_t done, int64_t total, const char *what)
{
    (void)user;
    progress_calls++;
    progress_last_done = done;
    progress_last_total = total;
    assert_string_equal(what, "augment");
    return 0;
}

static int stop_progress(void *user, int64_t done, int64_t total, const char *what)
{
    (void)user, (void)done, (void)total, (void)what;
    return 1;
}

static ich_labels *run_offline(const ich_augment *a, const ich_labels *t, const char *images,
                               const char *out, int64_t target, uint64_t seed, int threads)
{
    ich_augment_offline_options o;
    ich_augment_offline_options_init(&o);
    o.target = target;
    o.seed = seed;
    o.threads = threads;
    o.progress = count_progress;
    ich_labels *result = NULL;
    ich_status st = ich_augment_offline(a, t, images, out, &o, &result);
    if (st != ICH_OK)
        fail_msg("ich_augment_offline: %s", ich_last_error());
    return result;
}

/* Check the result: source rows first, then copies named <id>_aug_<k> with
 * k = 1.. per source, the source's labels and group, and a PNG that is the
 * mirrored source (the recipe is hflip:1). */
static void check_offline_result(const ich_labels *t, const ich_labels *r, const char *images,
                                 const char *out, int64_t target)
{
    int64_t n = ich_labels_rows(t), m = ich_labels_rows(r);
    assert_true(m > n);
    for (int64_t i = 0; i < n; i++)
        assert_string_equal(ich_labels_id(r, i), ich_labels_id(t, i));
    int64_t counts[6];
    assert_int_equal(ich_labels_positives(r, counts, 6), ICH_OK);
    for (int c = 0; c < 6; c++)
        if (counts[c] < target)
            fail_msg("label %d has %lld positives, target %lld", c, (long long)counts[c],
                     (long long)target);
    int64_t next_k[12] = {0};
    for (int64_t i = n; i < m; i++) {
        const char *id = ich_labels_id(r, i);
        int src = -1, k = -1;
        assert_int_equal(sscanf(id, "img%d_aug_%d", &src, &k), 2);
        assert_in_range(src, 6, 11); /* only positive rows are copied */
        assert_int_equal(k, ++next_k[src]);
        assert_memory_equal(ich_labels_values(r, i), offline_rows[src], sizeof offline_rows[0]);
        char group[32];
        snprintf(group, sizeof group, "P%d", src / 2);
        assert_string_equal(ich_labels_group(r, i), group);
        char path[512], source[512];
        snprintf(path, sizeof path, "%s/%s.png", out, id);
        snprintf(source, sizeof source, "%s/img%02d.png", images, src);
        uint8_t *a = NULL, *b = NULL;
        int32_t w, h, c, w2, h2, c2;
        assert_int_equal(ich_png_read(path, &a, &w, &h, &c), ICH_OK);
        assert_int_equal(ich_png_read(source, &b, &w2, &h2, &c2), ICH_OK);
        assert_true(w == w2 && h == h2 && c == c2);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                assert_memory_equal(a + (y * w + x) * c, b + (y * w + (w - 1 - x)) * c, c);
        ich_free(a);
        ich_free(b);
    }
}

static void test_offline(void **state)
{
    const char *dir = *state;
    char images[512], out1[512], out2[512], out3[512];
    snprintf(images, sizeof images, "%s/images", dir);
    snprintf(out1, sizeof out1, "%s/aug1", dir);
    snprintf(out2, sizeof out2, "%s/aug2", dir);
    snprintf(out3, sizeof out3, "%s/aug3", dir);
    mkdir(images, 0777);
    ich_labels *t = offline_table(images);
    ich_augment *a = recipe("hflip:1");

    progress_calls = 0;
    ich_labels *r1 = run_offline(a, t, images, out1, 4, 7, 2);
    check_offline_result(t, r1, images, out1, 4);
    assert_true(progress_calls > 0 && progress_last_done == progress_last_total);
    assert_int_equal(tu_dir_count(out1, NULL, 0), ich_labels_rows(r1) - 12);
    /* Rarest first, counting every label a copy carries: with these rows
     * the five subtypes need 3 + 2 + 3 + 3 + 2 = 13 copies at most. */
    assert_in_range(ich_labels_rows(r1) - 12, 9, 13);

    /* A callback that asks to stop: ICH_ERR_CANCELLED, not a bad argument,
     * and no table. */
    ich_augment_offline_options stop;
    ich_augment_offline_options_init(&stop);
    stop.target = 4;
    stop.progress = stop_progress;
    ich_labels *stopped = (ich_labels *)&stop;
    snprintf(out3, sizeof out3, "%s/aug_stopped", dir);
    assert_int_equal(ich_augment_offline(a, t, images, out3, &stop, &stopped), ICH_ERR_CANCELLED);
    assert_non_null(strstr(ich_last_error(), "cancelled"));
    assert_null(stopped);
    snprintf(out3, sizeof out3, "%s/aug3", dir);

    /* Same seed, one thread: the same table and the same files. */
    ich_labels *r2 = run_offline(a, t, images, out2, 4, 7, 1);
    assert_int_equal(ich_labels_rows(r2), ich_labels_rows(r1));
    for (int64_t i = 12; i < ich_labels_rows(r1); i++) {
        assert_string_equal(ich_labels_id(r1, i), ich_labels_id(r2, i));
        char p1[600], p2[600];
        snprintf(p1, sizeof p1, "%s/%s.png", out1, ich_labels_id(r1, i));
        snprintf(p2, sizeof p2, "%s/%s.png", out2, ich_labels_id(r2, i));
        size_t s1, s2;
        uint8_t *d1 = tu_read_file(p1, &s1), *d2 = tu_read_file(p2, &s2);
        assert_true(d1 && d2 && s1 == s2 && memcmp(d1, d2, s1) == 0);
        free(d1);
        free(d2);
    }

    /* Default target: the largest label's count (any: 6). */
    ich_labels *r3 = run_offline(a, t, images, out3, 0, 1, 0);
    check_offline_result(t, r3, images, out3, 6);

    /* Augmenting the augmented table again (all its images in one folder)
     * skips the numbers it holds: no ID twice. */
    for (int i = 0; i < 12; i++) {
        char from[600], to[600];
        snprintf(from, sizeof from, "%s/img%02d.png", images, i);
        snprintf(to, sizeof to, "%s/img%02d.png", out1, i);
        size_t size;
        uint8_t *bytes = tu_read_file(from, &size);
        assert_non_null(bytes);
        assert_int_equal(tu_write_file(to, bytes, size), 0);
        free(bytes);
    }
    ich_labels *r4 = run_offline(a, r1, out1, out1, 0, 3, 2);
    assert_true(ich_labels_rows(r4) > ich_labels_rows(r1));
    int64_t old_copies[12] = {0};
    for (int64_t i = 12; i < ich_labels_rows(r1); i++) {
        int src = -1;
        assert_int_equal(sscanf(ich_labels_id(r1, i), "img%d_aug_", &src), 1);
        old_copies[src]++;
    }
    int renumbered = 0;
    for (int64_t i = ich_labels_rows(r1); i < ich_labels_rows(r4); i++) {
        int src = -1, k = -1, end = 0;
        const char *id = ich_labels_id(r4, i);
        if (sscanf(id, "img%d_aug_%d%n", &src, &k, &end) == 2 && id[end] == '\0') {
            assert_true(k > old_copies[src]); /* numbers after the old copies */
            renumbered++;
        }
    }
    assert_true(renumbered > 0);
    for (int64_t i = 0; i < ich_labels_rows(r4); i++)
        for (int64_t j = 0; j < i; j++)
            assert_string_not_equal(ich_labels_id(r4, i), ich_labels_id(r4, j));

    /* A missing source image is logged and skipped: its copies are not in
     * the table (img06 is the only epidural row). */
    char gone[600], out4[600];
    snprintf(gone, sizeof gone, "%s/img06.png", images);
    snprintf(out4, sizeof out4, "%s/aug4", dir);
    assert_int_equal(unlink(gone), 0);
    ich_labels *r5 = run_offline(a, t, images, out4, 4, 7, 2);
    int64_t counts[6];
    assert_int_equal(ich_labels_positives(r5, counts, 6), ICH_OK);
    assert_int_equal(counts[1], 1);
    for (int64_t i = 12; i < ich_labels_rows(r5); i++)
        assert_null(strstr(ich_labels_id(r5, i), "img06"));

    /* Errors. */
    ich_labels *none = NULL;
    ich_augment_offline_options o;
    ich_augment_offline_options_init(&o);
    assert_int_equal(ich_augment_offline(NULL, t, images, out1, &o, &none),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_offline(a, NULL, images, out1, &o, &none),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_offline(a, t, NULL, out1, &o, &none), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_augment_offline(a, t, images, out1, &o, NULL), ICH_ERR_INVALID_ARGUMENT);
    o.target = -1;
    assert_int_equal(ich_augment_offline(a, t, images, out1, &o, &none),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_null(none);
    char blocked[600];
    snprintf(blocked, sizeof blocked, "%s/img07.png/sub", images); /* under a file */
    o.target = 4;
    assert_int_equal(ich_augment_offline(a, t, images, blocked, &o, &none), ICH_ERR_IO);
    assert_null(none);

    ich_labels *all[] = {t, r1, r2, r3, r4, r5};
    for (int i = 0; i < 6; i++)
        ich_labels_free(all[i]);
    ich_augment_free(a);
}


/* Hostile IDs: each is refused by the shared rule, logged with its row,
 * and nothing is read or written outside image_dir and out_dir (the ID
 * "../outside/victim" used to write outside/victim_aug_1.png). */
static void test_offline_hostile_ids(void **state)
{
    const char *dir = *state;
    char images[512], outside[512], out[512], victim[600], absolute[600];
    snprintf(images, sizeof images, "%s/images", dir);
    snprintf(outside, sizeof outside, "%s/outside", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(victim, sizeof victim, "%s/victim.png", outside);
    snprintf(absolute, sizeof absolute, "%s/victim", outside);
    mkdir(images, 0777);
    mkdir(outside, 0777);
    uint8_t *px = random_u8(8 * 8 * 3, 7);
    assert_int_equal(ich_png_write(victim, px, 8, 8, 3), ICH_OK);
    char good[600];
    snprintf(good, sizeof good, "%s/ok.png", images);
    assert_int_equal(ich_png_write(good, px, 8, 8, 3), ICH_OK);
    free(px);

    /* and a FIFO where a source PNG should be: reading it would block */
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/pipe.png", images);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    const char *ids[] = {"ok", "../outside/victim", "a/../../outside/victim", absolute, "pipe"};
    const float values[5][6] = {{1, 0, 0, 0, 0, 0}, {1, 1, 0, 0, 0, 0}, {1, 1, 0, 0, 0, 0},
                                {1, 1, 0, 0, 0, 0}, {1, 1, 0, 0, 0, 0}};
    ich_labels *t = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    for (int r = 0; r < 5; r++)
        assert_int_equal(ich_labels_add(t, ids[r], values[r], NULL), ICH_OK);
    ich_augment *a = recipe("hflip:1");
    tu_log_capture(ICH_LOG_WARNING);
    alarm(30); /* a blocked read fails the test instead of hanging it */
    ich_labels *r = run_offline(a, t, images, out, 15, 1, 2); /* every row drawn */
    alarm(0);
    ich_set_log_callback(NULL, NULL, ICH_LOG_WARNING);

    assert_int_equal(ich_labels_rows(r), 5); /* no copy written */
    char names[256];
    assert_int_equal(tu_dir_count(outside, names, sizeof names), 1);
    assert_string_equal(names, "victim.png");
    assert_int_equal(tu_dir_count(dir, NULL, 0), 3); /* images, outside, out */
    assert_int_equal(tu_dir_count(out, NULL, 0), 0);
    assert_non_null(strstr(tu_log_text, "ID \"../outside/victim\" cannot name a file"));
    assert_non_null(strstr(tu_log_text, "(row 2)"));
    assert_non_null(strstr(tu_log_text, "a/../../outside/victim (row 3)"));
    assert_non_null(strstr(tu_log_text, "it is an absolute path"));
    assert_non_null(strstr(tu_log_text, "pipe.png: a FIFO, not a regular file: never opened"));
    ich_labels_free(r);
    ich_labels_free(t);
    ich_augment_free(a);
}

int main(void)
{
    TU_APPLY_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flips_exact),
        cmocka_unit_test(test_rotation_matches_reference),
        cmocka_unit_test(test_rotation_special_angles),
        cmocka_unit_test(test_blur_matches_naive_convolution),
        cmocka_unit_test(test_brightness_contrast_formula),
        cmocka_unit_test(test_elastic),
        cmocka_unit_test(test_probabilities),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_u8_agrees_with_f32),
        cmocka_unit_test(test_parse_describe_round_trip),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_setter_and_apply_errors),
        cmocka_unit_test(test_speed),
        cmocka_unit_test_setup_teardown(test_png_read_round_trip, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_png_read_errors, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_offline, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_offline_hostile_ids, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
