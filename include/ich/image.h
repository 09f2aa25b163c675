/*
 * libich images: PNG writing (stb_image_write behind it).
 *
 * Files are written to a temporary name beside the target and then renamed
 * into place, so a crash or a full disk never leaves a half-written PNG.
 * Safe to call from many threads at once.
 */
#ifndef ICH_IMAGE_H
#define ICH_IMAGE_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Write an 8-bit PNG of width x height pixels with `channels` interleaved
 *  samples per pixel (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), rows top to
 *  bottom, no padding between rows.
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL, sizes <= 0 or over 65535,
 *  channels outside 1..4), ICH_ERR_NO_MEMORY, ICH_ERR_IO (cannot create,
 *  write or rename; nothing is left behind). */
ICH_API ich_status ich_png_write(const char *path, const uint8_t *pixels, int32_t width,
                                 int32_t height, int32_t channels);

/** Read an 8-bit PNG (gray, gray+alpha, RGB or RGBA; 16-bit files are
 *  reduced to 8 bits) into new memory: *pixels holds width x height x
 *  channels bytes, channels interleaved, rows top to bottom; free it with
 *  ich_free(). On failure *pixels is NULL. Errors: ICH_ERR_INVALID_ARGUMENT,
 *  ICH_ERR_IO (cannot open), ICH_ERR_FORMAT (not a PNG, truncated, corrupt;
 *  the message names the file), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_png_read(const char *path, uint8_t **pixels, int32_t *width,
                                int32_t *height, int32_t *channels);

#ifdef __cplusplus
}
#endif
#endif /* ICH_IMAGE_H */
