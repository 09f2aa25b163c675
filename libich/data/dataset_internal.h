/* Internal: the dataset handle's state, shared by dataset.c (open, epochs,
 * workers) and dataset_load.c (loading one sample). */
#ifndef ICH_INTERNAL_DATASET_H
#define ICH_INTERNAL_DATASET_H

#include <pthread.h>
#include <stdatomic.h>

#include "ich/dataset.h"
#include "window/window_internal.h"

/* A ring slot: one batch being loaded, ready, or handed to the caller. */
typedef enum slot_state { SLOT_FREE, SLOT_LOADING, SLOT_READY, SLOT_TAKEN } slot_state;

typedef struct dataset_slot {
    slot_state state;
    uint64_t generation; /* the epoch start it belongs to */
    int64_t batch;
    int64_t epoch;
    int32_t count;
    float *images;
    float *labels;
    int64_t *rows;
} dataset_slot;

struct ich_dataset {
    /* What is loaded: sample i is row i of `labels`, file paths[i]. */
    ich_labels *labels;
    int64_t length;
    char **paths;
    unsigned char *is_png;
    int64_t *neighbors;     /* length x span sample indices in z order; NULL when k = 0 */
    int32_t span;           /* 2 * neighbors + 1 */
    atomic_uchar *warned;   /* a failed sample is logged once */
    int64_t left_at_open;   /* rows without an image or with a refused ID */
    ich_window *window;     /* the copied recipe */
    ich_window_settings settings;
    ich_augment *augment;   /* copied; NULL: none */

    /* The samples drawn: rows drawn_rows[0 .. drawn-1] of the table (in
     * table order), or every row (drawn_rows NULL, drawn = length); set by
     * ich_dataset_set_positive_only(). Neighbours come from every row. */
    int64_t drawn;
    int64_t *drawn_rows;
    char *positive_column;  /* the restriction's column; NULL: none */

    /* Shapes. */
    int32_t slice_channels; /* per slice */
    int32_t channels, rows, columns, label_count;
    size_t sample_floats;   /* channels * rows * columns */

    /* Options. */
    int32_t batch_size, shuffle, drop_last, workers;
    uint64_t seed;

    /* Epochs and the worker pool; everything below is guarded by `lock`. */
    pthread_mutex_t lock;
    pthread_cond_t work;  /* workers wait for a batch to load */
    pthread_cond_t ready; /* the caller waits for its batch */
    pthread_t *threads;
    int32_t thread_count;
    int stop, started;
    /* Copies of stop and generation that workers read without the lock
     * between samples, to drop an abandoned batch early. */
    atomic_int stopping;
    atomic_uint_fast64_t live_generation;
    uint64_t generation;
    int64_t epoch, batches, consumed, assigned;
    int64_t *order;
    dataset_slot *slots;
    int32_t slot_count;
    /* ich_dataset_set_shard(): this rank's part of every batch (0 of 1:
     * the whole batch). */
    int32_t shard_rank, shard_count;
};

/* Shard the batches for data-parallel training over `count` ranks: every
 * epoch's batches stay those of the whole dataset (the same order, the same
 * global batches), and this rank's copy of batch b holds only its share,
 * the samples [ceil(rank * n / count), ceil((rank + 1) * n / count)) of
 * the batch's n, so the ranks together see every sample once. A share that
 * is empty (n < count) or whose samples all failed to load is returned as
 * a batch of count 0 instead of being skipped: each rank takes exactly
 * ich_dataset_batches() batches per epoch, in step with the others, and
 * must count them (a count of 0 no longer means the epoch is over). rank 0
 * of count 1 undoes it. Abandons the current epoch, as
 * ich_dataset_set_positive_only() does. Errors: ICH_ERR_INVALID_ARGUMENT. */
ich_status ich_dataset_set_shard(ich_dataset *ds, int32_t rank, int32_t count);

/* The share [*first, *end) of a batch of n samples for rank `rank` of
 * `count` (the rule above). */
void ich_dataset_shard_range(int32_t n, int32_t rank, int32_t count, int32_t *first,
                             int32_t *end);

/* Load sample `index` into `image` (sample_floats floats): each slice of
 * its stack through the recipe (DICOM) or the PNG path, then the
 * augmentation when `augment` is set, seeded by (seed, epoch, index).
 * Thread-safe: only reads the dataset. */
ich_status ich_dataset_load_sample(const ich_dataset *ds, int64_t index, int augment,
                                   int64_t epoch, float *image);

/* Read the image of sample `index` once to learn its size and channels
 * (for the sample shape at open). */
ich_status ich_dataset_probe(const ich_dataset *ds, int64_t index, int32_t *channels,
                             int32_t *rows, int32_t *columns);

/* Load the samples [first, first + count) (table order; unaugmented, epoch
 * 0) on `threads` threads (0: the caller's), as a batch of
 * ich_dataset_next_batch() would hold them: a sample that cannot be
 * loaded is logged once, counted by ich_dataset_left_out() and left out,
 * the others moved up. *loaded says how many remain; rows[] (count
 * entries) their rows of ich_dataset_labels(). For a job that takes its
 * own part of the samples, outside the epochs (a sharded evaluation).
 * Errors: ICH_ERR_INVALID_ARGUMENT (a range outside the samples), those of
 * the threads, ICH_ERR_NO_MEMORY. */
ich_status ich_dataset_load_range(ich_dataset *ds, int64_t first, int32_t count, int32_t threads,
                                  float *images, float *labels, int64_t *rows, int32_t *loaded);

/* The rows ich_dataset_left_out() counts from the open (no image, a
 * refused ID): the same on every rank; the rest are this process's
 * failed loads. */
int64_t ich_dataset_left_at_open(const ich_dataset *ds);

#endif
