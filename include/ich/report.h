/*
 * libich evaluation report: a checkpoint and labelled images -> a folder
 * with an HTML page, SVG plots and the numbers as CSV and JSON.
 *
 * ich_evaluate_report() loads the model, rebuilds the input recipe it was
 * trained with (ich_model_input_window(): the checkpoint's "ich.recipe";
 * a checkpoint without a recipe needs options.window), predicts every image
 * of the label table in evaluation mode (ich_model_predict(), in batches, in
 * table order), accumulates an ich_metrics and writes into `out_dir`
 * (created; every file written atomically):
 *
 *   report.html         self-contained page: summary, per-class table,
 *                       overall numbers, the figures inline
 *   roc.svg             ROC curves of all classes, chance diagonal
 *   confusion_<c>.svg   the 2x2 confusion matrix of class c, predicted
 *                       positive when p > 0.5 (metrics.h)
 *   loss.svg, accuracy.svg  per-epoch curves from the checkpoint's
 *                       "ich.history" (left out, with a note in the page,
 *                       when it has none)
 *   metrics.csv         one row per class, then the overall numbers
 *   metrics.json        the same numbers (undefined values: null)
 *   predictions.csv     ID and one probability per class
 *
 * Cascade models (ich_model_cascade_stages() = 2): the probabilities are
 * the gated ones ich_model_predict() gives (the subtypes 0 where P(any) is
 * not above options.threshold), and the confusion matrices, accuracy,
 * precision, recall, F1, AUC, AP, Youden and predictions.csv use them, as
 * users get them; the losses (BCE and the RSNA weighted log loss, in
 * metrics.csv, metrics.json and the page) are computed from the UNGATED
 * probabilities, the sigmoid of each logit, as the stages are trained (a
 * gated 0 on a positive subtype would cost the log of the clamp and make
 * the losses meaningless). The page says so.
 *
 * Undefined values (see metrics.h) are empty CSV fields, JSON null and
 * "undefined" in the page, never NaN; so is a Youden threshold of +infinity
 * (the best point predicts nothing positive).
 *
 * Several ranks (a program started by mpirun or srun: <ich/dist.h>): every
 * rank calls ich_evaluate_report() with the same arguments (it is
 * collective), opens the checkpoint and the label table, and predicts one
 * contiguous block of whole batches of the table's images (each batch the
 * one a single process predicts); rank 0 gathers the predictions in table
 * order, computes the metrics and writes the report folder alone: the
 * files a single process writes. options.summary receives every rank's
 * counts on every rank; the progress callback this rank's block. An image
 * that cannot be read is logged by the rank that owns it, a row without
 * an image by rank 0: each once. A failure every rank shares is returned
 * by each; a failure of some ranks only (out of memory, a report folder
 * rank 0 cannot write) ends every rank with that rank's message on stderr.
 */
#ifndef ICH_REPORT_H
#define ICH_REPORT_H

#include "ich/core.h"
#include "ich/window.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What ich_evaluate_report() covered, filled when options.summary is set
 *  (set its size to sizeof(ich_evaluate_summary) first). */
typedef struct ich_evaluate_summary {
    /* ABI: first version up to `left_out`, 32 bytes on LP64 (today's layout). */
    size_t size;
    int64_t rows;      /**< rows of the label table */
    int64_t evaluated; /**< images predicted and scored */
    int64_t left_out;  /**< rows left out: no image file, an ID that names no
                            file inside the folder, or an image that could not
                            be read (each logged with its reason); the report
                            says how many */
} ich_evaluate_summary;

/** Options of ich_evaluate_report(); ich_evaluate_options_init() fills the
 *  defaults given here. */
typedef struct ich_evaluate_options {
    /* ABI: first version up to `progress_user`, 48 bytes on LP64 (later fields optional). */
    size_t size;
    int32_t batch_size;          /**< images per prediction batch (default 16) */
    int32_t workers;             /**< threads loading each batch's images (default
                                      0: the caller's thread) */
    float threshold;             /**< cascade "any" threshold: P(any) <= it zeroes the
                                      subtypes (default 0.5) */
    int32_t bootstrap;           /**< AUC bootstrap resamples (default 1000; 0: no CI) */
    uint64_t seed;               /**< bootstrap seed (default 0) */
    ich_progress_fn progress;    /**< NULL: none; returning nonzero cancels */
    void *progress_user;
    const ich_window *window;    /**< the input recipe; NULL (default): the
                                      checkpoint's (ich_model_input_window()),
                                      and a checkpoint without one is refused
                                      with ICH_ERR_NOT_FOUND */
    ich_evaluate_summary *summary; /**< NULL (default), or filled on success:
                                        programs finish with a failure status
                                        when rows were left out */
} ich_evaluate_options;

/** Fill `options` with the defaults (sets size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_evaluate_options_init(ich_evaluate_options *options);
#define ich_evaluate_options_init(options) ich_evaluate_options_init(ICH_SIZED(options))

/** Evaluate the checkpoint at `checkpoint` on the images of `image_dir`
 *  labelled by `labels_csv` (wide or long format, ich_labels_read()) and
 *  write the report folder `out_dir` (see above). The CSV's label columns
 *  are matched to the model's labels by name, in any order
 *  (ich_labels_match_model()); the report lists them in the model's
 *  output order. options may be NULL for the defaults.
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL, bad option), ICH_ERR_CANCELLED
 *  (the progress callback, or the thread's cancel check within a batch,
 *  ich_set_cancel_check(), asked to stop: no report is written),
 *  ICH_ERR_IO / ICH_ERR_FORMAT / ICH_ERR_NOT_FOUND (checkpoint, CSV or
 *  images, as ich_model_load() and ich_dataset_open_csv() give them; also
 *  NOT_FOUND for a checkpoint without a recipe and no options.window),
 *  ICH_ERR_SHAPE (the label columns do not match the model's labels: the
 *  message names the CSV, its columns and the model's labels),
 *  ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_evaluate_report(const char *checkpoint, const char *labels_csv,
                                       const char *image_dir, const char *out_dir,
                                       const ich_evaluate_options *options);

#ifdef __cplusplus
}
#endif
#endif /* ICH_REPORT_H */
