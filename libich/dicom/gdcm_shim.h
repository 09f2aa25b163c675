/* Internal: the C face of the GDCM shim (gdcm_shim.cpp, the library's only
 * C++). It decodes files into raw sample buffers and encodes CT slices into
 * bytes; bit-level clean-up and HU conversion live in dicom.c. */
#ifndef ICH_INTERNAL_GDCM_SHIM_H
#define ICH_INTERNAL_GDCM_SHIM_H

#include "ich/dicom.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What GDCM decoded: the metadata (info.size set, strings trimmed) and the
 * pixel data exactly as GDCM's Image::GetBuffer returns it. */
typedef struct ich_gdcm_image {
    ich_dicom_info info;
    int32_t samples_per_pixel;
    /* The sample layout of `buffer`: GDCM's, which can differ from the
     * file's attributes in `info` (a JPEG 2000 codestream may say 16 bits
     * where BitsStored says 14). */
    int32_t decoded_bits_allocated, decoded_bits_stored, decoded_pixel_representation;
    int32_t frames;
    void *buffer; /* ich_block_alloc'd, buffer_size bytes; the caller frees it (ich_block_free) */
    size_t buffer_size;
} ich_gdcm_image;

/* Decode the `size` bytes of a DICOM file at `data`; `name` (a path, or
 * what the caller calls the bytes) goes into error messages. On failure
 * sets the last error and leaves image->buffer NULL. Checks: framing,
 * pixel data present, one sample per pixel, one frame, sane dimensions,
 * the whole buffer decoded; `limits` (every field set) bound the inflated
 * data set, the pixel count and the decoded size before GDCM allocates
 * them. */
ich_status ich_gdcm_decode(const char *name, const void *data, size_t size,
                           const ich_dicom_limits *limits, ich_gdcm_image *image);

/* Encode `slice` (already validated, UIDs filled in) as a DICOM file in
 * memory: *bytes is malloc'd and holds *size bytes. */
ich_status ich_gdcm_encode_ct(const ich_ct_slice *slice, void **bytes, size_t *size);

#ifdef __cplusplus
}
#endif
#endif
