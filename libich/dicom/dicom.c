/* DICOM slices: stored values cleaned up to their BitsStored, HU, writing. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/blocks.h"
#include "core/error.h"
#include "core/fileutil.h"
#include "core/options.h"
#include "dicom/gdcm_shim.h"

struct ich_dicom {
    ich_dicom_info info;
    void *pixels; /* rows * columns values of info.sample_bits bits */
    float *hu;
};

/* Every value shifted into a signed 64-bit integer: the bits above
 * BitsStored removed, signed values sign-extended, 1-bit data unpacked. */
static int64_t stored_value(const void *buffer, size_t index, int bits_allocated, int bits_stored,
                            int is_signed)
{
    uint64_t raw;
    switch (bits_allocated) {
    case 1: return (((const uint8_t *)buffer)[index / 8] >> (index % 8)) & 1;
    case 8: raw = ((const uint8_t *)buffer)[index]; break;
    case 16: raw = ((const uint16_t *)buffer)[index]; break;
    default: raw = ((const uint32_t *)buffer)[index]; break;
    }
    uint64_t mask = bits_stored >= 64 ? ~0ull : (1ull << bits_stored) - 1;
    raw &= mask;
    if (is_signed && (raw >> (bits_stored - 1)) & 1)
        return (int64_t)(raw | ~mask);
    return (int64_t)raw;
}

static void store_value(void *pixels, size_t index, int sample_bits, int64_t v)
{
    switch (sample_bits) {
    case 8: ((uint8_t *)pixels)[index] = (uint8_t)v; break;
    case 16: ((uint16_t *)pixels)[index] = (uint16_t)v; break;
    default: ((uint32_t *)pixels)[index] = (uint32_t)v; break;
    }
}

/* Fill dicom->pixels and dicom->hu from GDCM's decoded buffer. */
static ich_status convert_pixels(ich_dicom *dicom, ich_gdcm_image *image, const char *path)
{
    ich_dicom_info *info = &dicom->info;
    const void *buffer = image->buffer;
    const int bits = image->decoded_bits_allocated;
    const int bits_stored = image->decoded_bits_stored;
    if (bits != 1 && bits != 8 && bits != 16 && bits != 32)
        return ich_fail(ICH_ERR_UNSUPPORTED, "%s: %d bits allocated per pixel is not supported",
                        path, bits);
    info->sample_bits = bits == 1 ? 8 : bits;
    int is_signed = image->decoded_pixel_representation == 1;
    size_t n = (size_t)info->rows * (size_t)info->columns;
    /* The common CT case: GDCM's buffer already holds the stored values as
     * they are to be given out, so the handle keeps it. */
    const int as_decoded = bits == 16 && bits_stored == 16;
    if (as_decoded) {
        dicom->pixels = image->buffer;
        image->buffer = NULL;
    } else {
        dicom->pixels = ich_block_alloc(n * (size_t)(info->sample_bits / 8));
    }
    dicom->hu = ich_block_alloc(n * sizeof(float));
    if (!dicom->pixels || !dicom->hu)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: cannot allocate %zu pixels", path, n);

    /* The modality rescale of the stored values, MONOCHROME1 too: its
     * inversion is a display step (ich_window_apply_dicom_f32()). */
    float slope = (float)info->rescale_slope;
    float intercept = (float)info->rescale_intercept;
    if (as_decoded) { /* a loop the compiler vectorises */
        for (size_t i = 0; i < n; i++) {
            float v = is_signed ? (float)((const int16_t *)buffer)[i]
                                : (float)((const uint16_t *)buffer)[i];
            dicom->hu[i] = v * slope + intercept;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            int64_t v = stored_value(buffer, i, bits, bits_stored, is_signed);
            store_value(dicom->pixels, i, info->sample_bits, v);
            dicom->hu[i] = (float)v * slope + intercept;
        }
    }
    /* The shim bounds slope and intercept, so this holds for every file it
     * accepts; an image of infinities must never pass as a slice. For 16-bit
     * values (|v| <= 65535) a finite bound of |v * slope + intercept| proves
     * it without a second pass over the slice (a few % of ich-preprocess). */
    const double bound = fabs((double)slope) * 65536.0 + fabs((double)intercept);
    if (as_decoded && isfinite(slope) && isfinite(intercept) && bound < FLT_MAX / 2)
        return ICH_OK;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dicom->hu[i]))
            return ich_fail(ICH_ERR_FORMAT,
                            "%s: HU value %g at pixel %zu is not finite (RescaleSlope %g, "
                            "RescaleIntercept %g)",
                            path, (double)dicom->hu[i], i, info->rescale_slope,
                            info->rescale_intercept);
    return ICH_OK;
}

/* ---- Limits ------------------------------------------------------------ */

static _Atomic uint64_t limit_file_bytes = ICH_DICOM_DEFAULT_MAX_FILE_BYTES;
static _Atomic uint64_t limit_pixels = ICH_DICOM_DEFAULT_MAX_PIXELS;
static _Atomic uint64_t limit_decoded_bytes = ICH_DICOM_DEFAULT_MAX_DECODED_BYTES;

/* The first version of ich_dicom_limits ended at max_file_bytes (see
 * <ich/dicom.h>). */
#define LIMITS_V1_SIZE ICH_OPTIONS_V1_SIZE(ich_dicom_limits, max_file_bytes)

/* The limits a read uses: `given` (NULL: the process-wide ones) with its
 * zero or missing fields replaced by the process-wide values' defaults. */
static ich_status resolve_limits(const ich_dicom_limits *given, ich_dicom_limits *out)
{
    *out = (ich_dicom_limits){.size = sizeof *out};
    ich_status st = ich_options_merge(out, sizeof *out, given, LIMITS_V1_SIZE, "ich_dicom_limits");
    if (st != ICH_OK)
        return st;
    if (!out->max_file_bytes)
        out->max_file_bytes = given ? ICH_DICOM_DEFAULT_MAX_FILE_BYTES : atomic_load(&limit_file_bytes);
    if (!out->max_pixels)
        out->max_pixels = given ? ICH_DICOM_DEFAULT_MAX_PIXELS : atomic_load(&limit_pixels);
    if (!out->max_decoded_bytes)
        out->max_decoded_bytes =
            given ? ICH_DICOM_DEFAULT_MAX_DECODED_BYTES : atomic_load(&limit_decoded_bytes);
    return ICH_OK;
}

ich_status ich_dicom_default_limits(ich_dicom_limits *limits)
{
    const ich_dicom_limits l = {sizeof l, ICH_DICOM_DEFAULT_MAX_FILE_BYTES,
                                ICH_DICOM_DEFAULT_MAX_PIXELS, ICH_DICOM_DEFAULT_MAX_DECODED_BYTES};
    return ich_options_write(limits, &l, sizeof l, LIMITS_V1_SIZE, "ich_dicom_default_limits");
}

ich_status ich_dicom_get_limits(ich_dicom_limits *limits)
{
    const ich_dicom_limits l = {sizeof l, atomic_load(&limit_file_bytes),
                                atomic_load(&limit_pixels), atomic_load(&limit_decoded_bytes)};
    return ich_options_write(limits, &l, sizeof l, LIMITS_V1_SIZE, "ich_dicom_get_limits");
}

ich_status ich_dicom_set_limits(const ich_dicom_limits *limits)
{
    ich_dicom_limits l;
    ich_status st = resolve_limits(limits ? limits : &(ich_dicom_limits){sizeof l, 0, 0, 0}, &l);
    if (st != ICH_OK)
        return st;
    atomic_store(&limit_file_bytes, l.max_file_bytes);
    atomic_store(&limit_pixels, l.max_pixels);
    atomic_store(&limit_decoded_bytes, l.max_decoded_bytes);
    return ICH_OK;
}

/* Decode bytes into a new handle. */
static ich_status decode(const char *name, const void *data, size_t size,
                         const ich_dicom_limits *limits, ich_dicom **out)
{
    if (size > limits->max_file_bytes)
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: %zu bytes, more than the limit max_file_bytes (%llu)", name, size,
                        (unsigned long long)limits->max_file_bytes);
    ich_gdcm_image image;
    ich_status status = ich_gdcm_decode(name, data, size, limits, &image);
    if (status != ICH_OK)
        return status;
    ich_dicom *dicom = calloc(1, sizeof *dicom);
    if (!dicom) {
        ich_block_free(image.buffer);
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", name);
    }
    dicom->info = image.info;
    status = convert_pixels(dicom, &image, name);
    ich_block_free(image.buffer);
    if (status != ICH_OK) {
        ich_dicom_free(dicom);
        return status;
    }
    *out = dicom;
    return ICH_OK;
}

/* The whole regular file at `path` in an ich_block_alloc buffer, if it holds at
 * most `limit` bytes. Opened without blocking (a FIFO would otherwise wait
 * for a writer for ever) and refused unless it is a regular file; read
 * with a bounded loop, so a file that grows meanwhile is not read past
 * what was allocated. */
static ich_status read_file(const char *path, uint64_t limit, void **data, size_t *size)
{
    *data = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return ich_fail(ICH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ich_fail(ICH_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ich_fail(ICH_ERR_IO, "%s: %s, not a DICOM file", path,
                        S_ISDIR(st.st_mode)    ? "is a directory"
                        : S_ISFIFO(st.st_mode) ? "is a FIFO (named pipe)"
                        : S_ISSOCK(st.st_mode) ? "is a socket"
                        : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "is a device"
                                                                     : "is not a regular file");
    }
    if ((uint64_t)st.st_size > limit) {
        close(fd);
        return ich_fail(ICH_ERR_UNSUPPORTED,
                        "%s: %lld bytes, more than the limit max_file_bytes (%llu); not read",
                        path, (long long)st.st_size, (unsigned long long)limit);
    }
    size_t want = (size_t)st.st_size, got = 0;
    *data = ich_block_alloc(want ? want : 1);
    if (!*data) {
        close(fd);
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes", path, want);
    }
    while (got < want) {
        ssize_t n = read(fd, (char *)*data + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : 0;
            close(fd);
            ich_block_free(*data);
            *data = NULL;
            return ich_fail(ICH_ERR_IO, "%s: read %zu of %zu bytes%s%s", path, got, want,
                            e ? ": " : "", e ? strerror(e) : "");
        }
        got += (size_t)n;
    }
    close(fd);
    *size = got;
    return ICH_OK;
}

ich_status ich_dicom_read_with_limits(const char *path, const ich_dicom_limits *limits,
                                      ich_dicom **out)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dicom_read: NULL %s", path ? "out" : "path");
    ich_dicom_limits l;
    ich_status status = resolve_limits(limits, &l);
    if (status != ICH_OK)
        return status;
    void *data = NULL;
    size_t size = 0;
    status = read_file(path, l.max_file_bytes, &data, &size);
    if (status != ICH_OK)
        return status;
    status = size == 0 ? ich_fail(ICH_ERR_FORMAT, "%s: empty file, not DICOM", path)
                       : decode(path, data, size, &l, out);
    ich_block_free(data);
    return status;
}

ich_status ich_dicom_read(const char *path, ich_dicom **out)
{
    return ich_dicom_read_with_limits(path, NULL, out);
}

ich_status ich_dicom_read_memory_with_limits(const void *data, size_t size, const char *name,
                                             const ich_dicom_limits *limits, ich_dicom **out)
{
    if (out)
        *out = NULL;
    if (!out || (!data && size > 0))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dicom_read_memory: NULL %s",
                        out ? "data" : "out");
    if (!name)
        name = "<memory>";
    ich_dicom_limits l;
    ich_status status = resolve_limits(limits, &l);
    if (status != ICH_OK)
        return status;
    if (size == 0)
        return ich_fail(ICH_ERR_FORMAT, "%s: no bytes, not DICOM", name);
    return decode(name, data, size, &l, out);
}

ich_status ich_dicom_read_memory(const void *data, size_t size, const char *name, ich_dicom **out)
{
    return ich_dicom_read_memory_with_limits(data, size, name, NULL, out);
}

void ich_dicom_free(ich_dicom *dicom)
{
    if (!dicom)
        return;
    ich_block_free(dicom->pixels);
    ich_block_free(dicom->hu);
    free(dicom);
}

ich_status ich_dicom_get_info(const ich_dicom *dicom, ich_dicom_info *info)
{
    if (!dicom || !info)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dicom_get_info: NULL argument");
    /* The first version held only rows and columns (see <ich/dicom.h>). */
    return ich_options_write(info, &dicom->info, sizeof dicom->info,
                             ICH_OPTIONS_V1_SIZE(ich_dicom_info, columns), "ich_dicom_get_info");
}

void ich_dicom_size(const ich_dicom *dicom, int32_t *rows, int32_t *columns)
{
    if (rows)
        *rows = dicom ? dicom->info.rows : 0;
    if (columns)
        *columns = dicom ? dicom->info.columns : 0;
}

const void *ich_dicom_pixels(const ich_dicom *dicom) { return dicom ? dicom->pixels : NULL; }

const float *ich_dicom_hu(const ich_dicom *dicom) { return dicom ? dicom->hu : NULL; }

/* ---- Writing ---------------------------------------------------------- */

/* A DICOM UID: 1..64 characters, digits in dot-separated components, no
 * empty component and no leading zero in a component of several digits. */
static int valid_uid(const char *uid)
{
    size_t len = strlen(uid);
    if (len == 0 || len > 64)
        return 0;
    for (const char *p = uid; *p;) {
        const char *start = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == start || (*start == '0' && p - start > 1))
            return 0;
        if (*p == '.' && p[1] == '\0')
            return 0;
        if (*p && *p != '.')
            return 0;
        if (*p)
            p++;
    }
    return 1;
}

/* A new random UID under the UUID root 2.25 (ISO/IEC 9834-8): thread-safe
 * and needing no registered organisation root. */
static ich_status new_uid(char out[65])
{
    unsigned __int128 v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        return ich_fail(ICH_ERR_IO, "cannot get random bytes for a UID: %s", strerror(errno));
    char digits[48];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    memcpy(out, "2.25.", 5);
    for (int i = 0; i < n; i++)
        out[5 + i] = digits[n - 1 - i];
    out[5 + n] = '\0';
    return ICH_OK;
}

static ich_status check_text(const char *what, const char *value, int uid)
{
    if (!value)
        return ICH_OK;
    if (uid ? !valid_uid(value) : strlen(value) > 64)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dicom_write_ct: invalid %s \"%.80s\"", what,
                        value);
    return ICH_OK;
}

static ich_status check_slice(const ich_ct_slice *s)
{
    if (s->rows < 1 || s->rows > 65535 || s->columns < 1 || s->columns > 65535 || !s->pixels)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_dicom_write_ct: need 1..65535 rows and columns and pixels (got %d x %d%s)",
                        s->rows, s->columns, s->pixels ? "" : ", no pixels");
    const double numbers[] = {s->rescale_slope, s->rescale_intercept, s->pixel_spacing[0],
                              s->pixel_spacing[1], s->slice_thickness, s->image_position[0],
                              s->image_position[1], s->image_position[2], s->window_center,
                              s->window_width};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (!isfinite(numbers[i]))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dicom_write_ct: non-finite number");
    ich_status st;
    if ((st = check_text("patient ID", s->patient_id, 0)) ||
        (st = check_text("study instance UID", s->study_instance_uid, 1)) ||
        (st = check_text("series instance UID", s->series_instance_uid, 1)) ||
        (st = check_text("SOP instance UID", s->sop_instance_uid, 1)))
        return st;
    return ICH_OK;
}

ich_status ich_dicom_write_ct(const char *path, const ich_ct_slice *slice)
{
    if (!path || !slice)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dicom_write_ct: NULL %s",
                        path ? "slice" : "path");
    /* Only the caller's `size` bytes are read; the fields of a newer
     * version stay zero, their documented defaults. */
    ich_ct_slice s = {.size = sizeof s};
    ich_status st = ich_options_merge(&s, sizeof s, slice,
                                      ICH_OPTIONS_V1_SIZE(ich_ct_slice, sop_instance_uid),
                                      "ich_dicom_write_ct");
    if (st == ICH_OK)
        st = check_slice(&s);
    if (st != ICH_OK)
        return st;

    char study[65], series[65], sop[65];
    if (!s.study_instance_uid && (st = new_uid(study)) == ICH_OK)
        s.study_instance_uid = study;
    if (!st && !s.series_instance_uid && (st = new_uid(series)) == ICH_OK)
        s.series_instance_uid = series;
    if (!st && !s.sop_instance_uid && (st = new_uid(sop)) == ICH_OK)
        s.sop_instance_uid = sop;
    if (st != ICH_OK)
        return st;
    if (!s.patient_id)
        s.patient_id = "ANONYMOUS";
    if (s.rescale_slope == 0)
        s.rescale_slope = 1;
    if (s.pixel_spacing[0] == 0 && s.pixel_spacing[1] == 0)
        s.pixel_spacing[0] = s.pixel_spacing[1] = 1;

    void *bytes;
    size_t size;
    if ((st = ich_gdcm_encode_ct(&s, &bytes, &size)) != ICH_OK) {
        char cause[512];
        snprintf(cause, sizeof cause, "%s", ich_last_error());
        return ich_fail(st, "%s: %s", path, cause);
    }
    st = ich_write_file_atomic(path, bytes, size, 0);
    free(bytes);
    return st;
}
