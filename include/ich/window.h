/*
 * libich windowing: Hounsfield units -> clinical windows -> image or tensor.
 *
 * An ich_window holds a recipe: a list of windows (each becomes one output
 * channel), a mapping mode, an optional output size with a resize method,
 * an optional uint8 step and optional per-channel normalisation. Applying
 * it to a slice of HU values does, per channel:
 *
 *   1. map to [0, 1]:
 *        ICH_WINDOW_LINEAR (default): v = clamp((hu - lo) / width, 0, 1)
 *          with lo = center - width / 2;
 *        ICH_WINDOW_MINMAX (the tutorial's mode): x = clamp(hu, lo, lo +
 *          width) (or x = hu when the recipe has no windows, which gives one
 *          channel: the tutorial's raw min-max), then
 *          v = (x - min(x)) / (max(x) - min(x) + 1e-5) over the whole slice;
 *   2. resize to the output size (ICH_RESIZE_BILINEAR: half-pixel centres,
 *      no antialiasing, as PyTorch's interpolate(align_corners=False) and
 *      OpenCV's INTER_LINEAR; ICH_RESIZE_AREA: each output pixel is the mean
 *      of the input area it covers, fractional pixels weighted, as OpenCV's
 *      INTER_AREA when shrinking; ICH_RESIZE_ANTIALIAS: Pillow's
 *      Image.resize(BILINEAR), a triangle filter whose support grows with
 *      the shrink factor, so every input pixel counts when shrinking; this
 *      is what torchvision's Resize does to a PIL image);
 *   3. uint8 output: trunc(v * 255), as numpy's astype(uint8), channels
 *      interleaved (HWC, what PNG wants);
 *      float32 output: (v - mean[c]) / std[c] (mean 0, std 1 by default),
 *      channel-planar (CHW, what a network wants).
 *
 * With the uint8 step (ich_window_set_quantize()), step 2 works on 8-bit
 * values as the tutorial's numpy/PIL/torchvision code does: q = trunc(v *
 * 255) first, then the resize as Pillow resizes an 8-bit image (rows, then
 * columns, each pass rounded to 8 bits, Pillow's fixed-point weights), then
 * uint8 output is the resized q and float32 output ((q / 255) - mean[c]) /
 * std[c], as ToTensor() then Normalize(). The tutorial's recipe is:
 *
 *   ich_window_set_mode(w, ICH_WINDOW_MINMAX);          // no windows
 *   ich_window_set_quantize(w, 1);
 *   ich_window_set_size(w, 512, 512, ICH_RESIZE_ANTIALIAS);
 *   ich_window_set_normalization(w, &mean, &std, 1);    // 0.380, 0.236
 *
 * or, as text, ich_window_from_string() of
 *   "windows=none;mode=minmax;size=512x512;resize=antialias;quantize=1;"
 *   "mean=0.38;std=0.236;neighbors=0"
 *
 * A recipe also records how many neighbouring slices on each side a dataset
 * stacks as extra channels (ich_window_set_neighbors(); see dataset.h), so
 * that its text describes a network's whole input. The apply functions see
 * one slice and ignore it.
 *
 * All arithmetic is float32 and done in this order, so a numpy computation
 * written the same way gives the same values.
 *
 * Presets (center/width in HU): brain 40/80, subdural 80/200, blood 75/215,
 * bone 600/2800, stroke 40/40, soft_tissue (or soft) 40/350. The pipeline's
 * default is blood,brain,bone as RGB.
 *
 * Threads: configure a window from one thread; once configured, the apply
 * functions only read it, so one window may be applied from many threads at
 * once.
 */
#ifndef ICH_WINDOW_H
#define ICH_WINDOW_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A windowing recipe (opaque). */
typedef struct ich_window ich_window;

/** Most channels (windows) one recipe may hold. */
#define ICH_WINDOW_MAX_CHANNELS 16

/** How HU values are mapped to [0, 1]; see the top of this header. */
typedef enum ich_window_mode {
    ICH_WINDOW_LINEAR = 0,
    ICH_WINDOW_MINMAX = 1
} ich_window_mode;

/** How the mapped image is resized to the output size. */
typedef enum ich_resize_method {
    ICH_RESIZE_BILINEAR = 0,
    ICH_RESIZE_AREA = 1,
    ICH_RESIZE_ANTIALIAS = 2 /**< Pillow's bilinear (antialiased when shrinking) */
} ich_resize_method;

/** Most neighbouring slices on each side a recipe may record. */
#define ICH_WINDOW_MAX_NEIGHBORS 16

/** Longest text ich_window_to_string() writes, terminating NUL included:
 *  a buffer of this size always holds a recipe. */
#define ICH_WINDOW_STRING_MAX 2048

/** Look up a preset window by name (case-insensitive). Either out pointer
 *  may be NULL. Errors: ICH_ERR_INVALID_ARGUMENT (NULL name),
 *  ICH_ERR_NOT_FOUND (unknown name; the message lists the presets). */
ICH_API ich_status ich_window_preset(const char *name, float *center, float *width);

/** Create an empty recipe: no windows, ICH_WINDOW_LINEAR, original size,
 *  bilinear, no uint8 step, no normalisation, no neighbouring slices. Free it with ich_window_free().
 *  Errors: ICH_ERR_INVALID_ARGUMENT, ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_window_create(ich_window **out);

/** Free a recipe. NULL is a no-op. */
ICH_API void ich_window_free(ich_window *window);

/** Append a window of the given center and width (HU) as the next channel.
 *  Errors: ICH_ERR_INVALID_ARGUMENT (width <= 0 or not finite, center not
 *  finite, or ICH_WINDOW_MAX_CHANNELS already). */
ICH_API ich_status ich_window_add(ich_window *window, float center, float width);

/** Append windows from a comma-separated list of preset names and
 *  "center/width" pairs, e.g. "blood,brain,bone" or "40/80,600/2800".
 *  Nothing is appended when any item is bad. Errors: ICH_ERR_INVALID_ARGUMENT
 *  (empty item, bad number), ICH_ERR_NOT_FOUND (unknown preset). */
ICH_API ich_status ich_window_add_list(ich_window *window, const char *list);

/** Number of windows in the recipe. */
ICH_API int ich_window_count(const ich_window *window);

/** Center and width of window `index` (0-based). Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL window or index out of range). */
ICH_API ich_status ich_window_get(const ich_window *window, int index, float *center,
                                  float *width);

/** Set the mapping mode. Errors: ICH_ERR_INVALID_ARGUMENT. */
ICH_API ich_status ich_window_set_mode(ich_window *window, ich_window_mode mode);

/** Set the output size and resize method (ICH_RESIZE_BILINEAR, _AREA or
 *  _ANTIALIAS). rows = columns = 0 keeps each slice's own size.
 *  Errors: ICH_ERR_INVALID_ARGUMENT (negative, only one of them 0, more
 *  than 16384, or an unknown method). */
ICH_API ich_status ich_window_set_size(ich_window *window, int32_t rows, int32_t columns,
                                       ich_resize_method method);

/** Per-channel normalisation for float32 output: (v - mean[c]) / std[c].
 *  `count` is 1 (the same for every channel) or the number of channels at
 *  apply time; count 0 removes normalisation. The tutorial uses mean 0.380,
 *  std 0.236. Errors: ICH_ERR_INVALID_ARGUMENT (NULL with count > 0, a std
 *  <= 0, non-finite values, count > ICH_WINDOW_MAX_CHANNELS). */
ICH_API ich_status ich_window_set_normalization(ich_window *window, const float *mean,
                                                const float *std, int count);

/** Turn the uint8 step (see the top of this header) on (1) or off (0).
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL window, a value other than 0/1). */
ICH_API ich_status ich_window_set_quantize(ich_window *window, int quantize);

/** Record that the network's input stacks `neighbors` slices on each side
 *  of each slice (0..ICH_WINDOW_MAX_NEIGHBORS; ich_dataset_options'
 *  `neighbors`). Only recorded: the apply functions ignore it; a dataset
 *  opened with a recipe whose value is not 0 requires the same
 *  options.neighbors. Errors: ICH_ERR_INVALID_ARGUMENT. */
ICH_API ich_status ich_window_set_neighbors(ich_window *window, int32_t neighbors);

/* ---- Inspecting a recipe -------------------------------------------------- */

/** The mapping mode (ICH_WINDOW_LINEAR for NULL). */
ICH_API ich_window_mode ich_window_get_mode(const ich_window *window);

/** The output size (0, 0: each slice's own) and resize method; any out
 *  pointer may be NULL. Errors: ICH_ERR_INVALID_ARGUMENT (NULL window). */
ICH_API ich_status ich_window_get_size(const ich_window *window, int32_t *rows,
                                       int32_t *columns, ich_resize_method *method);

/** 1 when the uint8 step is on, else 0 (also for NULL). */
ICH_API int ich_window_get_quantize(const ich_window *window);

/** Neighbouring slices recorded on each side (0 for NULL). */
ICH_API int32_t ich_window_get_neighbors(const ich_window *window);

/** The normalisation: returns its count (0: none, 1: the same for every
 *  channel, else one per channel) and copies that many values into `mean`
 *  and `std` when they are not NULL (each must hold ICH_WINDOW_MAX_CHANNELS
 *  floats). 0 for NULL window. */
ICH_API int ich_window_get_normalization(const ich_window *window, float *mean, float *std);

/* ---- The recipe as text ----------------------------------------------------- */

/** Write the recipe as one canonical line into `buffer` (`capacity` bytes,
 *  NUL-terminated), e.g.
 *    "windows=75/215,40/80,600/2800;mode=linear;size=256x256;resize=bilinear;
 *     quantize=0;mean=none;std=none;neighbors=0"   (one line, no spaces)
 *  Keys, always all of them and in this order: windows (CENTER/WIDTH in HU,
 *  comma-separated, or none), mode (linear|minmax), size (ROWSxCOLUMNS or
 *  keep), resize (bilinear|area|antialias), quantize (0|1), mean and std
 *  (comma-separated, one value or one per channel, or none), neighbors.
 *  Numbers are written so that they read back to the same float.
 *  *length (may be NULL) receives the text's length without the NUL, also
 *  when the buffer is too small; a buffer of ICH_WINDOW_STRING_MAX bytes
 *  always suffices. Errors: ICH_ERR_INVALID_ARGUMENT (NULL window or
 *  buffer), ICH_ERR_SHAPE (capacity too small; nothing written). */
ICH_API ich_status ich_window_to_string(const ich_window *window, char *buffer,
                                        size_t capacity, size_t *length);

/** Parse a recipe written by ich_window_to_string() into a new window (free
 *  it with ich_window_free()). Strict: every key exactly once (any order),
 *  no unknown keys, no spaces, every value as ich_window_to_string() writes
 *  it and valid for the setters above. *out is NULL on failure. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL), ICH_ERR_FORMAT (anything else wrong;
 *  the message names the key), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_window_from_string(const char *text, ich_window **out);

/* ---- Applying a recipe ------------------------------------------------------- */

/** Output channels, rows and columns for an input of in_rows x in_columns
 *  (any out pointer may be NULL). Errors: ICH_ERR_INVALID_ARGUMENT (NULL
 *  window, non-positive input size, or a LINEAR recipe without windows). */
ICH_API ich_status ich_window_output_shape(const ich_window *window, int32_t in_rows,
                                           int32_t in_columns, int32_t *channels,
                                           int32_t *rows, int32_t *columns);

/** Apply the recipe to `hu` (rows x columns float32, row-major) and write
 *  an 8-bit image, channels interleaved (rows' x columns' x channels), to
 *  `out`, which holds out_count bytes. Normalisation does not apply.
 *  Errors: ICH_ERR_INVALID_ARGUMENT, ICH_ERR_SHAPE (out_count differs from
 *  the output shape's product), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_window_apply_u8(const ich_window *window, const float *hu,
                                       int32_t rows, int32_t columns, uint8_t *out,
                                       size_t out_count);

/** Apply the recipe to `hu` and write float32 channel planes (channels x
 *  rows' x columns', CHW), normalised, to `out`, which holds out_count
 *  floats. Errors as ich_window_apply_u8(). */
ICH_API ich_status ich_window_apply_f32(const ich_window *window, const float *hu,
                                        int32_t rows, int32_t columns, float *out,
                                        size_t out_count);

/** The preprocessing step for one file: read the DICOM at `dicom_path`,
 *  apply the recipe and write the 8-bit result as a PNG at `png_path`
 *  (1 channel: gray, 3: RGB; other counts give ICH_ERR_UNSUPPORTED). The
 *  PNG is written atomically. Safe to call from many threads at once with
 *  the same recipe. Errors: those of ich_dicom_read(), ich_window_apply_u8()
 *  and ich_png_write(). */
ICH_API ich_status ich_window_dicom_to_png(const ich_window *window, const char *dicom_path,
                                           const char *png_path);

/* ---- Slices and their photometric interpretation -------------------------
 *
 * A slice's HU are the modality rescale of its stored values whatever its
 * photometric interpretation (dicom.h; pydicom's apply_modality_lut). The
 * interpretation is about display: a MONOCHROME1 slice shows its smallest
 * values white. Windowing honours it in the display range, as the DICOM
 * standard orders the steps (modality LUT, VOI window, then presentation):
 * for a MONOCHROME1 slice each channel's mapped value v in [0, 1] becomes
 * 1 - v, after the mapping and resize and before the uint8 step
 * (trunc((1 - v) * 255)) or the normalisation ((1 - v - mean) / std).
 * The output is then always "larger is brighter", as for MONOCHROME2: a
 * MONOCHROME1 file whose stored values are the mirror of a MONOCHROME2
 * file's (how such files are made) gives the same image in min-max mode,
 * and, with a fixed HU window, the display the standard defines for it.
 * The resize is a weighted mean with weights summing to 1, so inverting
 * after it equals inverting before it up to float rounding (1 ulp).
 *
 * ich_window_apply_u8() and ich_window_apply_f32() take bare HU and never
 * invert; the dataset handle, ich_window_dicom_to_png(), ich-predict and
 * Python's Window.apply(DicomImage) use the calls below. */

/** An ich_dicom (dicom.h). */
struct ich_dicom;

/** As ich_window_apply_u8(), for a slice whose photometric interpretation
 *  is MONOCHROME1 when `monochrome1` is non-zero (see above). Errors as
 *  ich_window_apply_u8(). */
ICH_API ich_status ich_window_apply_display_u8(const ich_window *window, const float *hu,
                                               int32_t rows, int32_t columns, int monochrome1,
                                               uint8_t *out, size_t out_count);

/** As ich_window_apply_f32(), for a slice whose photometric interpretation
 *  is MONOCHROME1 when `monochrome1` is non-zero (see above). Errors as
 *  ich_window_apply_f32(). */
ICH_API ich_status ich_window_apply_display_f32(const ich_window *window, const float *hu,
                                                int32_t rows, int32_t columns, int monochrome1,
                                                float *out, size_t out_count);

/** ich_window_apply_display_u8() on a decoded slice: its HU, size and
 *  photometric interpretation. Errors: ICH_ERR_INVALID_ARGUMENT (NULL),
 *  and those of ich_window_apply_u8(). */
ICH_API ich_status ich_window_apply_dicom_u8(const ich_window *window,
                                             const struct ich_dicom *dicom, uint8_t *out,
                                             size_t out_count);

/** ich_window_apply_display_f32() on a decoded slice. Errors as
 *  ich_window_apply_dicom_u8(). */
ICH_API ich_status ich_window_apply_dicom_f32(const ich_window *window,
                                              const struct ich_dicom *dicom, float *out,
                                              size_t out_count);

#ifdef __cplusplus
}
#endif
#endif /* ICH_WINDOW_H */
