/* Internal: checking a compressed frame's own header against the DICOM
 * image attributes before GDCM's codecs decode it. */
#ifndef ICH_INTERNAL_CODESTREAM_H
#define ICH_INTERNAL_CODESTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The image the DICOM attributes describe. */
typedef struct ich_frame_shape {
    int32_t rows, columns, samples, bits_allocated;
} ich_frame_shape;

/* `frame` holds the first fragment of encapsulated pixel data. For a JPEG
 * (T.81 or JPEG-LS) stream, its frame header, and for JPEG 2000 its SIZ
 * segment, must describe the same width, height and components as `shape`
 * and no more bits per sample: GDCM's codecs size their buffers from the
 * DICOM attributes but write what the stream says, so a corrupt stream
 * header would overrun them. With `rle`, the frame is RLE Lossless and
 * its segment table must match the shape. Returns ICH_ERR_FORMAT naming
 * `path`, or ICH_OK. */
ich_status ich_check_codestream(const char *path, const unsigned char *frame, size_t size,
                                const ich_frame_shape *shape, int rle);

#ifdef __cplusplus
}
#endif
#endif
