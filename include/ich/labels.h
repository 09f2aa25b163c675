/*
 * libich labels: label CSVs, sampling, selecting files and splitting.
 *
 * An ich_labels is a table with one row per image: the image ID, one float
 * per label column (0 or 1; soft labels are kept as read) and an optional
 * group (the patient) used to keep a patient's images in one split.
 *
 * The image ID names the image file without its extension, relative to an
 * image folder: "ID_12cadc6af" is ID_12cadc6af.dcm or ID_12cadc6af.png, and
 * IDs made from patient/scan folders hold slashes ("P001/scan1/IM0004").
 *
 * Label order everywhere: any, epidural, intraparenchymal,
 * intraventricular, subarachnoid, subdural (ich_label_name()), unless a
 * wide CSV lists other columns; column names are matched ignoring case.
 *
 * The pipeline's data steps, in order:
 *   1. labels:  ich_labels_read() (RSNA long "ID,Label" rows
 *               ID_<image>_<subtype> or a wide CSV), or
 *               ich_labels_propagate() (one label row per scan -> per slice);
 *               ich_labels_check_any(); ich_labels_write().
 *   2. sample:  ich_labels_sample(): N images per label, seeded.
 *   3. select:  ich_labels_select_files(): copy or link the sampled DICOMs.
 *   4. split:   ich_labels_split(): train/validation/test, stratified,
 *               grouped by patient (ich_labels_groups_from_dicom() fills the
 *               groups from the files' PatientID when the CSV has none).
 *
 * Threads: an ich_labels is used by one thread at a time; functions that
 * take a `const ich_labels *` only read it and may run on one table from
 * many threads at once. Functions with a `threads` option start their own
 * worker threads (0 means one per CPU) and return when those are done.
 */
#ifndef ICH_LABELS_H
#define ICH_LABELS_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Number of labels of the RSNA task. */
#define ICH_LABEL_COUNT 6

/** Most label columns a table may have. */
#define ICH_LABELS_MAX_COLUMNS 64

/** Name of RSNA label `index` (0 "any", 1 "epidural", 2 "intraparenchymal",
 *  3 "intraventricular", 4 "subarachnoid", 5 "subdural"); NULL when out of
 *  range. Static strings. */
ICH_API const char *ich_label_name(int index);

/** A label table (opaque). */
typedef struct ich_labels ich_labels;

/* ---- Tables ------------------------------------------------------------ */

/** Create an empty table with `count` label columns named `names` (copied;
 *  names must be distinct ignoring case, non-empty, without commas or
 *  quotes), or the six RSNA labels when names is NULL and count is 0.
 *  Free it with ich_labels_free(). Errors: ICH_ERR_INVALID_ARGUMENT,
 *  ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_create(const char *const *names, int32_t count,
                                     ich_labels **out);

/** A new table with the columns and rows (IDs, values, groups) of
 *  `labels` (free it). Errors: ICH_ERR_INVALID_ARGUMENT, ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_copy(const ich_labels *labels, ich_labels **out);

/** Free a table. NULL is a no-op. */
ICH_API void ich_labels_free(ich_labels *labels);

/** Append a row: `id` (non-empty, copied), `values` (one per column, finite)
 *  and `group` (NULL or "" for none; copied). Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, empty or duplicate id, non-finite
 *  value), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_add(ich_labels *labels, const char *id, const float *values,
                                  const char *group);

/** Number of rows (0 for NULL). */
ICH_API int64_t ich_labels_rows(const ich_labels *labels);

/** Number of label columns (0 for NULL). */
ICH_API int32_t ich_labels_columns(const ich_labels *labels);

/** Name of label column `column`; NULL when out of range. Valid while the
 *  table lives. */
ICH_API const char *ich_labels_column_name(const ich_labels *labels, int32_t column);

/** Index of the column named `name` (ignoring case); -1 when absent. */
ICH_API int32_t ich_labels_find_column(const ich_labels *labels, const char *name);

/** ID of row `row`; NULL when out of range. Valid while the table lives and
 *  is not changed. */
ICH_API const char *ich_labels_id(const ich_labels *labels, int64_t row);

/** The label values of row `row` (ich_labels_columns() floats); NULL when
 *  out of range. Rows are stored one after the other, so
 *  ich_labels_values(labels, 0) points to all rows x columns values, row
 *  by row. Valid while the table lives and is not changed (adding a row may
 *  move them). */
ICH_API const float *ich_labels_values(const ich_labels *labels, int64_t row);

/** Group (patient) of row `row`: "" when none, NULL when out of range. */
ICH_API const char *ich_labels_group(const ich_labels *labels, int64_t row);

/** Set the group of row `row` (NULL or "" clears it). Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_set_group(ich_labels *labels, int64_t row, const char *group);

/** Row of the image `id`; -1 when absent or on NULL arguments. */
ICH_API int64_t ich_labels_find(const ich_labels *labels, const char *id);

/** Number of rows whose value in each column is >= 0.5, written to
 *  counts[0 .. count-1]; `count` must be ich_labels_columns(). Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_SHAPE (count differs). */
ICH_API ich_status ich_labels_positives(const ich_labels *labels, int64_t *counts,
                                        int32_t count);

/* ---- CSV files --------------------------------------------------------- */

/** Read a label CSV. The format is recognised from the header:
 *
 *  - long (RSNA's stage_2_train.csv): columns ID and Label and none named
 *    after an RSNA label, rows
 *    "ID_<image>_<subtype>,<0|1>". The image ID is everything before the
 *    last '_'. Every image must have a row for each of the six subtypes
 *    (any included); exact duplicate rows (the real file has them) are
 *    dropped, conflicting duplicates are an error. Rows come out in the
 *    order the images first appear, with the six RSNA columns. Values
 *    other than 0 and 1 are kept (soft labels).
 *  - wide: an ID column (named ID, image, image_id, filename, file or
 *    SOPInstanceUID; otherwise the first column), label columns (every
 *    column named after an RSNA label, in the file's order; when there are
 *    none, every other numeric column), an optional group column (patient,
 *    patient_id, PatientID, group) and other columns, which are ignored.
 *    A file-name ID loses a trailing .dcm or .png. A column without a
 *    name (pandas' index) is never a label column. An empty or repeated
 *    ID is an error.
 *
 *  The first line must be a header: a file without one (whose first line
 *  is data, so that a would-be label column is named by a number, such as
 *  "ID_0001,0,1,0,0,0,0" or "ID_0001_any,0") is refused with
 *  ICH_ERR_FORMAT, naming the file and the headers expected.
 *
 *  Quotes, CRLF line ends, a UTF-8 BOM and blank lines are handled; spaces
 *  and tabs around a cell are dropped (inside quotes too), header names
 *  and values are matched after that.
 *  Errors: ICH_ERR_IO (cannot read), ICH_ERR_FORMAT ("<path>:<line>: ..."
 *  for a malformed row, a value that is not a number, a missing column, a
 *  missing subtype, a duplicate image), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_read(const char *path, ich_labels **out);

/** Write the table as a wide CSV: "ID,<column names...>" plus ",patient"
 *  when any row has a group; values as 0/1 when they are, else with %.9g.
 *  Written atomically (a temporary file renamed into place); parent
 *  folders are created. Errors: ICH_ERR_INVALID_ARGUMENT, ICH_ERR_IO,
 *  ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_write(const ich_labels *labels, const char *path);

/** Write the table in RSNA's long format ("ID,Label" with one row
 *  ID_<image>_<column> per image and column, images in row order, columns
 *  in table order). Atomic as ich_labels_write(). */
ICH_API ich_status ich_labels_write_long(const ich_labels *labels, const char *path);

/* ---- Matching a model's labels ------------------------------------------ */

/* Every consumer of a model plus a label table (ich_evaluate_report(), a
 * dataset opened with options.model, ich_train() for a model with label
 * names, ich-predict's column names, the Python helpers) matches the
 * table's label columns to the model's labels BY NAME, ignoring case, and
 * puts them in the model's output order, never by position: a CSV in the
 * tutorial's order (any, intraparenchymal, intraventricular, subdural,
 * subarachnoid, epidural) then scores the same as one in libich's order.
 *
 * The model's labels are its metadata "ich.labels" (comma-separated, in
 * output order, as every training path writes them). A model without it
 * is taken to have the six RSNA labels in the standard order
 * (ich_label_name()) when it has 6 outputs; with another output count its
 * labels are unknown, and a table is then taken by position only when its
 * column count equals the outputs (a warning is logged), else refused.
 * A table must hold exactly the model's labels: a missing column, or one
 * the model does not have, is refused (ICH_ERR_SHAPE) with a message
 * naming the table's source, its columns, the model's labels, what is
 * missing and what is unknown. */

/** An ich_model (model.h). */
struct ich_model;

/** An empty table whose label columns are `model`'s labels in output
 *  order ("ich.labels", or the six RSNA labels for a 6-output model
 *  without it); free it. Errors: ICH_ERR_INVALID_ARGUMENT (NULL),
 *  ICH_ERR_NOT_FOUND (no "ich.labels" and not 6 outputs),
 *  ICH_ERR_FORMAT ("ich.labels" does not name each output once),
 *  ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_of_model(const struct ich_model *model, ich_labels **out);

/** A new table (free it) with the rows of `labels` (IDs, groups, values)
 *  and its label columns matched to `model`'s labels by name, in the
 *  model's output order and spelling (see above). `labels_source` and
 *  `model_source` name them in messages (the CSV's and the checkpoint's
 *  paths; NULL for generic words). Errors: ICH_ERR_INVALID_ARGUMENT
 *  (NULL), ICH_ERR_SHAPE (the columns do not match: the message says
 *  how), ICH_ERR_FORMAT (a bad "ich.labels"), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_match_model(const ich_labels *labels,
                                          const struct ich_model *model,
                                          const char *labels_source, const char *model_source,
                                          ich_labels **out);

/* ---- Checks and propagation -------------------------------------------- */

/** Check that column "any" equals the OR of the other columns in every row
 *  (a value counts as positive when >= 0.5, as in ich_labels_positives()).
 *  *mismatches (may be NULL) receives the number of rows where it does
 *  not; the first 20 are logged at ICH_LOG_WARNING by ID, then one line
 *  with the number of the others. With `fix`, "any" is set to the OR (0 or
 *  1) in those rows. Errors: ICH_ERR_INVALID_ARGUMENT,
 *  ICH_ERR_NOT_FOUND (no "any" column). */
ICH_API ich_status ich_labels_check_any(ich_labels *labels, int fix, int64_t *mismatches);

/** Scan-level labels to slice level (the tutorial's first data step).
 *  `root` holds a folder per patient and in it a folder per scan with the
 *  scan's slice files (.dcm or .png; others ignored). `scan_csv` has one
 *  row per scan: a patient column (patient, patient_id, PatientID), a scan
 *  column (scan, scan_id, study, series) and the label columns as in a wide
 *  CSV. The result has one row per slice file, ID "<patient>/<scan>/<file
 *  name without extension>", the scan's labels and the patient as group;
 *  scans sorted by CSV order, slices by file name (strcmp order; the
 *  extension is matched ignoring case, hidden files and sub-folders are
 *  ignored; a FIFO, device or socket so named is logged and skipped, never
 *  opened). Scans in the CSV without a folder, and folders without a row,
 *  are logged as warnings and skipped. Errors: ICH_ERR_IO (root
 *  unreadable), ICH_ERR_FORMAT (CSV, including a scan listed twice and a
 *  patient or scan that is not a plain folder name: ich_image_path()'s
 *  rule, and no '/'), ICH_ERR_NOT_FOUND (no slice found at all),
 *  ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_propagate(const char *root, const char *scan_csv,
                                        ich_labels **out);

/** Fill every row's group from the PatientID (0010,0020) of its DICOM file
 *  `image_dir/<id>.dcm`, reading the files on `threads` threads (0: one per
 *  CPU). The whole file is decoded (ich_dicom_read()), so this costs about
 *  as much as reading the images once. Files that cannot be read, and IDs
 *  that cannot name a file inside image_dir (the rule of ich_image_path():
 *  "../x" is never read), are logged (the first 20 by ID and row) and keep
 *  their group; *unreadable (may be
 *  NULL) receives their number. Files without a PatientID also keep their
 *  group (one warning counts them). Errors: ICH_ERR_INVALID_ARGUMENT (NULL
 *  labels or image_dir), ICH_ERR_NO_MEMORY, ICH_ERR_CANCELLED (the thread's
 *  cancel check, ich_set_cancel_check(), asked to stop: no group is
 *  changed). */
ICH_API ich_status ich_labels_groups_from_dicom(ich_labels *labels, const char *image_dir,
                                                int32_t threads, int64_t *unreadable);

/* ---- Sampling ---------------------------------------------------------- */

/** Options of ich_labels_sample(). Set `size` to sizeof(ich_sample_options);
 *  ich_sample_options_init() fills the defaults. */
typedef struct ich_sample_options {
    /* ABI: first version up to `negatives`, 28 bytes on LP64 (today's layout). */
    size_t size;
    int64_t per_label;     /**< images drawn for each label (default 10000) */
    uint64_t seed;         /**< default 0 */
    int32_t negatives;     /**< also draw per_label images with no positive
                                label, as a "none" class (default 1) */
} ich_sample_options;

/** Fill `options` with the defaults (and its size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_sample_options_init(ich_sample_options *options);
#define ich_sample_options_init(options) ich_sample_options_init(ICH_SIZED(options))

/** Balanced sampling: for each label column, draw per_label rows positive
 *  for it (value >= 0.5; all of them when there are fewer, with a warning
 *  logged), plus per_label negatives (rows with no positive value) when
 *  asked. Each label's draw is uniform and independent of the other
 *  labels' draws; the result is their union, so an image drawn for several
 *  labels appears once and a label may end up with more than per_label
 *  positives. Rows keep the source order, with their values and groups.
 *  The same seed and table give the same result. *out is a new table
 *  (free it). Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, per_label < 1), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_sample(const ich_labels *labels,
                                     const ich_sample_options *options, ich_labels **out);

/* ---- Selecting files --------------------------------------------------- */

/** How ich_labels_select_files() puts a file in the working folder. */
typedef enum ich_select_mode {
    ICH_SELECT_COPY = 0,     /**< copy, then compare the bytes with the source */
    ICH_SELECT_HARDLINK = 1, /**< hard link, checked by device and inode; a copy
                                  where the link cannot be made (another file
                                  system, no permission, no hard links there) */
    ICH_SELECT_SYMLINK = 2   /**< symbolic link to the source's absolute path
                                  (symbolic links in it resolved) */
} ich_select_mode;

/** Options of ich_labels_select_files(). Set `size`; see the init call. */
typedef struct ich_select_options {
    /* ABI: first version up to `progress_user`, 40 bytes on LP64 (today's layout). */
    size_t size;
    int32_t mode;             /**< ich_select_mode (default ICH_SELECT_COPY) */
    int32_t threads;          /**< worker threads; 0: one per CPU (default) */
    const char *extension;    /**< appended to the IDs to name the files (".dcm",
                                   the default, also when NULL; "" for none);
                                   no '/' */
    ich_progress_fn progress; /**< NULL: none; `what` is "select" */
    void *progress_user;
} ich_select_options;

/** Fill `options` with the defaults (and its size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_select_options_init(ich_select_options *options);
#define ich_select_options_init(options) ich_select_options_init(ICH_SIZED(options))

/** Put the files of the table's images from `src_dir` into `dst_dir`, on
 *  `threads` threads (NULL options: the defaults).
 *
 *  Finding: an image is src_dir/<id><extension>; when that is missing for
 *  some IDs, the tree under src_dir is indexed once (ich_files_walk(),
 *  hidden files included: every real file once, symbolic links followed
 *  without loops, FIFOs and devices skipped with a warning; dst_dir is
 *  skipped when it lies inside) and those IDs are looked up by file name:
 *  the path must end in
 *  "/<id><extension>", so an ID with folders matches those folders too.
 *  When several files match, the first path in sort order is used and a
 *  warning names the ID. Images found nowhere are missing: the first 20
 *  are logged by name at ICH_LOG_WARNING, the rest counted.
 *
 *  Placing: the image goes to dst_dir/<id><extension> (folders created),
 *  under a temporary name beside it that is renamed into place only after
 *  the check (copies compared byte for byte with the source, hard links by
 *  device and inode, symbolic links by their text and the file they
 *  reach). A failed file leaves nothing behind: no temporary file, and the
 *  target as it was. A target already there is kept when it holds the same
 *  bytes (copy and hardlink modes) or is a symbolic link to the source
 *  (symlink mode); otherwise it is replaced. An ID that cannot name a file
 *  inside the folders (absolute, a "." or ".." component, control
 *  characters, too long: the rule of ich_image_path()) fails.
 *
 *  Results: *copied receives the number of images now in dst_dir (kept
 *  ones included), *missing those not found, *failed those found that
 *  could not be placed (each logged, the first 20 by name); each pointer
 *  may be NULL. *found (may be NULL) receives a new table with the rows
 *  whose image is now in dst_dir, in table order, with their values and
 *  groups. Missing and failed files do not make the call fail: check the
 *  counts.
 *
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL labels or folder, bad options),
 *  ICH_ERR_CANCELLED (the progress callback returned non-zero, or the
 *  thread's cancel check did while the images were located: the counts
 *  say what was done and *found is NULL), ICH_ERR_IO (src_dir is not a
 *  readable folder, dst_dir cannot be created), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_labels_select_files(const ich_labels *labels, const char *src_dir,
                                           const char *dst_dir,
                                           const ich_select_options *options,
                                           int64_t *copied, int64_t *missing, int64_t *failed,
                                           ich_labels **found);

/* ---- Splitting --------------------------------------------------------- */

/** Parts of a split, in the order of ich_split_options.ratios. */
typedef enum ich_split_part {
    ICH_SPLIT_TRAIN = 0,
    ICH_SPLIT_VALIDATION = 1,
    ICH_SPLIT_TEST = 2
} ich_split_part;

/** Options of ich_labels_split(). Set `size`; see the init call. */
typedef struct ich_split_options {
    /* ABI: first version up to `stratify`, 44 bytes on LP64 (today's layout). */
    size_t size;
    double ratios[3];  /**< train, validation, test; >= 0, finite, summing
                            to 1 within 1e-6 (default 0.8, 0.1, 0.1) */
    uint64_t seed;     /**< default 0 */
    int32_t stratify;  /**< also balance each label's positives across the
                            parts, not only the rows (default 1) */
} ich_split_options;

/** Fill `options` with the defaults (and its size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_split_options_init(ich_split_options *options);
#define ich_split_options_init(options) ich_split_options_init(ICH_SIZED(options))

/** Split the table into train, validation and test tables (parts[0..2],
 *  new tables to free; each has the table's columns) by whole groups: all
 *  rows of a group (patient) land in one part, so no patient leaks across
 *  parts; a row without a group is a group of its own (a warning is logged
 *  when no row has one). Every row is in exactly one part, with its values
 *  and group, and rows keep the source order within a part. A ratio of 0
 *  gives an empty part (a part with a ratio > 0 may still be empty when
 *  there are fewer groups than parts; a warning says so). NULL options are
 *  the defaults.
 *
 *  The method: groups are shuffled with the seed, then ordered by the
 *  rarity of their rarest positive label (fewest positives in the table
 *  first; groups without positives last, and all groups alike without
 *  `stratify`), then by size class (floor(log2(rows)), larger first), the
 *  shuffle breaking ties. Greedily, each group joins the part that keeps
 *  what has been placed so far closest to the ratios: the smallest sum of
 *  squared share errors over the parts and over the row count and (with
 *  `stratify`) each label's positives (a value counts as positive when
 *  >= 0.5). A local search then moves single groups and swaps pairs of
 *  groups between parts while that lowers the same error on the whole
 *  table (swaps are bounded to about 4e7 pair checks on very large
 *  tables). The same table, options and seed give the same split on every
 *  machine and thread count; another seed gives another split.
 *
 *  Accuracy: how close the shares get depends on the group sizes. In the
 *  tests (about 2000 rows of 200 patients with 1 to 19 images each,
 *  labels clustered by patient, the rarest in about 10% of patients)
 *  every part's share of the rows is within 0.01 of its ratio and its
 *  share of each label's positives within 0.04; without `stratify` only
 *  the rows are balanced.
 *
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL labels or parts, options->size
 *  too small, ratios negative, not finite or not summing to 1 within
 *  1e-6, an empty table), ICH_ERR_NO_MEMORY; on error every parts[i] is
 *  NULL. */
ICH_API ich_status ich_labels_split(const ich_labels *labels, const ich_split_options *options,
                                    ich_labels *parts[3]);

#ifdef __cplusplus
}
#endif
#endif /* ICH_LABELS_H */
