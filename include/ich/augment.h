/*
 * libich augmentation: random flips, rotation, brightness/contrast, blur
 * and elastic deformation of training images.
 *
 * An ich_augment holds a recipe: each transform with the probability that
 * it is applied to a sample and its strength. Applying the recipe draws all
 * its random choices from a seed given per call, so a sample's augmentation
 * depends only on (seed, what you pass), never on threads or call order:
 * the dataset handle passes a seed made from its own seed, the epoch and
 * the sample index. The transforms run in this order, each with its own
 * probability:
 *
 *   hflip      mirror left-right                    (p)
 *   vflip      mirror top-bottom                    (p)
 *   rotate     by an angle uniform in [-degrees, degrees] about the
 *              centre, bilinear, outside filled with the image minimum per
 *              channel                              (p, degrees)
 *   elastic    displacement fields of uniform noise in [-1, 1] smoothed by
 *              a gaussian of sd `sigma` pixels, scaled by `alpha` pixels
 *              (Simard et al. 2003), bilinear       (p, alpha, sigma)
 *   brightness_contrast  v' = (v - m) * c + m + b with c uniform in
 *              [1 - contrast, 1 + contrast], b uniform in [-brightness,
 *              brightness] times the image's value range, m the channel
 *              mean                                 (p, brightness, contrast)
 *   blur       gaussian of sd uniform in [sigma_min, sigma_max] pixels,
 *              separable, edges clamped             (p, sigma_min, sigma_max)
 *
 * Geometric transforms move every channel the same way. 8-bit images are
 * clamped to 0..255 and rounded; float images are not clamped.
 *
 * A recipe can also be written as text, as the example programs take it:
 *   "hflip:0.5,vflip:0.2,rotate:0.5:15,brightness_contrast:0.3:0.1:0.1,
 *    blur:0.2:0.5:1.5,elastic:0.2:30:5"
 * (name:probability:parameters..., items separated by commas).
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
 *  sigma_max > 0 when p > 0; elastic: sigma > 0 when p > 0; rotate: degrees
 *  <= 180). Errors: ICH_ERR_INVALID_ARGUMENT. */
ICH_API ich_status ich_augment_set_flip(ich_augment *augment, double p_horizontal,
                                        double p_vertical);
ICH_API ich_status ich_augment_set_rotation(ich_augment *augment, double p, double degrees);
ICH_API ich_status ich_augment_set_brightness_contrast(ich_augment *augment, double p,
                                                       double brightness, double contrast);
ICH_API ich_status ich_augment_set_blur(ich_augment *augment, double p, double sigma_min,
                                        double sigma_max);
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
 *  ICH_ERR_INVALID_ARGUMENT (NULL, non-positive sizes), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_augment_apply_f32(const ich_augment *augment, uint64_t seed, float *image,
                                         int32_t channels, int32_t rows, int32_t columns);

/** Augment an 8-bit image in place: rows x columns x channels, channels
 *  interleaved (HWC, as PNG files hold them). Same choices as
 *  ich_augment_apply_f32() for the same seed and size. Errors as there. */
ICH_API ich_status ich_augment_apply_u8(const ich_augment *augment, uint64_t seed,
                                        uint8_t *image, int32_t rows, int32_t columns,
                                        int32_t channels);

/** Options of ich_augment_offline(). Set `size`; see the init call. */
typedef struct ich_augment_offline_options {
    size_t size;
    int64_t target;           /**< rows wanted per label after augmenting
                                   (default 0: the largest label's count) */
    uint64_t seed;            /**< default 0 */
    int32_t threads;          /**< 0: one per CPU (default) */
    ich_progress_fn progress; /**< NULL: none */
    void *progress_user;
} ich_augment_offline_options;

/** Fill `options` with the defaults (and its size). */
ICH_API void ich_augment_offline_options_init(ich_augment_offline_options *options);

struct ich_labels;

/** Offline augmentation of a training set's minority labels. For each
 *  label column with fewer than `target` positive rows, draws rows
 *  positive for it (seeded) and writes augmented copies of their PNG
 *  images `image_dir/<id>.png` as `out_dir/<id>_aug_<k>.png` (k = 1, 2, ...
 *  per source image) until the label has `target` positives; the copies
 *  carry their source's labels and group. *out (a new table) holds the
 *  source rows followed by the new ones; write it with ich_labels_write().
 *  Images that cannot be read are logged and skipped. Errors:
 *  ICH_ERR_INVALID_ARGUMENT, ICH_ERR_IO (out_dir), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_augment_offline(const ich_augment *augment,
                                       const struct ich_labels *train, const char *image_dir,
                                       const char *out_dir,
                                       const ich_augment_offline_options *options,
                                       struct ich_labels **out);

#ifdef __cplusplus
}
#endif
#endif /* ICH_AUGMENT_H */
