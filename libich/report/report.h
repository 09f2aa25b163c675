/* Internal: the pieces an evaluation report is made of — a self-contained
 * HTML page (inline CSS, inline SVG figures, no external resources), tables
 * that go both into that page and into CSV files. The JSON writer they use
 * is core/json.h.
 *
 * Numbers: tables and JSON keep every double exactly (the shortest of
 * %.15g, %.16g, %.17g that reads back as the same double, so 0.1 stays
 * "0.1"); the HTML page shows 4 significant digits with the exact value in
 * the cell's tooltip. A value that is not defined (NaN, infinite, or
 * added with ich_table_undefined) is an empty CSV field, JSON null, and an
 * "undefined" cell in the page: never "nan".
 *
 * Typical use:
 *   ich_buf page = {0};
 *   ich_html_begin(&page, "Evaluation");
 *   ich_html_paragraph(&page, "2,000 images of 40 held-out patients.");
 *   ich_table *t = ich_table_create(3, (const char *[]){"class", "AUC", "F1"});
 *   ich_table_text(t, "any"); ich_table_number(t, 0.97); ich_table_undefined(t);
 *   ich_html_table(&page, t, "Per class");
 *   ich_html_figure(&page, svg_text, "ROC curves", "roc.svg");
 *   ich_html_end(&page);
 *   ich_report_write("out/report.html", &page);
 *
 * No global state: any thread may build its own page, table or JSON.
 */
#ifndef ICH_INTERNAL_REPORT_H
#define ICH_INTERNAL_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/fileutil.h"
#include "core/json.h"
#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write `buf` to `path` atomically (temporary file + rename), creating the
 * parent folders. ICH_ERR_NO_MEMORY when the buffer is incomplete (an
 * append failed), ICH_ERR_INVALID_ARGUMENT for NULL, else what
 * ich_write_file_atomic returns. */
ich_status ich_report_write(const char *path, const ich_buf *buf);

/* ---- tables ---------------------------------------------------------------- */

typedef struct ich_table ich_table;

/* A table with `columns` columns named by `header` (copied). NULL when out
 * of memory or columns < 1. */
ich_table *ich_table_create(int columns, const char *const *header);
void ich_table_free(ich_table *table); /* NULL is a no-op */

/* Append the next cell, row by row: after `columns` cells a new row
 * starts. An allocation failure is remembered and reported by the
 * functions that output the table. */
void ich_table_text(ich_table *table, const char *text); /* NULL = empty text */
void ich_table_number(ich_table *table, double value);   /* NaN/inf = undefined */
void ich_table_integer(ich_table *table, int64_t value);
void ich_table_undefined(ich_table *table);

/* Complete rows so far (a row still being filled counts once started). */
int64_t ich_table_rows(const ich_table *table);

/* Append the table as CSV (header line, then one line per row; CRLF-free,
 * "\n" line ends; a started last row is padded with empty fields).
 * ICH_ERR_INVALID_ARGUMENT for NULL, ICH_ERR_NO_MEMORY when the table or
 * `out` lost an allocation. */
ich_status ich_table_csv(const ich_table *table, ich_buf *out);

/* ---- the HTML page --------------------------------------------------------- */

/* Start the page: doctype, <head> with charset, viewport, the escaped
 * <title> and the style sheet, then <body> and an <h1> with the title. */
void ich_html_begin(ich_buf *html, const char *title);

void ich_html_heading(ich_buf *html, const char *text);   /* <h2>, escaped */
void ich_html_paragraph(ich_buf *html, const char *text); /* <p>, escaped */

/* The table with a <caption> (NULL = none): text cells left-aligned,
 * number cells right-aligned in tabular figures, undefined cells say
 * "undefined" in grey italics. Same errors as ich_table_csv. */
ich_status ich_html_table(ich_buf *html, const ich_table *table, const char *caption);

/* A <figure> holding the SVG document `svg` inline (its XML declaration
 * dropped) and a <figcaption> with `caption`; when `href` is given (the
 * SVG file's name beside the page) the caption links to it. */
void ich_html_figure(ich_buf *html, const char *svg, const char *caption, const char *href);

/* Close <body> and <html>. */
void ich_html_end(ich_buf *html);

#ifdef __cplusplus
}
#endif
#endif
