/* Label tables: rows of (image ID, label values, group), found by ID through
 * a hash table so that tables of a few million rows are built in seconds;
 * reading and writing them as long (RSNA) or wide CSV files; the "any"
 * check. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "core/csv.h"
#include "data/labels_internal.h"
#include "ich/labels.h"

static const char *const rsna_names[ICH_LABEL_COUNT] = {
    "any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"};

struct ich_labels {
    int32_t columns;
    char **names;
    int64_t rows;
    int64_t capacity;
    char **ids;
    float *values;   /* rows x columns */
    char **groups;   /* NULL entries: no group */
    int64_t *slots;  /* open addressing: row + 1, 0 = empty */
    uint64_t nslots; /* a power of two, at least twice the rows */
};

const char *ich_label_name(int index)
{
    return index >= 0 && index < ICH_LABEL_COUNT ? rsna_names[index] : NULL;
}

/* ---- Hash table of IDs --------------------------------------------------- */

/* FNV-1a, then a final mix so that the low bits used as slot index vary. */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* Slot holding the ID s[0..n), or the empty slot where it would go. */
static uint64_t find_slot(const ich_labels *labels, const char *s, size_t n)
{
    uint64_t mask = labels->nslots - 1;
    uint64_t i = hash_bytes(s, n) & mask;
    for (;;) {
        int64_t row = labels->slots[i];
        if (row == 0)
            return i;
        const char *id = labels->ids[row - 1];
        if (strncmp(id, s, n) == 0 && id[n] == '\0')
            return i;
        i = (i + 1) & mask;
    }
}

static int grow_slots(ich_labels *labels, uint64_t nslots)
{
    int64_t *slots = calloc(nslots, sizeof *slots);
    if (!slots)
        return -1;
    free(labels->slots);
    labels->slots = slots;
    labels->nslots = nslots;
    for (int64_t r = 0; r < labels->rows; r++) {
        const char *id = labels->ids[r];
        labels->slots[find_slot(labels, id, strlen(id))] = r + 1;
    }
    return 0;
}

/* Row of the ID s[0..n) (not necessarily NUL-terminated); -1 when absent.
 * Internal, used by the CSV readers to look up a part of a cell. */
static int64_t find_n(const ich_labels *labels, const char *s, size_t n)
{
    if (!labels->nslots)
        return -1;
    return labels->slots[find_slot(labels, s, n)] - 1;
}

/* ---- Tables -------------------------------------------------------------- */

static int valid_column_name(const char *name)
{
    if (!name || !name[0])
        return 0;
    return strpbrk(name, ",\"\r\n") == NULL;
}

ich_status ich_labels_create(const char *const *names, int32_t count, ich_labels **out)
{
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_create: out is NULL");
    *out = NULL;
    if (!names && count == 0) {
        names = rsna_names;
        count = ICH_LABEL_COUNT;
    }
    if (!names || count < 1 || count > ICH_LABELS_MAX_COLUMNS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_labels_create: need 1 to %d column names, got %d",
                        ICH_LABELS_MAX_COLUMNS, (int)count);
    for (int32_t c = 0; c < count; c++) {
        if (!valid_column_name(names[c]))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_labels_create: column %d: name empty or holds a comma, "
                            "quote or line break",
                            (int)c);
        for (int32_t d = 0; d < c; d++)
            if (strcasecmp(names[c], names[d]) == 0)
                return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                                "ich_labels_create: column \"%s\" given twice", names[c]);
    }
    ich_labels *labels = calloc(1, sizeof *labels);
    if (!labels)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_labels_create: out of memory");
    labels->names = calloc((size_t)count, sizeof *labels->names);
    if (!labels->names) {
        free(labels);
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_labels_create: out of memory");
    }
    labels->columns = count;
    for (int32_t c = 0; c < count; c++) {
        labels->names[c] = strdup(names[c]);
        if (!labels->names[c]) {
            ich_labels_free(labels);
            return ich_fail(ICH_ERR_NO_MEMORY, "ich_labels_create: out of memory");
        }
    }
    *out = labels;
    return ICH_OK;
}

ich_status ich_labels_copy(const ich_labels *labels, ich_labels **out)
{
    if (out)
        *out = NULL;
    if (!out || !labels)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_copy: NULL argument");
    ich_labels *copy = NULL;
    ich_status st = ich_labels_create((const char *const *)labels->names, labels->columns, &copy);
    for (int64_t r = 0; st == ICH_OK && r < labels->rows; r++)
        st = ich_labels_add(copy, ich_labels_id(labels, r), ich_labels_values(labels, r),
                            ich_labels_group(labels, r));
    if (st != ICH_OK) {
        ich_labels_free(copy);
        copy = NULL;
    }
    *out = copy;
    return st;
}

void ich_labels_free(ich_labels *labels)
{
    if (!labels)
        return;
    for (int64_t r = 0; r < labels->rows; r++) {
        free(labels->ids[r]);
        free(labels->groups[r]);
    }
    if (labels->names)
        for (int32_t c = 0; c < labels->columns; c++)
            free(labels->names[c]);
    free(labels->names);
    free(labels->ids);
    free(labels->values);
    free(labels->groups);
    free(labels->slots);
    free(labels);
}

static int reserve_rows(ich_labels *labels, int64_t rows)
{
    if (rows <= labels->capacity)
        return 0;
    int64_t capacity = labels->capacity ? labels->capacity : 64;
    while (capacity < rows)
        capacity *= 2;
    char **ids = realloc(labels->ids, (size_t)capacity * sizeof *ids);
    if (!ids)
        return -1;
    labels->ids = ids;
    char **groups = realloc(labels->groups, (size_t)capacity * sizeof *groups);
    if (!groups)
        return -1;
    labels->groups = groups;
    float *values =
        realloc(labels->values, (size_t)capacity * (size_t)labels->columns * sizeof *values);
    if (!values)
        return -1;
    labels->values = values;
    labels->capacity = capacity;
    return 0;
}

/* Append a row whose ID is s[0..n); the caller has checked the values.
 * Returns ICH_ERR_INVALID_ARGUMENT for a duplicate ID (message set). */
static ich_status add_row_n(ich_labels *labels, const char *id, size_t n, const float *values,
                            const char *group)
{
    if ((uint64_t)(labels->rows + 1) * 2 > labels->nslots &&
        grow_slots(labels, labels->nslots ? labels->nslots * 2 : 128) != 0)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_labels_add: out of memory");
    uint64_t slot = find_slot(labels, id, n);
    if (labels->slots[slot])
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_add: duplicate image ID \"%.*s\"",
                        (int)n, id);
    if (reserve_rows(labels, labels->rows + 1) != 0)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_labels_add: out of memory");
    char *id_copy = strndup(id, n);
    char *group_copy = group && group[0] ? strdup(group) : NULL;
    if (!id_copy || (group && group[0] && !group_copy)) {
        free(id_copy);
        free(group_copy);
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_labels_add: out of memory");
    }
    int64_t row = labels->rows++;
    labels->ids[row] = id_copy;
    labels->groups[row] = group_copy;
    memcpy(labels->values + (size_t)row * (size_t)labels->columns, values,
           (size_t)labels->columns * sizeof *values);
    labels->slots[slot] = row + 1;
    return ICH_OK;
}

ich_status ich_labels_add(ich_labels *labels, const char *id, const float *values,
                          const char *group)
{
    if (!labels || !id || !values)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_add: NULL argument");
    if (!id[0])
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_add: empty image ID");
    for (int32_t c = 0; c < labels->columns; c++)
        if (!isfinite(values[c]))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_labels_add: \"%s\": value of \"%s\" is not finite", id,
                            labels->names[c]);
    return add_row_n(labels, id, strlen(id), values, group);
}

int64_t ich_labels_rows(const ich_labels *labels)
{
    return labels ? labels->rows : 0;
}

int32_t ich_labels_columns(const ich_labels *labels)
{
    return labels ? labels->columns : 0;
}

const char *ich_labels_column_name(const ich_labels *labels, int32_t column)
{
    if (!labels || column < 0 || column >= labels->columns)
        return NULL;
    return labels->names[column];
}

int32_t ich_labels_find_column(const ich_labels *labels, const char *name)
{
    if (!labels || !name)
        return -1;
    for (int32_t c = 0; c < labels->columns; c++)
        if (strcasecmp(labels->names[c], name) == 0)
            return c;
    return -1;
}

const char *ich_labels_id(const ich_labels *labels, int64_t row)
{
    if (!labels || row < 0 || row >= labels->rows)
        return NULL;
    return labels->ids[row];
}

const float *ich_labels_values(const ich_labels *labels, int64_t row)
{
    if (!labels || row < 0 || row >= labels->rows)
        return NULL;
    return labels->values + (size_t)row * (size_t)labels->columns;
}

const char *ich_labels_group(const ich_labels *labels, int64_t row)
{
    if (!labels || row < 0 || row >= labels->rows)
        return NULL;
    return labels->groups[row] ? labels->groups[row] : "";
}

ich_status ich_labels_set_group(ich_labels *labels, int64_t row, const char *group)
{
    if (!labels || row < 0 || row >= labels->rows)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_set_group: no row %lld",
                        (long long)row);
    char *copy = NULL;
    if (group && group[0]) {
        copy = strdup(group);
        if (!copy)
            return ich_fail(ICH_ERR_NO_MEMORY, "ich_labels_set_group: out of memory");
    }
    free(labels->groups[row]);
    labels->groups[row] = copy;
    return ICH_OK;
}

int64_t ich_labels_find(const ich_labels *labels, const char *id)
{
    if (!labels || !id)
        return -1;
    return find_n(labels, id, strlen(id));
}

ich_status ich_labels_positives(const ich_labels *labels, int64_t *counts, int32_t count)
{
    if (!labels || !counts)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_positives: NULL argument");
    if (count != labels->columns)
        return ich_fail(ICH_ERR_SHAPE, "ich_labels_positives: %d counts for %d columns",
                        (int)count, (int)labels->columns);
    for (int32_t c = 0; c < count; c++)
        counts[c] = 0;
    const float *v = labels->values;
    for (int64_t r = 0; r < labels->rows; r++, v += count)
        for (int32_t c = 0; c < count; c++)
            counts[c] += v[c] >= 0.5f;
    return ICH_OK;
}

/* ---- Reading CSV files --------------------------------------------------- */

static const char *const id_column_names[] = {"ID",   "image", "image_id",      "filename",
                                              "file", "SOPInstanceUID", NULL};
static const char *const group_column_names[] = {"patient", "patient_id", "PatientID", "group",
                                                 NULL};

/* The cell without spaces around it, as [*start, *start + *n). */
static void trim(const char *cell, const char **start, size_t *n)
{
    while (*cell == ' ' || *cell == '\t')
        cell++;
    size_t len = strlen(cell);
    while (len > 0 && (cell[len - 1] == ' ' || cell[len - 1] == '\t'))
        len--;
    *start = cell;
    *n = len;
}

int ich_labels_csv_find_any(const ich_csv *csv, const char *const *names)
{
    for (; *names; names++) {
        int c = ich_csv_find_column(csv, *names);
        if (c >= 0)
            return c;
    }
    return -1;
}

static int parse_number(const char *cell, float *value)
{
    const char *s;
    size_t n;
    trim(cell, &s, &n);
    if (n == 1 && (s[0] == '0' || s[0] == '1')) { /* nearly every cell */
        *value = (float)(s[0] - '0');
        return 0;
    }
    if (n == 0 || n >= 64)
        return -1;
    char buf[64];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v) || !isfinite((float)v))
        return -1;
    *value = (float)v;
    return 0;
}

ich_status ich_labels_csv_value(const ich_csv *csv, int64_t row, int column, float *value)
{
    const char *cell = ich_csv_cell(csv, row, column);
    if (!cell || parse_number(cell, value) != 0)
        return ich_fail(ICH_ERR_FORMAT, "%s:%lld: column \"%s\": \"%.40s\" is not a number",
                        ich_csv_name(csv), (long long)ich_csv_line(csv, row),
                        ich_csv_header(csv, column), cell ? cell : "");
    return ICH_OK;
}

static int rsna_index(const char *name, size_t n)
{
    for (int i = 0; i < ICH_LABEL_COUNT; i++)
        if (strlen(rsna_names[i]) == n && strncasecmp(rsna_names[i], name, n) == 0)
            return i;
    return -1;
}

static int numeric_column(const ich_csv *csv, int column)
{
    float v;
    for (int64_t r = 0; r < ich_csv_rows(csv); r++)
        if (parse_number(ich_csv_cell(csv, r, column), &v) != 0)
            return 0;
    return 1;
}

/* A label column named by a number: the first line is data, not a header
 * (a file without one would otherwise lose its first row and have label
 * columns named "0" and "1"). */
static ich_status not_a_header(const ich_csv *csv, int column)
{
    return ich_fail(ICH_ERR_FORMAT,
                    "%s: the first line is not a header: column %d is named \"%.40s\", a "
                    "number. Expected a header line naming the columns: RSNA's long format "
                    "\"ID,Label\", or wide \"ID,<label names>\" (or filename, image, ... for "
                    "ID; label names such as any,epidural,intraparenchymal,intraventricular,"
                    "subarachnoid,subdural)",
                    ich_csv_name(csv), column + 1, ich_csv_header(csv, column));
}

ich_status ich_labels_csv_label_columns(const ich_csv *csv, const unsigned char *skip,
                                        int *columns, int32_t *count)
{
    int ncols = ich_csv_columns(csv);
    int32_t found = 0;
    for (int pass = 0; pass < 2 && found == 0; pass++) {
        for (int c = 0; c < ncols; c++) {
            if (skip && skip[c])
                continue;
            const char *name;
            size_t n;
            trim(ich_csv_header(csv, c), &name, &n);
            float number;
            if (pass == 1 && n > 0 && parse_number(name, &number) == 0)
                return not_a_header(csv, c);
            int take = pass == 0 ? rsna_index(name, n) >= 0
                                 : n > 0 && ich_csv_rows(csv) > 0 && numeric_column(csv, c);
            if (!take)
                continue;
            if (found == ICH_LABELS_MAX_COLUMNS)
                return ich_fail(ICH_ERR_FORMAT, "%s: more than %d label columns",
                                ich_csv_name(csv), ICH_LABELS_MAX_COLUMNS);
            columns[found++] = c;
        }
    }
    if (found == 0)
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: no label column (none named any, epidural, ..., and no other "
                        "numeric column)",
                        ich_csv_name(csv));
    *count = found;
    return ICH_OK;
}

ich_status ich_labels_csv_create(const ich_csv *csv, const int *columns, int32_t count,
                                 ich_labels **out)
{
    char *names[ICH_LABELS_MAX_COLUMNS] = {0};
    int32_t made = 0;
    ich_status st = ICH_OK;
    for (; made < count; made++) {
        const char *name;
        size_t n;
        trim(ich_csv_header(csv, columns[made]), &name, &n);
        names[made] = strndup(name, n);
        if (!names[made]) {
            st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", ich_csv_name(csv));
            break;
        }
    }
    if (st == ICH_OK) {
        st = ich_labels_create((const char *const *)names, count, out);
        if (st == ICH_ERR_INVALID_ARGUMENT) {
            char why[256];
            snprintf(why, sizeof why, "%s", ich_last_error());
            st = ich_fail(ICH_ERR_FORMAT, "%s: bad label columns in the header: %s",
                          ich_csv_name(csv), why);
        }
    }
    for (int32_t i = 0; i < made; i++)
        free(names[i]);
    return st;
}

/* RSNA long format: "ID_<image>_<subtype>,<value>" rows, six per image. */
static ich_status read_long(const ich_csv *csv, int id_col, int label_col, ich_labels **out)
{
    const char *path = ich_csv_name(csv);
    int64_t nrows = ich_csv_rows(csv);
    ich_labels *labels = NULL;
    ich_status st = ich_labels_create(NULL, 0, &labels);
    if (st != ICH_OK)
        return st;
    /* first line of each image, for the message about a missing subtype */
    int64_t *first_line = malloc((size_t)(nrows / ICH_LABEL_COUNT + 16) * sizeof *first_line);
    int64_t first_cap = nrows / ICH_LABEL_COUNT + 16;
    if (!first_line) {
        ich_labels_free(labels);
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    }
    float unset[ICH_LABEL_COUNT];
    for (int i = 0; i < ICH_LABEL_COUNT; i++)
        unset[i] = NAN;
    for (int64_t r = 0; r < nrows && st == ICH_OK; r++) {
        long long line = (long long)ich_csv_line(csv, r);
        const char *id;
        size_t n;
        trim(ich_csv_cell(csv, r, id_col), &id, &n);
        const char *sep = n ? memrchr(id, '_', n) : NULL;
        int subtype = sep ? rsna_index(sep + 1, n - (size_t)(sep + 1 - id)) : -1;
        if (!sep || sep == id || subtype < 0) {
            st = ich_fail(ICH_ERR_FORMAT,
                          "%s:%lld: \"%.60s\" is not ID_<image>_<subtype> with a subtype "
                          "among any, epidural, intraparenchymal, intraventricular, "
                          "subarachnoid, subdural",
                          path, line, ich_csv_cell(csv, r, id_col));
            break;
        }
        float value;
        st = ich_labels_csv_value(csv, r, label_col, &value);
        if (st != ICH_OK)
            break;
        size_t image_len = (size_t)(sep - id);
        int64_t row = find_n(labels, id, image_len);
        if (row < 0) {
            st = add_row_n(labels, id, image_len, unset, NULL);
            if (st != ICH_OK)
                break;
            row = labels->rows - 1;
            if (row >= first_cap) {
                int64_t cap = first_cap * 2;
                int64_t *bigger = realloc(first_line, (size_t)cap * sizeof *bigger);
                if (!bigger) {
                    st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
                    break;
                }
                first_line = bigger;
                first_cap = cap;
            }
            first_line[row] = line;
        }
        float *slot = labels->values + (size_t)row * ICH_LABEL_COUNT + (size_t)subtype;
        if (isnan(*slot))
            *slot = value;
        else if (*slot != value)
            st = ich_fail(ICH_ERR_FORMAT, "%s:%lld: image %s, %s: %g conflicts with %g read before",
                          path, line, labels->ids[row], rsna_names[subtype], (double)value,
                          (double)*slot);
        /* an identical duplicate row (the real file has them) is dropped */
    }
    for (int64_t row = 0; row < labels->rows && st == ICH_OK; row++)
        for (int i = 0; i < ICH_LABEL_COUNT; i++)
            if (isnan(labels->values[(size_t)row * ICH_LABEL_COUNT + (size_t)i])) {
                st = ich_fail(ICH_ERR_FORMAT, "%s:%lld: image %s has no row for %s", path,
                              (long long)first_line[row], labels->ids[row], rsna_names[i]);
                break;
            }
    free(first_line);
    if (st != ICH_OK) {
        ich_labels_free(labels);
        return st;
    }
    *out = labels;
    return ICH_OK;
}

/* The ID of a wide row: trimmed, without a trailing .dcm or .png. */
static void wide_id(const char *cell, const char **id, size_t *n)
{
    trim(cell, id, n);
    if (*n > 4 && (strncasecmp(*id + *n - 4, ".dcm", 4) == 0 ||
                   strncasecmp(*id + *n - 4, ".png", 4) == 0))
        *n -= 4;
}

static ich_status read_wide(const ich_csv *csv, ich_labels **out)
{
    const char *path = ich_csv_name(csv);
    int ncols = ich_csv_columns(csv);
    int id_col = ich_labels_csv_find_any(csv, id_column_names);
    if (id_col < 0)
        id_col = 0;
    int group_col = ich_labels_csv_find_any(csv, group_column_names);
    if (group_col == id_col)
        group_col = -1;
    unsigned char *skip = calloc((size_t)ncols, 1);
    if (!skip)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    skip[id_col] = 1;
    if (group_col >= 0)
        skip[group_col] = 1;
    int columns[ICH_LABELS_MAX_COLUMNS];
    int32_t count = 0;
    ich_labels *labels = NULL;
    ich_status st = ich_labels_csv_label_columns(csv, skip, columns, &count);
    free(skip);
    if (st == ICH_OK)
        st = ich_labels_csv_create(csv, columns, count, &labels);
    if (st != ICH_OK)
        return st;
    float values[ICH_LABELS_MAX_COLUMNS];
    char *group = NULL;
    for (int64_t r = 0; r < ich_csv_rows(csv) && st == ICH_OK; r++) {
        long long line = (long long)ich_csv_line(csv, r);
        const char *id;
        size_t n;
        wide_id(ich_csv_cell(csv, r, id_col), &id, &n);
        if (n == 0) {
            st = ich_fail(ICH_ERR_FORMAT, "%s:%lld: empty image ID", path, line);
            break;
        }
        for (int32_t c = 0; c < count && st == ICH_OK; c++)
            st = ich_labels_csv_value(csv, r, columns[c], &values[c]);
        if (st != ICH_OK)
            break;
        if (find_n(labels, id, n) >= 0) {
            st = ich_fail(ICH_ERR_FORMAT, "%s:%lld: image %.*s appears twice", path, line,
                          (int)n, id);
            break;
        }
        if (group_col >= 0) {
            const char *g;
            size_t gn;
            trim(ich_csv_cell(csv, r, group_col), &g, &gn);
            group = strndup(g, gn);
            if (!group) {
                st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
                break;
            }
        }
        st = add_row_n(labels, id, n, values, group);
        free(group);
        group = NULL;
    }
    if (st != ICH_OK) {
        ich_labels_free(labels);
        return st;
    }
    *out = labels;
    return ICH_OK;
}

ich_status ich_labels_read(const char *path, ich_labels **out)
{
    if (!path || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_read: NULL argument");
    *out = NULL;
    ich_csv *csv = NULL;
    ich_status st = ich_csv_read(path, &csv);
    if (st != ICH_OK)
        return st;
    int id_col = ich_csv_find_column(csv, "ID");
    int label_col = ich_csv_find_column(csv, "Label");
    int has_rsna_column = 0;
    for (int c = 0; c < ich_csv_columns(csv); c++) {
        const char *name;
        size_t n;
        trim(ich_csv_header(csv, c), &name, &n);
        has_rsna_column |= rsna_index(name, n) >= 0;
    }
    if (id_col >= 0 && label_col >= 0 && !has_rsna_column)
        st = read_long(csv, id_col, label_col, out);
    else
        st = read_wide(csv, out);
    ich_csv_free(csv);
    return st;
}

/* ---- Writing CSV files --------------------------------------------------- */

static void append_value(ich_buf *buf, float v)
{
    if (v == 0.0f)
        ich_buf_append(buf, "0", 1);
    else if (v == 1.0f)
        ich_buf_append(buf, "1", 1);
    else
        ich_buf_printf(buf, "%.9g", (double)v);
}

static ich_status write_buf(ich_buf *buf, const char *path)
{
    ich_status st;
    if (buf->failed)
        st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    else if ((st = ich_make_parent_dirs(path)) == ICH_OK)
        st = ich_write_file_atomic(path, buf->data ? buf->data : "", buf->length, 0);
    ich_buf_free(buf);
    return st;
}

ich_status ich_labels_write(const ich_labels *labels, const char *path)
{
    if (!labels || !path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_write: NULL argument");
    int has_groups = 0;
    for (int64_t r = 0; r < labels->rows && !has_groups; r++)
        has_groups = labels->groups[r] != NULL;
    ich_buf buf = {0};
    ich_buf_append(&buf, "ID", 2);
    for (int32_t c = 0; c < labels->columns; c++) {
        ich_buf_append(&buf, ",", 1);
        ich_buf_append(&buf, labels->names[c], strlen(labels->names[c]));
    }
    if (has_groups)
        ich_buf_append(&buf, ",patient", 8);
    ich_buf_append(&buf, "\n", 1);
    for (int64_t r = 0; r < labels->rows && !buf.failed; r++) {
        ich_csv_append_field(&buf, labels->ids[r]);
        const float *v = labels->values + (size_t)r * (size_t)labels->columns;
        for (int32_t c = 0; c < labels->columns; c++) {
            ich_buf_append(&buf, ",", 1);
            append_value(&buf, v[c]);
        }
        if (has_groups) {
            ich_buf_append(&buf, ",", 1);
            ich_csv_append_field(&buf, labels->groups[r] ? labels->groups[r] : "");
        }
        ich_buf_append(&buf, "\n", 1);
    }
    return write_buf(&buf, path);
}

ich_status ich_labels_write_long(const ich_labels *labels, const char *path)
{
    if (!labels || !path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_write_long: NULL argument");
    ich_buf buf = {0};
    ich_buf_append(&buf, "ID,Label\n", 9);
    for (int64_t r = 0; r < labels->rows && !buf.failed; r++) {
        const float *v = labels->values + (size_t)r * (size_t)labels->columns;
        for (int32_t c = 0; c < labels->columns; c++) {
            if (strpbrk(labels->ids[r], ",\"\r\n")) {
                /* rare: quote the whole "<id>_<column>" */
                ich_buf key = {0};
                ich_buf_printf(&key, "%s_%s", labels->ids[r], labels->names[c]);
                ich_csv_append_field(&buf, key.data ? key.data : "");
                buf.failed |= key.failed;
                ich_buf_free(&key);
            } else {
                ich_buf_printf(&buf, "%s_%s", labels->ids[r], labels->names[c]);
            }
            ich_buf_append(&buf, ",", 1);
            append_value(&buf, v[c]);
            ich_buf_append(&buf, "\n", 1);
        }
    }
    return write_buf(&buf, path);
}

/* ---- The "any" check ----------------------------------------------------- */

ich_status ich_labels_check_any(ich_labels *labels, int fix, int64_t *mismatches)
{
    if (mismatches)
        *mismatches = 0;
    if (!labels)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_check_any: NULL argument");
    int32_t any = ich_labels_find_column(labels, "any");
    if (any < 0)
        return ich_fail(ICH_ERR_NOT_FOUND, "ich_labels_check_any: the table has no \"any\" column");
    int64_t count = 0;
    for (int64_t r = 0; r < labels->rows; r++) {
        float *v = labels->values + (size_t)r * (size_t)labels->columns;
        int or_value = 0;
        for (int32_t c = 0; c < labels->columns; c++)
            if (c != any && v[c] >= 0.5f)
                or_value = 1;
        if ((v[any] >= 0.5f) == or_value)
            continue;
        if (count < 20)
            ich_log(ICH_LOG_WARNING, "%s: any is %g but the OR of the subtypes is %d%s",
                    labels->ids[r], (double)v[any], or_value, fix ? " (fixed)" : "");
        count++;
        if (fix)
            v[any] = (float)or_value;
    }
    if (count > 20)
        ich_log(ICH_LOG_WARNING, "%lld more rows where any differs from the OR of the subtypes",
                (long long)(count - 20));
    if (mismatches)
        *mismatches = count;
    return ICH_OK;
}
