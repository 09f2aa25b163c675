/* Windowing recipes: HU -> [0, 1] per window -> resize -> uint8 or float. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/blocks.h"
#include "core/error.h"
#include "window/window_internal.h"
#include "core/vectorize.h"
#include "ich/dicom.h"
#include "ich/image.h"
#include "window/resize.h"


static const struct preset {
    const char *name;
    float center, width;
} presets[] = {
    {"brain", 40, 80},     {"subdural", 80, 200}, {"blood", 75, 215},       {"bone", 600, 2800},
    {"stroke", 40, 40},    {"soft_tissue", 40, 350}, {"soft", 40, 350},
};

ich_status ich_window_preset(const char *name, float *center, float *width)
{
    if (!name)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_preset: NULL name");
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcasecmp(name, presets[i].name) == 0) {
            if (center)
                *center = presets[i].center;
            if (width)
                *width = presets[i].width;
            return ICH_OK;
        }
    }
    return ich_fail(ICH_ERR_NOT_FOUND,
                    "unknown window \"%.64s\": use brain, subdural, blood, bone, stroke, "
                    "soft_tissue (soft) or CENTER/WIDTH",
                    name);
}

ich_status ich_window_create(ich_window **out)
{
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_create: NULL out");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_window_create: out of memory");
    return ICH_OK;
}

void ich_window_free(ich_window *window) { free(window); }

ich_status ich_window_add(ich_window *w, float center, float width)
{
    if (!w)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_add: NULL window");
    if (!isfinite(center) || !isfinite(width) || width <= 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "window %g/%g: center must be finite and width positive", center, width);
    if (w->count >= ICH_WINDOW_MAX_CHANNELS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "at most %d windows", ICH_WINDOW_MAX_CHANNELS);
    w->center[w->count] = center;
    w->width[w->count] = width;
    w->count++;
    return ICH_OK;
}

/* One list item: a preset name or CENTER/WIDTH. */
static ich_status parse_item(const char *item, float *center, float *width)
{
    const char *slash = strchr(item, '/');
    if (!slash)
        return ich_window_preset(item, center, width);
    char *end;
    *center = strtof(item, &end);
    if (end == item || end != slash)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "window \"%s\": bad center", item);
    *width = strtof(slash + 1, &end);
    if (end == slash + 1 || *end)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "window \"%s\": bad width", item);
    if (!isfinite(*center) || !isfinite(*width) || *width <= 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "window \"%s\": center must be finite and width positive", item);
    return ICH_OK;
}

ich_status ich_window_add_list(ich_window *w, const char *list)
{
    if (!w || !list)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_add_list: NULL argument");
    /* Parse everything into a copy first, so a bad item changes nothing. */
    ich_window next = *w;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "window list \"%.100s\": %s item", list,
                            len ? "overlong" : "empty");
        memcpy(item, p, len);
        item[len] = '\0';
        float center, width;
        ich_status st = parse_item(item, &center, &width);
        if (st == ICH_OK)
            st = ich_window_add(&next, center, width);
        if (st != ICH_OK)
            return st;
        if (!comma)
            break;
        p = comma + 1;
    }
    *w = next;
    return ICH_OK;
}

int ich_window_count(const ich_window *w) { return w ? w->count : 0; }

ich_status ich_window_get(const ich_window *w, int index, float *center, float *width)
{
    if (!w || index < 0 || index >= w->count)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_get: no window %d", index);
    if (center)
        *center = w->center[index];
    if (width)
        *width = w->width[index];
    return ICH_OK;
}

ich_status ich_window_set_mode(ich_window *w, ich_window_mode mode)
{
    if (!w || (mode != ICH_WINDOW_LINEAR && mode != ICH_WINDOW_MINMAX))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_set_mode: bad %s",
                        w ? "mode" : "window");
    w->mode = mode;
    return ICH_OK;
}

ich_status ich_window_set_size(ich_window *w, int32_t rows, int32_t columns,
                               ich_resize_method method)
{
    if (!w)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_set_size: NULL window");
    if (rows < 0 || columns < 0 || (rows == 0) != (columns == 0) || rows > 16384 ||
        columns > 16384)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "output size %d x %d: both 0 (keep) or both in 1..16384", rows, columns);
    if (method != ICH_RESIZE_BILINEAR && method != ICH_RESIZE_AREA &&
        method != ICH_RESIZE_ANTIALIAS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "unknown resize method %d (bilinear 0, area 1, antialias 2)", (int)method);
    w->out_rows = rows;
    w->out_cols = columns;
    w->method = method;
    return ICH_OK;
}

ich_status ich_window_set_quantize(ich_window *w, int quantize)
{
    if (!w || (quantize != 0 && quantize != 1))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_set_quantize: %s",
                        w ? "the value must be 0 or 1" : "NULL window");
    w->quantize = quantize;
    return ICH_OK;
}

ich_status ich_window_set_neighbors(ich_window *w, int32_t neighbors)
{
    if (!w || neighbors < 0 || neighbors > ICH_WINDOW_MAX_NEIGHBORS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_window_set_neighbors: %d neighbouring slices (0..%d)", neighbors,
                        ICH_WINDOW_MAX_NEIGHBORS);
    w->neighbors = neighbors;
    return ICH_OK;
}

ich_window_mode ich_window_get_mode(const ich_window *w) { return w ? w->mode : ICH_WINDOW_LINEAR; }

ich_status ich_window_get_size(const ich_window *w, int32_t *rows, int32_t *columns,
                               ich_resize_method *method)
{
    if (!w)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_get_size: NULL window");
    if (rows)
        *rows = w->out_rows;
    if (columns)
        *columns = w->out_cols;
    if (method)
        *method = w->method;
    return ICH_OK;
}

int ich_window_get_quantize(const ich_window *w) { return w ? w->quantize : 0; }

int32_t ich_window_get_neighbors(const ich_window *w) { return w ? w->neighbors : 0; }

int ich_window_get_normalization(const ich_window *w, float *mean, float *std)
{
    if (!w)
        return 0;
    for (int c = 0; c < w->norm_count; c++) {
        if (mean)
            mean[c] = w->mean[c];
        if (std)
            std[c] = w->std[c];
    }
    return w->norm_count;
}

ich_status ich_window_set_normalization(ich_window *w, const float *mean, const float *std,
                                        int count)
{
    if (!w || count < 0 || count > ICH_WINDOW_MAX_CHANNELS || (count > 0 && (!mean || !std)))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_set_normalization: bad arguments");
    for (int c = 0; c < count; c++)
        if (!isfinite(mean[c]) || !isfinite(std[c]) || std[c] <= 0)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "normalisation %d: mean must be finite and std positive", c);
    for (int c = 0; c < count; c++) {
        w->mean[c] = mean[c];
        w->std[c] = std[c];
    }
    w->norm_count = count;
    return ICH_OK;
}

ich_status ich_window_output_shape(const ich_window *w, int32_t in_rows, int32_t in_columns,
                                   int32_t *channels, int32_t *rows, int32_t *columns)
{
    if (!w || in_rows <= 0 || in_columns <= 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_output_shape: bad %s",
                        w ? "input size" : "window");
    if (w->count == 0 && w->mode == ICH_WINDOW_LINEAR)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "the window recipe has no windows (add some, or use the min-max mode)");
    if (channels)
        *channels = w->count ? w->count : 1;
    if (rows)
        *rows = w->out_rows ? w->out_rows : in_rows;
    if (columns)
        *columns = w->out_cols ? w->out_cols : in_columns;
    return ICH_OK;
}

/* ---- Mapping to [0, 1] ------------------------------------------------- */

ICH_VECTORIZE
static void map_linear(const float *hu, size_t n, float lo, float width, float *out)
{
    for (size_t i = 0; i < n; i++) {
        float v = (hu[i] - lo) / width;
        v = v > 0 ? v : 0; /* also maps NaN to 0 */
        out[i] = v < 1 ? v : 1;
    }
}

/* The tutorial's mode: x clipped to [lo, hi] (when windowed), then
 * (x - min) / range with the slice's own minimum and range. */
ICH_VECTORIZE
static void map_minmax(const float *hu, size_t n, int windowed, float lo, float hi, float mn,
                       float range, float *out)
{
    for (size_t i = 0; i < n; i++) {
        float x = hu[i];
        if (windowed)
            x = x < lo ? lo : (x > hi ? hi : x);
        out[i] = (x - mn) / range;
    }
}

/* One channel of one slice being produced row by row. */
typedef struct channel_job {
    const float *hu;
    int32_t cols;
    int minmax, windowed;
    float lo, width, hi, mn, range;
    /* where finished rows go: u8 interleaved or a float plane */
    uint8_t *u8;
    float *f32;
    int32_t channel, channels, out_cols;
    float mean, std;
} channel_job;

static void fill_row(void *ctx, int32_t row, float *dst)
{
    const channel_job *j = ctx;
    const float *src = j->hu + (size_t)row * j->cols;
    if (j->minmax)
        map_minmax(src, (size_t)j->cols, j->windowed, j->lo, j->hi, j->mn, j->range, dst);
    else
        map_linear(src, (size_t)j->cols, j->lo, j->width, dst);
}

/* trunc(v * 255) as numpy's astype(uint8) for v in [0, 1] of n values;
 * values outside (and NaN) saturate instead of being undefined behaviour.
 * Without branches, in two loops the compiler vectorises (in one, GCC
 * keeps the branches): on CT noise a branch per pixel mispredicted often
 * enough to be the biggest single cost of ich-preprocess (issue 16). */
ICH_VECTORIZE
static void to_u8_row(const float *v, int32_t n, uint8_t *out)
{
    float c[256];
    for (int32_t at = 0; at < n; at += 256) {
        const int32_t m = n - at < 256 ? n - at : 256;
        for (int32_t i = 0; i < m; i++) {
            float x = v[at + i] > 0.0f ? v[at + i] : 0.0f; /* NaN too */
            c[i] = x < 1.0f ? x : 1.0f;
        }
        for (int32_t i = 0; i < m; i++)
            out[at + i] = (uint8_t)(int32_t)(c[i] * 255.0f);
    }
}

static void take_row(void *ctx, int32_t row, const float *v)
{
    const channel_job *j = ctx;
    const int32_t n = j->out_cols;
    if (j->u8 && j->channels == 1) {
        to_u8_row(v, n, j->u8 + (size_t)row * n);
    } else if (j->u8) {
        uint8_t *dst = j->u8 + (size_t)row * n * j->channels + j->channel;
        uint8_t q[256];
        for (int32_t at = 0; at < n; at += 256) { /* vectorised, then interleaved */
            const int32_t m = n - at < 256 ? n - at : 256;
            to_u8_row(v + at, m, q);
            for (int32_t i = 0; i < m; i++)
                dst[(size_t)(at + i) * j->channels] = q[i];
        }
    } else {
        float *dst = j->f32 + (size_t)row * n;
        for (int32_t i = 0; i < n; i++)
            dst[i] = (v[i] - j->mean) / j->std;
    }
}

/* The tutorial's min-max needs the clipped slice's extremes first. */
static void minmax_range(channel_job *j, size_t n)
{
    float mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        float x = j->hu[i];
        if (j->windowed)
            x = x < j->lo ? j->lo : (x > j->hi ? j->hi : x);
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
    }
    j->mn = mn;
    j->range = mx - mn + 1e-5f;
}

/* A row of 8-bit values (the uint8 step's output) stored: as is, or / 255
 * then normalised in float32, as torchvision's ToTensor() and Normalize(). */
static void take_row_u8(const channel_job *j, int32_t row, const uint8_t *q)
{
    const int32_t n = j->out_cols;
    if (j->u8 && j->channels == 1) {
        memcpy(j->u8 + (size_t)row * n, q, (size_t)n);
        return;
    }
    if (j->u8) {
        uint8_t *dst = j->u8 + (size_t)row * n * j->channels + j->channel;
        for (int32_t i = 0; i < n; i++)
            dst[(size_t)i * j->channels] = q[i];
        return;
    }
    float *dst = j->f32 + (size_t)row * n;
    for (int32_t i = 0; i < n; i++)
        dst[i] = ((float)q[i] / 255.0f - j->mean) / j->std;
}

/* One channel with the uint8 step: map, truncate to 8 bits, resize the
 * 8-bit image as Pillow does, store. */
static ich_status run_quantized(const channel_job *j, int32_t rows, int32_t cols,
                                int32_t out_rows, int32_t out_cols, ich_resize_method method)
{
    const int resized = out_rows != rows || out_cols != cols;
    uint8_t *q = malloc((size_t)rows * cols);
    uint8_t *out = resized ? malloc((size_t)out_rows * out_cols) : q;
    float *row = malloc((size_t)cols * sizeof *row);
    ich_status st = q && out && row ? ICH_OK : ich_fail(ICH_ERR_NO_MEMORY, "windowing: out of memory");
    for (int32_t r = 0; st == ICH_OK && r < rows; r++) {
        fill_row((void *)j, r, row);
        to_u8_row(row, cols, q + (size_t)r * cols);
    }
    if (st == ICH_OK && resized)
        st = ich_resize_u8(q, rows, cols, out, out_rows, out_cols, method);
    for (int32_t r = 0; st == ICH_OK && r < out_rows; r++)
        take_row_u8(j, r, out + (size_t)r * out_cols);
    if (resized)
        free(out);
    free(q);
    free(row);
    return st;
}

static ich_status run_channels_to(const ich_window *w, const float *hu, int32_t rows,
                                  int32_t cols, const int32_t shape[3], uint8_t *u8,
                                  int as_planes, float *f32);

/* RGB from three planes of n bytes each. */
ICH_VECTORIZE
static void interleave3(const uint8_t *r, const uint8_t *g, const uint8_t *b, size_t n,
                        uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[3 * i] = r[i];
        out[3 * i + 1] = g[i];
        out[3 * i + 2] = b[i];
    }
}

/* Map, resize and store every channel; u8 (interleaved) or f32 (planes,
 * normalised) output, whichever is not NULL. Three u8 channels are made
 * as planes, then interleaved in one pass: storing every third byte row
 * by row cost twice as much (issue 16). */
static ich_status run_channels(const ich_window *w, const float *hu, int32_t rows, int32_t cols,
                               const int32_t shape[3], uint8_t *u8, float *f32)
{
    const int32_t channels = shape[0], out_rows = shape[1], out_cols = shape[2];
    const size_t plane = (size_t)out_rows * out_cols;
    uint8_t *planes = NULL;
    if (u8 && channels == 3 && !(planes = ich_block_alloc(3 * plane)))
        return ich_fail(ICH_ERR_NO_MEMORY, "windowing: out of memory");
    ich_status st = run_channels_to(w, hu, rows, cols, shape, planes ? planes : u8, planes != NULL,
                                    f32);
    if (planes && st == ICH_OK)
        interleave3(planes, planes + plane, planes + 2 * plane, plane, u8);
    ich_block_free(planes);
    return st;
}

/* run_channels(), u8 output interleaved or (as_planes) one plane per
 * channel. */
static ich_status run_channels_to(const ich_window *w, const float *hu, int32_t rows,
                                  int32_t cols, const int32_t shape[3], uint8_t *u8,
                                  int as_planes, float *f32)
{
    const int32_t channels = shape[0], out_rows = shape[1], out_cols = shape[2];
    float *row = NULL;
    for (int32_t c = 0; c < channels; c++) {
        channel_job j = {hu, cols, w->mode == ICH_WINDOW_MINMAX, w->count > 0, 0, 1, 0, 0, 1,
                         u8, NULL, c, channels, out_cols, 0, 1};
        if (u8 && as_planes) {
            j.u8 = u8 + (size_t)c * out_rows * out_cols;
            j.channel = 0;
            j.channels = 1;
        }
        if (w->count) {
            j.width = w->width[c];
            j.lo = w->center[c] - j.width / 2;
            j.hi = j.lo + j.width;
        }
        if (f32) {
            j.f32 = f32 + (size_t)c * out_rows * out_cols;
            if (w->norm_count) {
                j.mean = w->mean[w->norm_count == 1 ? 0 : c];
                j.std = w->std[w->norm_count == 1 ? 0 : c];
            }
        }
        if (j.minmax)
            minmax_range(&j, (size_t)rows * cols);
        if (w->quantize) {
            ich_status st = run_quantized(&j, rows, cols, out_rows, out_cols, w->method);
            if (st != ICH_OK) {
                free(row);
                return st;
            }
            continue;
        }
        if (out_rows != rows || out_cols != cols) {
            ich_status st = ich_resize_rows(rows, cols, out_rows, out_cols, w->method, fill_row,
                                            take_row, &j);
            if (st != ICH_OK) {
                free(row);
                return st;
            }
            continue;
        }
        if (!row && !(row = malloc((size_t)cols * sizeof *row)))
            return ich_fail(ICH_ERR_NO_MEMORY, "windowing: out of memory");
        for (int32_t r = 0; r < rows; r++) {
            fill_row(&j, r, row);
            take_row(&j, r, row);
        }
    }
    free(row);
    return ICH_OK;
}

static ich_status check_apply(const ich_window *w, const float *hu, int32_t rows, int32_t cols,
                              const void *out, size_t out_count, int32_t shape[3])
{
    if (!hu || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "window apply: NULL %s", hu ? "out" : "hu");
    ich_status st = ich_window_output_shape(w, rows, cols, &shape[0], &shape[1], &shape[2]);
    if (st != ICH_OK)
        return st;
    size_t need = (size_t)shape[0] * shape[1] * shape[2];
    if (out_count != need)
        return ich_fail(ICH_ERR_SHAPE, "window apply: output holds %zu values, %d x %d x %d = %zu needed",
                        out_count, shape[0], shape[1], shape[2], need);
    return ICH_OK;
}

ich_status ich_window_apply_f32(const ich_window *w, const float *hu, int32_t rows,
                                int32_t columns, float *out, size_t out_count)
{
    int32_t shape[3];
    ich_status st = check_apply(w, hu, rows, columns, out, out_count, shape);
    if (st != ICH_OK)
        return st;
    if (w->norm_count > 1 && w->norm_count != shape[0])
        return ich_fail(ICH_ERR_SHAPE, "normalisation has %d values for %d channels",
                        w->norm_count, shape[0]);
    return run_channels(w, hu, rows, columns, shape, NULL, out);
}

ich_status ich_window_apply_u8(const ich_window *w, const float *hu, int32_t rows,
                               int32_t columns, uint8_t *out, size_t out_count)
{
    int32_t shape[3];
    ich_status st = check_apply(w, hu, rows, columns, out, out_count, shape);
    return st != ICH_OK ? st : run_channels(w, hu, rows, columns, shape, out, NULL);
}

ich_status ich_window_dicom_to_png(const ich_window *w, const char *dicom_path,
                                   const char *png_path)
{
    if (!w || !dicom_path || !png_path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_dicom_to_png: NULL argument");
    ich_dicom *dicom;
    ich_status st = ich_dicom_read(dicom_path, &dicom);
    if (st != ICH_OK)
        return st;
    int32_t rows, cols, shape[3];
    ich_dicom_size(dicom, &rows, &cols);
    st = ich_window_output_shape(w, rows, cols, &shape[0], &shape[1], &shape[2]);
    if (st == ICH_OK && shape[0] != 1 && shape[0] != 3)
        st = ich_fail(ICH_ERR_UNSUPPORTED, "%s: %d windows cannot be a PNG (use 1 or 3)", png_path,
                      shape[0]);
    uint8_t *image = NULL;
    if (st == ICH_OK) {
        size_t count = (size_t)shape[0] * shape[1] * shape[2];
        image = malloc(count);
        st = image ? ich_window_apply_dicom_u8(w, dicom, image, count) /* MONOCHROME1 too */
                   : ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", dicom_path);
    }
    if (st == ICH_OK)
        st = ich_png_write(png_path, image, shape[2], shape[1], shape[0]);
    free(image);
    ich_dicom_free(dicom);
    return st;
}

ich_status ich_window_read_settings(const ich_window *window, ich_window_settings *out)
{
    if (!window || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_read_settings: NULL argument");
    *out = *window;
    return ICH_OK;
}

ich_status ich_window_copy(const ich_window *window, ich_window **out)
{
    if (!out || !window)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_copy: NULL argument");
    *out = malloc(sizeof **out);
    if (!*out)
        return ich_fail(ICH_ERR_NO_MEMORY, "window recipe: out of memory");
    **out = *window;
    return ICH_OK;
}
