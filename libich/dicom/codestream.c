/* Compressed frame headers checked against the DICOM image attributes. */
#include <string.h>

#include "core/error.h"
#include "dicom/codestream.h"

static unsigned be16(const unsigned char *p) { return (unsigned)(p[0] << 8 | p[1]); }

static uint32_t be32(const unsigned char *p) { return (uint32_t)be16(p) << 16 | be16(p + 2); }

static ich_status mismatch(const char *path, const char *codec, long width, long height,
                           long components, long bits, const ich_frame_shape *s)
{
    return ich_fail(ICH_ERR_FORMAT,
                    "%s: corrupt %s stream: it describes %ld x %ld x %ld components of %ld bits, "
                    "the DICOM attributes %d x %d x %d of %d bits",
                    path, codec, width, height, components, bits, s->columns, s->rows, s->samples,
                    s->bits_allocated);
}

/* A start-of-frame marker: SOF0..SOF15 except DHT (C4), JPG (C8), DAC
 * (CC); F7 is JPEG-LS's SOF55. */
static int is_sof(unsigned marker)
{
    return (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
            marker != 0xCC) ||
           marker == 0xF7;
}

/* Walk the header segments from SOI to the first SOS: each must start
 * with a marker (libjpeg warns on stray bytes, and GDCM asserts on any
 * warning while reading the header), and the frame header must describe
 * the DICOM image. */
static ich_status check_jpeg(const char *path, const unsigned char *d, size_t n,
                             const ich_frame_shape *s)
{
    size_t at = 2; /* after SOI */
    int have_frame = 0;
    while (at + 4 <= n) {
        if (d[at] != 0xFF)
            return ich_fail(ICH_ERR_FORMAT, "%s: corrupt JPEG stream: no marker at byte %zu", path,
                            at);
        unsigned marker = d[at + 1];
        if (marker == 0xFF) { /* fill byte */
            at++;
            continue;
        }
        size_t length = be16(d + at + 2);
        if (length < 2 || at + 2 + length > n)
            return ich_fail(ICH_ERR_FORMAT, "%s: corrupt JPEG stream: bad segment length", path);
        if (marker == 0xDA) {
            if (!have_frame)
                break;
            return ICH_OK;
        }
        if (is_sof(marker)) {
            const unsigned char *f = d + at + 4;
            long bits = length >= 8 ? f[0] : 0, height = length >= 8 ? be16(f + 1) : 0;
            long width = length >= 8 ? be16(f + 3) : 0, comps = length >= 8 ? f[5] : 0;
            /* A height of 0 is legal (given later by a DNL marker). */
            if (have_frame || length < 8 + 3 * (size_t)comps || width != s->columns ||
                (height != 0 && height != s->rows) || comps != s->samples || bits < 2 ||
                bits > s->bits_allocated)
                return mismatch(path, "JPEG", width, height, comps, bits, s);
            have_frame = 1;
        }
        at += 2 + length;
    }
    return ich_fail(ICH_ERR_FORMAT, "%s: corrupt JPEG stream: no frame header before the scan",
                    path);
}

/* JPEG 2000 markers that stand alone, without a length (ISO 15444-1
 * Table A.2 and the reserved FF30..FF3F), as GDCM's marker walk lists them. */
static int j2k_has_no_length(unsigned marker)
{
    return (marker >= 0xFF30 && marker <= 0xFF3F) || marker == 0xFF4F || marker == 0xFF93 ||
           marker == 0xFFD9 || marker == 0xFF92;
}

static ich_status j2k_overrun(const char *path, const char *what, size_t at)
{
    return ich_fail(ICH_ERR_FORMAT,
                    "%s: corrupt JPEG 2000 stream: the %s at byte %zu runs past the end of the "
                    "pixel data",
                    path, what, at);
}

/* The walk GDCM's JPEG 2000 codec makes over a codestream to learn whether
 * it is lossless: from the first byte, every 16-bit word is a marker, any
 * marker but the stand-alone ones is followed by a length it skips, and
 * the walk ends at SOD, at a length below 2, at a COD segment or at the
 * end. GDCM bounds none of its skips or COD's fields by the buffer (its
 * remaining count wraps around), so a length that runs past the end
 * sends it reading beyond the fragment: refuse such a stream here. */
static ich_status check_j2k_walk(const char *path, const unsigned char *d, size_t n, size_t base)
{
    size_t at = 0;
    while (n - at >= 2) {
        unsigned marker = be16(d + at);
        at += 2;
        if (j2k_has_no_length(marker)) {
            if (marker == 0xFF93) /* SOD: the walk stops */
                return ICH_OK;
            continue;
        }
        if (n - at < 2)
            return ICH_OK;
        size_t length = be16(d + at);
        at += 2;
        if (length < 2)
            return ICH_OK;
        if (marker == 0xFF52) { /* COD: GDCM reads its bytes 4 and 9 */
            if (n - at < 10)
                return j2k_overrun(path, "COD segment", base + at - 4);
            if (d[at + 4] > 1 || d[at + 9] != 1)
                return ICH_OK; /* the walk stops there */
        }
        if (length - 2 > n - at)
            return j2k_overrun(path, "marker segment", base + at - 4);
        at += length - 2;
    }
    return ICH_OK;
}

static uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* The same for a JP2 file (boxes around the codestream), walked as GDCM
 * walks it: box after box until the contiguous codestream box (jp2c),
 * whose content is then walked as above. GDCM counts only the box headers
 * it reads against the buffer, not the boxes it skips, and asserts on a
 * short 64-bit length: every read it would make must lie in the buffer. */
static ich_status check_jp2_walk(const char *path, const unsigned char *d, size_t n)
{
    size_t at = 0, left = n; /* where GDCM reads, and what it thinks is left */
    while (left >= 4) {
        size_t box = at;
        if (n - at < 8)
            return left >= 8 || n - at < 4 ? j2k_overrun(path, "JP2 box", box) : ICH_OK;
        uint64_t length = be32(d + at);
        uint32_t type = be32(d + at + 4);
        at += 8;
        left -= 8;
        if (length == 1) { /* a 64-bit length follows; it counts itself */
            if (left < 8 || n - at < 8)
                return j2k_overrun(path, "JP2 box", box);
            length = be64(d + at) - 8;
            at += 8;
            left -= 8;
        }
        if (type == 0x6A703263 && length == 0) /* jp2c to the end */
            length = n - at + 8;
        if (length < 8 || length - 8 > n - at)
            return j2k_overrun(path, "JP2 box", box);
        if (type == 0x6A703263)
            return check_j2k_walk(path, d + at, (size_t)(length - 8), at);
        at += (size_t)(length - 8);
    }
    return ICH_OK;
}

/* GDCM's test for a JP2 file: the signature box and the first byte of the
 * next box's length, 13 bytes. */
static const unsigned char jp2_magic[13] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87,
                                            0x0A, 0};

ich_status ich_check_j2k_walk(const char *path, const unsigned char *data, size_t size)
{
    if (size < sizeof jp2_magic)
        return ich_fail(ICH_ERR_FORMAT, "%s: corrupt JPEG 2000 stream: %zu bytes", path, size);
    if (memcmp(data, jp2_magic, sizeof jp2_magic) == 0)
        return check_jp2_walk(path, data, size);
    return check_j2k_walk(path, data, size, 0);
}

static ich_status check_j2k(const char *path, const unsigned char *d, size_t n,
                            const ich_frame_shape *s)
{
    ich_status st = ich_check_j2k_walk(path, d, n);
    if (st != ICH_OK)
        return st;
    /* The codestream may sit inside JP2 boxes: find SOC followed by SIZ. */
    size_t at = 0;
    while (at + 4 <= n && !(d[at] == 0xFF && d[at + 1] == 0x4F && d[at + 2] == 0xFF &&
                            d[at + 3] == 0x51))
        at++;
    if (at + 4 + 38 > n)
        return ich_fail(ICH_ERR_FORMAT, "%s: corrupt JPEG 2000 stream: no SIZ segment", path);
    const unsigned char *z = d + at + 4;
    size_t length = be16(z);
    uint32_t xsiz = be32(z + 4), ysiz = be32(z + 8), xo = be32(z + 12), yo = be32(z + 16);
    unsigned comps = be16(z + 36);
    if (xo > xsiz || yo > ysiz || comps == 0 || length != 38 + 3 * (size_t)comps ||
        at + 4 + length > n)
        return mismatch(path, "JPEG 2000", (long)xsiz - (long)xo, (long)ysiz - (long)yo, comps, 0,
                        s);
    long width = (long)(xsiz - xo), height = (long)(ysiz - yo);
    for (unsigned c = 0; c < comps; c++) {
        const unsigned char *comp = z + 38 + 3 * c;
        long bits = (comp[0] & 0x7F) + 1;
        if (bits > s->bits_allocated || comp[1] != 1 || comp[2] != 1)
            return mismatch(path, "JPEG 2000", width, height, comps, bits, s);
    }
    if (width != s->columns || height != s->rows || (long)comps != s->samples)
        return mismatch(path, "JPEG 2000", width, height, comps, (z[38] & 0x7F) + 1, s);
    return ICH_OK;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* RLE Lossless (PS3.5 G.3): a 64-byte header holding the segment count,
 * one segment per byte of each sample, and their rising offsets. */
static ich_status check_rle(const char *path, const unsigned char *d, size_t n,
                            const ich_frame_shape *s)
{
    uint32_t expected = (uint32_t)(s->samples * ((s->bits_allocated + 7) / 8));
    if (n < 64 || le32(d) != expected)
        return ich_fail(ICH_ERR_FORMAT, "%s: corrupt RLE header: %u segments, %u expected", path,
                        n < 64 ? 0 : le32(d), expected);
    uint32_t previous = 63;
    for (uint32_t i = 0; i < expected; i++) {
        uint32_t offset = le32(d + 4 + 4 * i);
        if (offset <= previous || offset >= n || (i == 0 && offset != 64))
            return ich_fail(ICH_ERR_FORMAT, "%s: corrupt RLE header: bad segment offset", path);
        previous = offset;
    }
    return ICH_OK;
}

ich_status ich_check_codestream(const char *path, const unsigned char *frame, size_t size,
                                const ich_frame_shape *shape, ich_codec codec)
{
    switch (codec) {
    case ICH_CODEC_RLE:
        return check_rle(path, frame, size, shape);
    case ICH_CODEC_JPEG2000:
        return check_j2k(path, frame, size, shape);
    case ICH_CODEC_JPEG:
        if (size >= 2 && frame[0] == 0xFF && frame[1] == 0xD8)
            return check_jpeg(path, frame, size, shape);
        return ICH_OK; /* not a JPEG stream: libjpeg says so without reading past it */
    default:
        return ICH_OK;
    }
}
