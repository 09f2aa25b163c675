/* Internal: SVG plots for the evaluation report (line charts such as ROC,
 * loss and accuracy curves, and 2x2 confusion-matrix heatmaps).
 *
 * Each function appends one complete standalone SVG document (XML
 * declaration, <svg> with xmlns, viewBox, width and height) to an ich_buf;
 * write it with ich_write_file_atomic or inline it in an HTML page
 * (report.h's ich_html_figure). Text uses system-ui/sans-serif at 11 px or
 * more and is XML-escaped; numbers are printed with at most 6 significant
 * digits. Points whose x or y is NaN or infinite are skipped (the line
 * breaks there) and an XML comment in the document says how many were.
 *
 * Colours come from the Okabe-Ito colour-blind-safe palette, in the order
 * blue, orange, green, vermillion, reddish purple, sky blue, black, yellow;
 * from the ninth series on the colours repeat with dashed lines.
 *
 * The functions keep no state: any thread may call them on its own buffer.
 */
#ifndef ICH_INTERNAL_SVG_H
#define ICH_INTERNAL_SVG_H

#include <stdint.h>

#include "core/fileutil.h"
#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One curve: `count` points (x[i], y[i]), drawn in the given order. */
typedef struct ich_svg_series {
    const char *name; /* shown in the legend; NULL = "series N" */
    const double *x;
    const double *y;
    int64_t count;
    int dashed; /* draw with a dashed line (say, validation beside training) */
} ich_svg_series;

/* Where the legend goes. RIGHT (the default) puts it outside the plot area,
 * so it can never cover data; the corners put it inside the plot area, for
 * charts whose data leave that corner empty (the lower right of a ROC);
 * AUTO takes the first corner (top right, bottom right, top left, bottom
 * left) where it covers no line, marker or diagonal, else RIGHT. */
typedef enum ich_svg_legend {
    ICH_SVG_LEGEND_RIGHT = 0,
    ICH_SVG_LEGEND_TOP_LEFT,
    ICH_SVG_LEGEND_TOP_RIGHT,
    ICH_SVG_LEGEND_BOTTOM_LEFT,
    ICH_SVG_LEGEND_BOTTOM_RIGHT,
    ICH_SVG_LEGEND_NONE,
    ICH_SVG_LEGEND_AUTO
} ich_svg_legend;

/* A line chart. Zero-initialise it and set what you need:
 *   ich_svg_chart c = {.title = "ROC", .x_label = "false positive rate",
 *                      .y_label = "true positive rate", .series = s,
 *                      .series_count = 6, .diagonal = 1,
 *                      .x_min = 0, .x_max = 1, .y_min = 0, .y_max = 1};
 * An axis whose max is greater than its min keeps exactly that range
 * (points outside it are clipped); otherwise the range is taken from the
 * finite data and widened to whole tick steps. */
typedef struct ich_svg_chart {
    const char *title, *x_label, *y_label; /* NULL = none */
    const ich_svg_series *series;
    int series_count;
    ich_svg_legend legend;
    int diagonal; /* draw the dashed grey line y = x (chance level of a ROC) */
    int markers;  /* draw a small circle at every point */
    double x_min, x_max, y_min, y_max;
    int width, height; /* pixels; 0 = 720 x 460 */
} ich_svg_chart;

/* Append the chart to `out` as an SVG document. ICH_ERR_INVALID_ARGUMENT
 * for NULL chart/out, a negative count, a series with points but NULL x or
 * y, a fixed range that is not finite, or data whose range is not finite
 * (1e308 - -1e308); ICH_ERR_NO_MEMORY when `out` could not grow. */
ich_status ich_svg_line_chart(const ich_svg_chart *chart, ich_buf *out);

/* Append a 2x2 confusion-matrix heatmap: counts[actual][predicted], that is
 * {{tn, fp}, {fn, tp}}. Each cell shows its count and its share of the row
 * (the cell's colour is that share: white 0 %, dark blue 100 %); a row with
 * no cases says "no cases" and stays grey. Rows are labelled "actual
 * negative/positive", columns "predicted negative/positive". `title` may
 * be NULL. ICH_ERR_INVALID_ARGUMENT for NULL counts/out or a negative
 * count; ICH_ERR_NO_MEMORY when `out` could not grow. */
ich_status ich_svg_confusion_matrix(const char *title, const int64_t counts[2][2],
                                    ich_buf *out);

/* ---- building blocks, shared with report.c and the tests ----------------- */

/* Most tick values ich_svg_nice_ticks returns. */
#define ICH_SVG_MAX_TICKS 16

/* "Nice" tick values for the data range [lo, hi]: a step of 1, 2 or 5
 * times a power of ten chosen so that about `target` (3..10) intervals
 * cover the range, the first tick at or below lo and the last at or above
 * hi, all multiples of the step. With `inside` the ticks instead lie within
 * [lo, hi] (for a fixed axis range). lo == hi is widened around the value.
 * Writes the ticks to `ticks` (ICH_SVG_MAX_TICKS room), the step to `*step`
 * when not NULL, and returns their number; 0 when lo or hi is not finite,
 * lo > hi, or hi - lo overflows. */
int ich_svg_nice_ticks(double lo, double hi, int target, int inside, double *ticks,
                       double *step);

/* Format a tick value for a label, with as many decimals as the step needs
 * and no more ("0.2", "1500", "0.0004", "2e-07"): `text` gets at most
 * `size` bytes, NUL-terminated. */
void ich_svg_format_tick(double value, double step, char *text, size_t size);

/* Append `text` escaped for XML or HTML text and attribute values (& < > "
 * '). Invalid UTF-8 bytes become U+FFFD and control characters other than
 * tab, LF and CR are dropped, so that any C string gives well-formed XML. */
void ich_svg_escape(ich_buf *buf, const char *text);

/* Bytes in the valid UTF-8 sequence that starts at `s` (1 for ASCII); 0
 * when the bytes there are not valid UTF-8 (core/utf8.h) or encode
 * U+FFFE/U+FFFF, which XML forbids. */
int ich_svg_utf8_length(const char *s);

/* The palette colour ("#0072B2") of series `index` (0-based, repeats). */
const char *ich_svg_color(int index);

#ifdef __cplusplus
}
#endif
#endif
