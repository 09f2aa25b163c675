/* A window recipe as one line of text, so that a checkpoint (metadata
 * "ich.recipe") or a command line carries the whole preprocessing:
 *   windows=75/215,40/80;mode=linear;size=256x256;resize=bilinear;
 *   quantize=0;mean=none;std=none;neighbors=0
 * The parser is strict (it reads text from files and command lines that
 * may be hostile): each key once, nothing unknown, every number checked,
 * and the values go through the public setters, which validate them. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "window/window_internal.h"

static const char *const mode_names[] = {"linear", "minmax"};
static const char *const resize_names[] = {"bilinear", "area", "antialias"};

/* ---- Writing -------------------------------------------------------------- */

typedef struct text {
    char *buf;
    size_t capacity, length; /* length counts what would be written */
} text;

static void put(text *t, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    size_t room = t->length < t->capacity ? t->capacity - t->length : 0;
    int n = vsnprintf(room ? t->buf + t->length : NULL, room, format, ap);
    va_end(ap);
    t->length += n > 0 ? (size_t)n : 0;
}

/* The shortest "%.Ng" that reads back to the same float (9 digits always
 * do), so 0.38 stays "0.38" rather than "0.379999995". */
static void put_float(text *t, const char *prefix, float v)
{
    char number[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(number, sizeof number, "%.*g", digits, (double)v);
        if (strtof(number, NULL) == v)
            break;
    }
    put(t, "%s%s", prefix, number);
}

static void put_floats(text *t, const char *key, const float *v, int count)
{
    put(t, ";%s=", key);
    if (count == 0)
        put(t, "none");
    for (int i = 0; i < count; i++)
        put_float(t, i ? "," : "", v[i]);
}

ich_status ich_window_to_string(const ich_window *w, char *buffer, size_t capacity,
                                size_t *length)
{
    if (!w || !buffer)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_to_string: NULL %s",
                        w ? "buffer" : "window");
    char local[ICH_WINDOW_STRING_MAX];
    text t = {local, sizeof local, 0};
    put(&t, "windows=");
    if (w->count == 0)
        put(&t, "none");
    for (int i = 0; i < w->count; i++) {
        put_float(&t, i ? "," : "", w->center[i]);
        put_float(&t, "/", w->width[i]);
    }
    put(&t, ";mode=%s", mode_names[w->mode]);
    if (w->out_rows)
        put(&t, ";size=%dx%d", w->out_rows, w->out_cols);
    else
        put(&t, ";size=keep");
    put(&t, ";resize=%s;quantize=%d", resize_names[w->method], w->quantize);
    put_floats(&t, "mean", w->mean, w->norm_count);
    put_floats(&t, "std", w->std, w->norm_count);
    put(&t, ";neighbors=%d", w->neighbors);
    if (length)
        *length = t.length;
    if (t.length >= capacity)
        return ich_fail(ICH_ERR_SHAPE, "ich_window_to_string: the recipe needs %zu bytes, the "
                        "buffer holds %zu", t.length + 1, capacity);
    memcpy(buffer, local, t.length + 1);
    return ICH_OK;
}

/* ---- Reading ---------------------------------------------------------------- */

enum { K_WINDOWS, K_MODE, K_SIZE, K_RESIZE, K_QUANTIZE, K_MEAN, K_STD, K_NEIGHBORS, K_COUNT };
static const char *const keys[K_COUNT] = {"windows", "mode",  "size", "resize",
                                          "quantize", "mean", "std",  "neighbors"};

static ich_status bad(const char *key, const char *value, const char *want)
{
    char why[256]; /* `want` may be ich_last_error()'s buffer, which ich_fail() writes */
    snprintf(why, sizeof why, "%s", want);
    return ich_fail(ICH_ERR_FORMAT, "recipe: %s=\"%.80s\": %s", key, value, why);
}

/* A finite float that ends at one of `stops` (or the end); *next after it.
 * strtof, so that a value just above FLT_MAX that rounds to it (as "%.9g"
 * writes FLT_MAX) reads back, and anything larger is infinite, refused. */
static int read_number(const char *s, const char *stops, double *v, const char **next)
{
    char *end;
    if (!*s || strchr(" \t\n\v\f\r+", *s)) /* strtof skips spaces and takes '+': we do not */
        return -1;
    float f = strtof(s, &end);
    if (end == s || !isfinite(f) || (*end && !strchr(stops, *end)))
        return -1;
    *v = f;
    *next = end;
    return 0;
}

static int read_int(const char *s, long lo, long hi, long *v)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    *v = strtol(s, &end, 10);
    return end == s || *end || errno || *v < lo || *v > hi ? -1 : 0;
}

/* The index of `value` in names[], or -1. */
static int find_name(const char *value, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (strcmp(value, names[i]) == 0)
            return i;
    return -1;
}

static ich_status read_windows(ich_window *w, const char *value)
{
    if (strcmp(value, "none") == 0)
        return ICH_OK;
    if (!*value)
        return bad("windows", value, "want CENTER/WIDTH,... or none");
    const char *p = value;
    while (*p) {
        double center, width;
        const char *next;
        if (read_number(p, "/", &center, &next) || *next != '/' ||
            read_number(next + 1, ",", &width, &next))
            return bad("windows", value, "want CENTER/WIDTH,... or none");
        if (ich_window_add(w, (float)center, (float)width) != ICH_OK)
            return bad("windows", value, ich_last_error());
        if (*next == ',' && !next[1])
            return bad("windows", value, "trailing comma");
        p = *next ? next + 1 : next;
    }
    return ICH_OK;
}

int ich_window_parse_floats(const char *value, float *out)
{
    if (strcmp(value, "none") == 0)
        return 0;
    if (!*value)
        return -1;
    int count = 0;
    const char *p = value;
    while (*p) {
        double v;
        const char *next;
        if (count == ICH_WINDOW_MAX_CHANNELS || read_number(p, ",", &v, &next) ||
            (*next == ',' && !next[1]))
            return -1;
        out[count++] = (float)v;
        p = *next ? next + 1 : next;
    }
    return count;
}

static ich_status read_size(ich_window *w, const char *value, ich_resize_method method)
{
    long rows = 0, cols = 0;
    if (strcmp(value, "keep") != 0) {
        const char *x = strchr(value, 'x');
        char first[16];
        size_t n = x ? (size_t)(x - value) : 0;
        if (!x || n == 0 || n >= sizeof first)
            return bad("size", value, "want ROWSxCOLUMNS or keep");
        memcpy(first, value, n);
        first[n] = '\0';
        if (read_int(first, 1, 16384, &rows) || read_int(x + 1, 1, 16384, &cols))
            return bad("size", value, "want ROWSxCOLUMNS, each 1..16384, or keep");
    }
    return ich_window_set_size(w, (int32_t)rows, (int32_t)cols, method) == ICH_OK
               ? ICH_OK
               : bad("size", value, ich_last_error());
}

static ich_status read_normalization(ich_window *w, const char *mean_text, const char *std_text)
{
    float mean[ICH_WINDOW_MAX_CHANNELS], std[ICH_WINDOW_MAX_CHANNELS];
    int nm = ich_window_parse_floats(mean_text, mean), ns = ich_window_parse_floats(std_text, std);
    if (nm < 0)
        return bad("mean", mean_text, "want comma-separated numbers (at most 16) or none");
    if (ns < 0)
        return bad("std", std_text, "want comma-separated numbers (at most 16) or none");
    if (nm != ns)
        return ich_fail(ICH_ERR_FORMAT, "recipe: mean has %d values and std %d", nm, ns);
    if (ich_window_set_normalization(w, mean, std, nm) != ICH_OK)
        return bad("std", std_text, ich_last_error());
    return ICH_OK;
}

/* Split `copy` (modified) at ';' and '=' into values[key]. */
static ich_status split(char *copy, const char **values)
{
    for (char *item = copy, *next; item; item = next) {
        next = strchr(item, ';');
        if (next)
            *next++ = '\0';
        char *eq = strchr(item, '=');
        if (!eq)
            return ich_fail(ICH_ERR_FORMAT, "recipe: \"%.60s\" is not KEY=VALUE", item);
        *eq = '\0';
        int k = find_name(item, keys, K_COUNT);
        if (k < 0)
            return ich_fail(ICH_ERR_FORMAT, "recipe: unknown key \"%.40s\" (keys: windows, mode, "
                            "size, resize, quantize, mean, std, neighbors)", item);
        if (values[k])
            return ich_fail(ICH_ERR_FORMAT, "recipe: key \"%s\" given twice", item);
        values[k] = eq + 1;
    }
    for (int k = 0; k < K_COUNT; k++)
        if (!values[k])
            return ich_fail(ICH_ERR_FORMAT, "recipe: key \"%s\" missing", keys[k]);
    return ICH_OK;
}

static ich_status read_all(ich_window *w, const char **v)
{
    int mode = find_name(v[K_MODE], mode_names, 2);
    int method = find_name(v[K_RESIZE], resize_names, 3);
    long quantize, neighbors;
    if (mode < 0)
        return bad("mode", v[K_MODE], "want linear or minmax");
    if (method < 0)
        return bad("resize", v[K_RESIZE], "want bilinear, area or antialias");
    if (read_int(v[K_QUANTIZE], 0, 1, &quantize))
        return bad("quantize", v[K_QUANTIZE], "want 0 or 1");
    if (read_int(v[K_NEIGHBORS], 0, ICH_WINDOW_MAX_NEIGHBORS, &neighbors))
        return bad("neighbors", v[K_NEIGHBORS], "want 0..16");
    ich_status st = read_windows(w, v[K_WINDOWS]);
    if (st == ICH_OK)
        st = read_size(w, v[K_SIZE], (ich_resize_method)method);
    if (st == ICH_OK)
        st = read_normalization(w, v[K_MEAN], v[K_STD]);
    if (st == ICH_OK) {
        w->mode = (ich_window_mode)mode;
        w->quantize = (int)quantize;
        w->neighbors = (int32_t)neighbors;
    }
    return st;
}

ich_status ich_window_from_string(const char *str, ich_window **out)
{
    if (out)
        *out = NULL;
    if (!str || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_from_string: NULL argument");
    size_t n = strnlen(str, ICH_WINDOW_STRING_MAX);
    if (n >= ICH_WINDOW_STRING_MAX)
        return ich_fail(ICH_ERR_FORMAT, "recipe: longer than %d characters",
                        ICH_WINDOW_STRING_MAX - 1);
    char copy[ICH_WINDOW_STRING_MAX];
    memcpy(copy, str, n + 1);
    const char *values[K_COUNT] = {0};
    ich_window *w;
    ich_status st = split(copy, values);
    if (st == ICH_OK)
        st = ich_window_create(&w);
    if (st != ICH_OK)
        return st;
    st = read_all(w, values);
    if (st != ICH_OK) {
        ich_window_free(w);
        return st;
    }
    *out = w;
    return ICH_OK;
}
