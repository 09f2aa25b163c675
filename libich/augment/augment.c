/* Augmentation recipes: the transforms, the random choices, and the text form.
 *
 * Everything runs on float32 planes (CHW); the 8-bit entry point converts
 * to floats, runs the same code and rounds back once at the end, so both
 * make the same choices and the 8-bit result is the float result clamped
 * and rounded. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "core/options.h"
#include "core/rng.h"
#include "ich/augment.h"

struct ich_augment {
    double p_hflip, p_vflip;
    double p_rotate, degrees;
    double p_elastic, alpha, elastic_sigma;
    double p_bc, brightness, contrast;
    double p_blur, blur_min, blur_max;
};

/* The stream of the per-call choices: ich_rng_init(seed, AUGMENT_STREAM, 0). */
#define AUGMENT_STREAM 0x6175676d656e74ull /* "augment" */

/* Gaussian kernels reach 3 sd on each side (99.7 % of the weight). */
#define KERNEL_SDS 3.0

/* Largest blur or elastic sd in pixels: far beyond any useful value, and it
 * keeps the kernels (6 sd + 1 taps) and their run time bounded. */
#define MAX_SIGMA 1000.0

/* ---- Recipe ---------------------------------------------------------------- */

ich_status ich_augment_create(ich_augment **out)
{
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_augment_create: NULL out");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_augment_create: out of memory");
    return ICH_OK;
}

void ich_augment_free(ich_augment *augment) { free(augment); }

static ich_status check_probability(const char *fn, const char *name, double p)
{
    if (!(p >= 0.0 && p <= 1.0)) /* also false for NaN */
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: probability %s = %g is not in [0, 1]", fn,
                        name, p);
    return ICH_OK;
}

static ich_status check_strength(const char *fn, const char *name, double value)
{
    if (!isfinite(value) || value < 0.0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: %s = %g must be finite and >= 0", fn, name,
                        value);
    return ICH_OK;
}

ich_status ich_augment_set_flip(ich_augment *augment, double p_horizontal, double p_vertical)
{
    static const char fn[] = "ich_augment_set_flip";
    if (!augment)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL augment", fn);
    ich_status st = check_probability(fn, "p_horizontal", p_horizontal);
    if (st == ICH_OK)
        st = check_probability(fn, "p_vertical", p_vertical);
    if (st != ICH_OK)
        return st;
    augment->p_hflip = p_horizontal;
    augment->p_vflip = p_vertical;
    return ICH_OK;
}

ich_status ich_augment_set_rotation(ich_augment *augment, double p, double degrees)
{
    static const char fn[] = "ich_augment_set_rotation";
    if (!augment)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL augment", fn);
    ich_status st = check_probability(fn, "p", p);
    if (st == ICH_OK)
        st = check_strength(fn, "degrees", degrees);
    if (st == ICH_OK && degrees > 180.0)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: degrees = %g is over 180", fn, degrees);
    if (st != ICH_OK)
        return st;
    augment->p_rotate = p;
    augment->degrees = p > 0 ? degrees : 0;
    return ICH_OK;
}

ich_status ich_augment_set_brightness_contrast(ich_augment *augment, double p, double brightness,
                                               double contrast)
{
    static const char fn[] = "ich_augment_set_brightness_contrast";
    if (!augment)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL augment", fn);
    ich_status st = check_probability(fn, "p", p);
    if (st == ICH_OK)
        st = check_strength(fn, "brightness", brightness);
    if (st == ICH_OK)
        st = check_strength(fn, "contrast", contrast);
    if (st != ICH_OK)
        return st;
    augment->p_bc = p;
    augment->brightness = p > 0 ? brightness : 0;
    augment->contrast = p > 0 ? contrast : 0;
    return ICH_OK;
}

ich_status ich_augment_set_blur(ich_augment *augment, double p, double sigma_min, double sigma_max)
{
    static const char fn[] = "ich_augment_set_blur";
    if (!augment)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL augment", fn);
    ich_status st = check_probability(fn, "p", p);
    if (st == ICH_OK)
        st = check_strength(fn, "sigma_min", sigma_min);
    if (st == ICH_OK)
        st = check_strength(fn, "sigma_max", sigma_max);
    if (st == ICH_OK && sigma_min > sigma_max)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: sigma_min = %g is over sigma_max = %g", fn,
                      sigma_min, sigma_max);
    if (st == ICH_OK && p > 0 && sigma_max <= 0)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: sigma_max must be > 0 when p > 0", fn);
    if (st == ICH_OK && sigma_max > MAX_SIGMA)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: sigma_max = %g is over %g pixels", fn,
                      sigma_max, MAX_SIGMA);
    if (st != ICH_OK)
        return st;
    augment->p_blur = p;
    augment->blur_min = p > 0 ? sigma_min : 0;
    augment->blur_max = p > 0 ? sigma_max : 0;
    return ICH_OK;
}

ich_status ich_augment_set_elastic(ich_augment *augment, double p, double alpha, double sigma)
{
    static const char fn[] = "ich_augment_set_elastic";
    if (!augment)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL augment", fn);
    ich_status st = check_probability(fn, "p", p);
    if (st == ICH_OK)
        st = check_strength(fn, "alpha", alpha);
    if (st == ICH_OK)
        st = check_strength(fn, "sigma", sigma);
    if (st == ICH_OK && p > 0 && sigma <= 0)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: sigma must be > 0 when p > 0", fn);
    if (st == ICH_OK && sigma > MAX_SIGMA)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: sigma = %g is over %g pixels", fn, sigma,
                      MAX_SIGMA);
    if (st != ICH_OK)
        return st;
    augment->p_elastic = p;
    augment->alpha = p > 0 ? alpha : 0;
    augment->elastic_sigma = p > 0 ? sigma : 0;
    return ICH_OK;
}

/* ---- Text form ----------------------------------------------------------------- */

/* One transform of the text form: its name, how many numbers follow the
 * probability, and how to set it on a recipe. */
typedef struct recipe_item {
    const char *name;
    int parameters;
} recipe_item;

static const recipe_item recipe_items[] = {
    {"hflip", 0}, {"vflip", 0}, {"rotate", 1}, {"brightness_contrast", 2}, {"blur", 2},
    {"elastic", 2},
};
#define RECIPE_ITEM_COUNT ((int)(sizeof recipe_items / sizeof recipe_items[0]))

static ich_status set_item(ich_augment *a, int which, const double *v)
{
    switch (which) {
    case 0: return ich_augment_set_flip(a, v[0], a->p_vflip);
    case 1: return ich_augment_set_flip(a, a->p_hflip, v[0]);
    case 2: return ich_augment_set_rotation(a, v[0], v[1]);
    case 3: return ich_augment_set_brightness_contrast(a, v[0], v[1], v[2]);
    case 4: return ich_augment_set_blur(a, v[0], v[1], v[2]);
    default: return ich_augment_set_elastic(a, v[0], v[1], v[2]);
    }
}

/* The item's numbers as set, in text order; the probability first. */
static double get_item(const ich_augment *a, int which, double *v)
{
    switch (which) {
    case 0: v[0] = a->p_hflip; break;
    case 1: v[0] = a->p_vflip; break;
    case 2: v[0] = a->p_rotate, v[1] = a->degrees; break;
    case 3: v[0] = a->p_bc, v[1] = a->brightness, v[2] = a->contrast; break;
    case 4: v[0] = a->p_blur, v[1] = a->blur_min, v[2] = a->blur_max; break;
    default: v[0] = a->p_elastic, v[1] = a->alpha, v[2] = a->elastic_sigma; break;
    }
    return v[0];
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int parse_number(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* Parse one "name:p:params..." item (modified in place) into `a`. */
static ich_status parse_item(ich_augment *a, char *item)
{
    char shown[96];
    snprintf(shown, sizeof shown, "%s", item);
    char *fields[8];
    int count = 0;
    for (char *p = item;;) {
        char *colon = strchr(p, ':');
        if (colon)
            *colon = '\0';
        if (count < 8)
            fields[count] = trim(p);
        count++;
        if (!colon)
            break;
        p = colon + 1;
    }
    int which = -1;
    for (int i = 0; i < RECIPE_ITEM_COUNT; i++)
        if (strcmp(fields[0], recipe_items[i].name) == 0)
            which = i;
    if (which < 0)
        return ich_fail(ICH_ERR_NOT_FOUND,
                        "augment recipe: unknown transform \"%s\" in \"%s\" (known: hflip, vflip, "
                        "rotate, brightness_contrast, blur, elastic)",
                        fields[0], shown);
    int wanted = 1 + recipe_items[which].parameters;
    if (count - 1 != wanted)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "augment recipe: \"%s\" needs %d number%s after the name "
                        "(probability%s), got %d",
                        shown, wanted, wanted > 1 ? "s" : "",
                        wanted > 1 ? " and strengths" : "", count - 1);
    double v[3];
    for (int i = 0; i < wanted; i++)
        if (parse_number(fields[1 + i], &v[i]) != 0)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "augment recipe: \"%s\": \"%s\" is not a finite number", shown,
                            fields[1 + i]);
    ich_status st = set_item(a, which, v);
    if (st != ICH_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", ich_last_error());
        return ich_fail(st, "augment recipe: \"%s\": %s", shown, why);
    }
    return ICH_OK;
}

ich_status ich_augment_parse(ich_augment *augment, const char *spec)
{
    if (!augment || !spec)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_augment_parse: NULL %s",
                        augment ? "spec" : "augment");
    char *copy = strdup(spec);
    if (!copy)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_augment_parse: out of memory");
    ich_augment next = *augment; /* committed only when every item is good */
    ich_status st = ICH_OK;
    char *text = trim(copy);
    for (char *p = text; st == ICH_OK && *text;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        char *item = trim(p);
        if (!*item)
            st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "augment recipe \"%s\": empty item", spec);
        else
            st = parse_item(&next, item);
        if (!comma)
            break;
        p = comma + 1;
    }
    free(copy);
    if (st == ICH_OK)
        *augment = next;
    return st;
}

/* The shortest text that strtod reads back as exactly `v`. */
static void format_number(char *out, size_t size, double v)
{
    for (int precision = 6; precision <= 17; precision++) { /* 6: no exponent for 30 */
        snprintf(out, size, "%.*g", precision, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

ich_status ich_augment_describe(const ich_augment *augment, char *text, size_t size)
{
    if (!augment || !text || size == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_augment_describe: NULL %s",
                        augment ? "text or zero size" : "augment");
    ich_buf buf = {0};
    ich_buf_append(&buf, "", 0);
    for (int i = 0; i < RECIPE_ITEM_COUNT; i++) {
        double v[3];
        if (get_item(augment, i, v) <= 0)
            continue;
        ich_buf_printf(&buf, "%s%s", buf.length ? "," : "", recipe_items[i].name);
        for (int k = 0; k < 1 + recipe_items[i].parameters; k++) {
            char number[32];
            format_number(number, sizeof number, v[k]);
            ich_buf_printf(&buf, ":%s", number);
        }
    }
    ich_status st = ICH_OK;
    if (buf.failed)
        st = ich_fail(ICH_ERR_NO_MEMORY, "ich_augment_describe: out of memory");
    else if (buf.length >= size)
        st = ich_fail(ICH_ERR_SHAPE, "ich_augment_describe: the text needs %zu bytes, got %zu",
                      buf.length + 1, size);
    else
        memcpy(text, buf.data, buf.length + 1);
    if (st != ICH_OK)
        text[0] = '\0';
    ich_buf_free(&buf);
    return st;
}

/* ---- Random choices ----------------------------------------------------------- */

/* The first version of ich_augment_choices (see <ich/augment.h>). */
#define CHOICES_V1_SIZE ICH_OPTIONS_V1_SIZE(ich_augment_choices, blur_sigma)

void (ich_augment_choices_init)(ich_augment_choices *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_augment_choices defaults, *choices = &defaults;
    memset(choices, 0, sizeof *choices);
    choices->size = sizeof *choices;
    choices->contrast = 1.0;
    ich_options_init_write(caller, &defaults, sizeof defaults, CHOICES_V1_SIZE);
}

static int decide(ich_rng *rng, double p) { return ich_rng_uniform(rng) < p; }

/* Every transform draws the same numbers whether it is on or not, so
 * changing one transform of a recipe does not change the choices of the
 * others. */
static void draw_choices(const ich_augment *a, uint64_t seed, ich_augment_choices *c)
{
    ich_rng rng = ich_rng_init(seed, AUGMENT_STREAM, 0);
    ich_augment_choices_init(c);
    c->hflip = decide(&rng, a->p_hflip);
    c->vflip = decide(&rng, a->p_vflip);
    c->rotate = decide(&rng, a->p_rotate);
    c->degrees = ich_rng_range(&rng, -a->degrees, a->degrees);
    c->elastic = decide(&rng, a->p_elastic);
    c->elastic_seed = ich_rng_next(&rng);
    c->elastic_alpha = a->alpha;
    c->elastic_sigma = a->elastic_sigma;
    c->brightness_contrast = decide(&rng, a->p_bc);
    c->contrast = ich_rng_range(&rng, 1.0 - a->contrast, 1.0 + a->contrast);
    c->brightness = ich_rng_range(&rng, -a->brightness, a->brightness);
    c->blur = decide(&rng, a->p_blur);
    c->blur_sigma = ich_rng_range(&rng, a->blur_min, a->blur_max);
    /* Off transforms carry neutral values, so that printing shows only what happens. */
    if (!c->rotate)
        c->degrees = 0;
    if (!c->elastic)
        c->elastic_alpha = c->elastic_sigma = 0, c->elastic_seed = 0;
    if (!c->brightness_contrast)
        c->contrast = 1, c->brightness = 0;
    if (!c->blur)
        c->blur_sigma = 0;
}

ich_status ich_augment_choose(const ich_augment *augment, uint64_t seed,
                              ich_augment_choices *choices)
{
    if (!augment || !choices)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_augment_choose: NULL %s",
                        augment ? "choices" : "augment");
    ich_augment_choices c;
    draw_choices(augment, seed, &c);
    /* Only the caller's choices->size bytes are written. */
    return ich_options_write(choices, &c, sizeof c, CHOICES_V1_SIZE, "ich_augment_choose");
}

/* ---- Transforms on float planes ------------------------------------------------ */

typedef struct image {
    float *data; /* channels planes of rows x cols */
    int32_t channels, rows, cols;
    size_t plane; /* rows * cols */
} image;

static void flip_horizontal(image *im)
{
    for (int32_t c = 0; c < im->channels; c++)
        for (int32_t y = 0; y < im->rows; y++) {
            float *row = im->data + c * im->plane + (size_t)y * im->cols;
            for (int32_t l = 0, r = im->cols - 1; l < r; l++, r--) {
                float t = row[l];
                row[l] = row[r];
                row[r] = t;
            }
        }
}

static void flip_vertical(image *im)
{
    for (int32_t c = 0; c < im->channels; c++) {
        float *plane = im->data + c * im->plane;
        for (int32_t t = 0, b = im->rows - 1; t < b; t++, b--) {
            float *top = plane + (size_t)t * im->cols, *bottom = plane + (size_t)b * im->cols;
            for (int32_t x = 0; x < im->cols; x++) {
                float v = top[x];
                top[x] = bottom[x];
                bottom[x] = v;
            }
        }
    }
}

/* Bilinear sample of every channel of `src` at (sx, sy) into dst[c*plane].
 * Neighbours outside the image count as fill[c]. */
static void sample_fill(const image *src, float *dst, double sx, double sy, const float *fill)
{
    double fx0 = floor(sx), fy0 = floor(sy);
    if (fx0 < -1 || fy0 < -1 || fx0 >= src->cols || fy0 >= src->rows) {
        for (int32_t c = 0; c < src->channels; c++)
            dst[c * src->plane] = fill[c];
        return;
    }
    int32_t x0 = (int32_t)fx0, y0 = (int32_t)fy0;
    float fx = (float)(sx - fx0), fy = (float)(sy - fy0);
    float w[4] = {(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy};
    if (x0 >= 0 && y0 >= 0 && x0 + 1 < src->cols && y0 + 1 < src->rows) { /* most pixels */
        const float *p = src->data + (size_t)y0 * src->cols + x0;
        for (int32_t c = 0; c < src->channels; c++, p += src->plane)
            dst[c * src->plane] =
                w[0] * p[0] + w[1] * p[1] + w[2] * p[src->cols] + w[3] * p[src->cols + 1];
        return;
    }
    int inside[4] = {x0 >= 0 && y0 >= 0, x0 + 1 < src->cols && y0 >= 0,
                     x0 >= 0 && y0 + 1 < src->rows, x0 + 1 < src->cols && y0 + 1 < src->rows};
    size_t at = (size_t)y0 * src->cols + x0; /* only used where inside */
    size_t offset[4] = {at, at + 1, at + src->cols, at + src->cols + 1};
    for (int32_t c = 0; c < src->channels; c++) {
        const float *plane = src->data + c * src->plane;
        float v = 0;
        for (int k = 0; k < 4; k++)
            v += w[k] * (inside[k] ? plane[offset[k]] : fill[c]);
        dst[c * src->plane] = v;
    }
}

/* Bilinear sample with the coordinates clamped to the image (edges
 * repeated). */
static void sample_clamped(const image *src, float *dst, float sx, float sy)
{
    float max_x = (float)(src->cols - 1), max_y = (float)(src->rows - 1);
    sx = sx < 0 ? 0 : sx > max_x ? max_x : sx;
    sy = sy < 0 ? 0 : sy > max_y ? max_y : sy;
    int32_t x0 = (int32_t)sx, y0 = (int32_t)sy;
    int32_t x1 = x0 + 1 < src->cols ? x0 + 1 : x0, y1 = y0 + 1 < src->rows ? y0 + 1 : y0;
    float fx = sx - (float)x0, fy = sy - (float)y0;
    size_t a = (size_t)y0 * src->cols + x0, b = (size_t)y0 * src->cols + x1;
    size_t c0 = (size_t)y1 * src->cols + x0, d = (size_t)y1 * src->cols + x1;
    for (int32_t c = 0; c < src->channels; c++) {
        const float *p = src->data + c * src->plane;
        float top = p[a] + fx * (p[b] - p[a]);
        float bottom = p[c0] + fx * (p[d] - p[c0]);
        dst[c * src->plane] = top + fy * (bottom - top);
    }
}

/* Rotate by `angle` radians about the centre; positive turns the picture
 * counter-clockwise as displayed (rows downwards), like numpy's rot90.
 * `scratch` holds channels * (plane + 1) floats. */
static void rotate(image *im, float *scratch, double angle)
{
    float *fill = scratch + im->plane * im->channels;
    for (int32_t c = 0; c < im->channels; c++) {
        const float *plane = im->data + c * im->plane;
        float lo = plane[0];
        for (size_t i = 1; i < im->plane; i++)
            lo = plane[i] < lo ? plane[i] : lo;
        fill[c] = lo;
    }
    memcpy(scratch, im->data, im->plane * im->channels * sizeof(float));
    image src = *im;
    src.data = scratch;
    double cs = cos(angle), sn = sin(angle);
    double cx = 0.5 * (im->cols - 1), cy = 0.5 * (im->rows - 1);
    for (int32_t y = 0; y < im->rows; y++) {
        double dy = y - cy;
        for (int32_t x = 0; x < im->cols; x++) {
            double dx = x - cx;
            double sx = cx + cs * dx - sn * dy, sy = cy + sn * dx + cs * dy;
            sample_fill(&src, im->data + (size_t)y * im->cols + x, sx, sy, fill);
        }
    }
}

/* Normalised gaussian weights k[0 .. 2r] for offsets -r .. r. */
static void gaussian_kernel(double sigma, int32_t radius, float *k)
{
    double sum = 0;
    for (int32_t i = -radius; i <= radius; i++)
        sum += exp(-0.5 * i * i / (sigma * sigma));
    for (int32_t i = -radius; i <= radius; i++)
        k[i + radius] = (float)(exp(-0.5 * i * i / (sigma * sigma)) / sum);
}

static int32_t kernel_radius(double sigma) { return (int32_t)ceil(KERNEL_SDS * sigma); }

static int32_t clamp_index(int64_t i, int32_t n) { return i < 0 ? 0 : i >= n ? n - 1 : (int32_t)i; }

/* out[x] += w * in[x]: the inner loop of both blur passes, unrolled by 8 so
 * that the compiler turns each step into vector instructions at -O2. */
static void add_scaled(float *restrict out, const float *restrict in, float w, int32_t n)
{
    int32_t x = 0;
    for (; x + 8 <= n; x += 8) {
        out[x + 0] += w * in[x + 0];
        out[x + 1] += w * in[x + 1];
        out[x + 2] += w * in[x + 2];
        out[x + 3] += w * in[x + 3];
        out[x + 4] += w * in[x + 4];
        out[x + 5] += w * in[x + 5];
        out[x + 6] += w * in[x + 6];
        out[x + 7] += w * in[x + 7];
    }
    for (; x < n; x++)
        out[x] += w * in[x];
}

/* Separable gaussian blur of one rows x cols plane in place, edges clamped.
 * `work` holds rows * cols + cols + 2 * radius floats. Both passes are
 * written as row-long multiply-adds, which the compiler vectorises. */
static void blur_plane(float *plane, int32_t rows, int32_t cols, const float *k, int32_t radius,
                       float *work)
{
    float *tmp = work, *pad = work + (size_t)rows * cols;
    for (int32_t y = 0; y < rows; y++) {
        float *out = tmp + (size_t)y * cols;
        memset(out, 0, (size_t)cols * sizeof(float));
        for (int32_t j = -radius; j <= radius; j++) {
            const float *in = plane + (size_t)clamp_index((int64_t)y + j, rows) * cols;
            add_scaled(out, in, k[j + radius], cols);
        }
    }
    for (int32_t y = 0; y < rows; y++) {
        const float *in = tmp + (size_t)y * cols;
        for (int32_t i = 0; i < cols + 2 * radius; i++)
            pad[i] = in[clamp_index((int64_t)i - radius, cols)];
        float *out = plane + (size_t)y * cols;
        memset(out, 0, (size_t)cols * sizeof(float));
        for (int32_t j = 0; j <= 2 * radius; j++)
            add_scaled(out, pad + j, k[j], cols);
    }
}

static size_t blur_work_floats(int32_t rows, int32_t cols, int32_t radius)
{
    return (size_t)rows * cols + (size_t)cols + 2 * (size_t)radius;
}

static ich_status gaussian_blur(image *im, double sigma)
{
    int32_t radius = kernel_radius(sigma);
    if (radius == 0)
        return ICH_OK;
    float *k = malloc((2 * (size_t)radius + 1) * sizeof(float));
    float *work = malloc(blur_work_floats(im->rows, im->cols, radius) * sizeof(float));
    if (!k || !work) {
        free(k);
        free(work);
        return ich_fail(ICH_ERR_NO_MEMORY, "augment: out of memory for a blur");
    }
    gaussian_kernel(sigma, radius, k);
    for (int32_t c = 0; c < im->channels; c++)
        blur_plane(im->data + c * im->plane, im->rows, im->cols, k, radius, work);
    free(k);
    free(work);
    return ICH_OK;
}

/* Uniform noise in [-1, 1) from the field's own stream. */
static void fill_noise(float *field, size_t n, ich_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        field[i] = (float)((int64_t)(ich_rng_next(rng) >> 40) - 8388608) * (1.0f / 8388608.0f);
}

/* Elastic deformation (Simard et al. 2003): smoothed noise displacements
 * scaled by alpha; sources outside the image take the nearest edge pixel. */
static ich_status elastic(image *im, double alpha, double sigma, uint64_t field_seed)
{
    int32_t radius = kernel_radius(sigma);
    size_t n = im->plane;
    size_t work_floats = blur_work_floats(im->rows, im->cols, radius);
    float *buffer = malloc((n * im->channels + 2 * n + work_floats + 2 * (size_t)radius + 1) *
                           sizeof(float));
    if (!buffer)
        return ich_fail(ICH_ERR_NO_MEMORY, "augment: out of memory for an elastic deformation");
    float *copy = buffer, *dx = copy + n * im->channels, *dy = dx + n, *work = dy + n;
    float *k = work + work_floats;
    ich_rng rng = ich_rng_init(field_seed, 0, 0);
    fill_noise(dx, n, &rng);
    fill_noise(dy, n, &rng);
    gaussian_kernel(sigma, radius, k);
    blur_plane(dx, im->rows, im->cols, k, radius, work);
    blur_plane(dy, im->rows, im->cols, k, radius, work);
    memcpy(copy, im->data, n * im->channels * sizeof(float));
    image src = *im;
    src.data = copy;
    float a = (float)alpha;
    for (int32_t y = 0; y < im->rows; y++)
        for (int32_t x = 0; x < im->cols; x++) {
            size_t i = (size_t)y * im->cols + x;
            sample_clamped(&src, im->data + i, (float)x + a * dx[i], (float)y + a * dy[i]);
        }
    free(buffer);
    return ICH_OK;
}

/* v' = (v - m) * contrast + m + brightness * range, m the channel mean,
 * range the image's max - min. */
static void brightness_contrast(image *im, double contrast, double brightness)
{
    size_t total = im->plane * im->channels;
    float lo = im->data[0], hi = im->data[0];
    for (size_t i = 1; i < total; i++) {
        lo = im->data[i] < lo ? im->data[i] : lo;
        hi = im->data[i] > hi ? im->data[i] : hi;
    }
    double shift = brightness * ((double)hi - (double)lo);
    for (int32_t c = 0; c < im->channels; c++) {
        float *plane = im->data + c * im->plane;
        double sum = 0;
        for (size_t i = 0; i < im->plane; i++)
            sum += plane[i];
        double mean = sum / (double)im->plane;
        float scale = (float)contrast, offset = (float)(mean - mean * contrast + shift);
        for (size_t i = 0; i < im->plane; i++)
            plane[i] = plane[i] * scale + offset;
    }
}

static int does_something(const ich_augment_choices *c)
{
    return c->hflip || c->vflip || (c->rotate && c->degrees != 0) ||
           (c->elastic && c->elastic_alpha > 0) || c->brightness_contrast ||
           (c->blur && kernel_radius(c->blur_sigma) > 0);
}

/* The caller's `choices` read into *c: only its `size` bytes, the fields
 * of a newer version "change nothing" (ich_augment_choices_init()); then
 * checked. */
static ich_status check_choices(const char *fn, const ich_augment_choices *choices,
                                ich_augment_choices *c)
{
    if (!choices)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL choices", fn);
    ich_augment_choices_init(c);
    ich_status st = ich_options_merge(c, sizeof *c, choices, CHOICES_V1_SIZE, fn);
    if (st != ICH_OK)
        return st;
    if (c->rotate && !isfinite(c->degrees))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: rotation by %g degrees", fn, c->degrees);
    if (c->elastic && (!isfinite(c->elastic_alpha) || c->elastic_alpha < 0 ||
                       !(c->elastic_sigma > 0 && c->elastic_sigma <= MAX_SIGMA)))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: elastic alpha = %g, sigma = %g (alpha >= 0, 0 < sigma <= %g)", fn,
                        c->elastic_alpha, c->elastic_sigma, MAX_SIGMA);
    if (c->brightness_contrast && (!isfinite(c->contrast) || !isfinite(c->brightness)))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: contrast = %g, brightness = %g", fn,
                        c->contrast, c->brightness);
    if (c->blur && !(c->blur_sigma >= 0 && c->blur_sigma <= MAX_SIGMA))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: blur sigma = %g (0 .. %g)", fn,
                        c->blur_sigma, MAX_SIGMA);
    return ICH_OK;
}

static ich_status run_choices(const ich_augment_choices *c, image *im)
{
    if (c->hflip)
        flip_horizontal(im);
    if (c->vflip)
        flip_vertical(im);
    if (c->rotate && c->degrees != 0) {
        float *scratch = malloc((im->plane + 1) * im->channels * sizeof(float));
        if (!scratch)
            return ich_fail(ICH_ERR_NO_MEMORY, "augment: out of memory for a rotation");
        rotate(im, scratch, c->degrees * (3.14159265358979323846 / 180.0));
        free(scratch);
    }
    ich_status st = ICH_OK;
    if (c->elastic && c->elastic_alpha > 0)
        st = elastic(im, c->elastic_alpha, c->elastic_sigma, c->elastic_seed);
    if (st == ICH_OK && c->brightness_contrast)
        brightness_contrast(im, c->contrast, c->brightness);
    if (st == ICH_OK && c->blur)
        st = gaussian_blur(im, c->blur_sigma);
    return st;
}

/* ---- Entry points ------------------------------------------------------------ */

static ich_status check_image(const char *fn, const void *pixels, int32_t channels, int32_t rows,
                              int32_t cols)
{
    if (!pixels)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL image", fn);
    if (channels <= 0 || rows <= 0 || cols <= 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: %d channels of %d x %d pixels: sizes must be positive", fn, channels,
                        rows, cols);
    /* The largest image whose float copies fit in memory (and in size_t). */
    if ((double)channels * rows * cols > (double)(SIZE_MAX / (4 * sizeof(float))))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: %d x %d x %d image is too large", fn,
                        channels, rows, cols);
    return ICH_OK;
}

ich_status ich_augment_apply_choices_f32(const ich_augment_choices *choices, float *pixels,
                                         int32_t channels, int32_t rows, int32_t columns)
{
    static const char fn[] = "ich_augment_apply_choices_f32";
    ich_augment_choices c;
    ich_status st = check_choices(fn, choices, &c);
    if (st == ICH_OK)
        st = check_image(fn, pixels, channels, rows, columns);
    if (st != ICH_OK || !does_something(&c))
        return st;
    image im = {pixels, channels, rows, columns, (size_t)rows * columns};
    return run_choices(&c, &im);
}

ich_status ich_augment_apply_choices_u8(const ich_augment_choices *choices, uint8_t *pixels,
                                        int32_t rows, int32_t columns, int32_t channels)
{
    static const char fn[] = "ich_augment_apply_choices_u8";
    ich_augment_choices c;
    ich_status st = check_choices(fn, choices, &c);
    if (st == ICH_OK)
        st = check_image(fn, pixels, channels, rows, columns);
    if (st != ICH_OK || !does_something(&c))
        return st;
    size_t plane = (size_t)rows * columns;
    float *data = malloc(plane * channels * sizeof(float));
    if (!data)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", fn);
    for (size_t i = 0; i < plane; i++) /* HWC -> CHW */
        for (int32_t c = 0; c < channels; c++)
            data[c * plane + i] = pixels[i * channels + c];
    image im = {data, channels, rows, columns, plane};
    st = run_choices(&c, &im);
    if (st == ICH_OK)
        for (size_t i = 0; i < plane; i++)
            for (int32_t c = 0; c < channels; c++) {
                float v = data[c * plane + i];
                v = v > 0 ? (v < 255 ? v : 255) : 0; /* also maps NaN to 0 */
                pixels[i * channels + c] = (uint8_t)(v + 0.5f);
            }
    free(data);
    return st;
}

ich_status ich_augment_apply_f32(const ich_augment *augment, uint64_t seed, float *pixels,
                                 int32_t channels, int32_t rows, int32_t columns)
{
    if (!augment)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_augment_apply_f32: NULL augment");
    ich_augment_choices c;
    draw_choices(augment, seed, &c);
    ich_status st = check_image("ich_augment_apply_f32", pixels, channels, rows, columns);
    if (st != ICH_OK || !does_something(&c))
        return st;
    image im = {pixels, channels, rows, columns, (size_t)rows * columns};
    return run_choices(&c, &im);
}

ich_status ich_augment_apply_u8(const ich_augment *augment, uint64_t seed, uint8_t *pixels,
                                int32_t rows, int32_t columns, int32_t channels)
{
    if (!augment)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_augment_apply_u8: NULL augment");
    ich_augment_choices c;
    draw_choices(augment, seed, &c);
    ich_status st = check_image("ich_augment_apply_u8", pixels, channels, rows, columns);
    if (st != ICH_OK)
        return st;
    return ich_augment_apply_choices_u8(&c, pixels, rows, columns, channels);
}
