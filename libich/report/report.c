/* HTML page and tables (HTML and CSV) for evaluation reports (see
 * report.h); the JSON writer is core/json.c. */
#include "report/report.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/csv.h"
#include "report/svg.h"

ich_status ich_report_write(const char *path, const ich_buf *buf)
{
    if (!path || !buf)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "report: NULL %s", path ? "buffer" : "path");
    if (buf->failed)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory while writing the content", path);
    ich_status status = ich_make_parent_dirs(path);
    if (status != ICH_OK)
        return status;
    return ich_write_file_atomic(path, buf->data ? buf->data : "", buf->length, 0);
}

/* ---- tables ---------------------------------------------------------------- */

typedef enum cell_kind { CELL_TEXT, CELL_NUMBER, CELL_INTEGER, CELL_UNDEFINED } cell_kind;

typedef struct cell {
    cell_kind kind;
    char *text; /* CELL_TEXT */
    double number;
    int64_t integer;
} cell;

struct ich_table {
    int columns;
    char **header;
    cell *cells;
    int64_t count, capacity;
    int failed;
};

ich_table *ich_table_create(int columns, const char *const *header)
{
    if (columns < 1) {
        ich_fail(ICH_ERR_INVALID_ARGUMENT, "table: %d columns", columns);
        return NULL;
    }
    ich_table *t = calloc(1, sizeof *t);
    if (!t || !(t->header = calloc((size_t)columns, sizeof *t->header))) {
        free(t);
        return NULL;
    }
    t->columns = columns;
    for (int i = 0; i < columns; i++) {
        t->header[i] = strdup(header && header[i] ? header[i] : "");
        if (!t->header[i]) {
            ich_table_free(t);
            return NULL;
        }
    }
    return t;
}

void ich_table_free(ich_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->columns; i++)
        free(t->header[i]);
    for (int64_t i = 0; i < t->count; i++)
        free(t->cells[i].text);
    free(t->header);
    free(t->cells);
    free(t);
}

static cell *next_cell(ich_table *t)
{
    if (!t || t->failed)
        return NULL;
    if (t->count == t->capacity) {
        int64_t capacity = t->capacity ? 2 * t->capacity : 64;
        cell *cells = realloc(t->cells, (size_t)capacity * sizeof *cells);
        if (!cells) {
            t->failed = 1;
            return NULL;
        }
        t->cells = cells, t->capacity = capacity;
    }
    cell *c = &t->cells[t->count++];
    *c = (cell){.kind = CELL_UNDEFINED};
    return c;
}

void ich_table_text(ich_table *t, const char *text)
{
    cell *c = next_cell(t);
    if (!c)
        return;
    c->kind = CELL_TEXT;
    if (!(c->text = strdup(text ? text : ""))) {
        c->kind = CELL_UNDEFINED;
        t->failed = 1;
    }
}

void ich_table_number(ich_table *t, double value)
{
    cell *c = next_cell(t);
    if (c && isfinite(value))
        c->kind = CELL_NUMBER, c->number = value;
}

void ich_table_integer(ich_table *t, int64_t value)
{
    cell *c = next_cell(t);
    if (c)
        c->kind = CELL_INTEGER, c->integer = value;
}

void ich_table_undefined(ich_table *t)
{
    next_cell(t);
}

int64_t ich_table_rows(const ich_table *t)
{
    return t ? (t->count + t->columns - 1) / t->columns : 0;
}

static ich_status check_table(const ich_table *t, const ich_buf *out)
{
    if (!t || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "table: NULL %s", t ? "buffer" : "table");
    if (t->failed)
        return ich_fail(ICH_ERR_NO_MEMORY, "table: out of memory while adding cells");
    return ICH_OK;
}

/* The cell at (row, column); NULL for the padding of a started last row. */
static const cell *table_cell(const ich_table *t, int64_t row, int column)
{
    int64_t i = row * t->columns + column;
    return i < t->count ? &t->cells[i] : NULL;
}

ich_status ich_table_csv(const ich_table *t, ich_buf *out)
{
    ich_status status = check_table(t, out);
    if (status != ICH_OK)
        return status;
    for (int j = 0; j < t->columns; j++) {
        if (j)
            ich_buf_append(out, ",", 1);
        ich_csv_append_field(out, t->header[j]);
    }
    ich_buf_append(out, "\n", 1);
    for (int64_t r = 0; r < ich_table_rows(t); r++) {
        for (int j = 0; j < t->columns; j++) {
            if (j)
                ich_buf_append(out, ",", 1);
            const cell *c = table_cell(t, r, j);
            if (!c || c->kind == CELL_UNDEFINED)
                continue; /* an empty field: pandas and R read it as missing */
            if (c->kind == CELL_TEXT)
                ich_csv_append_field(out, c->text);
            else if (c->kind == CELL_NUMBER)
                ich_buf_append_double(out, c->number);
            else
                ich_buf_printf(out, "%" PRId64, c->integer);
        }
        ich_buf_append(out, "\n", 1);
    }
    return out->failed ? ich_fail(ICH_ERR_NO_MEMORY, "table: out of memory writing CSV") : ICH_OK;
}

/* ---- HTML ------------------------------------------------------------------ */

static const char STYLE[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,"
    "sans-serif;color:#222;background:#fff;max-width:1100px;margin:2em auto;padding:0 1.5em;"
    "line-height:1.45;font-size:15px}\n"
    "h1{font-size:1.6em;margin:.2em 0 .6em}h2{font-size:1.25em;margin:1.6em 0 .5em;"
    "border-bottom:1px solid #ddd;padding-bottom:.2em}\n"
    "table{border-collapse:collapse;margin:.8em 0 1.2em;font-size:14px}\n"
    "caption{text-align:left;font-weight:600;padding:.3em 0}\n"
    "th,td{border:1px solid #d5d5d5;padding:.3em .7em}\n"
    "th{background:#f2f4f7;text-align:left}\n"
    "th.num,td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "td.undef{text-align:right;color:#888;font-style:italic}\n"
    "tbody tr:nth-child(even){background:#fafbfc}\n"
    "figure{margin:1em 0 1.6em;display:inline-block;vertical-align:top}\n"
    "figure svg{max-width:100%;height:auto;display:block}\n"
    "figcaption{font-size:14px;color:#444;margin-top:.3em}\n";

void ich_html_begin(ich_buf *html, const char *title)
{
    ich_buf_printf(html, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                         "<title>");
    ich_svg_escape(html, title ? title : "Report");
    ich_buf_printf(html, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", STYLE);
    ich_svg_escape(html, title ? title : "Report");
    ich_buf_printf(html, "</h1>\n");
}

void ich_html_heading(ich_buf *html, const char *text)
{
    ich_buf_printf(html, "<h2>");
    ich_svg_escape(html, text);
    ich_buf_printf(html, "</h2>\n");
}

void ich_html_paragraph(ich_buf *html, const char *text)
{
    ich_buf_printf(html, "<p>");
    ich_svg_escape(html, text);
    ich_buf_printf(html, "</p>\n");
}

/* A column is numeric, and its header right-aligned, when every defined
 * cell in it is a number. */
static int numeric_column(const ich_table *t, int column)
{
    int numbers = 0;
    for (int64_t r = 0; r < ich_table_rows(t); r++) {
        const cell *c = table_cell(t, r, column);
        if (c && c->kind == CELL_TEXT)
            return 0;
        numbers += c && c->kind != CELL_UNDEFINED;
    }
    return numbers > 0;
}

static void html_cell(ich_buf *html, const cell *c)
{
    if (!c) {
        ich_buf_printf(html, "<td></td>");
    } else if (c->kind == CELL_TEXT) {
        ich_buf_printf(html, "<td>");
        ich_svg_escape(html, c->text);
        ich_buf_printf(html, "</td>");
    } else if (c->kind == CELL_INTEGER) {
        ich_buf_printf(html, "<td class=\"num\">%" PRId64 "</td>", c->integer);
    } else if (c->kind == CELL_NUMBER) {
        ich_buf_printf(html, "<td class=\"num\" title=\"");
        ich_buf_append_double(html, c->number);
        ich_buf_printf(html, "\">%.4g</td>", c->number == 0.0 ? 0.0 : c->number);
    } else {
        ich_buf_printf(html, "<td class=\"undef\">undefined</td>");
    }
}

ich_status ich_html_table(ich_buf *html, const ich_table *t, const char *caption)
{
    ich_status status = check_table(t, html);
    if (status != ICH_OK)
        return status;
    ich_buf_printf(html, "<table>\n");
    if (caption) {
        ich_buf_printf(html, "<caption>");
        ich_svg_escape(html, caption);
        ich_buf_printf(html, "</caption>\n");
    }
    ich_buf_printf(html, "<thead><tr>");
    for (int j = 0; j < t->columns; j++) {
        ich_buf_printf(html, numeric_column(t, j) ? "<th class=\"num\">" : "<th>");
        ich_svg_escape(html, t->header[j]);
        ich_buf_printf(html, "</th>");
    }
    ich_buf_printf(html, "</tr></thead>\n<tbody>\n");
    for (int64_t r = 0; r < ich_table_rows(t); r++) {
        ich_buf_printf(html, "<tr>");
        for (int j = 0; j < t->columns; j++)
            html_cell(html, table_cell(t, r, j));
        ich_buf_printf(html, "</tr>\n");
    }
    ich_buf_printf(html, "</tbody>\n</table>\n");
    return html->failed ? ich_fail(ICH_ERR_NO_MEMORY, "table: out of memory writing HTML")
                        : ICH_OK;
}

void ich_html_figure(ich_buf *html, const char *svg, const char *caption, const char *href)
{
    ich_buf_printf(html, "<figure>\n");
    if (svg) {
        /* An XML declaration is not allowed inside HTML. */
        if (strncmp(svg, "<?xml", 5) == 0) {
            const char *end = strstr(svg, "?>");
            if (end) {
                svg = end + 2;
                while (*svg == '\n' || *svg == '\r')
                    svg++;
            }
        }
        ich_buf_append(html, svg, strlen(svg));
    }
    if (caption || href) {
        ich_buf_printf(html, "<figcaption>");
        ich_svg_escape(html, caption ? caption : "");
        if (href) {
            ich_buf_printf(html, "%s(<a href=\"", caption ? " " : "");
            ich_svg_escape(html, href);
            ich_buf_printf(html, "\">");
            ich_svg_escape(html, href);
            ich_buf_printf(html, "</a>)");
        }
        ich_buf_printf(html, "</figcaption>\n");
    }
    ich_buf_printf(html, "</figure>\n");
}

void ich_html_end(ich_buf *html)
{
    ich_buf_printf(html, "</body>\n</html>\n");
}
