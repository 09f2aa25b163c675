/* CSV reader and field writer (RFC 4180 plus what real files do: a UTF-8
 * BOM, CRLF or LF line ends, blank lines, a missing final line end).
 *
 * The whole file is read into one buffer and parsed in place: unquoting
 * only ever shortens a field, so each field is rewritten at or before where
 * it was read and NUL-terminated where its delimiter was. A cell is then an
 * offset into that buffer, which keeps a file of millions of rows to three
 * allocations. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/csv.h"

struct ich_csv {
    char *name;
    char *text;      /* the parsed fields, NUL-terminated, in place */
    size_t *cells;   /* offset of each cell in text: header, then rows */
    int64_t *lines;  /* line where each record starts: header, then rows */
    int columns;
    int64_t records; /* header included */
};

/* Growable arrays of the parser. */
typedef struct parse_state {
    size_t *cells;
    size_t ncells, cap_cells;
    int64_t *lines;
    int64_t nrecords, cap_records;
} parse_state;

static int push_cell(parse_state *p, size_t offset)
{
    if (p->ncells == p->cap_cells) {
        size_t cap = p->cap_cells ? p->cap_cells * 2 : 1024;
        size_t *cells = realloc(p->cells, cap * sizeof *cells);
        if (!cells)
            return -1;
        p->cells = cells;
        p->cap_cells = cap;
    }
    p->cells[p->ncells++] = offset;
    return 0;
}

static int push_line(parse_state *p, int64_t line)
{
    if (p->nrecords == p->cap_records) {
        int64_t cap = p->cap_records ? p->cap_records * 2 : 512;
        int64_t *lines = realloc(p->lines, (size_t)cap * sizeof *lines);
        if (!lines)
            return -1;
        p->lines = lines;
        p->cap_records = cap;
    }
    p->lines[p->nrecords++] = line;
    return 0;
}

/* A record of one unquoted field holding only spaces or tabs (or nothing)
 * is a blank line. */
static int is_blank(const char *field, int quoted)
{
    if (quoted)
        return 0;
    for (; *field; field++)
        if (*field != ' ' && *field != '\t')
            return 0;
    return 1;
}

static ich_status parse(char *text, size_t length, const char *name, parse_state *p,
                        int *columns_out)
{
    size_t r = 0, w = 0;
    int64_t line = 1;
    int columns = 0;
    if (length >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        r = w = 3;
    while (r < length) {
        /* one record */
        int64_t record_line = line;
        size_t first_cell = p->ncells;
        int fields = 0, first_quoted = 0, at_end = 0;
        while (!at_end) {
            size_t start = w;
            int quoted = r < length && text[r] == '"';
            if (quoted) {
                int64_t quote_line = line;
                r++;
                for (;;) {
                    if (r >= length)
                        return ich_fail(ICH_ERR_FORMAT,
                                        "%s:%lld: quoted field not closed before the end of "
                                        "the file",
                                        name, (long long)quote_line);
                    char c = text[r];
                    if (c == '"') {
                        if (r + 1 < length && text[r + 1] == '"') {
                            text[w++] = '"';
                            r += 2;
                            continue;
                        }
                        r++;
                        break;
                    }
                    if (c == '\n')
                        line++;
                    text[w++] = c;
                    r++;
                }
                if (r < length && text[r] != ',' && text[r] != '\n' &&
                    !(text[r] == '\r' && (r + 1 == length || text[r + 1] == '\n')))
                    return ich_fail(ICH_ERR_FORMAT, "%s:%lld: text after a closing quote", name,
                                    (long long)line);
            } else {
                while (r < length) {
                    char c = text[r];
                    if (c == ',' || c == '\n' || (c == '\r' && (r + 1 == length || text[r + 1] == '\n')))
                        break;
                    text[w++] = c;
                    r++;
                }
            }
            /* the delimiter */
            if (r < length && text[r] == ',') {
                r++;
            } else {
                if (r < length && text[r] == '\r')
                    r++;
                if (r < length && text[r] == '\n') {
                    r++;
                    line++;
                }
                at_end = 1;
            }
            text[w++] = '\0';
            if (push_cell(p, start) != 0)
                return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", name);
            if (fields == 0)
                first_quoted = quoted;
            fields++;
        }
        if (fields == 1 && is_blank(text + p->cells[first_cell], first_quoted)) {
            p->ncells = first_cell;
            continue;
        }
        if (columns == 0)
            columns = fields;
        else if (fields != columns)
            return ich_fail(ICH_ERR_FORMAT, "%s:%lld: %d fields, but the header has %d", name,
                            (long long)record_line, fields, columns);
        if (push_line(p, record_line) != 0)
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", name);
    }
    if (columns == 0)
        return ich_fail(ICH_ERR_FORMAT, "%s: empty file: no header line", name);
    *columns_out = columns;
    return ICH_OK;
}

/* Takes ownership of `text` (length + 1 bytes allocated). */
static ich_status parse_owned(char *text, size_t length, const char *name, ich_csv **out)
{
    parse_state p = {0};
    int columns = 0;
    ich_csv *csv = calloc(1, sizeof *csv);
    char *name_copy = strdup(name);
    ich_status st = csv && name_copy ? parse(text, length, name, &p, &columns)
                                     : ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", name);
    if (st != ICH_OK) {
        free(p.cells);
        free(p.lines);
        free(text);
        free(name_copy);
        free(csv);
        return st;
    }
    csv->name = name_copy;
    csv->text = text;
    csv->cells = p.cells;
    csv->lines = p.lines;
    csv->columns = columns;
    csv->records = p.nrecords;
    *out = csv;
    return ICH_OK;
}

ich_status ich_csv_parse(const char *text, size_t length, const char *name, ich_csv **out)
{
    if (!out || (!text && length) || !name)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_csv_parse: NULL argument");
    *out = NULL;
    char *copy = malloc(length + 1);
    if (!copy)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", name);
    if (length)
        memcpy(copy, text, length);
    return parse_owned(copy, length, name, out);
}

ich_status ich_csv_read(const char *path, ich_csv **out)
{
    if (!out || !path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_csv_read: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ich_fail(ICH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, length = 0;
    char *text = malloc(cap);
    for (;;) {
        if (!text) {
            fclose(f);
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
        }
        length += fread(text + length, 1, cap - length, f);
        if (length < cap)
            break;
        char *bigger = realloc(text, cap * 2);
        if (!bigger)
            free(text);
        text = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(text);
        return ich_fail(ICH_ERR_IO, "%s: cannot read", path);
    }
    /* length < cap: room for the final NUL */
    return parse_owned(text, length, path, out);
}

void ich_csv_free(ich_csv *csv)
{
    if (!csv)
        return;
    free(csv->name);
    free(csv->text);
    free(csv->cells);
    free(csv->lines);
    free(csv);
}

const char *ich_csv_name(const ich_csv *csv)
{
    return csv ? csv->name : NULL;
}

int ich_csv_columns(const ich_csv *csv)
{
    return csv ? csv->columns : 0;
}

int64_t ich_csv_rows(const ich_csv *csv)
{
    return csv ? csv->records - 1 : 0;
}

const char *ich_csv_header(const ich_csv *csv, int column)
{
    if (!csv || column < 0 || column >= csv->columns)
        return NULL;
    return csv->text + csv->cells[column];
}

/* Equal ignoring ASCII case and spaces around `cell`. */
static int same_name(const char *cell, const char *name)
{
    while (*cell == ' ' || *cell == '\t')
        cell++;
    size_t n = strlen(name);
    if (strncasecmp(cell, name, n) != 0)
        return 0;
    for (cell += n; *cell; cell++)
        if (*cell != ' ' && *cell != '\t')
            return 0;
    return 1;
}

int ich_csv_find_column(const ich_csv *csv, const char *name)
{
    if (!csv || !name)
        return -1;
    for (int c = 0; c < csv->columns; c++)
        if (same_name(csv->text + csv->cells[c], name))
            return c;
    return -1;
}

const char *ich_csv_cell(const ich_csv *csv, int64_t row, int column)
{
    if (!csv || row < 0 || row >= csv->records - 1 || column < 0 || column >= csv->columns)
        return NULL;
    return csv->text + csv->cells[(size_t)(row + 1) * (size_t)csv->columns + (size_t)column];
}

int64_t ich_csv_line(const ich_csv *csv, int64_t row)
{
    if (!csv || row < 0 || row >= csv->records - 1)
        return 0;
    return csv->lines[row + 1];
}

void ich_csv_append_field(ich_buf *buf, const char *field)
{
    if (!strpbrk(field, ",\"\r\n")) {
        ich_buf_append(buf, field, strlen(field));
        return;
    }
    ich_buf_append(buf, "\"", 1);
    for (const char *q; (q = strchr(field, '"')) != NULL; field = q + 1) {
        ich_buf_append(buf, field, (size_t)(q - field) + 1);
        ich_buf_append(buf, "\"", 1);
    }
    ich_buf_append(buf, field, strlen(field));
    ich_buf_append(buf, "\"", 1);
}
