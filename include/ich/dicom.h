/*
 * libich DICOM: read one slice into Hounsfield units, write CT slices.
 *
 * ich_dicom_read() decodes a single-frame grayscale DICOM file with GDCM in
 * any transfer syntax GDCM decodes (implicit/explicit VR little endian,
 * explicit big endian, deflate, RLE, JPEG baseline/extended/lossless,
 * JPEG-LS, JPEG 2000) and gives:
 *
 *   - the stored pixel values ("pixels"): one sample per pixel, row-major,
 *     in native byte order, as integers of ich_dicom_info.sample_bits bits
 *     (8, 16 or 32), signed when ich_dicom_info.pixel_representation is 1.
 *     Bits above BitsStored are masked off and signed values sign-extended;
 *     1-bit data is unpacked to one 0/1 byte per pixel. These equal
 *     pydicom's Dataset.pixel_array.
 *   - the modality values in float32 ("hu"):
 *         hu = stored * RescaleSlope + RescaleIntercept
 *     (slope 1 and intercept 0 when the tags are absent), for MONOCHROME1
 *     and MONOCHROME2 alike: pydicom's apply_modality_lut, the DICOM
 *     standard's modality LUT. The photometric interpretation is about
 *     display (MONOCHROME1: the smallest values white); windowing honours
 *     it after the window, in the display range (window.h, "Slices and
 *     their photometric interpretation": ich_window_apply_dicom_f32()),
 *     so the windowed images of both are "larger is brighter".
 *
 * Colour images (SamplesPerPixel != 1, or a photometric interpretation
 * other than MONOCHROME1/2), multi-frame images and unusual bit layouts
 * (see "Bit layouts" below) give ICH_ERR_UNSUPPORTED; files that are not DICOM, truncated, without pixel
 * data or with absurd dimensions give ICH_ERR_FORMAT; a missing or
 * unreadable file gives ICH_ERR_IO. ich_last_error() names the file.
 *
 * Robustness: a hostile file gives an error, never an abort, a hang or
 * gigabytes of memory. Before GDCM parses a file, libich checks its element
 * framing as GDCM will read it (every tag, VR and length inside the file,
 * tags in order, sequences and fragments well formed; a data set written
 * implicit VR under an explicit VR transfer syntax is also walked the way
 * GDCM's fallback reads it, so that no length it would read from text can
 * make it allocate gigabytes), the image pixel attributes (only the bit
 * layouts below), and the header of a compressed frame (JPEG, JPEG-LS,
 * JPEG 2000, RLE) against them; a JPEG-LS frame must end with its EOI
 * marker (CharLS spends seconds on a truncated one). Debian's GDCM is built
 * with assertions and would otherwise abort the process on such files.
 * Sizes are bounded by ich_dicom_limits (below): the file's size before it
 * is read, the image's pixel count and the decoded or inflated bytes before
 * anything that size is allocated. Only regular files are read: a FIFO, a
 * device or a socket is refused at once (ICH_ERR_IO), never waited on.
 * GDCM's error messages (gdcm::Trace) go to libich's log
 * (ich_set_log_callback()) as "GDCM: ..." lines at ICH_LOG_WARNING; its
 * warnings and debug messages stay off (turning warnings on changes how
 * GDCM reads a damaged file, into an abort). Known gap: the libjpeg bundled in GDCM
 * prints its own messages on some 12-bit JPEG streams to stderr, outside
 * gdcm::Trace. Design notes: docs/dicom-hostile-input.md.
 *
 * Bit layouts read (anything else is ICH_ERR_UNSUPPORTED, or ICH_ERR_FORMAT
 * when the values contradict each other): BitsAllocated 1 (unsigned,
 * BitsStored 1), 8, 16 or 32; BitsStored from 1 to BitsAllocated (8-bit
 * data: BitsStored 8; 32-bit data: BitsStored 32); HighBit = BitsStored - 1;
 * PixelRepresentation 0 or 1; SamplesPerPixel 1.
 *
 * Values: RescaleSlope and RescaleIntercept, when present and not empty,
 * must be decimal numbers with |slope| and |intercept| at most 1e9 (a
 * non-finite, unparsable or larger value is ICH_ERR_FORMAT naming the file
 * and the tag, not an image of infinities or an intercept taken as 0), and
 * every HU value must be finite.
 *
 * Threads: an ich_dicom handle is used by one thread at a time; different
 * handles may be used from different threads at once.
 */
#ifndef ICH_DICOM_H
#define ICH_DICOM_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A decoded DICOM slice (opaque). */
typedef struct ich_dicom ich_dicom;

/** Largest number of pixels (rows * columns) libich accepts in one slice,
 *  whatever the limits below say. */
#define ICH_DICOM_MAX_PIXELS (16384 * 16384)

/** Metadata of a slice. Set `size` to sizeof(ich_dicom_info) before calling
 *  ich_dicom_get_info(); fields past `size` are not written, so programs
 *  built against older headers keep working. Absent numeric tags are NaN,
 *  absent strings are empty. */
typedef struct ich_dicom_info {
    /* ABI: first version up to `columns`, 16 bytes on LP64 (later fields optional). */
    size_t size;
    int32_t rows;
    int32_t columns;
    int32_t bits_allocated;       /**< (0028,0100) as in the file */
    int32_t bits_stored;          /**< (0028,0101) */
    int32_t pixel_representation; /**< (0028,0103): 0 unsigned, 1 signed */
    int32_t sample_bits;          /**< width of one value in ich_dicom_pixels(): 8, 16 or 32 */
    int32_t monochrome1;          /**< 1 when the photometric interpretation is
                                       MONOCHROME1 (display inverted; the HU
                                       are not: see above) */
    int32_t instance_number;      /**< (0020,0013), 0 when absent */
    double rescale_slope;         /**< (0028,1053), 1 when absent */
    double rescale_intercept;     /**< (0028,1052), 0 when absent */
    double pixel_spacing[2];      /**< (0028,0030): row spacing, column spacing in mm */
    double slice_thickness;       /**< (0018,0050) in mm */
    double image_position[3];     /**< (0020,0032): x, y, z of the first pixel in mm */
    double window_center;         /**< (0028,1050), first value */
    double window_width;          /**< (0028,1051), first value */
    char photometric[17];         /**< (0028,0004), e.g. "MONOCHROME2" */
    char modality[17];            /**< (0008,0060), e.g. "CT" */
    char transfer_syntax[65];     /**< (0002,0010) UID */
    char sop_instance_uid[65];    /**< (0008,0018) */
    char series_instance_uid[65]; /**< (0020,000E) */
    char study_instance_uid[65];  /**< (0020,000D) */
    char patient_id[65];          /**< (0010,0020) */
} ich_dicom_info;

/* ---- Limits ------------------------------------------------------------ */

/** Largest file read, in bytes, by default (128 MiB; a 512 x 512 CT slice
 *  is about 0.5 MiB). */
#define ICH_DICOM_DEFAULT_MAX_FILE_BYTES ((uint64_t)128 << 20)
/** Largest image, rows * columns * frames, by default (4096 x 4096, 64
 *  times a 512 x 512 slice). */
#define ICH_DICOM_DEFAULT_MAX_PIXELS ((uint64_t)4096 * 4096)
/** Largest inflated data set (deflated transfer syntax) or decoded pixel
 *  data, in bytes, by default (128 MiB: a 4096 x 4096 image of 32-bit
 *  values is 64 MiB). */
#define ICH_DICOM_DEFAULT_MAX_DECODED_BYTES ((uint64_t)128 << 20)

/** Resource limits of DICOM reading. With the defaults, the peak memory of
 *  reading any one file stays under about 0.5 GB. Set `size` to
 *  sizeof(ich_dicom_limits); a field that is 0 (or past `size`) means its
 *  default. Exceeding a limit gives ICH_ERR_UNSUPPORTED with a message that
 *  names the file, the limit and the value. */
typedef struct ich_dicom_limits {
    /* ABI: first version up to `max_file_bytes`, 16 bytes on LP64 (later fields optional). */
    size_t size;
    uint64_t max_file_bytes;    /**< file size, checked before reading it */
    uint64_t max_pixels;        /**< rows * columns * frames, checked before decoding */
    uint64_t max_decoded_bytes; /**< inflated data set; decoded pixel data
                                     (rows * columns * frames * samples *
                                     bytes per sample), checked before
                                     anything that size is allocated */
} ich_dicom_limits;

/** The built-in defaults (ICH_DICOM_DEFAULT_*) into *limits, whose `size`
 *  the caller sets first; fields past `size` are not written. Errors:
 *  ICH_ERR_INVALID_ARGUMENT (NULL, or size below the first version's). */
ICH_API ich_status ich_dicom_default_limits(ich_dicom_limits *limits);

/** The process-wide limits that ich_dicom_read(), ich_dicom_read_memory()
 *  and everything built on them (datasets, ich_window_*_dicom, ...) use,
 *  into *limits (set `size` first; zero fields come back as the values in
 *  force). Errors: as ich_dicom_default_limits(). */
ICH_API ich_status ich_dicom_get_limits(ich_dicom_limits *limits);

/** Set the process-wide limits (a zero field: its default; NULL: all the
 *  defaults). Safe to call while other threads read files: each read uses
 *  the limits in force when it starts. Errors: ICH_ERR_INVALID_ARGUMENT
 *  (size below the first version's). */
ICH_API ich_status ich_dicom_set_limits(const ich_dicom_limits *limits);

/* ---- Reading ------------------------------------------------------------ */

/** Read and decode the DICOM file at `path`. On success *out owns a new
 *  handle (free it with ich_dicom_free()); on failure *out is NULL.
 *  The process-wide limits apply (ich_dicom_set_limits()).
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL argument), ICH_ERR_IO (cannot
 *  open, or not a regular file: a directory, FIFO, device or socket),
 *  ICH_ERR_FORMAT (not DICOM, truncated, no pixel data, absurd
 *  dimensions, undecodable pixel data, a length past the end of the file,
 *  bad rescale values), ICH_ERR_UNSUPPORTED (colour, multi-frame, a bit
 *  layout not listed above, a limit exceeded), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_dicom_read(const char *path, ich_dicom **out);

/** ich_dicom_read() with `limits` instead of the process-wide limits (NULL:
 *  the process-wide ones; zero fields: their defaults). */
ICH_API ich_status ich_dicom_read_with_limits(const char *path, const ich_dicom_limits *limits,
                                              ich_dicom **out);

/** Decode a DICOM file held in memory (`size` bytes at `data`, e.g. from an
 *  archive or a network transfer), as ich_dicom_read() does a file. `name`
 *  names the bytes in error messages (NULL: "<memory>"). The bytes are not
 *  kept: the caller may free them once this returns. The process-wide
 *  limits apply (`size` against max_file_bytes too). Errors: as
 *  ich_dicom_read(), except ICH_ERR_IO. */
ICH_API ich_status ich_dicom_read_memory(const void *data, size_t size, const char *name,
                                         ich_dicom **out);

/** ich_dicom_read_memory() with `limits` instead of the process-wide ones
 *  (NULL: the process-wide ones; zero fields: their defaults). */
ICH_API ich_status ich_dicom_read_memory_with_limits(const void *data, size_t size,
                                                     const char *name,
                                                     const ich_dicom_limits *limits,
                                                     ich_dicom **out);

/** Free a handle from ich_dicom_read() or ich_dicom_read_memory(). NULL is
 *  a no-op. The calling thread keeps the handle's large buffers (and a
 *  read's other buffers of 64 KiB or more), at most 16 MiB in all, for its
 *  next read, so that reading slice after slice does not map and fault in
 *  fresh memory each time (glibc gives large blocks back to the kernel);
 *  they are freed when the thread exits. */
ICH_API void ich_dicom_free(ich_dicom *dicom);

/** Copy the slice's metadata into *info (see ich_dicom_info for `size`).
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL, or info->size too small to hold
 *  `rows` and `columns`). */
ICH_API ich_status ich_dicom_get_info(const ich_dicom *dicom, ich_dicom_info *info);

/** Rows and columns of the slice (each may be NULL). */
ICH_API void ich_dicom_size(const ich_dicom *dicom, int32_t *rows, int32_t *columns);

/** The stored values, rows * columns of them, row-major; their type is
 *  given by sample_bits and pixel_representation in ich_dicom_info (int8,
 *  uint8, int16, uint16, int32 or uint32). The memory belongs to the handle
 *  and lives until ich_dicom_free(). */
ICH_API const void *ich_dicom_pixels(const ich_dicom *dicom);

/** The slice in Hounsfield units (modality values) as rows * columns
 *  float32, row-major, computed as described at the top of this header.
 *  The memory belongs to the handle and lives until ich_dicom_free(). */
ICH_API const float *ich_dicom_hu(const ich_dicom *dicom);

/* ---- Writing CT slices ------------------------------------------------- */

/** A CT slice to write. Set `size` to sizeof(ich_ct_slice); a zeroed struct
 *  with `size`, rows, columns and pixels set is valid: zero/NULL fields take
 *  the defaults given below. */
typedef struct ich_ct_slice {
    /* ABI: first version up to `sop_instance_uid`, 144 bytes on LP64 (today's layout). */
    size_t size;
    int32_t rows;                 /**< 1..65535 */
    int32_t columns;              /**< 1..65535 */
    const int16_t *pixels;        /**< rows * columns stored values, row-major */
    double rescale_slope;         /**< 0 means 1 */
    double rescale_intercept;     /**< HU = stored * slope + intercept */
    double pixel_spacing[2];      /**< mm; zeros mean 1.0 */
    double slice_thickness;       /**< mm; 0 means absent */
    double image_position[3];     /**< mm */
    int32_t instance_number;
    double window_center;         /**< written when window_width > 0 */
    double window_width;
    const char *patient_id;       /**< NULL means "ANONYMOUS" */
    const char *study_instance_uid;  /**< NULL: a new UID is generated */
    const char *series_instance_uid; /**< NULL: a new UID is generated */
    const char *sop_instance_uid;    /**< NULL: a new UID is generated */
} ich_ct_slice;

/** Write `slice` as a CT Image Storage DICOM file (explicit VR little
 *  endian, MONOCHROME2, signed 16-bit, with rescale tags) at `path`. The
 *  file is written to a temporary name beside `path` and renamed into
 *  place, so `path` is never left half-written (it is not fsynced: after a
 *  power loss the newest files may be empty, never torn).
 *  Errors: ICH_ERR_INVALID_ARGUMENT (NULL, bad size or dimensions, a UID
 *  that is not a valid DICOM UID), ICH_ERR_IO, ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_dicom_write_ct(const char *path, const ich_ct_slice *slice);

#ifdef __cplusplus
}
#endif
#endif /* ICH_DICOM_H */
