/* Internal: the parts of the label CSV reader that propagate.c shares. */
#ifndef ICH_INTERNAL_LABELS_H
#define ICH_INTERNAL_LABELS_H

#include "core/csv.h"
#include "ich/labels.h"

/* The label columns of a wide CSV: every column named after an RSNA label,
 * in the file's order; when there is none, every other column with a
 * non-empty name whose cells are all numbers. Columns whose flag in
 * `skip` (ich_csv_columns() entries, may be NULL) is set are never taken.
 * Writes up to ICH_LABELS_MAX_COLUMNS indices to `columns`, their number to
 * *count. ICH_ERR_FORMAT naming the file when there is none, or a name twice,
 * or when a candidate column is named by a number (the first line is data,
 * not a header: the message says which headers are expected). */
ich_status ich_labels_csv_label_columns(const ich_csv *csv, const unsigned char *skip,
                                        int *columns, int32_t *count);

/* Parse the label value in cell (row, column): a finite number, spaces
 * around allowed. ICH_ERR_FORMAT "<path>:<line>: ..." otherwise. */
ich_status ich_labels_csv_value(const ich_csv *csv, int64_t row, int column, float *value);

/* First column named any of `names` (NULL-terminated list, ignoring case);
 * -1 when none. */
int ich_labels_csv_find_any(const ich_csv *csv, const char *const *names);

/* A new table whose columns are the CSV's header names `columns[0..count)`
 * (trimmed). ICH_ERR_FORMAT when a name is not a valid column name. */
ich_status ich_labels_csv_create(const ich_csv *csv, const int *columns, int32_t count,
                                 ich_labels **out);

#endif
