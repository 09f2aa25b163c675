/* Reading a recipe's settings and copying a recipe (see window_internal.h).
 *
 * struct ich_window is private to window.c; its layout is repeated here
 * (window_layout) and every read is cross-checked against the public
 * getters, so a change in window.c gives ICH_ERR_INTERNAL rather than
 * wrong values. */
#include <string.h>

#include "core/error.h"
#include "window/window_internal.h"

/* Must match struct ich_window in window.c. */
typedef struct window_layout {
    int count;
    float center[ICH_WINDOW_MAX_CHANNELS];
    float width[ICH_WINDOW_MAX_CHANNELS];
    ich_window_mode mode;
    int32_t out_rows, out_cols;
    ich_resize_method method;
    int norm_count;
    float mean[ICH_WINDOW_MAX_CHANNELS];
    float std[ICH_WINDOW_MAX_CHANNELS];
} window_layout;

/* The settings agree with what the public getters say. */
static int agrees_with_getters(const ich_window *window, const ich_window_settings *s)
{
    if (ich_window_count(window) != s->count)
        return 0;
    for (int i = 0; i < s->count; i++) {
        float center, width;
        if (ich_window_get(window, i, &center, &width) != ICH_OK || center != s->center[i] ||
            width != s->width[i])
            return 0;
    }
    if (s->count == 0 && s->mode == ICH_WINDOW_LINEAR)
        return 1; /* output_shape refuses this recipe: nothing more to compare */
    /* 16385 is above the largest output size, so it comes back only when the
     * recipe keeps the input size. */
    int32_t rows, cols;
    if (ich_window_output_shape(window, 16385, 16385, NULL, &rows, &cols) != ICH_OK)
        return 0;
    int32_t want_rows = s->out_rows ? s->out_rows : 16385;
    int32_t want_cols = s->out_cols ? s->out_cols : 16385;
    return rows == want_rows && cols == want_cols &&
           (s->mode == ICH_WINDOW_LINEAR || s->mode == ICH_WINDOW_MINMAX) &&
           (s->method == ICH_RESIZE_BILINEAR || s->method == ICH_RESIZE_AREA) &&
           s->norm_count >= 0 && s->norm_count <= ICH_WINDOW_MAX_CHANNELS;
}

ich_status ich_window_read_settings(const ich_window *window, ich_window_settings *out)
{
    if (!window || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_read_settings: NULL argument");
    const window_layout *w = (const window_layout *)(const void *)window;
    memset(out, 0, sizeof *out);
    out->count = w->count;
    memcpy(out->center, w->center, sizeof out->center);
    memcpy(out->width, w->width, sizeof out->width);
    out->mode = w->mode;
    out->out_rows = w->out_rows;
    out->out_cols = w->out_cols;
    out->method = w->method;
    out->norm_count = w->norm_count;
    memcpy(out->mean, w->mean, sizeof out->mean);
    memcpy(out->std, w->std, sizeof out->std);
    if (!agrees_with_getters(window, out))
        return ich_fail(ICH_ERR_INTERNAL,
                        "window_access.c no longer matches struct ich_window in window.c");
    return ICH_OK;
}

ich_status ich_window_copy(const ich_window *window, ich_window **out)
{
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_window_copy: NULL out");
    *out = NULL;
    ich_window_settings s;
    ich_status st = ich_window_read_settings(window, &s);
    ich_window *copy = NULL;
    if (st == ICH_OK)
        st = ich_window_create(&copy);
    for (int i = 0; st == ICH_OK && i < s.count; i++)
        st = ich_window_add(copy, s.center[i], s.width[i]);
    if (st == ICH_OK)
        st = ich_window_set_mode(copy, s.mode);
    if (st == ICH_OK)
        st = ich_window_set_size(copy, s.out_rows, s.out_cols, s.method);
    if (st == ICH_OK)
        st = ich_window_set_normalization(copy, s.mean, s.std, s.norm_count);
    if (st != ICH_OK) {
        ich_window_free(copy);
        return st;
    }
    *out = copy;
    return ICH_OK;
}
