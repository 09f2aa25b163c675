/* White-box tests of the report building blocks (libich/report/svg.h and
 * libich/report/report.h): nice tick values against the rules they must obey,
 * tick labels, the line chart (legend, escaping, NaN points, clipping,
 * fixed ranges, errors), the confusion-matrix heatmap, XML escaping of odd
 * bytes, tables as CSV (read back with the CSV reader) and HTML, the JSON
 * writer (exact text and its misuse), and atomic writes.
 *
 * With ICH_REPORT_SAMPLES=<folder> in the environment, test_samples leaves
 * sample SVG, HTML, CSV and JSON files there; tests/cli/test_svg_report.py
 * parses them with Python's XML, JSON, CSV and HTML parsers and compares
 * the numbers with the data given here (the formulas are written in both
 * files: keep them in step). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/fileutil.h"
#include "core/csv.h"
#include "report/report.h"
#include "report/svg.h"
#include "ich/ich.h"
#include "test_util.h"

/* ---- helpers --------------------------------------------------------------- */

static int count_occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* `text` without its XML comments, in new memory. */
static char *strip_comments(const char *text)
{
    char *out = strdup(text);
    assert_non_null(out);
    char *w = out;
    for (const char *p = text; *p;) {
        if (strncmp(p, "<!--", 4) == 0) {
            const char *end = strstr(p, "-->");
            assert_non_null(end);
            p = end + 3;
        } else
            *w++ = *p++;
    }
    *w = '\0';
    return out;
}

/* A small well-formedness check: every start tag has its end tag, in
 * order; attribute values are quoted; no raw '&' that does not start an
 * entity. Python's parser (tests/cli/test_svg_report.py) does the full
 * check; this one runs with every ctest. */
static void assert_balanced_xml(const char *text)
{
    char *doc = strip_comments(text);
    char stack[64][32];
    int depth = 0, roots = 0;
    const char *p = doc;
    if (strncmp(p, "<?xml", 5) == 0)
        p = strstr(p, "?>") + 2;
    for (; *p; p++) {
        if (*p == '&') {
            assert_true(strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&lt;", 4) == 0 ||
                        strncmp(p, "&gt;", 4) == 0 || strncmp(p, "&quot;", 6) == 0 ||
                        strncmp(p, "&#39;", 5) == 0);
            continue;
        }
        if (*p != '<')
            continue;
        const char *end = strchr(p, '>');
        assert_non_null(end);
        int closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " \t\n/>");
        assert_true(len > 0 && len < 32);
        /* a quote count per tag: every attribute value is quoted */
        int quotes = 0;
        for (const char *q = p; q < end; q++)
            quotes += *q == '"';
        assert_int_equal(quotes % 2, 0);
        if (closing) {
            assert_true(depth > 0);
            depth--;
            assert_int_equal(strlen(stack[depth]), len);
            assert_memory_equal(stack[depth], name, len);
        } else if (end[-1] != '/') {
            assert_true(depth < 64);
            memcpy(stack[depth], name, len);
            stack[depth][len] = '\0';
            roots += depth == 0;
            depth++;
        } else
            roots += depth == 0;
        p = end;
    }
    assert_int_equal(depth, 0);
    assert_int_equal(roots, 1);
    free(doc);
}

/* No NaN or infinity anywhere outside comments. */
static void assert_no_nan(const char *text)
{
    char *doc = strip_comments(text);
    for (char *p = doc; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    assert_null(strstr(doc, "nan"));
    assert_null(strstr(doc, "inf"));
    free(doc);
}

/* Every font-size="N" is at least 11 px. */
static void assert_readable(const char *text)
{
    int sizes = 0;
    for (const char *p = text; (p = strstr(p, "font-size=\"")) != NULL; p++) {
        assert_true(atoi(p + 11) >= 11);
        sizes++;
    }
    assert_true(sizes > 0);
    assert_non_null(strstr(text, "sans-serif"));
}

/* The tick label texts of one axis ("x-tick-labels"/"y-tick-labels"). */
static int tick_labels(const char *svg, const char *group, char labels[][32], int max)
{
    char open[64];
    snprintf(open, sizeof open, "<g class=\"%s\"", group);
    const char *p = strstr(svg, open);
    assert_non_null(p);
    const char *stop = strstr(p, "</g>");
    int n = 0;
    while ((p = strstr(p, "<text")) != NULL && p < stop) {
        p = strchr(p, '>') + 1;
        size_t len = (size_t)(strstr(p, "</text>") - p);
        assert_true(n < max && len < 32);
        memcpy(labels[n], p, len);
        labels[n][len] = '\0';
        n++;
    }
    return n;
}

/* ---- ticks ----------------------------------------------------------------- */

/* What "nice and covering" means, checked without the implementation's
 * arithmetic: 3..12 ticks, a step of 1, 2 or 5 times a power of ten, equal
 * spacing, every tick a multiple of the step, the data inside. */
static void check_nice(double lo, double hi, int inside, const double *t, int n, double step)
{
    assert_true(n >= 3 && n <= 12);
    double mantissa = step / pow(10.0, floor(log10(step) + 1e-12));
    assert_true(fabs(mantissa - 1) < 1e-9 || fabs(mantissa - 2) < 1e-9 ||
                fabs(mantissa - 5) < 1e-9);
    for (int i = 0; i + 1 < n; i++)
        assert_true(fabs(t[i + 1] - t[i] - step) <= step * 1e-9);
    for (int i = 0; i < n; i++)
        assert_true(fabs(t[i] / step - round(t[i] / step)) < 1e-9);
    if (inside) {
        assert_true(t[0] >= lo && t[n - 1] <= hi);
        assert_true(t[0] - step < lo && t[n - 1] + step > hi); /* no tick missed */
    } else {
        assert_true(t[0] <= lo && t[n - 1] >= hi);
        assert_true(t[0] + step > lo && t[n - 1] - step < hi); /* no empty interval */
    }
}

static void expect_ticks(double lo, double hi, const char *const *labels, int count)
{
    double t[ICH_SVG_MAX_TICKS], step = 0;
    int n = ich_svg_nice_ticks(lo, hi, 5, 0, t, &step);
    check_nice(lo, hi, 0, t, n, step);
    assert_int_equal(n, count);
    for (int i = 0; i < n; i++) {
        char text[32];
        ich_svg_format_tick(t[i], step, text, sizeof text);
        assert_string_equal(text, labels[i]);
        assert_true(strtod(text, NULL) == t[i]); /* the label is the exact tick */
    }
}

static void test_nice_ticks(void **state)
{
    (void)state;
    expect_ticks(0, 1, (const char *const[]){"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}, 6);
    expect_ticks(0, 0.37, (const char *const[]){"0.0", "0.1", "0.2", "0.3", "0.4"}, 5);
    expect_ticks(3, 1700, (const char *const[]){"0", "500", "1000", "1500", "2000"}, 5);
    expect_ticks(1e-5, 1e-3,
                 (const char *const[]){"0.0000", "0.0002", "0.0004", "0.0006", "0.0008",
                                       "0.0010"},
                 6);
    expect_ticks(-3.2, 4.1,
                 (const char *const[]){"-4", "-3", "-2", "-1", "0", "1", "2", "3", "4", "5"}, 10);
    expect_ticks(1, 12, (const char *const[]){"0", "2", "4", "6", "8", "10", "12"}, 7);
    expect_ticks(0.3, 0.7, (const char *const[]){"0.3", "0.4", "0.5", "0.6", "0.7"}, 5);
    expect_ticks(2.5e9, 7e9,
                 (const char *const[]){"2e+09", "3e+09", "4e+09", "5e+09", "6e+09", "7e+09"},
                 6);

    /* Many more ranges, including odd ones: the rules always hold. */
    uint32_t seed = 7;
    for (int i = 0; i < 2000; i++) {
        double scale = pow(10.0, (double)(tu_rand(&seed) % 24) - 12.0);
        double a = ((double)(tu_rand(&seed) % 20001) - 10000.0) * scale / 1000.0;
        double b = a + (double)(tu_rand(&seed) % 10000 + 1) * scale / 1000.0;
        double t[ICH_SVG_MAX_TICKS], step;
        int n = ich_svg_nice_ticks(a, b, 5, 0, t, &step);
        check_nice(a, b, 0, t, n, step);
        n = ich_svg_nice_ticks(a, b, 5, 1, t, &step);
        check_nice(a, b, 1, t, n, step);
    }

    double t[ICH_SVG_MAX_TICKS], step;
    /* A fixed range: ticks inside it. */
    int n = ich_svg_nice_ticks(0.05, 0.95, 5, 1, t, &step);
    assert_int_equal(n, 4);
    assert_true(t[0] == 0.2 && t[3] == 0.8);
    /* One value: widened around it. */
    n = ich_svg_nice_ticks(5, 5, 5, 0, t, &step);
    check_nice(4.5, 5.5, 0, t, n, step);
    n = ich_svg_nice_ticks(0, 0, 5, 0, t, &step);
    check_nice(-1, 1, 0, t, n, step);
    /* Nothing sensible to do. */
    assert_int_equal(ich_svg_nice_ticks(NAN, 1, 5, 0, t, &step), 0);
    assert_int_equal(ich_svg_nice_ticks(0, INFINITY, 5, 0, t, &step), 0);
    assert_int_equal(ich_svg_nice_ticks(2, 1, 5, 0, t, &step), 0);
    assert_int_equal(ich_svg_nice_ticks(-1e308, 1e308, 5, 0, t, &step), 0);
    /* target is clamped to 3..10 */
    n = ich_svg_nice_ticks(0, 1, 1000, 0, t, &step);
    assert_true(n >= 3 && n <= 12);
}

static void test_format_tick(void **state)
{
    (void)state;
    char text[32];
    ich_svg_format_tick(-0.0, 0.1, text, sizeof text);
    assert_string_equal(text, "0.0");
    ich_svg_format_tick(-1e-18, 0.1, text, sizeof text); /* rounding noise near 0 */
    assert_string_equal(text, "0.0");
    ich_svg_format_tick(2e-7, 1e-7, text, sizeof text);
    assert_string_equal(text, "2e-07");
    ich_svg_format_tick(1.5e-6, 5e-7, text, sizeof text);
    assert_string_equal(text, "1.5e-06");
    ich_svg_format_tick(250, 50, text, sizeof text);
    assert_string_equal(text, "250");
    ich_svg_format_tick(NAN, 1, text, sizeof text);
    assert_string_equal(text, "0");
    ich_svg_format_tick(1, 1, text, 2); /* cut, still terminated */
    assert_string_equal(text, "1");
}

/* ---- escaping -------------------------------------------------------------- */

static void test_escape(void **state)
{
    (void)state;
    ich_buf b = {0};
    ich_svg_escape(&b, "<a&b> \"q\" 'a'");
    assert_string_equal(b.data, "&lt;a&amp;b&gt; &quot;q&quot; &#39;a&#39;");
    ich_buf_free(&b);
    /* tab/LF/CR kept, other controls dropped, UTF-8 kept, bad bytes replaced */
    ich_svg_escape(&b, "a\tb\x01" "c\x1f\n\xc3\xa9\xe6\xbc\xa2\xf0\x9f\x99\x82|\xff|\xc3|\xed\xa0\x80|"
                       "\xef\xbf\xbf|\xe2\x82");
    assert_string_equal(b.data, "a\tbc\n\xc3\xa9\xe6\xbc\xa2\xf0\x9f\x99\x82|\xef\xbf\xbd|"
                                "\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
                                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd");
    ich_buf_free(&b);
    ich_svg_escape(&b, NULL); /* nothing */
    assert_int_equal(b.length, 0);
    assert_int_equal(ich_svg_utf8_length("\xc0\x80"), 0); /* overlong */
    assert_int_equal(ich_svg_utf8_length("\xf4\x90\x80\x80"), 0); /* > U+10FFFF */
    assert_int_equal(ich_svg_utf8_length("\xf4\x8f\xbf\xbf"), 4);
    assert_string_equal(ich_svg_color(0), "#0072B2");
    assert_string_equal(ich_svg_color(8), ich_svg_color(0));
}

/* ---- line chart ------------------------------------------------------------ */

static void test_line_chart(void **state)
{
    (void)state;
    double x[5] = {0, 1, 2, 3, 4}, y1[5] = {0.1, 0.4, NAN, 0.9, 1.6},
           y2[5] = {1, 2, 3, 4, INFINITY}, y3[5] = {0.5, 0.5, 0.5, 0.5, 0.5};
    ich_svg_series s[3] = {{.name = "<a&b>", .x = x, .y = y1, .count = 5},
                           {.name = "train \"loss\"", .x = x, .y = y2, .count = 5, .dashed = 1},
                           {.name = NULL, .x = x, .y = y3, .count = 5}};
    ich_svg_chart c = {.title = "Loss & accuracy <per epoch>", .x_label = "epoch",
                       .y_label = "loss", .series = s, .series_count = 3, .markers = 1};
    ich_buf b = {0};
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    const char *svg = b.data;
    const char *start = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                        "<svg xmlns=\"http://www.w3.org/2000/svg\"";
    assert_true(strncmp(svg, start, strlen(start)) == 0);
    assert_non_null(strstr(svg, "viewBox=\"0 0 720 460\""));
    assert_non_null(strstr(svg, "width=\"720\" height=\"460\""));
    assert_balanced_xml(svg);
    assert_no_nan(svg);
    assert_readable(svg);
    /* escaping: the raw names never appear */
    assert_null(strstr(svg, "<a&b>"));
    assert_non_null(strstr(svg, ">&lt;a&amp;b&gt;</text>"));
    assert_non_null(strstr(svg, ">train &quot;loss&quot;</text>"));
    assert_non_null(strstr(svg, ">Loss &amp; accuracy &lt;per epoch&gt;</text>"));
    assert_non_null(strstr(svg, ">series 3</text>"));
    assert_non_null(strstr(svg, ">epoch</text>"));
    assert_non_null(strstr(svg, ">loss</text>"));
    /* the legend lists every series, once */
    assert_int_equal(count_occurrences(svg, "class=\"legend-entry\""), 3);
    /* the skipped points are said, per series */
    assert_non_null(strstr(svg, "<!-- 1 of 5 points of series 1 (&lt;a&amp;b&gt;) are NaN"));
    assert_non_null(strstr(svg, "<!-- 1 of 5 points of series 2 (train &quot;loss&quot;) are"));
    assert_int_equal(count_occurrences(svg, "are NaN or infinite"), 2);
    /* markers only for finite points: 4 + 4 + 5 */
    assert_int_equal(count_occurrences(svg, "<circle"), 13);
    /* the NaN breaks series 1 in two pieces; series 2 is one piece */
    assert_int_equal(count_occurrences(svg, "stroke-dasharray=\"7 4\" d=\"M"), 1);
    const char *p1 = strstr(svg, "stroke=\"#0072B2\" stroke-width=\"2\"");
    assert_non_null(p1);
    const char *d1 = strstr(p1, "d=\"") + 3;
    const char *e1 = strchr(d1, '"');
    int moves = 0;
    for (const char *q = d1; q < e1; q++)
        moves += *q == 'M';
    assert_int_equal(moves, 2);
    /* auto ranges: y covers 0.1..4 with nice ticks, x 0..4 */
    char labels[ICH_SVG_MAX_TICKS][32];
    int n = tick_labels(svg, "y-tick-labels", labels, ICH_SVG_MAX_TICKS);
    assert_true(strtod(labels[0], NULL) <= 0.1 && strtod(labels[n - 1], NULL) >= 4.0);
    n = tick_labels(svg, "x-tick-labels", labels, ICH_SVG_MAX_TICKS);
    assert_true(strtod(labels[0], NULL) == 0 && strtod(labels[n - 1], NULL) == 4.0);
    /* no diagonal unless asked */
    assert_null(strstr(svg, "class=\"diagonal\""));
    ich_buf_free(&b);
}

static void test_line_chart_fixed(void **state)
{
    (void)state;
    /* A ROC-like chart: fixed 0..1 axes, a point outside is clipped, the
     * diagonal, the legend in a corner. */
    double x[4] = {0, 0.5, 1.0, 1.5}, y[4] = {0, 0.9, 1.0, -0.5};
    ich_svg_series s = {.name = "any", .x = x, .y = y, .count = 4};
    ich_svg_chart c = {.title = "ROC", .series = &s, .series_count = 1, .diagonal = 1,
                       .legend = ICH_SVG_LEGEND_BOTTOM_RIGHT, .x_min = 0, .x_max = 1,
                       .y_min = 0, .y_max = 1, .width = 500, .height = 500};
    ich_buf b = {0};
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    assert_balanced_xml(b.data);
    assert_non_null(strstr(b.data, "viewBox=\"0 0 500 500\""));
    assert_non_null(strstr(b.data, "class=\"diagonal\""));
    char labels[ICH_SVG_MAX_TICKS][32];
    int n = tick_labels(b.data, "x-tick-labels", labels, ICH_SVG_MAX_TICKS);
    assert_int_equal(n, 6);
    assert_string_equal(labels[0], "0.0");
    assert_string_equal(labels[5], "1.0");
    /* The plot area's corners, from the frame; every path point inside. */
    double fx, fy, fw, fh;
    const char *frame = strstr(b.data, "<rect class=\"frame\"");
    assert_non_null(frame);
    assert_int_equal(sscanf(frame, "<rect class=\"frame\" x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
                            &fx, &fy, &fw, &fh), 4);
    const char *d = strstr(strstr(b.data, "<g class=\"series\">"), " d=\"") + 4;
    int points = 0;
    for (const char *q = d; *q != '"';) {
        double px, py;
        int used;
        if (*q == 'M' || *q == 'L' || *q == ' ') {
            q++;
            continue;
        }
        assert_int_equal(sscanf(q, "%lf %lf%n", &px, &py, &used), 2);
        assert_true(px >= fx - 0.01 && px <= fx + fw + 0.01);
        assert_true(py >= fy - 0.01 && py <= fy + fh + 0.01);
        points++;
        q += used;
    }
    /* 0->0.5->1 inside, then 1 -> 1.5 clipped at x = 1 (a degenerate
     * piece at the corner point (1, 1)) */
    assert_true(points >= 3);
    /* the corner legend sits inside the plot area's lower right */
    double lx, ly, lw, lh;
    const char *legend = strstr(b.data, "<g class=\"legend\">\n<rect");
    assert_non_null(legend);
    assert_int_equal(sscanf(legend, "<g class=\"legend\">\n<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
                            &lx, &ly, &lw, &lh), 4);
    assert_true(lx > fx + fw / 2 && lx + lw < fx + fw && ly > fy + fh / 2 && ly + lh < fy + fh);
    ich_buf_free(&b);

    /* The default legend is outside, to the right of the plot area. */
    c.legend = ICH_SVG_LEGEND_RIGHT;
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    frame = strstr(b.data, "<rect class=\"frame\"");
    assert_int_equal(sscanf(frame, "<rect class=\"frame\" x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
                            &fx, &fy, &fw, &fh), 4);
    legend = strstr(b.data, "<g class=\"legend\">\n<rect");
    assert_int_equal(sscanf(legend, "<g class=\"legend\">\n<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
                            &lx, &ly, &lw, &lh), 4);
    assert_true(lx > fx + fw && lx + lw <= 500);
    ich_buf_free(&b);
}

/* The legend box of a chart, and its plot area. */
static void legend_and_frame(const char *svg, double legend[4], double frame[4])
{
    const char *f = strstr(svg, "<rect class=\"frame\"");
    const char *l = strstr(svg, "<g class=\"legend\">\n<rect");
    assert_non_null(f);
    assert_non_null(l);
    assert_int_equal(sscanf(f, "<rect class=\"frame\" x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
                            &frame[0], &frame[1], &frame[2], &frame[3]), 4);
    assert_int_equal(sscanf(l, "<g class=\"legend\">\n<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"",
                            &legend[0], &legend[1], &legend[2], &legend[3]), 4);
}

static void test_legend_auto(void **state)
{
    (void)state;
    double x[21], roc[21], falling[21], cross_a[2] = {0, 1}, cross_b[2] = {1, 0};
    for (int i = 0; i <= 20; i++) {
        x[i] = i / 20.0;
        roc[i] = sqrt(x[i]);
        falling[i] = 0.1 + 0.8 * (1 - x[i]) * (1 - x[i]);
    }
    double legend[4], frame[4];
    ich_buf b = {0};
    /* A ROC curve leaves the lower right empty (the top right is taken). */
    ich_svg_series s = {.name = "class", .x = x, .y = roc, .count = 21};
    ich_svg_chart c = {.series = &s, .series_count = 1, .diagonal = 1,
                       .legend = ICH_SVG_LEGEND_AUTO, .x_max = 1, .y_max = 1};
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    legend_and_frame(b.data, legend, frame);
    assert_true(legend[0] > frame[0] + frame[2] / 2 && legend[0] + legend[2] < frame[0] + frame[2]);
    assert_true(legend[1] > frame[1] + frame[3] / 2 && legend[1] + legend[3] < frame[1] + frame[3]);
    ich_buf_free(&b);
    /* A falling curve leaves the top right empty. */
    s.y = falling;
    c.diagonal = 0;
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    legend_and_frame(b.data, legend, frame);
    assert_true(legend[0] > frame[0] + frame[2] / 2 && legend[1] < frame[1] + frame[3] / 2);
    ich_buf_free(&b);
    /* Two crossing diagonals touch every corner: outside on the right. */
    ich_svg_series crossing[2] = {{.name = "a", .x = cross_a, .y = cross_a, .count = 2},
                                  {.name = "b", .x = cross_a, .y = cross_b, .count = 2}};
    c.series = crossing;
    c.series_count = 2;
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    legend_and_frame(b.data, legend, frame);
    assert_true(legend[0] > frame[0] + frame[2]);
    ich_buf_free(&b);
    /* NONE: no legend at all. */
    c.legend = ICH_SVG_LEGEND_NONE;
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    assert_null(strstr(b.data, "class=\"legend\""));
    ich_buf_free(&b);
}

static void test_line_chart_edge_cases(void **state)
{
    (void)state;
    ich_buf b = {0};
    /* No series at all, and series of only NaN: still a valid chart. */
    ich_svg_chart empty = {.title = "nothing"};
    assert_int_equal(ich_svg_line_chart(&empty, &b), ICH_OK);
    assert_balanced_xml(b.data);
    assert_null(strstr(b.data, "class=\"legend\""));
    ich_buf_free(&b);
    double x[2] = {NAN, 1}, y[2] = {1, NAN};
    ich_svg_series s = {.name = "all missing", .x = x, .y = y, .count = 2};
    ich_svg_chart c = {.series = &s, .series_count = 1, .markers = 1};
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    assert_balanced_xml(b.data);
    assert_no_nan(b.data);
    assert_non_null(strstr(b.data, "2 of 2 points"));
    ich_buf_free(&b);
    /* One point: a dot. A long name is shortened in the legend. */
    double px = 3, py = 7;
    ich_svg_series one = {.name = "a very long series name that goes on and on and on",
                          .x = &px, .y = &py, .count = 1};
    c.series = &one;
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    assert_balanced_xml(b.data);
    assert_non_null(strstr(b.data, " h0\""));
    assert_non_null(strstr(b.data, "\xe2\x80\xa6</text>"));
    ich_buf_free(&b);
    /* Ten series: colours repeat, dashed from the ninth on. */
    ich_svg_series many[10];
    for (int i = 0; i < 10; i++)
        many[i] = (ich_svg_series){.name = "s", .x = &px, .y = &py, .count = 1};
    c.series = many;
    c.series_count = 10;
    c.height = 150; /* too small for the legend: grows */
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_OK);
    assert_balanced_xml(b.data);
    assert_null(strstr(b.data, "height=\"150\""));
    assert_int_equal(count_occurrences(b.data, "class=\"legend-entry\""), 10);
    assert_int_equal(count_occurrences(b.data, "stroke-dasharray=\"7 4\""), 4);
    ich_buf_free(&b);
}

static void test_line_chart_errors(void **state)
{
    (void)state;
    ich_buf b = {0};
    ich_svg_chart c = {0};
    assert_int_equal(ich_svg_line_chart(NULL, &b), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_svg_line_chart(&c, NULL), ICH_ERR_INVALID_ARGUMENT);
    c.series_count = 1;
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_ERR_INVALID_ARGUMENT);
    double v[2] = {0, 1e308}, w[2] = {-1e308, 1e308};
    ich_svg_series s = {.x = v, .y = NULL, .count = 2};
    c.series = &s;
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "series 1"));
    s.count = -1;
    s.y = v;
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_ERR_INVALID_ARGUMENT);
    s.count = 2;
    s.x = w; /* x range overflows */
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "x range"));
    s.x = v;
    c.y_min = 0;
    c.y_max = INFINITY;
    assert_int_equal(ich_svg_line_chart(&c, &b), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "y range"));
    assert_int_equal(b.length, 0); /* nothing written on failure */
    ich_buf failed = {.failed = 1};
    c.y_max = 0;
    assert_int_equal(ich_svg_line_chart(&c, &failed), ICH_ERR_NO_MEMORY);
}

/* ---- confusion matrix ------------------------------------------------------ */

static void test_confusion(void **state)
{
    (void)state;
    const int64_t counts[2][2] = {{50, 10}, {5, 35}};
    ich_buf b = {0};
    assert_int_equal(ich_svg_confusion_matrix("subdural <test>", counts, &b), ICH_OK);
    const char *svg = b.data;
    assert_balanced_xml(svg);
    assert_readable(svg);
    assert_no_nan(svg);
    assert_non_null(strstr(svg, ">subdural &lt;test&gt;</text>"));
    assert_int_equal(count_occurrences(svg, "class=\"count\""), 4);
    /* the four counts in order tn, fp, fn, tp, each with its row share */
    const char *p = svg;
    const char *expected[4][2] = {{">50<", ">83.3% of row<"}, {">10<", ">16.7% of row<"},
                                  {">5<", ">12.5% of row<"}, {">35<", ">87.5% of row<"}};
    for (int i = 0; i < 4; i++) {
        p = strstr(p, "class=\"count\"");
        assert_non_null(p);
        assert_non_null(strstr(p, expected[i][0]));
        assert_true(strstr(p, expected[i][0]) < strstr(p, expected[i][1]));
        p++;
    }
    assert_non_null(strstr(svg, ">actual</text>"));
    assert_non_null(strstr(svg, ">predicted</text>"));
    assert_int_equal(count_occurrences(svg, ">negative</text>"), 2);
    assert_int_equal(count_occurrences(svg, ">positive</text>"), 2);
    assert_non_null(strstr(svg, "n = 100"));
    /* colour by share of the row: darker for a larger share, so by
     * brightness FN (12.5 %) > FP (16.7 %) > TN (83.3 %) > TP (87.5 %) */
    int brightness[4];
    p = svg;
    for (int i = 0; i < 4; i++) {
        p = strstr(p, "<g class=\"cell\">\n<rect");
        assert_non_null(p);
        const char *fill = strstr(p, "fill=\"#") + 7;
        unsigned r, g, bl;
        assert_int_equal(sscanf(fill, "%2x%2x%2x", &r, &g, &bl), 3);
        brightness[i] = (int)(r + g + bl);
        p++;
    }
    assert_true(brightness[2] > brightness[1] && brightness[1] > brightness[0] &&
                brightness[0] > brightness[3]);
    ich_buf_free(&b);

    /* An empty row: "no cases", no division by zero. */
    const int64_t no_negatives[2][2] = {{0, 0}, {3, 7}};
    assert_int_equal(ich_svg_confusion_matrix(NULL, no_negatives, &b), ICH_OK);
    assert_balanced_xml(b.data);
    assert_no_nan(b.data);
    assert_int_equal(count_occurrences(b.data, ">no cases<"), 2);
    assert_non_null(strstr(b.data, ">70.0% of row<"));
    ich_buf_free(&b);

    const int64_t negative[2][2] = {{1, -1}, {0, 0}};
    assert_int_equal(ich_svg_confusion_matrix("x", negative, &b), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_svg_confusion_matrix("x", NULL, &b), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_svg_confusion_matrix("x", counts, NULL), ICH_ERR_INVALID_ARGUMENT);
}

/* ---- tables, HTML ---------------------------------------------------------- */

static ich_table *sample_table(void)
{
    ich_table *t = ich_table_create(4, (const char *const[]){"class", "auc", "count", "note"});
    assert_non_null(t);
    ich_table_text(t, "any");
    ich_table_number(t, 0.1);
    ich_table_integer(t, 1234567890123LL);
    ich_table_text(t, "a, \"quoted\"\nline");
    ich_table_text(t, "<epi&dural>");
    ich_table_number(t, 1.0 / 3.0);
    ich_table_integer(t, -5);
    ich_table_undefined(t);
    ich_table_text(t, "subdural");
    ich_table_number(t, NAN);
    ich_table_number(t, 1e-300);
    ich_table_text(t, NULL);
    ich_table_text(t, "partial"); /* a started last row */
    ich_table_number(t, -0.0);
    return t;
}

static void test_table_csv(void **state)
{
    (void)state;
    ich_table *t = sample_table();
    assert_int_equal(ich_table_rows(t), 4);
    ich_buf b = {0};
    assert_int_equal(ich_table_csv(t, &b), ICH_OK);
    ich_csv *csv = NULL;
    assert_int_equal(ich_csv_parse(b.data, b.length, "table", &csv), ICH_OK);
    assert_int_equal(ich_csv_columns(csv), 4);
    assert_int_equal(ich_csv_rows(csv), 4);
    assert_string_equal(ich_csv_header(csv, 1), "auc");
    assert_string_equal(ich_csv_cell(csv, 0, 1), "0.1"); /* shortest exact form */
    assert_true(strtod(ich_csv_cell(csv, 1, 1), NULL) == 1.0 / 3.0);
    assert_true(strtod(ich_csv_cell(csv, 2, 2), NULL) == 1e-300);
    assert_string_equal(ich_csv_cell(csv, 0, 2), "1234567890123");
    assert_string_equal(ich_csv_cell(csv, 1, 2), "-5");
    assert_string_equal(ich_csv_cell(csv, 0, 3), "a, \"quoted\"\nline");
    assert_string_equal(ich_csv_cell(csv, 1, 3), ""); /* undefined */
    assert_string_equal(ich_csv_cell(csv, 2, 1), ""); /* NaN */
    assert_string_equal(ich_csv_cell(csv, 3, 0), "partial");
    assert_string_equal(ich_csv_cell(csv, 3, 1), "-0");
    assert_string_equal(ich_csv_cell(csv, 3, 3), ""); /* padding */
    ich_csv_free(csv);
    ich_buf_free(&b);

    assert_int_equal(ich_table_csv(NULL, &b), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_table_csv(t, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_buf failed = {.failed = 1};
    assert_int_equal(ich_table_csv(t, &failed), ICH_ERR_NO_MEMORY);
    ich_table_free(t);
    ich_table_free(NULL);
    assert_null(ich_table_create(0, NULL));
    /* a NULL header gives empty names */
    t = ich_table_create(2, NULL);
    assert_non_null(t);
    assert_int_equal(ich_table_rows(t), 0);
    assert_int_equal(ich_table_csv(t, &b), ICH_OK);
    assert_string_equal(b.data, ",\n");
    ich_buf_free(&b);
    ich_table_free(t);
}

static void test_html(void **state)
{
    (void)state;
    ich_table *t = sample_table();
    ich_buf svg = {0};
    const int64_t counts[2][2] = {{1, 2}, {3, 4}};
    assert_int_equal(ich_svg_confusion_matrix("cm", counts, &svg), ICH_OK);
    ich_buf h = {0};
    ich_html_begin(&h, "Evaluation <test> & more");
    ich_html_heading(&h, "Per class \"metrics\"");
    ich_html_paragraph(&h, "AUC < 1 & F1 > 0");
    assert_int_equal(ich_html_table(&h, t, "Per-class <table>"), ICH_OK);
    ich_html_figure(&h, svg.data, "Confusion matrix", "cm <1>.svg");
    ich_html_figure(&h, "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>", NULL, NULL);
    ich_html_end(&h);
    assert_false(h.failed);
    const char *html = h.data;
    assert_true(strncmp(html, "<!DOCTYPE html>\n<html lang=\"en\">", 32) == 0);
    assert_non_null(strstr(html, "<meta charset=\"utf-8\">"));
    assert_non_null(strstr(html, "<title>Evaluation &lt;test&gt; &amp; more</title>"));
    assert_non_null(strstr(html, "<h1>Evaluation &lt;test&gt; &amp; more</h1>"));
    assert_non_null(strstr(html, "<h2>Per class &quot;metrics&quot;</h2>"));
    assert_non_null(strstr(html, "<p>AUC &lt; 1 &amp; F1 &gt; 0</p>"));
    assert_non_null(strstr(html, "<caption>Per-class &lt;table&gt;</caption>"));
    assert_non_null(strstr(html, "<td>&lt;epi&amp;dural&gt;</td>"));
    assert_non_null(strstr(html, "<td class=\"num\" title=\"0.1\">0.1</td>"));
    assert_non_null(strstr(html, "<td class=\"num\" title=\"0.3333333333333333\">0.3333</td>"));
    assert_non_null(strstr(html, "<td class=\"num\">1234567890123</td>"));
    assert_int_equal(count_occurrences(html, "<td class=\"undef\">undefined</td>"), 2);
    /* numeric columns get right-aligned headers, text columns not */
    assert_non_null(strstr(html, "<th>class</th><th class=\"num\">auc</th><th class=\"num\">count</th><th>note</th>"));
    assert_int_equal(count_occurrences(html, "<tr>"), 5);
    /* the SVG inline, without its XML declaration; the caption links the file */
    assert_null(strstr(html, "<?xml"));
    assert_int_equal(count_occurrences(html, "<svg xmlns="), 2);
    assert_non_null(strstr(html, "<figcaption>Confusion matrix (<a href=\"cm &lt;1&gt;.svg\">"));
    /* self-contained: no scripts, no external style sheets, images or fonts */
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, "src="));
    assert_null(strstr(html, "url("));
    assert_null(strstr(html, "@import"));
    assert_no_nan(html);
    assert_non_null(strstr(html, "</body>\n</html>\n"));
    ich_buf_free(&h);
    ich_buf_free(&svg);
    ich_table_free(t);
}

/* ---- JSON ------------------------------------------------------------------ */

static void test_json(void **state)
{
    (void)state;
    ich_json j = {0};
    ich_json_object_begin(&j);
    ich_json_key(&j, "labels");
    ich_json_array_begin(&j);
    ich_json_string(&j, "any");
    ich_json_string(&j, "a\"b\\c\n\x01\xff");
    ich_json_array_end(&j);
    ich_json_key(&j, "auc");
    ich_json_number(&j, 0.1);
    ich_json_key(&j, "undefined");
    ich_json_number(&j, NAN);
    ich_json_key(&j, "inf");
    ich_json_number(&j, -INFINITY);
    ich_json_key(&j, "n");
    ich_json_integer(&j, -9007199254740993LL);
    ich_json_key(&j, "ok");
    ich_json_bool(&j, 1);
    ich_json_key(&j, "none");
    ich_json_string(&j, NULL);
    ich_json_key(&j, "roc");
    ich_json_array_begin(&j);
    ich_json_array_begin(&j);
    ich_json_number(&j, 0);
    ich_json_number(&j, 1.0 / 3.0);
    ich_json_array_end(&j);
    ich_json_object_begin(&j);
    ich_json_object_end(&j);
    ich_json_array_end(&j);
    ich_json_key(&j, "empty");
    ich_json_array_begin(&j);
    ich_json_array_end(&j);
    ich_json_object_end(&j);
    assert_int_equal(ich_json_finish(&j), ICH_OK);
    assert_string_equal(j.buf.data,
                        "{\n"
                        "  \"labels\": [\"any\", \"a\\\"b\\\\c\\n\\u0001\\ufffd\"],\n"
                        "  \"auc\": 0.1,\n"
                        "  \"undefined\": null,\n"
                        "  \"inf\": null,\n"
                        "  \"n\": -9007199254740993,\n"
                        "  \"ok\": true,\n"
                        "  \"none\": null,\n"
                        "  \"roc\": [\n"
                        "    [0, 0.3333333333333333],\n"
                        "    {}\n"
                        "  ],\n"
                        "  \"empty\": []\n"
                        "}\n");
    assert_int_equal(ich_json_finish(&j), ICH_OK); /* idempotent */
    assert_int_equal(j.buf.data[j.buf.length - 2], '}');
    ich_json_free(&j);

    /* A scalar document. */
    ich_json s = {0};
    ich_json_number(&s, 2.5);
    assert_int_equal(ich_json_finish(&s), ICH_OK);
    assert_string_equal(s.buf.data, "2.5\n");
    ich_json_free(&s);
}

static void expect_misuse(ich_json *j, const char *words)
{
    assert_int_equal(ich_json_finish(j), ICH_ERR_INTERNAL);
    assert_non_null(strstr(ich_last_error(), words));
    ich_json_free(j);
    *j = (ich_json){0};
}

static void test_json_misuse(void **state)
{
    (void)state;
    ich_json j = {0};
    expect_misuse(&j, "no value");
    ich_json_object_begin(&j);
    ich_json_number(&j, 1);
    expect_misuse(&j, "without a key");
    ich_json_array_begin(&j);
    ich_json_key(&j, "k");
    expect_misuse(&j, "outside an object");
    ich_json_object_begin(&j);
    ich_json_key(&j, "k");
    ich_json_key(&j, "k2");
    expect_misuse(&j, "two keys");
    ich_json_object_begin(&j);
    ich_json_key(&j, "k");
    ich_json_object_end(&j);
    expect_misuse(&j, "key without a value");
    ich_json_array_begin(&j);
    ich_json_object_end(&j);
    expect_misuse(&j, "object end without");
    ich_json_array_end(&j);
    expect_misuse(&j, "array end without");
    ich_json_array_begin(&j);
    expect_misuse(&j, "unclosed");
    ich_json_null(&j);
    ich_json_null(&j);
    expect_misuse(&j, "second top-level");
    for (int i = 0; i <= ICH_JSON_MAX_DEPTH; i++)
        ich_json_array_begin(&j);
    expect_misuse(&j, "deeper");
    assert_int_equal(ich_json_finish(NULL), ICH_ERR_INVALID_ARGUMENT);
}

/* ---- files ----------------------------------------------------------------- */

static void test_write(void **state)
{
    const char *dir = *state;
    char path[512];
    ich_buf b = {0};
    ich_buf_printf(&b, "hello");
    tu_join(path, sizeof path, dir, "a/b/c.txt");
    assert_int_equal(ich_report_write(path, &b), ICH_OK);
    size_t size = 0;
    uint8_t *data = tu_read_file(path, &size);
    assert_non_null(data);
    assert_int_equal(size, 5);
    assert_memory_equal(data, "hello", 5);
    free(data);
    ich_buf_free(&b);
    /* an empty buffer writes an empty file */
    assert_int_equal(ich_report_write(path, &b), ICH_OK);
    assert_int_equal(tu_file_size(path), 0);
    ich_buf failed = {.failed = 1};
    assert_int_equal(ich_report_write(path, &failed), ICH_ERR_NO_MEMORY);
    assert_non_null(strstr(ich_last_error(), "c.txt"));
    assert_int_equal(ich_report_write(NULL, &b), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_report_write(path, NULL), ICH_ERR_INVALID_ARGUMENT);
    /* a folder where the file should go: an I/O error, nothing left over */
    tu_join(path, sizeof path, dir, "a/b");
    ich_buf_printf(&b, "x");
    assert_int_equal(ich_report_write(path, &b), ICH_ERR_IO);
    tu_join(path, sizeof path, dir, "a");
    assert_int_equal(tu_dir_count(path, NULL, 0), 1);
    /* JSON to a file; a misused writer writes nothing */
    ich_json j = {0};
    ich_json_array_begin(&j);
    ich_json_array_end(&j);
    tu_join(path, sizeof path, dir, "x.json");
    assert_int_equal(ich_json_write(&j, path), ICH_OK);
    assert_int_equal(tu_file_size(path), 3);
    ich_json_free(&j);
    j = (ich_json){0};
    ich_json_array_begin(&j);
    tu_join(path, sizeof path, dir, "y.json");
    assert_int_equal(ich_json_write(&j, path), ICH_ERR_INTERNAL);
    assert_false(tu_exists(path));
    ich_json_free(&j);
    ich_buf_free(&b);
}

/* ---- samples for tests/cli/test_svg_report.py ------------------------------ */

static const char *const CLASSES[6] = {"any", "epidural", "intraparenchymal",
                                       "intraventricular", "subarachnoid", "subdural"};

static void write_buf(const char *dir, const char *name, const ich_buf *b)
{
    char path[512];
    assert_false(b->failed);
    assert_int_equal(ich_report_write(tu_join(path, sizeof path, dir, name), b), ICH_OK);
}

static void write_svg(const char *dir, const char *name, const ich_svg_chart *c, ich_buf *page,
                      const char *caption)
{
    ich_buf b = {0};
    assert_int_equal(ich_svg_line_chart(c, &b), ICH_OK);
    assert_balanced_xml(b.data);
    assert_no_nan(b.data);
    write_buf(dir, name, &b);
    ich_html_figure(page, b.data, caption, name);
    ich_buf_free(&b);
}

/* Range charts: 10 points from (x_lo, y_lo) to (x_hi, y_hi), y growing
 * with the square of the position. */
static void range_chart(const char *dir, const char *name, double x_lo, double x_hi,
                        double y_lo, double y_hi, ich_buf *page)
{
    double x[10], y[10];
    for (int i = 0; i < 10; i++) {
        double t = i / 9.0;
        x[i] = x_lo + (x_hi - x_lo) * t;
        y[i] = y_lo + (y_hi - y_lo) * t * t;
    }
    ich_svg_series s = {.name = "data", .x = x, .y = y, .count = 10};
    char title[128];
    snprintf(title, sizeof title, "x %g..%g, y %g..%g", x_lo, x_hi, y_lo, y_hi);
    ich_svg_chart c = {.title = title, .x_label = "x", .y_label = "y", .series = &s,
                       .series_count = 1, .markers = 1};
    write_svg(dir, name, &c, page, title);
}

static void write_samples(const char *dir)
{
    assert_int_equal(ich_make_dirs(dir), ICH_OK);
    ich_buf page = {0};
    ich_html_begin(&page, "Sample evaluation report");
    ich_html_paragraph(&page, "Synthetic numbers written by tests/test_report.c & checked by "
                              "tests/cli/test_svg_report.py.");

    /* ROC curves of the six classes: y = 1 - (1 - x)^(k + 2), 51 points. */
    double fpr[51], tpr[6][51];
    ich_svg_series roc[6];
    for (int i = 0; i <= 50; i++)
        fpr[i] = i / 50.0;
    for (int k = 0; k < 6; k++) {
        for (int i = 0; i <= 50; i++)
            tpr[k][i] = 1.0 - pow(1.0 - fpr[i], k + 2);
        roc[k] = (ich_svg_series){.name = CLASSES[k], .x = fpr, .y = tpr[k], .count = 51};
    }
    ich_svg_chart c = {.title = "ROC curves", .x_label = "false positive rate (1 - specificity)",
                       .y_label = "true positive rate (sensitivity)", .series = roc,
                       .series_count = 6, .diagonal = 1, .legend = ICH_SVG_LEGEND_AUTO,
                       .x_min = 0, .x_max = 1, .y_min = 0, .y_max = 1, .width = 560,
                       .height = 520};
    ich_html_heading(&page, "Figures");
    write_svg(dir, "roc.svg", &c, &page, "ROC curves");

    /* Loss per epoch: training and validation, validation not measured at
     * epoch 5. */
    double epoch[12], train[12], val[12];
    for (int e = 0; e < 12; e++) {
        epoch[e] = e + 1;
        train[e] = 0.7 * exp(-0.25 * (e + 1)) + 0.05;
        val[e] = e == 4 ? NAN : 0.75 * exp(-0.2 * (e + 1)) + 0.08;
    }
    ich_svg_series loss[2] = {{.name = "training", .x = epoch, .y = train, .count = 12},
                              {.name = "validation", .x = epoch, .y = val, .count = 12,
                               .dashed = 1}};
    c = (ich_svg_chart){.title = "Loss per epoch", .x_label = "epoch", .y_label = "BCE loss",
                        .series = loss, .series_count = 2, .markers = 1,
                        .legend = ICH_SVG_LEGEND_AUTO};
    write_svg(dir, "loss.svg", &c, &page, "Loss per epoch");

    range_chart(dir, "range_a.svg", 0, 1, 0, 0.37, &page);
    range_chart(dir, "range_b.svg", 3, 1700, 1e-5, 1e-3, &page);

    /* Escaping. */
    double ex[3] = {0, 1, 2}, ey1[3] = {1, 2, 3}, ey2[3] = {3, 2, 1};
    ich_svg_series esc[2] = {{.name = "<a&b>", .x = ex, .y = ey1, .count = 3},
                             {.name = "\"quoted\" & 'apostrophe'", .x = ex, .y = ey2, .count = 3}};
    c = (ich_svg_chart){.title = "Escaping <a&b> \"test\"", .x_label = "x < 3",
                        .y_label = "y > 0 & finite", .series = esc, .series_count = 2,
                        .legend = ICH_SVG_LEGEND_AUTO};
    write_svg(dir, "escape.svg", &c, &page, "Escaping");

    /* Confusion matrices. */
    const int64_t cm[2][2] = {{50, 10}, {5, 35}};
    const int64_t cm_empty[2][2] = {{0, 0}, {3, 7}};
    ich_buf b = {0};
    assert_int_equal(ich_svg_confusion_matrix("Confusion matrix: any (threshold 0.5)", cm, &b),
                     ICH_OK);
    write_buf(dir, "confusion.svg", &b);
    ich_html_figure(&page, b.data, "Confusion matrix: any", "confusion.svg");
    ich_buf_free(&b);
    assert_int_equal(ich_svg_confusion_matrix("Confusion matrix: epidural", cm_empty, &b),
                     ICH_OK);
    write_buf(dir, "confusion_empty.svg", &b);
    ich_html_figure(&page, b.data, "Confusion matrix: epidural", "confusion_empty.svg");
    ich_buf_free(&b);

    /* A table: class, auc = 0.5 + k / 12 (undefined for class 1), count =
     * 1000 * (k + 1), f1 = 1 / (k + 3). */
    ich_table *t = ich_table_create(4, (const char *const[]){"class", "auc", "count", "f1"});
    for (int k = 0; k < 6; k++) {
        ich_table_text(t, CLASSES[k]);
        ich_table_number(t, k == 1 ? NAN : 0.5 + k / 12.0);
        ich_table_integer(t, 1000 * (k + 1));
        ich_table_number(t, 1.0 / (k + 3));
    }
    ich_html_heading(&page, "Per class");
    assert_int_equal(ich_html_table(&page, t, "Per-class metrics"), ICH_OK);
    assert_int_equal(ich_table_csv(t, &b), ICH_OK);
    write_buf(dir, "table.csv", &b);
    ich_buf_free(&b);
    ich_table_free(t);

    /* The same numbers as JSON. */
    ich_json j = {0};
    ich_json_object_begin(&j);
    ich_json_key(&j, "classes");
    ich_json_array_begin(&j);
    for (int k = 0; k < 6; k++)
        ich_json_string(&j, CLASSES[k]);
    ich_json_array_end(&j);
    ich_json_key(&j, "auc");
    ich_json_array_begin(&j);
    for (int k = 0; k < 6; k++)
        ich_json_number(&j, k == 1 ? NAN : 0.5 + k / 12.0);
    ich_json_array_end(&j);
    ich_json_key(&j, "confusion");
    ich_json_array_begin(&j);
    for (int i = 0; i < 2; i++) {
        ich_json_array_begin(&j);
        for (int k = 0; k < 2; k++)
            ich_json_integer(&j, cm[i][k]);
        ich_json_array_end(&j);
    }
    ich_json_array_end(&j);
    ich_json_key(&j, "name <&> \"quoted\"");
    ich_json_string(&j, "tab\there, newline\nthere, \\ backslash, caf\xc3\xa9");
    ich_json_object_end(&j);
    char path[512];
    assert_int_equal(ich_json_write(&j, tu_join(path, sizeof path, dir, "metrics.json")), ICH_OK);
    ich_json_free(&j);

    ich_html_end(&page);
    write_buf(dir, "report.html", &page);
    ich_buf_free(&page);
}

static void test_samples(void **state)
{
    const char *dir = getenv("ICH_REPORT_SAMPLES");
    if (!dir || !*dir)
        dir = *state;
    write_samples(dir);
    char path[512], names[1024];
    const char *expected[] = {"roc.svg", "loss.svg", "range_a.svg", "range_b.svg",
                              "escape.svg", "confusion.svg", "confusion_empty.svg",
                              "table.csv", "metrics.json", "report.html"};
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
        assert_true(tu_file_size(tu_join(path, sizeof path, dir, expected[i])) > 0);
    if (dir == *state) /* only our files, no temporary leftovers */
        assert_int_equal(tu_dir_count(dir, names, sizeof names), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nice_ticks),
        cmocka_unit_test(test_format_tick),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_line_chart),
        cmocka_unit_test(test_line_chart_fixed),
        cmocka_unit_test(test_legend_auto),
        cmocka_unit_test(test_line_chart_edge_cases),
        cmocka_unit_test(test_line_chart_errors),
        cmocka_unit_test(test_confusion),
        cmocka_unit_test(test_table_csv),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_misuse),
        cmocka_unit_test_setup_teardown(test_write, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_samples, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
