/* SVG line charts and confusion-matrix heatmaps (see svg.h).
 *
 * Everything is laid out in pixels from estimated text widths (sans-serif
 * averages about 0.6 em per character), so no font metrics are needed and
 * the same input always gives the same bytes. Lines are clipped to the
 * plot area here, in data space, rather than with an SVG clipPath: a
 * clipPath needs an id, and ids would clash when several charts are
 * inlined in one HTML page. */
#include "report/svg.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/utf8.h"

#define FONT "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
#define TITLE_PX 16
#define LABEL_PX 13
#define TICK_PX 12
#define LEGEND_PX 12
#define LEGEND_ROW 20
#define LEGEND_MAX_CHARS 32
#define GRID_COLOR "#e3e3e3"
#define AXIS_COLOR "#555555"
#define TEXT_COLOR "#222222"

/* Okabe & Ito (2008), "Color Universal Design": distinguishable with every
 * common colour-vision deficiency. Yellow last: it is faint on white. */
static const char *const PALETTE[8] = {"#0072B2", "#E69F00", "#009E73", "#D55E00",
                                       "#CC79A7", "#56B4E9", "#000000", "#F0E442"};

const char *ich_svg_color(int index)
{
    if (index < 0)
        index = -index;
    return PALETTE[index % 8];
}

/* ---- text ------------------------------------------------------------------ */

/* Bytes in the valid UTF-8 sequence at `s` (1 for ASCII), 0 when the bytes
 * there are not valid UTF-8 (core/utf8.h's rule) or encode U+FFFE/U+FFFF,
 * which XML forbids. */
static int utf8_length(const unsigned char *s)
{
    size_t n = ich_utf8_sequence((const char *)s, strnlen((const char *)s, 4));
    if (n == 3 && s[0] == 0xEF && s[1] == 0xBF && (s[2] == 0xBE || s[2] == 0xBF))
        return 0;
    return (int)n;
}

int ich_svg_utf8_length(const char *s)
{
    return utf8_length((const unsigned char *)s);
}

void ich_svg_escape(ich_buf *buf, const char *text)
{
    if (!text)
        return;
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep) {
            ich_buf_append(buf, rep, strlen(rep));
            s++;
            continue;
        }
        if (*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r') {
            s++; /* not allowed anywhere in XML 1.0 */
            continue;
        }
        int n = utf8_length(s);
        if (n == 0) {
            ich_buf_append(buf, "\xEF\xBF\xBD", 3); /* U+FFFD replacement character */
            s++;
            continue;
        }
        ich_buf_append(buf, (const char *)s, (size_t)n);
        s += n;
    }
}

/* Characters (not bytes) in `text`, each invalid byte counting as one. */
static int text_chars(const char *text)
{
    int count = 0;
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        int n = utf8_length(s);
        s += n ? n : 1;
        count++;
    }
    return count;
}

/* Estimated rendered width of `text` at `px` pixels. */
static double text_width(const char *text, int px)
{
    return 0.6 * px * text_chars(text);
}

/* `text` shortened to `max_chars` characters with an ellipsis, in `out`. */
static const char *shorten(const char *text, int max_chars, char *out, size_t size)
{
    if (text_chars(text) <= max_chars || size < 8)
        return text;
    const unsigned char *s = (const unsigned char *)text;
    size_t used = 0;
    for (int chars = 0; chars < max_chars - 1 && *s; chars++) {
        int n = utf8_length(s);
        n = n ? n : 1;
        if (used + (size_t)n + 4 > size)
            break;
        memcpy(out + used, s, (size_t)n);
        used += (size_t)n;
        s += n;
    }
    memcpy(out + used, "\xE2\x80\xA6", 4); /* U+2026 and the NUL */
    return out;
}

/* Append `text` so that it can sit inside an XML comment: no "--" may
 * appear there, so every '-' becomes '_'. */
static void append_comment_text(ich_buf *buf, const char *text)
{
    ich_buf tmp = {0};
    ich_svg_escape(&tmp, text ? text : "");
    for (size_t i = 0; i < tmp.length; i++)
        if (tmp.data[i] == '-')
            tmp.data[i] = '_';
    if (tmp.data)
        ich_buf_append(buf, tmp.data, tmp.length);
    buf->failed |= tmp.failed;
    ich_buf_free(&tmp);
}

/* A pixel coordinate, to 0.01 px, at most 6 significant digits. */
static void append_px(ich_buf *buf, double v)
{
    double r = round(v * 100.0) / 100.0;
    if (r == 0.0)
        r = 0.0; /* no "-0" */
    ich_buf_printf(buf, "%.6g", r);
}

/* <text x y ...>escaped</text> with the given size, anchor and extra
 * attributes (may be ""). */
static void append_text(ich_buf *buf, double x, double y, int px, const char *anchor,
                        const char *extra, const char *text)
{
    ich_buf_printf(buf, "<text x=\"");
    append_px(buf, x);
    ich_buf_printf(buf, "\" y=\"");
    append_px(buf, y);
    ich_buf_printf(buf, "\" font-size=\"%d\" text-anchor=\"%s\"%s%s>", px, anchor,
                   *extra ? " " : "", extra);
    ich_svg_escape(buf, text);
    ich_buf_printf(buf, "</text>\n");
}

static void append_line(ich_buf *buf, double x0, double y0, double x1, double y1,
                        const char *attributes)
{
    ich_buf_printf(buf, "<line x1=\"");
    append_px(buf, x0);
    ich_buf_printf(buf, "\" y1=\"");
    append_px(buf, y0);
    ich_buf_printf(buf, "\" x2=\"");
    append_px(buf, x1);
    ich_buf_printf(buf, "\" y2=\"");
    append_px(buf, y1);
    ich_buf_printf(buf, "\" %s/>\n", attributes);
}

static void begin_document(ich_buf *buf, int width, int height, const char *title)
{
    ich_buf_printf(buf, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    ich_buf_printf(buf,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                   "viewBox=\"0 0 %d %d\" font-family=\"%s\" fill=\"" TEXT_COLOR "\">\n",
                   width, height, width, height, FONT);
    if (title && *title) {
        ich_buf_printf(buf, "<title>");
        ich_svg_escape(buf, title);
        ich_buf_printf(buf, "</title>\n");
    }
    ich_buf_printf(buf, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width,
                   height);
}

static ich_status end_document(ich_buf *buf)
{
    ich_buf_printf(buf, "</svg>\n");
    if (buf->failed)
        return ich_fail(ICH_ERR_NO_MEMORY, "SVG: out of memory");
    return ICH_OK;
}

/* ---- ticks ----------------------------------------------------------------- */

/* m * 10^e as the double nearest that decimal number (exact powers of ten
 * up to 1e22, a division for negative exponents), so 3 * 0.1 comes out as
 * 0.3 and not 0.30000000000000004. */
static double decimal(double m, int e)
{
    if (e >= 0)
        return m * pow(10.0, e);
    return m / pow(10.0, -e);
}

int ich_svg_nice_ticks(double lo, double hi, int target, int inside, double *ticks,
                       double *step_out)
{
    if (!ticks || !isfinite(lo) || !isfinite(hi) || lo > hi)
        return 0;
    if (lo == hi) {
        double pad = lo == 0.0 ? 1.0 : fabs(lo) * 0.1;
        lo -= pad;
        hi += pad;
    }
    double span = hi - lo;
    if (!isfinite(span) || span <= 0.0)
        return 0;
    if (target < 3)
        target = 3;
    if (target > 10)
        target = 10;
    /* The nice number nearest span / target (Heckbert, "Nice numbers for
     * graph labels", Graphics Gems 1990): fraction f of the raw step in
     * [1, 10) becomes 1, 2, 5 or 10. */
    double raw = span / target;
    int e = (int)floor(log10(raw));
    double f = raw / decimal(1, e);
    int m = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    if (m == 10) {
        m = 1;
        e++;
    }
    double step = decimal(m, e);
    /* Tick k is k * step: find the first and last k, with a little slack
     * so that a bound that is itself a multiple (0.3 for step 0.1) counts. */
    double k_first, k_last;
    if (inside) {
        k_first = ceil(lo / step - 1e-9);
        k_last = floor(hi / step + 1e-9);
    } else {
        k_first = floor(lo / step + 1e-9);
        k_last = ceil(hi / step - 1e-9);
        if (decimal(k_first * m, e) > lo)
            k_first -= 1;
        if (decimal(k_last * m, e) < hi)
            k_last += 1;
    }
    int count = (int)(k_last - k_first) + 1;
    /* Ticks inside a range may leave too few: take the next smaller nice
     * step (5 -> 2 -> 1 -> 0.5 ...) until there are target - 1 or more. */
    while (inside && count < target - 1) {
        if (m == 5)
            m = 2;
        else if (m == 2)
            m = 1;
        else
            m = 5, e--;
        step = decimal(m, e);
        k_first = ceil(lo / step - 1e-9);
        k_last = floor(hi / step + 1e-9);
        count = (int)(k_last - k_first) + 1;
    }
    if (count < 1 || count > ICH_SVG_MAX_TICKS)
        return 0;
    for (int i = 0; i < count; i++) {
        double v = decimal((k_first + i) * m, e);
        ticks[i] = v == 0.0 ? 0.0 : v;
    }
    if (step_out)
        *step_out = step;
    return count;
}

void ich_svg_format_tick(double value, double step, char *text, size_t size)
{
    if (!text || size == 0)
        return;
    if (!isfinite(value) || !isfinite(step) || step <= 0.0) {
        snprintf(text, size, "%.6g", isfinite(value) ? value : 0.0);
        return;
    }
    if (fabs(value) < step * 1e-6)
        value = 0.0; /* no "-0.0" */
    int e = (int)floor(log10(step) + 1e-9);
    if (e >= 0 && fabs(value) < 1e9)
        snprintf(text, size, "%.0f", value);
    else if (e < 0 && e >= -6 && fabs(value) < 1e9)
        snprintf(text, size, "%.*f", -e, value);
    else {
        int digits = value == 0.0 ? 1 : (int)floor(log10(fabs(value))) - e + 1;
        digits = digits < 1 ? 1 : digits > 6 ? 6 : digits;
        snprintf(text, size, "%.*g", digits, value);
    }
}

/* ---- line chart ------------------------------------------------------------ */

typedef struct axis {
    double lo, hi; /* data range shown */
    double ticks[ICH_SVG_MAX_TICKS];
    double step;
    int count;
    char labels[ICH_SVG_MAX_TICKS][32];
} axis;

typedef struct layout {
    int width, height;
    double x0, x1, y0, y1; /* plot area in pixels; y0 is the top */
    ich_svg_legend legend; /* where it went (never AUTO) */
    double legend_x, legend_y, legend_w, legend_h;
} layout;

static ich_status make_axis(axis *a, double fixed_lo, double fixed_hi, double data_lo,
                            double data_hi, const char *name)
{
    int fixed = fixed_hi > fixed_lo;
    if (fixed && (!isfinite(fixed_lo) || !isfinite(fixed_hi)))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "SVG chart: the %s range is not finite", name);
    if (fixed)
        a->count = ich_svg_nice_ticks(fixed_lo, fixed_hi, 5, 1, a->ticks, &a->step);
    else
        a->count = ich_svg_nice_ticks(data_lo, data_hi, 5, 0, a->ticks, &a->step);
    if (a->count == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "SVG chart: the %s range [%g, %g] is too wide to plot", name,
                        fixed ? fixed_lo : data_lo, fixed ? fixed_hi : data_hi);
    a->lo = fixed ? fixed_lo : a->ticks[0];
    a->hi = fixed ? fixed_hi : a->ticks[a->count - 1];
    for (int i = 0; i < a->count; i++)
        ich_svg_format_tick(a->ticks[i], a->step, a->labels[i], sizeof a->labels[i]);
    return ICH_OK;
}

static const char *series_name(const ich_svg_chart *c, int i, char *fallback, size_t size)
{
    if (c->series[i].name)
        return c->series[i].name;
    snprintf(fallback, size, "series %d", i + 1);
    return fallback;
}

static double legend_width(const ich_svg_chart *c)
{
    double widest = 0;
    for (int i = 0; i < c->series_count; i++) {
        char fallback[32], short_name[LEGEND_MAX_CHARS * 4 + 8];
        const char *name = shorten(series_name(c, i, fallback, sizeof fallback),
                                   LEGEND_MAX_CHARS, short_name, sizeof short_name);
        double w = text_width(name, LEGEND_PX);
        if (w > widest)
            widest = w;
    }
    return 12 + 28 + 8 + widest + 12; /* padding, line sample, gap, text, padding */
}

static void make_layout(const ich_svg_chart *c, ich_svg_legend legend, const axis *ax,
                        const axis *ay, layout *l)
{
    l->legend = legend;
    l->width = c->width > 0 ? c->width : 720;
    l->height = c->height > 0 ? c->height : 460;
    int show_legend = legend != ICH_SVG_LEGEND_NONE && c->series_count > 0;
    l->legend_w = show_legend ? legend_width(c) : 0;
    l->legend_h = show_legend ? 12 + LEGEND_ROW * c->series_count : 0;

    double widest_y = 0;
    for (int i = 0; i < ay->count; i++) {
        double w = text_width(ay->labels[i], TICK_PX);
        widest_y = w > widest_y ? w : widest_y;
    }
    double last_x = ax->count ? text_width(ax->labels[ax->count - 1], TICK_PX) : 0;
    int has_y_label = c->y_label && *c->y_label;
    int has_x_label = c->x_label && *c->x_label;

    l->x0 = 12 + (has_y_label ? LABEL_PX + 14 : 0) + widest_y + 10;
    l->y0 = (c->title && *c->title) ? 44 : 16;
    double right = last_x / 2 + 12;
    if (show_legend && legend == ICH_SVG_LEGEND_RIGHT) {
        right = 16 + l->legend_w + 12;
        /* A long legend makes the picture taller rather than overflow. */
        double need = l->y0 + l->legend_h + 20;
        if (need > l->height)
            l->height = (int)ceil(need);
    }
    l->x1 = l->width - right;
    l->y1 = l->height - (12 + TICK_PX + 10 + (has_x_label ? LABEL_PX + 12 : 0));
    /* Never a degenerate plot area, whatever the requested size. */
    if (l->x1 < l->x0 + 100) {
        l->width += (int)ceil(l->x0 + 100 - l->x1);
        l->x1 = l->x0 + 100;
    }
    if (l->y1 < l->y0 + 100) {
        l->height += (int)ceil(l->y0 + 100 - l->y1);
        l->y1 = l->y0 + 100;
    }

    double inset = 10;
    switch (legend) {
    case ICH_SVG_LEGEND_TOP_LEFT:
        l->legend_x = l->x0 + inset, l->legend_y = l->y0 + inset;
        break;
    case ICH_SVG_LEGEND_TOP_RIGHT:
        l->legend_x = l->x1 - inset - l->legend_w, l->legend_y = l->y0 + inset;
        break;
    case ICH_SVG_LEGEND_BOTTOM_LEFT:
        l->legend_x = l->x0 + inset, l->legend_y = l->y1 - inset - l->legend_h;
        break;
    case ICH_SVG_LEGEND_BOTTOM_RIGHT:
        l->legend_x = l->x1 - inset - l->legend_w, l->legend_y = l->y1 - inset - l->legend_h;
        break;
    default:
        l->legend_x = l->x1 + 16, l->legend_y = l->y0;
        break;
    }
}

static double map_x(const layout *l, const axis *a, double v)
{
    return l->x0 + (v - a->lo) / (a->hi - a->lo) * (l->x1 - l->x0);
}

static double map_y(const layout *l, const axis *a, double v)
{
    return l->y1 - (v - a->lo) / (a->hi - a->lo) * (l->y1 - l->y0);
}

static void draw_axes(ich_buf *buf, const ich_svg_chart *c, const layout *l, const axis *ax,
                      const axis *ay)
{
    ich_buf_printf(buf, "<g class=\"grid\" stroke=\"" GRID_COLOR "\" stroke-width=\"1\">\n");
    for (int i = 0; i < ax->count; i++) {
        double x = map_x(l, ax, ax->ticks[i]);
        append_line(buf, x, l->y0, x, l->y1, "");
    }
    for (int i = 0; i < ay->count; i++) {
        double y = map_y(l, ay, ay->ticks[i]);
        append_line(buf, l->x0, y, l->x1, y, "");
    }
    ich_buf_printf(buf, "</g>\n<g class=\"x-ticks\" stroke=\"" AXIS_COLOR "\">\n");
    for (int i = 0; i < ax->count; i++) {
        double x = map_x(l, ax, ax->ticks[i]);
        append_line(buf, x, l->y1, x, l->y1 + 5, "");
    }
    ich_buf_printf(buf, "</g>\n<g class=\"x-tick-labels\" stroke=\"none\">\n");
    for (int i = 0; i < ax->count; i++)
        append_text(buf, map_x(l, ax, ax->ticks[i]), l->y1 + 8 + TICK_PX, TICK_PX, "middle",
                    "", ax->labels[i]);
    ich_buf_printf(buf, "</g>\n<g class=\"y-ticks\" stroke=\"" AXIS_COLOR "\">\n");
    for (int i = 0; i < ay->count; i++) {
        double y = map_y(l, ay, ay->ticks[i]);
        append_line(buf, l->x0 - 5, y, l->x0, y, "");
    }
    ich_buf_printf(buf, "</g>\n<g class=\"y-tick-labels\" stroke=\"none\">\n");
    for (int i = 0; i < ay->count; i++)
        append_text(buf, l->x0 - 8, map_y(l, ay, ay->ticks[i]) + TICK_PX * 0.35, TICK_PX, "end",
                    "", ay->labels[i]);
    ich_buf_printf(buf, "</g>\n");
    ich_buf_printf(buf, "<rect class=\"frame\" x=\"");
    append_px(buf, l->x0);
    ich_buf_printf(buf, "\" y=\"");
    append_px(buf, l->y0);
    ich_buf_printf(buf, "\" width=\"");
    append_px(buf, l->x1 - l->x0);
    ich_buf_printf(buf, "\" height=\"");
    append_px(buf, l->y1 - l->y0);
    ich_buf_printf(buf, "\" fill=\"none\" stroke=\"" AXIS_COLOR "\" stroke-width=\"1\"/>\n");

    if (c->x_label && *c->x_label)
        append_text(buf, (l->x0 + l->x1) / 2, l->y1 + 8 + TICK_PX + 10 + LABEL_PX, LABEL_PX,
                    "middle", "class=\"x-label\"", c->x_label);
    if (c->y_label && *c->y_label) {
        double x = 12 + LABEL_PX, y = (l->y0 + l->y1) / 2;
        char rotate[96];
        snprintf(rotate, sizeof rotate, "class=\"y-label\" transform=\"rotate(-90 %.6g %.6g)\"",
                 round(x * 100) / 100, round(y * 100) / 100);
        append_text(buf, x, y, LABEL_PX, "middle", rotate, c->y_label);
    }
    if (c->title && *c->title)
        append_text(buf, l->width / 2.0, 28, TITLE_PX, "middle",
                    "class=\"chart-title\" font-weight=\"600\"", c->title);
}

/* Liang-Barsky: clip the segment p0-p1 to the box [x_lo, x_hi] x [y_lo,
 * y_hi]; 0 when nothing is left, else the clipped ends in place. */
static int clip_to_box(double *x0, double *y0, double *x1, double *y1, double x_lo,
                       double x_hi, double y_lo, double y_hi)
{
    double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0.0, t1 = 1.0;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - x_lo, x_hi - *x0, *y0 - y_lo, y_hi - *y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0.0) {
            if (q[i] < 0.0)
                return 0;
            continue;
        }
        double t = q[i] / p[i];
        if (p[i] < 0.0) {
            if (t > t1)
                return 0;
            if (t > t0)
                t0 = t;
        } else {
            if (t < t0)
                return 0;
            if (t < t1)
                t1 = t;
        }
    }
    double sx = *x0, sy = *y0;
    *x0 = sx + t0 * dx, *y0 = sy + t0 * dy;
    *x1 = sx + t1 * dx, *y1 = sy + t1 * dy;
    return 1;
}

/* Clip a segment in data space to the plot's ranges. */
static int clip_segment(double *x0, double *y0, double *x1, double *y1, const axis *ax,
                        const axis *ay)
{
    return clip_to_box(x0, y0, x1, y1, ax->lo, ax->hi, ay->lo, ay->hi);
}

static int inside_box(double x, double y, const axis *ax, const axis *ay)
{
    return x >= ax->lo && x <= ax->hi && y >= ay->lo && y <= ay->hi;
}

static int finite_point(const ich_svg_series *s, int64_t i)
{
    return isfinite(s->x[i]) && isfinite(s->y[i]);
}

/* Whether the legend box of layout `l` (with a margin) stays clear of
 * every drawn line, marker and the diagonal. */
static int legend_is_clear(const ich_svg_chart *c, const layout *l, const axis *ax,
                           const axis *ay)
{
    double margin = 6;
    double bx0 = l->legend_x - margin, bx1 = l->legend_x + l->legend_w + margin;
    double by0 = l->legend_y - margin, by1 = l->legend_y + l->legend_h + margin;
    if (c->diagonal) {
        double t0 = ax->lo > ay->lo ? ax->lo : ay->lo, t1 = ax->hi < ay->hi ? ax->hi : ay->hi;
        double xa = map_x(l, ax, t0), ya = map_y(l, ay, t0);
        double xb = map_x(l, ax, t1), yb = map_y(l, ay, t1);
        if (t0 < t1 && clip_to_box(&xa, &ya, &xb, &yb, bx0, bx1, by0, by1))
            return 0;
    }
    for (int i = 0; i < c->series_count; i++) {
        const ich_svg_series *s = &c->series[i];
        for (int64_t k = 0; k < s->count; k++) {
            if (!finite_point(s, k))
                continue;
            double xa = s->x[k], ya = s->y[k], xb = xa, yb = ya;
            if (k + 1 < s->count && finite_point(s, k + 1))
                xb = s->x[k + 1], yb = s->y[k + 1];
            if (!clip_segment(&xa, &ya, &xb, &yb, ax, ay))
                continue;
            double pxa = map_x(l, ax, xa), pya = map_y(l, ay, ya);
            double pxb = map_x(l, ax, xb), pyb = map_y(l, ay, yb);
            if (clip_to_box(&pxa, &pya, &pxb, &pyb, bx0, bx1, by0, by1))
                return 0;
        }
    }
    return 1;
}

/* ICH_SVG_LEGEND_AUTO: the first corner whose legend box covers nothing,
 * else outside on the right. */
static void choose_legend(const ich_svg_chart *c, const axis *ax, const axis *ay, layout *l)
{
    static const ich_svg_legend corners[4] = {ICH_SVG_LEGEND_TOP_RIGHT, ICH_SVG_LEGEND_BOTTOM_RIGHT,
                                              ICH_SVG_LEGEND_TOP_LEFT, ICH_SVG_LEGEND_BOTTOM_LEFT};
    for (int i = 0; i < 4; i++) {
        make_layout(c, corners[i], ax, ay, l);
        if (legend_is_clear(c, l, ax, ay))
            return;
    }
    make_layout(c, ICH_SVG_LEGEND_RIGHT, ax, ay, l);
}

static void draw_series(ich_buf *buf, const ich_svg_chart *c, int index, const layout *l,
                        const axis *ax, const axis *ay)
{
    const ich_svg_series *s = &c->series[index];
    const char *color = ich_svg_color(index);
    int dashed = s->dashed || index >= 8;
    char fallback[32];
    ich_buf_printf(buf, "<g class=\"series\">\n<title>");
    ich_svg_escape(buf, series_name(c, index, fallback, sizeof fallback));
    ich_buf_printf(buf, "</title>\n");

    int64_t skipped = 0;
    for (int64_t i = 0; i < s->count; i++)
        skipped += !finite_point(s, i);
    if (skipped) {
        ich_buf_printf(buf, "<!-- %" PRId64 " of %" PRId64 " points of series %d (", skipped,
                       s->count, index + 1);
        append_comment_text(buf, series_name(c, index, fallback, sizeof fallback));
        ich_buf_printf(buf, ") are NaN or infinite: skipped, the line breaks there -->\n");
    }

    /* One path; a skipped point or a clipped stretch lifts the pen. */
    ich_buf_printf(buf, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                        "stroke-linejoin=\"round\" stroke-linecap=\"round\"%s d=\"",
                   color, dashed ? " stroke-dasharray=\"7 4\"" : "");
    int pen_down = 0, drawn = 0;
    double last_px = 0, last_py = 0;
    if (s->count == 1 && finite_point(s, 0) && inside_box(s->x[0], s->y[0], ax, ay)) {
        ich_buf_printf(buf, "M");
        append_px(buf, map_x(l, ax, s->x[0]));
        ich_buf_printf(buf, " ");
        append_px(buf, map_y(l, ay, s->y[0]));
        ich_buf_printf(buf, " h0"); /* a dot, thanks to the round cap */
    }
    for (int64_t i = 0; i + 1 < s->count; i++) {
        if (!finite_point(s, i) || !finite_point(s, i + 1)) {
            pen_down = 0;
            continue;
        }
        double xa = s->x[i], ya = s->y[i], xb = s->x[i + 1], yb = s->y[i + 1];
        if (!clip_segment(&xa, &ya, &xb, &yb, ax, ay)) {
            pen_down = 0;
            continue;
        }
        double pa_x = map_x(l, ax, xa), pa_y = map_y(l, ay, ya);
        double pb_x = map_x(l, ax, xb), pb_y = map_y(l, ay, yb);
        if (!pen_down || fabs(pa_x - last_px) > 0.005 || fabs(pa_y - last_py) > 0.005) {
            ich_buf_printf(buf, "%sM", drawn ? " " : "");
            append_px(buf, pa_x);
            ich_buf_printf(buf, " ");
            append_px(buf, pa_y);
        }
        ich_buf_printf(buf, " L");
        append_px(buf, pb_x);
        ich_buf_printf(buf, " ");
        append_px(buf, pb_y);
        pen_down = drawn = 1;
        last_px = pb_x, last_py = pb_y;
    }
    ich_buf_printf(buf, "\"/>\n");

    if (c->markers) {
        ich_buf_printf(buf, "<g class=\"markers\" fill=\"%s\" stroke=\"#ffffff\" "
                            "stroke-width=\"0.75\">\n", color);
        for (int64_t i = 0; i < s->count; i++) {
            if (!finite_point(s, i) || !inside_box(s->x[i], s->y[i], ax, ay))
                continue;
            ich_buf_printf(buf, "<circle cx=\"");
            append_px(buf, map_x(l, ax, s->x[i]));
            ich_buf_printf(buf, "\" cy=\"");
            append_px(buf, map_y(l, ay, s->y[i]));
            ich_buf_printf(buf, "\" r=\"3.5\"/>\n");
        }
        ich_buf_printf(buf, "</g>\n");
    }
    ich_buf_printf(buf, "</g>\n");
}

static void draw_legend(ich_buf *buf, const ich_svg_chart *c, const layout *l)
{
    if (l->legend == ICH_SVG_LEGEND_NONE || c->series_count == 0)
        return;
    ich_buf_printf(buf, "<g class=\"legend\">\n<rect x=\"");
    append_px(buf, l->legend_x);
    ich_buf_printf(buf, "\" y=\"");
    append_px(buf, l->legend_y);
    ich_buf_printf(buf, "\" width=\"");
    append_px(buf, l->legend_w);
    ich_buf_printf(buf, "\" height=\"");
    append_px(buf, l->legend_h);
    ich_buf_printf(buf, "\" rx=\"4\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#bbbbbb\"/>\n");
    for (int i = 0; i < c->series_count; i++) {
        double y = l->legend_y + 6 + LEGEND_ROW * (i + 0.5);
        double x = l->legend_x + 12;
        char attributes[96];
        snprintf(attributes, sizeof attributes,
                 "stroke=\"%s\" stroke-width=\"2.5\"%s", ich_svg_color(i),
                 c->series[i].dashed || i >= 8 ? " stroke-dasharray=\"7 4\"" : "");
        append_line(buf, x, y, x + 28, y, attributes);
        char fallback[32], short_name[LEGEND_MAX_CHARS * 4 + 8];
        const char *full = series_name(c, i, fallback, sizeof fallback);
        const char *name = shorten(full, LEGEND_MAX_CHARS, short_name, sizeof short_name);
        append_text(buf, x + 36, y + LEGEND_PX * 0.35, LEGEND_PX, "start", "class=\"legend-entry\"",
                    name);
    }
    ich_buf_printf(buf, "</g>\n");
}

static void draw_diagonal(ich_buf *buf, const layout *l, const axis *ax, const axis *ay)
{
    double t0 = ax->lo > ay->lo ? ax->lo : ay->lo;
    double t1 = ax->hi < ay->hi ? ax->hi : ay->hi;
    if (!(t0 < t1))
        return;
    append_line(buf, map_x(l, ax, t0), map_y(l, ay, t0), map_x(l, ax, t1), map_y(l, ay, t1),
                "class=\"diagonal\" stroke=\"#999999\" stroke-width=\"1.25\" "
                "stroke-dasharray=\"5 5\"");
}

static ich_status check_chart(const ich_svg_chart *c, const ich_buf *out)
{
    if (!c || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "SVG chart: NULL %s", c ? "buffer" : "chart");
    if (c->series_count < 0 || (c->series_count > 0 && !c->series))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "SVG chart: %d series at %p",
                        c->series_count, (const void *)c->series);
    for (int i = 0; i < c->series_count; i++) {
        const ich_svg_series *s = &c->series[i];
        if (s->count < 0 || (s->count > 0 && (!s->x || !s->y)))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "SVG chart: series %d has %" PRId64 " points but no %s values",
                            i + 1, s->count, s->x ? "y" : "x");
    }
    return ICH_OK;
}

ich_status ich_svg_line_chart(const ich_svg_chart *c, ich_buf *out)
{
    ich_status status = check_chart(c, out);
    if (status != ICH_OK)
        return status;
    double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
    for (int i = 0; i < c->series_count; i++)
        for (int64_t k = 0; k < c->series[i].count; k++) {
            if (!finite_point(&c->series[i], k))
                continue;
            double x = c->series[i].x[k], y = c->series[i].y[k];
            x_lo = x < x_lo ? x : x_lo, x_hi = x > x_hi ? x : x_hi;
            y_lo = y < y_lo ? y : y_lo, y_hi = y > y_hi ? y : y_hi;
        }
    if (x_lo > x_hi) /* no finite point at all */
        x_lo = y_lo = 0.0, x_hi = y_hi = 1.0;
    axis ax = {0}, ay = {0};
    if ((status = make_axis(&ax, c->x_min, c->x_max, x_lo, x_hi, "x")) != ICH_OK ||
        (status = make_axis(&ay, c->y_min, c->y_max, y_lo, y_hi, "y")) != ICH_OK)
        return status;
    layout l;
    if (c->legend == ICH_SVG_LEGEND_AUTO)
        choose_legend(c, &ax, &ay, &l);
    else
        make_layout(c, c->legend, &ax, &ay, &l);

    begin_document(out, l.width, l.height, c->title);
    draw_axes(out, c, &l, &ax, &ay);
    if (c->diagonal)
        draw_diagonal(out, &l, &ax, &ay);
    for (int i = 0; i < c->series_count; i++)
        draw_series(out, c, i, &l, &ax, &ay);
    draw_legend(out, c, &l);
    return end_document(out);
}

/* ---- confusion matrix ------------------------------------------------------ */

static void draw_cell(ich_buf *buf, double x, double y, double size, int64_t count,
                      int64_t row_total, const char *tag)
{
    double share = row_total > 0 ? (double)count / (double)row_total : 0.0;
    /* White to dark blue (#08306B) by the share of the row. */
    int r = (int)lround(255 + share * (8 - 255));
    int g = (int)lround(255 + share * (48 - 255));
    int b = (int)lround(255 + share * (107 - 255));
    const char *fill_text = share > 0.5 ? "#ffffff" : TEXT_COLOR;
    ich_buf_printf(buf, "<g class=\"cell\">\n<rect x=\"");
    append_px(buf, x);
    ich_buf_printf(buf, "\" y=\"");
    append_px(buf, y);
    ich_buf_printf(buf, "\" width=\"");
    append_px(buf, size);
    ich_buf_printf(buf, "\" height=\"");
    append_px(buf, size);
    if (row_total > 0)
        ich_buf_printf(buf, "\" fill=\"#%02x%02x%02x\" stroke=\"#888888\"/>\n", r, g, b);
    else
        ich_buf_printf(buf, "\" fill=\"#eeeeee\" stroke=\"#888888\"/>\n");
    char attributes[96], text[64];
    snprintf(attributes, sizeof attributes, "class=\"count\" font-weight=\"600\" fill=\"%s\"",
             fill_text);
    snprintf(text, sizeof text, "%" PRId64, count);
    append_text(buf, x + size / 2, y + size / 2 + 2, 24, "middle", attributes, text);
    snprintf(attributes, sizeof attributes, "class=\"share\" fill=\"%s\"", fill_text);
    if (row_total > 0)
        snprintf(text, sizeof text, "%.1f%% of row", 100.0 * share);
    else
        snprintf(text, sizeof text, "no cases");
    append_text(buf, x + size / 2, y + size / 2 + 24, 13, "middle", attributes, text);
    snprintf(attributes, sizeof attributes, "class=\"tag\" fill=\"%s\" fill-opacity=\"0.8\"",
             fill_text);
    append_text(buf, x + 8, y + 18, 11, "start", attributes, tag);
    ich_buf_printf(buf, "</g>\n");
}

ich_status ich_svg_confusion_matrix(const char *title, const int64_t counts[2][2],
                                    ich_buf *out)
{
    if (!counts || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "SVG confusion matrix: NULL %s",
                        counts ? "buffer" : "counts");
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (counts[i][j] < 0)
                return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                                "SVG confusion matrix: negative count %" PRId64, counts[i][j]);
    const double cell = 140, left = 150, top = 100;
    int width = (int)(left + 2 * cell + 30), height = (int)(top + 2 * cell + 50);
    if (title && text_width(title, TITLE_PX) + 40 > width)
        width = (int)ceil(text_width(title, TITLE_PX) + 40);
    begin_document(out, width, height, title);
    if (title && *title)
        append_text(out, width / 2.0, 30, TITLE_PX, "middle",
                    "class=\"chart-title\" font-weight=\"600\"", title);
    static const char *const names[2] = {"negative", "positive"};
    static const char *const tags[2][2] = {{"TN", "FP"}, {"FN", "TP"}};
    append_text(out, left + cell, top - 36, LABEL_PX + 1, "middle",
                "class=\"axis-name\" font-weight=\"600\"", "predicted");
    for (int j = 0; j < 2; j++)
        append_text(out, left + cell * (j + 0.5), top - 12, LABEL_PX, "middle",
                    "class=\"column-label\"", names[j]);
    double actual_x = 34, actual_y = top + cell;
    char rotate[96];
    snprintf(rotate, sizeof rotate,
             "class=\"axis-name\" font-weight=\"600\" transform=\"rotate(-90 %.6g %.6g)\"",
             actual_x, actual_y);
    append_text(out, actual_x, actual_y, LABEL_PX + 1, "middle", rotate, "actual");
    for (int i = 0; i < 2; i++)
        append_text(out, left - 10, top + cell * (i + 0.5) + 4, LABEL_PX, "end",
                    "class=\"row-label\"", names[i]);
    int64_t total = 0;
    for (int i = 0; i < 2; i++) {
        int64_t row_total = counts[i][0] + counts[i][1];
        total += row_total;
        for (int j = 0; j < 2; j++)
            draw_cell(out, left + cell * j, top + cell * i, cell, counts[i][j], row_total,
                      tags[i][j]);
    }
    char footer[96];
    snprintf(footer, sizeof footer, "n = %" PRId64 "; colour: share of the actual row", total);
    append_text(out, left + cell, top + 2 * cell + 30, 12, "middle", "class=\"footer\"",
                footer);
    return end_document(out);
}
