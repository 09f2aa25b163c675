/*
 * libich pipeline: whole folders through one step, as the example programs
 * ich-preprocess and ich-predict (and Python's ich.preprocess_folder,
 * ich.predict_folder, ich.predict_files) run them.
 *
 * - ich_preprocess_folder(): every DICOM file under a folder -> a windowed
 *   PNG under another, in parallel (the data step: dicom + window + png).
 * - ich_predict_files() / ich_predict_folder(): DICOM files (or every DICOM
 *   file under folders) -> the model's probabilities per image, given to a
 *   callback or written as a predictions CSV (the model step).
 *
 * Both find the DICOM files of a folder the same way: ich_files_walk()
 * (<ich/files.h>: each real file once, symbolic link loops end, FIFOs,
 * devices, sockets and broken links never opened but logged at
 * ICH_LOG_WARNING as "skipped PATH: REASON" and counted), keeping the files
 * named *.dcm or *.dicom (any case) and those that carry the "DICM" marker
 * after the 128-byte preamble; hidden names are left out. Files are taken
 * in path order (strcmp), so results do not depend on the file system.
 *
 * A bad file (truncated, hostile, unsupported) never fails the call: it is
 * logged at ICH_LOG_WARNING, naming it, skipped and counted in the summary.
 * Check the summary's counts to tell a complete run from a partial one.
 *
 * Several ranks (a program started by mpirun or srun: <ich/dist.h>):
 * ich_preprocess_folder() and ich_predict_folder() share the work. Every
 * rank calls them with the same arguments (they are collective: a call on
 * rank 0 alone waits for the others until ICH_DIST_TIMEOUT ends the run);
 * each rank walks the folder, checks that it found the same files as rank
 * 0 (ICH_ERR_IO otherwise, on every rank: the ranks must see one shared
 * folder) and takes one contiguous block of the sorted list (for
 * ich_predict_folder() a block of whole batches of batch_size files, so
 * that each batch is the one a single process predicts: a rank may get
 * none when there are fewer batches than ranks). Each rank writes the
 * PNGs of its own files; rank 0 alone writes recipe.txt and the
 * predictions file, with every rank's rows in file order: the files a
 * single process writes (byte for byte when each rank computes as it does,
 * e.g. with as many compute threads). The summary's counts are every
 * rank's together, on every rank (its `threads` this rank's). The
 * progress callback is called on every rank with the counts of its own
 * block (it is also how a rank is cancelled); a program draws it on rank
 * 0 only. A bad file is logged by the rank that owns it, an entry the
 * walk skipped by rank 0 alone: each once, as by a single process. A
 * failure every rank shares (a wrong path, bad options, every rank
 * cancelled) is returned by each, as by one process; a failure of some
 * ranks only (out of memory, an output file rank 0 cannot write) ends
 * every rank with that rank's message on stderr (<ich/dist.h>): no rank
 * waits for ever and no shared file is half-written. ich_predict_files()
 * is not shared: each process predicts every path it is given.
 *
 * This header is included by <ich/ich.h>; include that one.
 */
#ifndef ICH_PIPELINE_H
#define ICH_PIPELINE_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ich_window;
struct ich_model;

/* ---- Preprocessing a folder -------------------------------------------- */

/** Options of ich_preprocess_folder(). Set `size`; see the init call. */
typedef struct ich_preprocess_options {
    /* ABI: first version up to `progress_user`, 32 bytes on LP64 (today's layout). */
    size_t size;
    int32_t threads;          /**< worker threads; 0: one per CPU (default) */
    int32_t overwrite;        /**< non-zero: convert again over existing PNGs;
                                   0 (default): keep them ("already there") */
    ich_progress_fn progress; /**< NULL: none; `what` is "preprocess", the
                                   count DICOM files */
    void *progress_user;
} ich_preprocess_options;

/** Fill `options` with the defaults (sets size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_preprocess_options_init(ich_preprocess_options *options);
#define ich_preprocess_options_init(options) ich_preprocess_options_init(ICH_SIZED(options))

/** What ich_preprocess_folder() did. Set `size` to sizeof(the struct);
 *  the call writes the fields that fit in it and sets `size` to the bytes
 *  written. */
typedef struct ich_preprocess_summary {
    /* ABI: first version up to `threads`, 52 bytes on LP64 (today's layout). */
    size_t size;
    int64_t files;     /**< DICOM files found */
    int64_t converted; /**< PNGs written */
    int64_t existing;  /**< PNGs already there, kept (overwrite off) */
    int64_t failed;    /**< files that could not be converted (logged) */
    int64_t skipped;   /**< entries the walk did not open: FIFOs, devices,
                            broken or looping links, unreadable folders */
    int32_t threads;   /**< worker threads used */
} ich_preprocess_summary;

/** Convert every DICOM file under `input_dir` (see the introduction) with
 *  the recipe `window` into an 8-bit PNG: input_dir/SUB/NAME.dcm becomes
 *  output_dir/SUB/NAME.png (the last extension replaced; sub-folders
 *  created), written atomically (ich_window_dicom_to_png()). The recipe's
 *  line (ich_window_to_string()) is written to output_dir/recipe.txt, so
 *  that training on these PNGs can record how its input was made.
 *
 *  Work is shared by `threads` threads; progress counts files. A file that
 *  cannot be read or converted is logged (ICH_LOG_WARNING, "skipped: " and
 *  the error, which names the file) and counted as failed; nothing is left
 *  under its PNG's name. With overwrite off, a PNG already there is kept
 *  and counted as existing.
 *
 *  `summary` (may be NULL) receives the counts, also when the call fails
 *  after the walk (e.g. cancelled). Errors: ICH_ERR_INVALID_ARGUMENT (NULL
 *  folder or window, bad options or summary size), ICH_ERR_CANCELLED (the
 *  progress callback or the thread's cancel check asked to stop; the PNGs
 *  written so far kept), ICH_ERR_UNSUPPORTED (the recipe does not make 1 or 3 channels),
 *  ICH_ERR_IO (input_dir is not a readable folder, output_dir or
 *  recipe.txt cannot be written; nothing converted then),
 *  ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_preprocess_folder(const char *input_dir, const char *output_dir,
                                         const struct ich_window *window,
                                         const ich_preprocess_options *options,
                                         ich_preprocess_summary *summary);

/* ---- Predicting files and folders -------------------------------------- */

/** How ich_predict_folder() writes its predictions. */
typedef enum ich_predict_format {
    ICH_PREDICT_CSV = 0, /**< "ID,<label>,<label>,..." with one row per image */
    ICH_PREDICT_RSNA = 1 /**< RSNA's submission: "ID,Label" with one row per
                              image and label, "ID_<image>_<label>" ("ID_"
                              not repeated when the image ID has it) */
} ich_predict_format;

/** Options of ich_predict_files() and ich_predict_folder(). Set `size`;
 *  see the init call. */
typedef struct ich_predict_options {
    /* ABI: first version up to `progress_user`, 56 bytes on LP64 (today's layout). */
    size_t size;
    const struct ich_window *window; /**< the input recipe; NULL (default):
                                          the model's (ich_model_input_window()) */
    float threshold;          /**< cascade models: P(any) <= threshold zeroes
                                   the subtypes (ich_model_predict(); default 0.5) */
    int32_t batch_size;       /**< images per forward pass (default 16) */
    int32_t threads;          /**< threads reading and windowing a batch's
                                   files; 0: one per CPU (default). The
                                   network's own threads: ich_set_threads() */
    int32_t format;           /**< ich_predict_format (default ICH_PREDICT_CSV);
                                   ich_predict_folder() only */
    int32_t stop_on_failure;  /**< non-zero: the first file that fails ends
                                   the call with that file's error; 0
                                   (default): it is logged, skipped, counted */
    ich_progress_fn progress; /**< NULL: none; `what` is "predict", the
                                   count input files */
    void *progress_user;
} ich_predict_options;

/** Fill `options` with the defaults (sets size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_predict_options_init(ich_predict_options *options);
#define ich_predict_options_init(options) ich_predict_options_init(ICH_SIZED(options))

/** What ich_predict_files() and ich_predict_folder() did. Set `size` to
 *  sizeof(the struct); the call writes the fields that fit in it and sets
 *  `size` to the bytes written. */
typedef struct ich_predict_summary {
    /* ABI: first version up to `skipped`, 40 bytes on LP64 (today's layout). */
    size_t size;
    int64_t files;     /**< DICOM files found (and files given) */
    int64_t predicted; /**< images with probabilities */
    int64_t failed;    /**< files that could not be read or windowed, and
                            images whose probabilities were not finite
                            (each logged) */
    int64_t skipped;   /**< entries a folder walk did not open */
} ich_predict_summary;

/** Called by ich_predict_files() on the calling thread, once per input
 *  file in order: `path` the file, `id` its image ID (the file name
 *  without its folder and a .dcm or .dicom suffix), and either
 *  `probabilities` (`outputs` values, in the model's output order) or NULL
 *  with `problem` saying why the file was left out (its error, which names
 *  it). Also called, with id and probabilities NULL, for each entry a
 *  folder walk skipped (`problem` the reason). The strings and values are
 *  valid during the call only. Return 0 to go on, non-zero to stop: the
 *  call then returns ICH_ERR_CANCELLED ("predict: cancelled"). */
typedef int (*ich_prediction_fn)(void *user, const char *path, const char *id,
                                 const float *probabilities, int32_t outputs,
                                 const char *problem);

/** Predict every image of `paths` (`count` paths): a path to a file is
 *  read as one DICOM slice; a path to a folder gives every DICOM file under
 *  it (see the introduction), in path order. Each file is windowed with the
 *  recipe (options->window, else the model's own), `batch_size` at a time
 *  on `threads` threads, and predicted with ich_model_predict() (the
 *  cascade's threshold applies). Each result goes to `fn` (may be NULL).
 *
 *  A file that cannot be read or windowed is logged (ICH_LOG_WARNING,
 *  "skipped PATH: ERROR"), given to fn with its problem, and counted as
 *  failed; when a batch's probabilities are not all finite, its images are
 *  predicted one by one and each failing one is logged by ID ("skipped ID:
 *  ERROR") and counted. With stop_on_failure the first such file ends the
 *  call with its error instead.
 *
 *  `summary` (may be NULL) receives the counts, also when the call fails
 *  part way. Errors: ICH_ERR_INVALID_ARGUMENT (NULL model or paths with a
 *  count, bad options or summary size), ICH_ERR_CANCELLED (the progress
 *  callback or fn asked to stop), ICH_ERR_NOT_FOUND (no recipe given and the model has none; a
 *  path that does not exist: "PATH: no such file or folder"), ICH_ERR_IO (a
 *  path that is neither a regular file nor a folder, such as a FIFO, which
 *  is never opened; a folder that cannot be read), ICH_ERR_SHAPE (the
 *  recipe does not make the model's input), ICH_ERR_UNSUPPORTED (the
 *  recipe takes neighbouring slices: use ich-evaluate's dataset path),
 *  those of ich_model_predict() other than non-finite output,
 *  ICH_ERR_NO_MEMORY; with stop_on_failure, those of the failing file. */
ICH_API ich_status ich_predict_files(struct ich_model *model, const char *const *paths,
                                     int64_t count, const ich_predict_options *options,
                                     ich_prediction_fn fn, void *user,
                                     ich_predict_summary *summary);

/** Predict one DICOM file or every DICOM file under a folder (`input`), as
 *  ich_predict_files() does, and write the predictions to `out_path`
 *  atomically (a temporary file renamed into place: never half a file) in
 *  options->format, with the model's label names as columns
 *  (ich_labels_of_model()) and "%.9g" values (float32 exactly). Images that
 *  failed have no row; the file is written (with its header) even when none
 *  was predicted. Errors: those of ich_predict_files() and
 *  ich_labels_of_model() (ICH_ERR_NOT_FOUND: no label names for this output
 *  count), ICH_ERR_INVALID_ARGUMENT (NULL out_path, unknown format),
 *  ICH_ERR_IO (out_path cannot be written; the old file then stays). */
ICH_API ich_status ich_predict_folder(struct ich_model *model, const char *input,
                                      const char *out_path, const ich_predict_options *options,
                                      ich_predict_summary *summary);

#ifdef __cplusplus
}
#endif
#endif /* ICH_PIPELINE_H */
