/* Internal: the history of a training run (history.c), shared with the
 * driver (train.c). */
#ifndef ICH_INTERNAL_TRAIN_H
#define ICH_INTERNAL_TRAIN_H

#include "core/fileutil.h"
#include "ich/train.h"

struct ich_history {
    ich_epoch_stats *rows;
    int32_t count, capacity;
    int stopped_early;
};

/* An empty history. */
ich_status ich_history_new(ich_history **out);

/* Append one epoch's row. */
ich_status ich_history_append(ich_history *history, const ich_epoch_stats *row);

/* The history as CSV text (what ich_history_write_csv() writes). */
void ich_history_to_csv(const ich_history *history, ich_buf *buf);

/* Append the rows of CSV text written by ich_history_to_csv(); `name` is
 * used in messages. Errors: ICH_ERR_FORMAT, ICH_ERR_NO_MEMORY. */
ich_status ich_history_parse(ich_history *history, const char *text, const char *name);

/* One row as a JSON object (the "ich.metrics" metadata). */
void ich_epoch_stats_json(const ich_epoch_stats *row, ich_buf *buf);

#endif
