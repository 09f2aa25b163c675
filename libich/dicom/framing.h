/* Internal: checking the element framing of a DICOM file before GDCM. */
#ifndef ICH_INTERNAL_FRAMING_H
#define ICH_INTERNAL_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Walk the element headers of the file's `size` bytes at `data`: the File
 * Meta Information group, then the data set in the encoding its transfer
 * syntax names, sequences and encapsulated pixel data included. Checks
 * that every tag, VR and length is well formed and that every value lies
 * inside the file. Values are not interpreted: GDCM still does the
 * parsing. Debian's GDCM is built with assertions, so a corrupt header
 * would otherwise abort the process, and a corrupt length makes it
 * allocate gigabytes. Returns ICH_ERR_FORMAT with a message naming `path`
 * and the byte offset, or ICH_OK. A deflated data set is inflated (at most
 * `max_inflated` bytes: more is ICH_ERR_UNSUPPORTED naming the limit) and
 * walked. A data set that an explicit VR transfer syntax labels but that
 * starts without a VR is also walked as GDCM's fallback reads it
 * (16-bit lengths after an unknown VR, "VR16"), so that a length it would
 * read from text is refused before GDCM allocates it. */
ich_status ich_dicom_check_framing(const char *path, const unsigned char *data, size_t size,
                                   uint64_t max_inflated);

#ifdef __cplusplus
}
#endif
#endif
