/*
 * libich phantom: the built-in synthetic head-CT dataset.
 *
 * The RSNA data cannot be shipped, so libich draws its own: patients, each
 * with studies, each with one axial series of slices from the skull base to
 * the vertex, written as real CT DICOM files (int16 with rescale tags,
 * consistent patient IDs, study/series/SOP UIDs, image positions along z)
 * with RSNA-style labels.
 *
 * The slices are meant to pass for adult head CT at a glance, drawn from
 * the seed alone (no real scan goes in), so that a model trained on them
 * has to learn hemorrhage rather than the phantom's shortcuts:
 *  - anatomy varying by patient: head size, shape, position and tilt;
 *    scalp with its fat layer; a skull of varying thickness with dense
 *    inner and outer tables, diploe and sutures; at the lowest slices the
 *    skull base as its three fossae (orbits with globe, optic nerve,
 *    muscles and fat; ethmoid, sphenoid and frontal sinuses; curved
 *    greater sphenoid wings; petrous wedges with mastoid air cells and the
 *    inner ear; clivus; temporal lobes in the middle fossae; pons or
 *    medulla, prepontine cistern, fourth ventricle and the cerebellum with
 *    its folia in the posterior fossa); above it the midbrain (peduncles,
 *    tectum) in the ambient cistern with the suprasellar and quadrigeminal
 *    cisterns and the temporal horns; thalami, lentiform nuclei and caudate
 *    heads around the internal capsule, the third ventricle and the frontal
 *    horns; the centrum semiovale and convexity sulci that open towards the
 *    vertex; grey and white matter at their own HU with a smooth texture;
 *    CSF in sulci, fissures, cisterns and ventricles shaped by the level;
 *    falx and tentorium; pineal, choroid plexus and falx calcifications
 *    (bright, not blood); age (atrophy: wider sulci, cisterns and
 *    ventricles);
 *  - the scanner, varying by study as real scanners and protocols do (all
 *    of it drawn from the study's own stream, never from the bleeds', so
 *    that nothing but the blood tells a bleeding slice): noise of 3-7 HU
 *    (options.noise times a factor 0.5-1.15) through the study's
 *    reconstruction kernel (soft, standard or sharp: blotchy to fine noise
 *    grain, blurred to crisp edges, partial volume); the head's position
 *    (+-12 mm) and rotation (+-14 degrees); where the series starts and
 *    how far it reaches (+-3.6 mm, 95-102% of the head's height);
 *    cupping (the brain's periphery up to 4 HU denser); beam-hardening
 *    streaks and dark bands at the skull base; a headrest behind the head;
 *    outside the reconstruction circle (the largest circle in the matrix)
 *    air or, in half of the studies, a padding value of -3024 or -2000 HU;
 *  - bleeds as they appear: acute blood 55-84 HU (one in eight 42-52 HU:
 *    older blood or anaemia; subdural 3 HU less), with a few HU of texture; epidural as a
 *    biconvex lens against the inner table, bounded by the coronal and
 *    lambdoid sutures; subdural as a crescent along it, crossing sutures;
 *    subarachnoid as thin blood in sulci and the basal cisterns;
 *    intraparenchymal as a round or lobulated clot, often with a dark rim
 *    of oedema; intraventricular blood layering in the dependent horns.
 *    Sizes run from 3-5 mm (the hard cases; with the default size_min
 *    they are common) to several centimetres with mass effect (midline
 *    shift, a squeezed ventricle). A bleed is a 3D lesion: it
 *    spans neighbouring slices and changes size along z; several types
 *    sometimes occur at once. With the defaults about 14% of slices are
 *    positive for "any", as in the RSNA data.
 *
 * Tissue HU as drawn (before the scanner's noise, kernel and beam
 * hardening: cupping adds up to 4 HU inside the skull, and below a height
 * of 0.3 streaks and bands; ich_phantom_tissues() gives each pixel's
 * tissue): air -1000 (padding -3024 or -2000 HU outside the
 * reconstruction circle, still called air); fat -110..-75; soft tissue
 * (scalp, muscle, globe, inner ear) 10..45; bone 250..1950 (sutures about
 * 300, diploe 500..1100, tables up to 1800, septa of air cells 400..1000,
 * petrous 900..1700); CSF 3..10 (thin sulci and cerebellar folia up to
 * 20: the 5 mm slice averages them with cortex); grey matter 28..43 (cortex blending
 * into white matter, deep nuclei); white matter 22..37; dura (falx,
 * tentorium) 43..51; calcification 100..400; oedema 10..30; headrest -820
 * (foam) and 90 (shell); air in sinuses and mastoids -980..-940; blood
 * 36..87 (acute 50..87).
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
 * intercept -1024 (as in the RSNA data; options.vary_intercept gives each
 * series -1024, -1000 or 0).
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
    /* Added after the first version (the size protocol, <ich/core.h>). */
    int32_t vary_intercept;     /**< 0: every series has rescale intercept
                                     -1024 (default); 1: each series -1024
                                     (60%), -1000 (25%) or 0 (15%), seeded
                                     (the HU stay the same) */
} ich_phantom_options;

/** What a phantom pixel is, as ich_phantom_tissues() gives it. Blood is
 *  ICH_PHANTOM_EPIDURAL + the type's index in options.type_weights. */
typedef enum ich_phantom_tissue {
    ICH_PHANTOM_AIR = 0,          /**< outside the head */
    ICH_PHANTOM_SOFT_TISSUE = 1,  /**< scalp, muscle, the globes */
    ICH_PHANTOM_FAT = 2,          /**< subcutaneous and orbital fat */
    ICH_PHANTOM_BONE = 3,
    ICH_PHANTOM_CSF = 4,          /**< sulci, fissures, cisterns, ventricles */
    ICH_PHANTOM_GREY = 5,         /**< grey matter, cortex and deep nuclei */
    ICH_PHANTOM_WHITE = 6,
    ICH_PHANTOM_DURA = 7,         /**< falx and tentorium */
    ICH_PHANTOM_CALCIFICATION = 8,/**< pineal, choroid plexus, falx */
    ICH_PHANTOM_EDEMA = 9,        /**< the rim around an intraparenchymal bleed */
    ICH_PHANTOM_HEADREST = 10,
    ICH_PHANTOM_SINUS_AIR = 11,   /**< air in the sinuses and mastoids */
    ICH_PHANTOM_EPIDURAL = 12,
    ICH_PHANTOM_INTRAPARENCHYMAL = 13,
    ICH_PHANTOM_INTRAVENTRICULAR = 14,
    ICH_PHANTOM_SUBARACHNOID = 15,
    ICH_PHANTOM_SUBDURAL = 16,
    ICH_PHANTOM_TISSUE_COUNT = 17
} ich_phantom_tissue;

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

/** The tissue of each pixel of a slice as drawn (an ich_phantom_tissue per
 *  pixel, row-major, the same slice as ich_phantom_slice() gives): what
 *  the labels count (a type is positive when about 3 mm^2 of its blood,
 *  3 pixels or more, are drawn), and what per-tissue statistics are measured against.
 *  `tissue` receives rows * columns values. Errors: as ich_phantom_slice(). */
ICH_API ich_status ich_phantom_tissues(const ich_phantom_options *options, int32_t patient,
                                       int32_t study, int32_t slice, uint8_t *tissue,
                                       size_t count);

#ifdef __cplusplus
}
#endif
#endif /* ICH_PHANTOM_H */
