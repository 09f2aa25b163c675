/* The history of a training run: one row per epoch, as CSV (history.csv and
 * the "ich.history" checkpoint metadata) and through accessors. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "core/options.h"
#include "core/csv.h"
#include "train/train_internal.h"

static const char *const COLUMNS[] = {"epoch",        "train_loss", "train_accuracy",
                                      "val_loss",     "val_accuracy", "lr", "seconds"};
enum { COLUMN_COUNT = 7 };
/* Only in a staged run's history (after the others, so readers by name or
 * by position of the first seven keep working). */
static const char STAGE_COLUMN[] = "stage";

ich_status ich_history_new(ich_history **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? ICH_OK : ich_fail(ICH_ERR_NO_MEMORY, "history: out of memory");
}

void ich_history_free(ich_history *history)
{
    if (!history)
        return;
    free(history->rows);
    free(history);
}

ich_status ich_history_append(ich_history *history, const ich_epoch_stats *row)
{
    if (history->count == history->capacity) {
        int32_t capacity = history->capacity ? 2 * history->capacity : 16;
        ich_epoch_stats *rows = realloc(history->rows, (size_t)capacity * sizeof *rows);
        if (!rows)
            return ich_fail(ICH_ERR_NO_MEMORY, "history: out of memory");
        history->rows = rows;
        history->capacity = capacity;
    }
    history->rows[history->count] = *row;
    history->rows[history->count].size = sizeof(ich_epoch_stats);
    history->count++;
    return ICH_OK;
}

int32_t ich_history_length(const ich_history *history)
{
    return history ? history->count : 0;
}

ich_status ich_history_get(const ich_history *history, int32_t index, ich_epoch_stats *stats)
{
    if (!history || !stats)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_history_get: NULL argument");
    if (index < 0 || index >= history->count)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_history_get: index %d out of range (%d epochs)", index,
                        history->count);
    return ich_options_write(stats, &history->rows[index], sizeof history->rows[index],
                             ICH_OPTIONS_V1_SIZE(ich_epoch_stats, seconds), "ich_history_get");
}

/* The loss that decides "best": validation when the epoch had one. */
static double monitored(const ich_epoch_stats *row)
{
    return isnan(row->val_loss) ? row->train_loss : row->val_loss;
}

int32_t ich_history_best_epoch(const ich_history *history)
{
    if (!history || history->count == 0)
        return -1;
    /* A staged run: among the last stage's rows. */
    int32_t stage = history->rows[history->count - 1].stage, best = -1;
    for (int32_t i = 0; i < history->count; i++)
        if (history->rows[i].stage == stage &&
            (best < 0 || monitored(&history->rows[i]) < monitored(&history->rows[best])))
            best = i;
    return history->rows[best].epoch;
}

/* A staged run's rows say their stage. */
static int staged(const ich_history *history)
{
    for (int32_t i = 0; i < history->count; i++)
        if (history->rows[i].stage >= 0)
            return 1;
    return 0;
}

int ich_history_stopped_early(const ich_history *history)
{
    return history ? history->stopped_early : 0;
}

/* A value with enough digits to read back the same double; NaN as empty. */
static void append_number(ich_buf *buf, double value)
{
    if (!isnan(value))
        ich_buf_printf(buf, "%.17g", value);
}

void ich_history_to_csv(const ich_history *history, ich_buf *buf)
{
    for (int c = 0; c < COLUMN_COUNT; c++)
        ich_buf_printf(buf, "%s%s", c ? "," : "", COLUMNS[c]);
    int with_stage = staged(history);
    if (with_stage)
        ich_buf_printf(buf, ",%s", STAGE_COLUMN);
    ich_buf_append(buf, "\n", 1);
    for (int32_t i = 0; i < history->count; i++) {
        const ich_epoch_stats *r = &history->rows[i];
        double values[] = {r->train_loss, r->train_accuracy, r->val_loss,
                           r->val_accuracy, r->lr,         r->seconds};
        ich_buf_printf(buf, "%d", r->epoch);
        for (int c = 0; c < COLUMN_COUNT - 1; c++) {
            ich_buf_append(buf, ",", 1);
            append_number(buf, values[c]);
        }
        if (with_stage)
            ich_buf_printf(buf, ",%d", r->stage);
        ich_buf_append(buf, "\n", 1);
    }
}

ich_status ich_history_write_csv(const ich_history *history, const char *path)
{
    if (!history || !path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_history_write_csv: NULL argument");
    ich_buf buf = {0};
    ich_history_to_csv(history, &buf);
    ich_status st = buf.failed ? ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path)
                               : ich_write_file_atomic(path, buf.data, buf.length, 0);
    ich_buf_free(&buf);
    return st;
}

/* A cell as a double: empty is NaN. */
static int parse_number(const char *cell, double *out)
{
    if (!cell || !*cell) {
        *out = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    *out = strtod(cell, &end);
    return errno == ERANGE || *end ? -1 : 0;
}

ich_status ich_history_parse(ich_history *history, const char *text, const char *name)
{
    ich_csv *csv = NULL;
    ich_status st = ich_csv_parse(text, strlen(text), name, &csv);
    if (st)
        return st;
    int columns[COLUMN_COUNT];
    for (int c = 0; c < COLUMN_COUNT && !st; c++) {
        columns[c] = ich_csv_find_column(csv, COLUMNS[c]);
        if (columns[c] < 0)
            st = ich_fail(ICH_ERR_FORMAT, "%s: no column \"%s\"", name, COLUMNS[c]);
    }
    int stage_column = ich_csv_find_column(csv, STAGE_COLUMN);
    for (int64_t r = 0; r < ich_csv_rows(csv) && !st; r++) {
        double v[COLUMN_COUNT];
        for (int c = 0; c < COLUMN_COUNT && !st; c++)
            if (parse_number(ich_csv_cell(csv, r, columns[c]), &v[c]) ||
                (c == 0 && (isnan(v[0]) || v[0] < 0 || v[0] > INT32_MAX)))
                st = ich_fail(ICH_ERR_FORMAT, "%s:%lld: bad %s \"%s\"", name,
                              (long long)ich_csv_line(csv, r), COLUMNS[c],
                              ich_csv_cell(csv, r, columns[c]));
        if (st)
            break;
        double stage = -1;
        if (stage_column >= 0 &&
            (parse_number(ich_csv_cell(csv, r, stage_column), &stage) || isnan(stage) ||
             (stage != -1 && stage != 0 && stage != 1)))
            st = ich_fail(ICH_ERR_FORMAT, "%s:%lld: bad %s \"%s\"", name,
                          (long long)ich_csv_line(csv, r), STAGE_COLUMN,
                          ich_csv_cell(csv, r, stage_column));
        if (st)
            break;
        ich_epoch_stats row = {sizeof row, (int32_t)v[0], v[1], v[2], v[3], v[4], v[5], v[6],
                               (int32_t)stage};
        st = ich_history_append(history, &row);
    }
    ich_csv_free(csv);
    return st;
}

/* The epoch's row as a JSON object (metadata "ich.metrics"); NaN (no
 * validation) becomes null. */
void ich_epoch_stats_json(const ich_epoch_stats *row, ich_buf *buf)
{
    const char *const names[] = {"train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                 "lr", "seconds"};
    const double values[] = {row->train_loss, row->train_accuracy, row->val_loss,
                             row->val_accuracy, row->lr, row->seconds};
    ich_json json = {0};
    ich_json_object_begin(&json);
    ich_json_key(&json, "epoch");
    ich_json_integer(&json, row->epoch);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        ich_json_key(&json, names[i]);
        ich_json_number(&json, values[i]);
    }
    if (row->stage >= 0) {
        ich_json_key(&json, STAGE_COLUMN);
        ich_json_integer(&json, row->stage);
    }
    ich_json_object_end(&json);
    if (ich_json_finish(&json) == ICH_OK)
        ich_buf_append(buf, json.buf.data, json.buf.length);
    else
        buf->failed = 1;
    ich_json_free(&json);
}
