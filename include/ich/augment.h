/*
 * libich augmentation: random flips, rotation, brightness/contrast, blur
 * and elastic deformation of training images.
 *
 * An ich_augment holds a recipe: each transform with the probability that
 * it is applied to a sample and its strength. Applying the recipe draws all
 * its random choices from a seed given per call, so a sample's augmentation
 * depends only on (seed, recipe), never on the image, threads or call
 * order: the dataset handle passes a seed made from its own seed, the epoch
 * and the sample index. Each transform draws its numbers whether it is on
 * or not, so changing one transform of a recipe keeps the others' choices.
 * The transforms run in this order, each with its own probability:
 *
 *   hflip      mirror left-right                    (p)
 *   vflip      mirror top-bottom                    (p)
 *   rotate     by an angle uniform in [-degrees, degrees] about the
 *              centre ((columns - 1) / 2, (rows - 1) / 2); positive angles
 *              turn the picture counter-clockwise as displayed (numpy's
 *              rot90 for +90); bilinear, with pixels outside the image
 *              taking the channel's minimum       (p, degrees)
 *   elastic    displacement fields of uniform noise in [-1, 1] smoothed by
 *              a gaussian of sd `sigma` pixels, scaled by `alpha` pixels
 *              (Simard et al. 2003); bilinear, sources outside the image
 *              take the nearest edge pixel, so the value range is kept
 *                                                   (p, alpha, sigma)
 *   brightness_contrast  v' = (v - m) * c + m + b * r with c uniform in
 *              [1 - contrast, 1 + contrast], b uniform in [-brightness,
 *              brightness], m the channel mean and r the image's value
 *              range (max - min over all channels)
 *                                                   (p, brightness, contrast)
 *   blur       gaussian of sd uniform in [sigma_min, sigma_max] pixels,
 *              kernel radius ceil(3 sd), separable, edges clamped
 *                                                   (p, sigma_min, sigma_max)
 *
 * Geometric transforms move every channel the same way. 8-bit images are
 * worked on as floats and clamped to 0..255 and rounded once at the end,
 * so an 8-bit result equals the float result of the same image and seed,
 * clamped and rounded; float images are not clamped. On one core a
 * 3 x 256 x 256 float image takes about 1 ms with the recipe below and
 * 3 ms with all six transforms on (elastic 1.3 ms, rotation 0.8 ms, blur
 * 0.5 ms); 8-bit images add about 0.25 ms for the conversion.
 *
 * A recipe can also be written as text, as the example programs take it:
 *   "hflip:0.5,vflip:0.2,rotate:0.5:15,brightness_contrast:0.3:0.1:0.1,
 *    blur:0.2:0.5:1.5,elastic:0.2:30:5"
 * (name:probability:parameters..., items separated by commas, spaces
 * allowed around items; "" is the empty recipe).
 *
 * The random choices of one call can be inspected (ich_augment_choose())
 * and applied or set by hand (ich_augment_apply_choices_*()), e.g. for a
 * fixed test-time flip.
 *
 * Offline mode (ich_augment_offline()) writes augmented copies of the
 * minority labels' training images; online mode is the dataset handle's
 * (include/ich/dataset.h).
 *
 * Threads: configure a recipe from one thread; the apply functions only
 * read it and may run on one recipe from many threads at once.
 */
#ifndef ICH_AUGMENT_H
#define ICH_AUGMENT_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An augmentation recipe (opaque). */
typedef struct ich_augment ich_augment;

/** Create an empty recipe (no transform: applying it changes nothing).
 *  Errors: ICH_ERR_INVALID_ARGUMENT, ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_augment_create(ich_augment **out);

/** Free a recipe. NULL is a no-op. */
ICH_API void ich_augment_free(ich_augment *augment);

/** Set (or, with p = 0, remove) a transform. Probabilities are in [0, 1];
 *  the strengths must be finite and >= 0 (blur: sigma_min <= sigma_max,
 *  sigma_max > 0 when p > 0; elastic: sigma > 0 when p > 0; sigmas at most
 *  1000 pixels; rotate: degrees <= 180). Errors: ICH_ERR_INVALID_ARGUMENT. */
ICH_API ich_status ich_augment_set_flip(ich_augment *augment, double p_horizontal,
                                        double p_vertical);
/** Rotation by an angle uniform in [-degrees, degrees] with probability p. */
ICH_API ich_status ich_augment_set_rotation(ich_augment *augment, double p, double degrees);
/** Brightness and contrast changes (see the top of this header) with
 *  probability p. */
ICH_API ich_status ich_augment_set_brightness_contrast(ich_augment *augment, double p,
                                                       double brightness, double contrast);
/** Gaussian blur of sd uniform in [sigma_min, sigma_max] with probability p. */
ICH_API ich_status ich_augment_set_blur(ich_augment *augment, double p, double sigma_min,
                                        double sigma_max);
/** Elastic deformation (alpha, sigma in pixels) with probability p. */
ICH_API ich_status ich_augment_set_elastic(ich_augment *augment, double p, double alpha,
                                           double sigma);

/** Add the transforms of a text recipe (see the top of this header) to the
 *  recipe; nothing changes when any item is bad. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (the message names the bad item),
 *  ICH_ERR_NOT_FOUND (unknown transform name). */
ICH_API ich_status ich_augment_parse(ich_augment *augment, const char *spec);

/** Write the recipe as text in the form ich_augment_parse() reads into
 *  `text` (`size` bytes, NUL-terminated). Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_SHAPE (too small). */
ICH_API ich_status ich_augment_describe(const ich_augment *augment, char *text, size_t size);

/** Augment a float32 image in place: `channels` planes of rows x columns
 *  (CHW). The random choices come from `seed` alone. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, non-positive sizes, too large),
 *  ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_augment_apply_f32(const ich_augment *augment, uint64_t seed, float *image,
                                         int32_t channels, int32_t rows, int32_t columns);

/** Augment an 8-bit image in place: rows x columns x channels, channels
 *  interleaved (HWC, as PNG files hold them). Same choices as
 *  ich_augment_apply_f32() for the same seed and size. Errors as there. */
ICH_API ich_status ich_augment_apply_u8(const ich_augment *augment, uint64_t seed,
                                        uint8_t *image, int32_t rows, int32_t columns,
                                        int32_t channels);

/** The random choices of one call: which transforms run and with which
 *  drawn parameters. Set `size` (ich_augment_choices_init()). */
typedef struct ich_augment_choices {
    /* ABI: first version up to `blur_sigma`, 104 bytes on LP64 (today's layout). */
    size_t size;
    int32_t hflip;               /**< mirror left-right */
    int32_t vflip;               /**< mirror top-bottom */
    int32_t rotate;              /**< rotate by `degrees` */
    double degrees;              /**< counter-clockwise as displayed */
    int32_t elastic;             /**< elastic deformation */
    double elastic_alpha;        /**< pixels, >= 0 */
    double elastic_sigma;        /**< pixels, > 0 when elastic */
    uint64_t elastic_seed;       /**< the displacement noise */
    int32_t brightness_contrast; /**< v' = (v - m) * contrast + m + brightness * range */
    double contrast;
    double brightness;
    int32_t blur;                /**< gaussian blur of sd `blur_sigma` pixels */
    double blur_sigma;
} ich_augment_choices;

/** Fill `choices` with "change nothing" (and its size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_augment_choices_init(ich_augment_choices *choices);
#define ich_augment_choices_init(choices) ich_augment_choices_init(ICH_SIZED(choices))

/** The choices ich_augment_apply_f32() and _u8() make for `seed`
 *  (transforms that are off carry neutral values). `choices->size` must be
 *  set. Errors: ICH_ERR_INVALID_ARGUMENT. */
ICH_API ich_status ich_augment_choose(const ich_augment *augment, uint64_t seed,
                                      ich_augment_choices *choices);

/** Apply given choices to a float32 CHW image in place (what
 *  ich_augment_apply_f32() does after ich_augment_choose()). Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, sizes, size not set, non-finite
 *  parameters, a sigma outside 0 .. 1000), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_augment_apply_choices_f32(const ich_augment_choices *choices,
                                                 float *image, int32_t channels, int32_t rows,
                                                 int32_t columns);

/** Apply given choices to an 8-bit HWC image in place. Errors as
 *  ich_augment_apply_choices_f32(). */
ICH_API ich_status ich_augment_apply_choices_u8(const ich_augment_choices *choices,
                                                uint8_t *image, int32_t rows, int32_t columns,
                                                int32_t channels);

/** Options of ich_augment_offline(). Set `size`; see the init call. */
typedef struct ich_augment_offline_options {
    /* ABI: first version up to `progress_user`, 48 bytes on LP64 (today's layout). */
    size_t size;
    int64_t target;           /**< rows wanted per label after augmenting
                                   (default 0: the largest label's count) */
    uint64_t seed;            /**< default 0 */
    int32_t threads;          /**< 0: one per CPU (default) */
    ich_progress_fn progress; /**< NULL: none */
    void *progress_user;
} ich_augment_offline_options;

/** Fill `options` with the defaults (and its size).
 *  (A macro over the function: it first sets `size` to the caller's
 *  sizeof, and only that much is written; see "ABI" in <ich/core.h>.) */
ICH_API void ich_augment_offline_options_init(ich_augment_offline_options *options);
#define ich_augment_offline_options_init(options) \
    ich_augment_offline_options_init(ICH_SIZED(options))

struct ich_labels;

/** Offline augmentation of a training set's minority labels. For each
 *  label column with fewer than `target` positive rows (a row is positive
 *  when its value is >= 0.5), draws rows positive for it (seeded) and
 *  writes augmented copies of their PNG images `image_dir/<id>.png` as
 *  `out_dir/<id>_aug_<k>.png` (k = 1, 2, ... per source image; numbers
 *  whose ID the table already has are skipped; IDs with folders get them
 *  created) until the label has `target` positives; the copies carry their
 *  source's labels and group.
 *
 *  Counting: a copy adds one to every label its source row is positive
 *  for, not only to the label it was drawn for. Labels are topped up from
 *  the rarest (fewest positives) to the most common, so copies drawn for a
 *  rare label count towards the common ones first; a label already at the
 *  target may thus end above it, and none ends below it unless it has no
 *  positive row (logged) or source images failed. Rows positive for a
 *  label are drawn in a seeded random order, each once before any is drawn
 *  again. Each copy is augmented with a seed made from (seed, source row,
 *  k): the result depends on the seed and the table, not on threads.
 *
 *  *out (a new table) holds the source rows followed by the new rows
 *  (grouped by source row, k increasing); write it with
 *  ich_labels_write(). Its new rows' images are in out_dir and the source
 *  rows' in image_dir: pass the same folder for both to keep every image
 *  of the table in one place. Images that cannot be read or written, and
 *  rows whose ID cannot name a file inside the folders ("../x",
 *  "/etc/passwd": the rule of ich_image_path()), are logged
 *  (ICH_LOG_WARNING, by ID and row) and skipped: their copies are not in
 *  *out, and nothing is read or written outside image_dir and out_dir.
 *  Progress counts source images. Errors: ICH_ERR_INVALID_ARGUMENT (NULL,
 *  negative target), ICH_ERR_CANCELLED (the progress callback returned
 *  non-zero: the copies written stay), ICH_ERR_IO (out_dir cannot be created),
 *  ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_augment_offline(const ich_augment *augment,
                                       const struct ich_labels *train, const char *image_dir,
                                       const char *out_dir,
                                       const ich_augment_offline_options *options,
                                       struct ich_labels **out);

#ifdef __cplusplus
}
#endif
#endif /* ICH_AUGMENT_H */
