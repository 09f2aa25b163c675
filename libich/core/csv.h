/* Internal: reading and writing CSV files (RFC 4180 and what real files do).
 *
 * The reader takes a whole file: an optional UTF-8 BOM, LF or CRLF line ends,
 * quoted fields with "" escapes and embedded commas or newlines, and blank
 * lines (empty or only spaces and tabs, outside quotes: skipped). A quote
 * inside an unquoted field is kept as text; text after a closing quote is
 * an error. The first non-blank record is the header. Every data record
 * must have as many fields as the header; otherwise the error names the
 * file and the line. Cells are NUL-terminated strings owned by the table,
 * as written (unquoted, not trimmed). Line numbers count every line of the
 * file, blank ones and those inside quoted fields included.
 */
#ifndef ICH_INTERNAL_CSV_H
#define ICH_INTERNAL_CSV_H

#include <stdint.h>

#include "core/fileutil.h"
#include "ich/core.h"

typedef struct ich_csv ich_csv;

/* Read the CSV file at `path`. Errors: ICH_ERR_IO (cannot read),
 * ICH_ERR_FORMAT (no header, unterminated quote, wrong field count: the
 * message says "<path>:<line>: ..."), ICH_ERR_NO_MEMORY. */
ich_status ich_csv_read(const char *path, ich_csv **out);

/* Parse CSV text held in memory; `name` is used in messages. */
ich_status ich_csv_parse(const char *text, size_t length, const char *name, ich_csv **out);

void ich_csv_free(ich_csv *csv);

const char *ich_csv_name(const ich_csv *csv); /* the path or name given */
int ich_csv_columns(const ich_csv *csv);
int64_t ich_csv_rows(const ich_csv *csv); /* data records, header excluded */
const char *ich_csv_header(const ich_csv *csv, int column);

/* Index of the column whose header equals `name` ignoring ASCII case and
 * surrounding spaces; -1 when absent. */
int ich_csv_find_column(const ich_csv *csv, const char *name);

/* Cell of data record `row` (0-based, header excluded); NULL when out of
 * range. */
const char *ich_csv_cell(const ich_csv *csv, int64_t row, int column);

/* 1-based line number in the file where data record `row` starts; 0 when
 * out of range. */
int64_t ich_csv_line(const ich_csv *csv, int64_t row);

/* Append `field` to `buf`, quoted when it holds a comma, quote, CR or LF. */
void ich_csv_append_field(ich_buf *buf, const char *field);

#endif
