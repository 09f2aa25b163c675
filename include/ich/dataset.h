/*
 * libich dataset: labelled images -> batches of float32 tensors for training.
 *
 * An ich_dataset joins a label table (or a wide label CSV) with a folder of
 * images, DICOM (<id>.dcm) or PNG (<id>.png, already windowed by
 * ich-preprocess), and turns them into samples:
 *
 *   DICOM: HU -> the window recipe (windows as channels, resize,
 *          normalisation; see window.h) -> float32 CHW;
 *   PNG:   8-bit channels / 255 -> resize to the recipe's size (bilinear)
 *          -> the recipe's normalisation -> float32 CHW;
 *   then the online augmentation (augment.h), when one is set, with a seed
 *   made from the dataset's seed, the epoch and the sample's row only, so a
 *   batch is the same bit for bit with any number of workers.
 *
 * A PNG's alpha channel is left out (gray+alpha gives 1 channel, RGBA 3);
 * every image must give the same channels and, when the recipe keeps the
 * input size, the same size as the first one, or it fails to load.
 *
 * With `neighbors` = k, each sample also holds the k slices on each side of
 * it in the same series (ordered by image position z; at the ends of a
 * series the edge slice repeats), stacked as extra channels in z order:
 * channels = (2k + 1) * per-slice channels. Series and positions come from
 * the DICOM headers, or from a metadata CSV (columns ID, series, z, as
 * ich_phantom_write() writes; when given it is used for every image, and
 * needed for PNG images). Neighbours are taken among the dataset's own
 * images (rows of the table whose file exists); an image without a series
 * and position is stacked with itself.
 *
 * Batches: float32 NCHW images plus N x L labels (L = the table's label
 * columns). Each epoch visits every sample once (every row with an image, or
 * with ich_dataset_set_positive_only() those positive in a label column,
 * e.g. "any" for a cascade's second stage), in a seeded shuffled order
 * (or in table order without shuffling); worker threads load the next
 * batches while the caller trains, each batch by one worker, into a ring
 * of max(prefetch, workers) batch buffers. A sample whose file cannot be
 * read is logged as a warning (once per dataset) and left out of its batch
 * (the batch is then smaller: check *count; a batch whose samples all
 * fail is skipped).
 *
 * Threads: an ich_dataset is used by one thread at a time; its worker
 * threads are internal.
 */
#ifndef ICH_DATASET_H
#define ICH_DATASET_H

#include "ich/augment.h"
#include "ich/core.h"
#include "ich/labels.h"
#include "ich/window.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A dataset (opaque). */
typedef struct ich_dataset ich_dataset;

/** Options of a dataset. Set `size` to sizeof(ich_dataset_options);
 *  ich_dataset_options_init() fills the defaults given here. */
typedef struct ich_dataset_options {
    /* ABI: first version up to `extension`, 80 bytes on LP64 (later fields optional). */
    size_t size;
    const ich_window *window;   /**< NULL: "blood,brain,bone", 256 x 256,
                                     bilinear, no normalisation. Copied at
                                     open: later changes do not apply. A
                                     recipe that records neighbouring
                                     slices (not 0) must match `neighbors`. */
    const ich_augment *augment; /**< NULL: none. Copied at open. */
    int32_t batch_size;         /**< default 16 (>= 1) */
    int32_t shuffle;            /**< default 1 */
    int32_t drop_last;          /**< leave out a last, smaller batch (default 0) */
    uint64_t seed;              /**< shuffling and augmentation (default 0) */
    int32_t workers;            /**< loading threads (0..64); 0 loads on the
                                     caller's thread when a batch is asked
                                     for (default 2) */
    int32_t prefetch;           /**< batches loaded ahead (1..64, default 2;
                                     at least `workers` are) */
    int32_t neighbors;          /**< slices stacked on each side (0..16,
                                     default 0) */
    const char *metadata_csv;   /**< series and z for PNG images with
                                     neighbors; NULL: none */
    const char *extension;      /**< ".dcm" or ".png"; NULL: each image is
                                     <id>.dcm when present, else <id>.png */
    const struct ich_model *model; /**< NULL: the table's label columns as
                                     they are. A model: its label columns
                                     matched to the model's labels by name
                                     and put in its output order, or the
                                     open refused (ich_labels_match_model());
                                     only read during the open. */
} ich_dataset_options;

/** Fill `options` with the defaults (and its size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_dataset_options_init(ich_dataset_options *options);
#define ich_dataset_options_init(options) ich_dataset_options_init(ICH_SIZED(options))

/** Open a dataset over the rows of `labels` (copied) and the images in
 *  `image_dir`. Images that do not exist, and rows whose ID cannot name a
 *  file inside `image_dir` ("../x", "/etc/passwd": the rule of
 *  ich_image_path()), are logged by ID and row and left out (*out's
 *  length says how many remain); with neighbors, DICOM headers are
 *  read here. options may be NULL for the defaults. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, bad option), ICH_ERR_NOT_FOUND (no
 *  image found at all), ICH_ERR_FORMAT (metadata CSV), ICH_ERR_SHAPE (the
 *  label columns do not match options.model's labels), ICH_ERR_NO_MEMORY,
 *  ICH_ERR_CANCELLED (the thread's cancel check, ich_set_cancel_check(),
 *  asked to stop while the DICOM headers were read). */
ICH_API ich_status ich_dataset_open(const ich_labels *labels, const char *image_dir,
                                    const ich_dataset_options *options, ich_dataset **out);

/** As ich_dataset_open() with the labels read from a CSV
 *  (ich_labels_read()); with options.model, messages about its label
 *  columns name the CSV. Errors: also those of ich_labels_read(). */
ICH_API ich_status ich_dataset_open_csv(const char *csv_path, const char *image_dir,
                                        const ich_dataset_options *options,
                                        ich_dataset **out);

/** Stop the workers (each after the sample it is loading) and free the
 *  dataset. NULL is a no-op. */
ICH_API void ich_dataset_free(ich_dataset *dataset);

/** Number of samples drawn (0 for NULL): the rows of the label table
 *  with an image, or with ich_dataset_set_positive_only() those of them
 *  positive in its column. */
ICH_API int64_t ich_dataset_length(const ich_dataset *dataset);

/** Restrict the samples the dataset draws to the rows whose label in
 *  `column` (a label column's name, ignoring case) is positive (>= 0.5,
 *  the rule of ich_labels_positives()); NULL draws every row again. Used
 *  to train a cascade's second stage on the `any`-positive images only.
 *  Afterwards ich_dataset_length(), ich_dataset_batches(),
 *  ich_dataset_get()'s indices and every epoch's batches (full batches of
 *  positives, shuffled among them by the seed and the epoch) count only
 *  those rows, in table order; ich_dataset_labels() still holds every row
 *  and ich_dataset_next_batch()'s `rows` are indices into it. Neighbouring
 *  slices (`neighbors`) still come from every row. No positive row leaves
 *  a dataset of length 0 (no batches). The current epoch is abandoned:
 *  start one with ich_dataset_start_epoch() (else the next batch begins
 *  epoch 0). Errors: ICH_ERR_INVALID_ARGUMENT (NULL dataset),
 *  ICH_ERR_NOT_FOUND (no such column: the message lists the columns; the
 *  restriction is unchanged), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_dataset_set_positive_only(ich_dataset *dataset, const char *column);

/** The column of the restriction set by ich_dataset_set_positive_only()
 *  (valid until the next call), NULL when every row is drawn or for
 *  NULL. */
ICH_API const char *ich_dataset_positive_only(const ich_dataset *dataset);

/** The dataset's label table (rows in sample order); valid while it lives. */
ICH_API const ich_labels *ich_dataset_labels(const ich_dataset *dataset);

/** Shape of one sample: channels, rows, columns of the image and the
 *  number of labels (each pointer may be NULL). The shape is known after
 *  open (from the recipe, or the first PNG). Errors:
 *  ICH_ERR_INVALID_ARGUMENT. */
ICH_API ich_status ich_dataset_sample_shape(const ich_dataset *dataset, int32_t *channels,
                                            int32_t *rows, int32_t *columns, int32_t *labels);

/** Load sample `index` (0 .. length-1, table order; with a positive-only
 *  restriction the index-th drawn sample) into `image`
 *  (channels*rows*columns floats) and `labels` (may be NULL; label-count
 *  floats). With `augment` non-zero the online augmentation is applied as
 *  in epoch `epoch`. Runs on the calling thread. Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_SHAPE (counts), and those of reading
 *  the image (ICH_ERR_IO, ICH_ERR_FORMAT, ...). */
ICH_API ich_status ich_dataset_get(ich_dataset *dataset, int64_t index, int augment,
                                   int64_t epoch, float *image, size_t image_count,
                                   float *labels, size_t label_count);

/** The recipe the dataset applies, as a new window (free it with
 *  ich_window_free()): the options' window (or the default) with the
 *  neighbouring slices recorded (ich_window_set_neighbors()). Store it in
 *  a model with ich_model_set_input_window() so its checkpoints say how
 *  to feed it. For PNG images the windows are those the recipe names (the
 *  PNGs should have been made with them). Errors: ICH_ERR_INVALID_ARGUMENT,
 *  ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_dataset_input_window(const ich_dataset *dataset, ich_window **out);

/** Number of batches per epoch. */
ICH_API int64_t ich_dataset_batches(const ich_dataset *dataset);

/** How many rows of the label table were left out so far: at open (no
 *  image file, or an ID that cannot name a file inside the folder) and
 *  while loading (a file that could not be read or converted: a damaged or
 *  hostile DICOM, each logged once with its path and the reason). Programs
 *  use it to finish with a failure status when data was skipped. 0 for
 *  NULL. */
ICH_API int64_t ich_dataset_left_out(const ich_dataset *dataset);

/** Samples per batch (the batch_size option; 0 for NULL). */
ICH_API int32_t ich_dataset_batch_size(const ich_dataset *dataset);

/** Begin epoch `epoch` (0, 1, ...): fix its order (a shuffle seeded by the
 *  seed and the epoch) and let the workers start loading. Calling it again
 *  abandons the rest of the current epoch. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, negative epoch). */
ICH_API ich_status ich_dataset_start_epoch(ich_dataset *dataset, int64_t epoch);

/** The next batch of the current epoch (one is started at epoch 0 when
 *  none was). `images` holds batch_size * channels * rows * columns floats,
 *  `labels` batch_size * label-count floats; the first *count samples are
 *  written (*count is 0 once the epoch is over). `rows` (may be NULL;
 *  batch_size entries) receives each sample's row of
 *  ich_dataset_labels() (its index unless a positive-only restriction
 *  is set). Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_SHAPE (counts differ from the batch
 *  size), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_dataset_next_batch(ich_dataset *dataset, float *images,
                                          size_t image_count, float *labels,
                                          size_t label_count, int32_t *count, int64_t *rows);

#ifdef __cplusplus
}
#endif
#endif /* ICH_DATASET_H */
