/*
 * libich phantom: the built-in synthetic head-CT dataset.
 *
 * The RSNA data cannot be shipped, so libich draws its own: patients, each
 * with studies, each with one axial series of slices from the skull base to
 * the vertex, written as real CT DICOM files (int16 with rescale tags,
 * consistent patient IDs, study/series/SOP UIDs, image positions along z)
 * with RSNA-style labels.
 *
 * The anatomy makes the task real: air, scalp, a skull of varying thickness
 * (~700-1900 HU), brain (~20-45 HU) with grey/white contrast, ventricles and
 * sulci with CSF (~0-15 HU), scanner noise; and the five hemorrhage types
 * where and how they appear clinically, blood at ~50-90 HU: epidural as a
 * biconvex lens against the inner table of the skull, subdural as a
 * crescent along it, subarachnoid as thin bright lines in sulci and
 * cisterns, intraparenchymal as a blob inside the brain, intraventricular
 * inside the ventricles. A bleed spans several neighbouring slices and
 * changes size along z; several types sometimes occur at once; sizes range
 * from obvious to subtle. A slice's "any" is set when any type is visible
 * in it.
 *
 * Everything (pixels, IDs, UIDs, labels) follows from the options and the
 * seed: the same options give byte-identical files on every machine and
 * with any thread count.
 *
 * Labels come from what is drawn: a type is positive in a slice when its
 * blood covers at least about 3 mm^2 there (3 pixels or more); "any" is
 * the OR of the five types.
 *
 * Geometry: a 230 mm field of view (pixel spacing 230 / max(rows, columns)
 * mm), slices of 120 / slices mm from the skull base (z = 0) to the vertex.
 * Names: patient, study, series (= scan) and image IDs are "ID_<10 hex>"
 * derived from the seed; the DICOM files carry the patient ID as
 * PatientID and numeric study/series/SOP instance UIDs derived from the
 * seed and the indexes; stored values are int16 with rescale slope 1 and
 * intercept -1024 (as in the RSNA data).
 *
 * Files written by ich_phantom_write() in `dir`:
 *   labels.csv    RSNA long format, "ID,Label" rows ID_<image>_<subtype>,
 *                 six per image in the order any, epidural,
 *                 intraparenchymal, intraventricular, subarachnoid, subdural
 *   metadata.csv  ID,patient,study,series,instance,z (one row per slice;
 *                 patient, study and series are the ID_<10 hex> names,
 *                 series being the scan of scans.csv; instance from 1; z in
 *                 mm, the DICOM image position)
 *   scans.csv     patient,scan,any,epidural,... (one row per series: the OR
 *                 of its slices; the scan-level labels of the tutorial)
 *   images        ICH_PHANTOM_FLAT: dir/images/ID_<10 hex>.dcm (RSNA's
 *                 layout); ICH_PHANTOM_TREE: dir/images/<patient>/<scan>/
 *                 ID_<10 hex>.dcm (a folder per patient and scan)
 * Rows are in the order patient, study, slice.
 *
 * Threads: the functions start their own threads (options.threads) and
 * may be called from several threads at once.
 */
#ifndef ICH_PHANTOM_H
#define ICH_PHANTOM_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where ich_phantom_write() puts the DICOM files (see above). */
typedef enum ich_phantom_layout {
    ICH_PHANTOM_FLAT = 0,
    ICH_PHANTOM_TREE = 1
} ich_phantom_layout;

/** Options of the phantom. Set `size` to sizeof(ich_phantom_options);
 *  ich_phantom_options_init() fills the defaults given here. */
typedef struct ich_phantom_options {
    /* ABI: first version up to `progress_user`, 144 bytes on LP64 (today's layout). */
    size_t size;
    uint64_t seed;              /**< default 0 */
    int32_t patients;           /**< default 20 (1..100000) */
    int32_t studies_per_patient;/**< default 1 (1..100); each study has one
                                     series */
    int32_t slices;             /**< slices per series, default 24 (1..1000) */
    int32_t rows;               /**< default 512 (16..4096) */
    int32_t columns;            /**< default 512 (16..4096) */
    double prevalence;          /**< share of series with a bleed, default 0.5 */
    double multiple;            /**< share of bleeding series with more than
                                     one type, default 0.25 */
    double size_min;            /**< bleed size scale, smallest (subtle),
                                     default 0.4 (0.05..2) */
    double size_max;            /**< largest (obvious), default 1.0
                                     (size_min..2) */
    double noise;               /**< scanner noise sd in HU, default 6
                                     (0..500) */
    double type_weights[5];     /**< relative frequency of epidural,
                                     intraparenchymal, intraventricular,
                                     subarachnoid, subdural; all 0 means
                                     equal (default) */
    int32_t layout;             /**< ich_phantom_layout, default FLAT */
    int32_t threads;            /**< 0: one per CPU (default), up to 1024;
                                     the output does not depend on it */
    ich_progress_fn progress;   /**< NULL: none; ich_phantom_write() only,
                                     "phantom", slices done of all */
    void *progress_user;
} ich_phantom_options;

/** Fill `options` with the defaults (and its size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_phantom_options_init(ich_phantom_options *options);
#define ich_phantom_options_init(options) ich_phantom_options_init(ICH_SIZED(options))

/** Write the phantom dataset into the folder `dir` (created when missing;
 *  files already there with the same names are replaced). Each file is
 *  written atomically; the CSVs last, so a dataset with its CSVs is whole.
 *  *slices_written (may be NULL) receives the number of DICOM files.
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL, an option out of range),
 *  ICH_ERR_CANCELLED (the progress callback returned non-zero: the files
 *  written stay, the CSVs are not written), ICH_ERR_IO, ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_phantom_write(const char *dir, const ich_phantom_options *options,
                                     int64_t *slices_written);

/** Draw one slice in memory, exactly as ich_phantom_write() would: slice
 *  `slice` of study `study` of patient `patient` (0-based, within the
 *  options' counts). `hu` receives rows * columns Hounsfield units
 *  (row-major, the values the DICOM file would give, noise included);
 *  `labels` (may be NULL) receives the slice's six labels (any first) as
 *  0/1; `id` (may be NULL; 16 bytes or more) its image ID. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, out of range), ICH_ERR_SHAPE (hu_count
 *  is not rows * columns), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_phantom_slice(const ich_phantom_options *options, int32_t patient,
                                     int32_t study, int32_t slice, float *hu, size_t hu_count,
                                     float *labels, char *id, size_t id_size);

#ifdef __cplusplus
}
#endif
#endif /* ICH_PHANTOM_H */
