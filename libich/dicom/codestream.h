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

/* The codec GDCM picks by transfer syntax. */
typedef enum ich_codec {
    ICH_CODEC_OTHER,
    ICH_CODEC_JPEG, /* JPEG (T.81) and JPEG-LS */
    ICH_CODEC_JPEG2000,
    ICH_CODEC_RLE
} ich_codec;

/* `frame` holds the first fragment of encapsulated pixel data. For a JPEG
 * (T.81 or JPEG-LS) stream, its frame header, and for JPEG 2000 its SIZ
 * segment, must describe the same width, height and components as `shape`
 * and no more bits per sample: GDCM's codecs size their buffers from the
 * DICOM attributes but write what the stream says, so a corrupt stream
 * header would overrun them. A JPEG 2000 frame must also pass
 * ich_check_j2k_walk. For RLE Lossless, the segment table must match the
 * shape. Returns ICH_ERR_FORMAT naming `path`, or ICH_OK. */
ich_status ich_check_codestream(const char *path, const unsigned char *frame, size_t size,
                                const ich_frame_shape *shape, ich_codec codec);

/* GDCM's JPEG 2000 codec walks the marker segments (or, in a JP2 file, the
 * boxes) of the first fragment, and again of all fragments joined, without
 * bounding its steps by the buffer: a segment length that runs past the
 * end makes it read beyond it (a crash found by fuzzing). Refuses, with
 * ICH_ERR_FORMAT naming `path`, any stream on which that walk would leave
 * `data`; ICH_OK otherwise. */
ich_status ich_check_j2k_walk(const char *path, const unsigned char *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif
