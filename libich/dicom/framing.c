/* Element framing checks: every header and length inside the file, before
 * GDCM (whose asserts abort the process on malformed input) sees it. This
 * reads tags, VRs and lengths only; values are GDCM's business. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/error.h"
#include "dicom/framing.h"

#define UNDEFINED_LENGTH 0xFFFFFFFFu
#define MAX_DEPTH 32

typedef struct walker {
    const unsigned char *d;
    size_t size;
    int big_endian;
    int open_undefined_items; /* items of undefined length being walked */
    char why[200];
    size_t where;
} walker;

typedef struct header {
    unsigned group, element;
    char vr[3];        /* "" in implicit VR */
    uint32_t length;
    size_t value;      /* offset of the value */
} header;

static unsigned u16(const walker *w, size_t at)
{
    const unsigned char *p = w->d + at;
    return w->big_endian ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]);
}

static uint32_t u32(const walker *w, size_t at)
{
    uint32_t lo = u16(w, at), hi = u16(w, at + 2);
    return w->big_endian ? (lo << 16 | hi) : (hi << 16 | lo);
}

static int fail(walker *w, size_t at, const char *why)
{
    snprintf(w->why, sizeof w->why, "%s", why);
    w->where = at;
    return -1;
}

static int is_one_of(const char *vr, const char *list)
{
    for (const char *p = list; *p; p += 3)
        if (vr[0] == p[0] && vr[1] == p[1])
            return 1;
    return 0;
}

static const char KNOWN_VRS[] = "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL "
                                "SQ SS ST SV TM UC UI UL UN UR US UT UV ";
static const char LONG_VRS[] = "OB OD OF OL OV OW SQ SV UC UN UR UT UV ";

/* The VR GDCM 3.0 reads from the two bytes at `p` (VR::GetVRTypeFromFile):
 * a known VR is itself; any other pair of printable ASCII characters
 * (0x20..0x7E) is taken as UN, with a 32-bit length after two reserved
 * bytes; anything else is invalid. Returns 0 for invalid, else 1 with the
 * VR's name in `vr`. Reading headers this way keeps libich's walk on the
 * bytes GDCM will read (measured on Debian's 3.0.21: every such pair). */
static int gdcm_vr(const unsigned char *p, char vr[3])
{
    vr[0] = (char)p[0];
    vr[1] = (char)p[1];
    vr[2] = '\0';
    if (is_one_of(vr, KNOWN_VRS))
        return 1;
    if (p[0] >= 0x20 && p[0] <= 0x7E && p[1] >= 0x20 && p[1] <= 0x7E) {
        vr[0] = 'U';
        vr[1] = 'N';
        return 1;
    }
    return 0;
}

/* explicit_vr values: implicit VR, explicit VR, or GDCM's explicit/implicit
 * reading (ExplicitImplicitDataElement): explicit where the two bytes
 * after the tag are a VR for gdcm_vr(), implicit elsewhere. */
enum { IMPLICIT_VR = 0, EXPLICIT_VR = 1, MIXED_VR = 2 };

/* Read one element header at `at`, below `end`. Item tags (FFFE,xxxx)
 * never carry a VR. */
static int read_header(walker *w, size_t at, size_t end, int explicit_vr, header *h)
{
    if (end - at < 8)
        return fail(w, at, "the file ends inside an element header");
    h->group = u16(w, at);
    h->element = u16(w, at + 2);
    h->vr[0] = '\0';
    char probe[3];
    if (explicit_vr == MIXED_VR && !gdcm_vr(w->d + at + 4, probe))
        explicit_vr = IMPLICIT_VR;
    if (!explicit_vr || h->group == 0xFFFE) {
        h->length = u32(w, at + 4);
        h->value = at + 8;
        return 0;
    }
    if (!gdcm_vr(w->d + at + 4, h->vr))
        return fail(w, at + 4, "invalid value representation");
    if (is_one_of(h->vr, LONG_VRS)) {
        if (end - at < 12)
            return fail(w, at, "the file ends inside an element header");
        h->length = u32(w, at + 8);
        h->value = at + 12;
    } else {
        h->length = u16(w, at + 6);
        h->value = at + 8;
    }
    return 0;
}

static int walk_items(walker *w, size_t *at, size_t end, int explicit_vr, int defined,
                      int fragments, int depth);

/* Elements from *at up to `end`; with `until_delimiter`, up to and past an
 * item delimitation item instead. */
static int walk_elements(walker *w, size_t *at, size_t end, int explicit_vr, int until_delimiter,
                         int depth)
{
    if (depth > MAX_DEPTH)
        return fail(w, *at, "sequences nested too deeply");
    uint32_t previous_tag = 0;
    int first = 1;
    while (*at < end) {
        header h;
        if (read_header(w, *at, end, explicit_vr, &h) != 0)
            return -1;
        if (h.group == 0xFFFE) {
            if (until_delimiter && h.element == 0xE00D && h.length == 0) {
                *at = h.value;
                return 0;
            }
            return fail(w, *at, "item tag outside a sequence");
        }
        if (h.group == 0 && h.element == 0 && depth == 0 && !until_delimiter) {
            for (size_t i = *at; i < end; i++)
                if (w->d[i])
                    return fail(w, *at, "invalid element (0000,0000)");
            /* Trailing zero padding: GDCM reads it as 8-byte elements
             * (0000,0000) (after its explicit reading fails on them, with
             * ExplicitImplicitDataElement); 4 to 7 bytes left over make it
             * read a tag without a VR or length, an assertion away from an
             * abort (reached when GDCM's warnings are on: a fuzz finding). */
            if ((end - *at) % 8 >= 4)
                return fail(w, *at, "trailing zero padding of a length GDCM cannot read");
            *at = end;
            return 0;
        }
        /* Elements come in ascending tag order; GDCM misreads files that
         * break it (a corrupt group number, typically). */
        uint32_t tag = (uint32_t)h.group << 16 | h.element;
        if (!first && tag <= previous_tag)
            return fail(w, *at, "elements out of order (corrupt tag)");
        first = 0;
        previous_tag = tag;
        *at = h.value;
        if (h.length == UNDEFINED_LENGTH) {
            int pixel_data = h.group == 0x7FE0 && h.element == 0x0010;
            /* Undefined lengths: sequences (SQ, or UN holding one) and
             * encapsulated pixel data (OB or OW); GDCM asserts on others. */
            if (h.vr[0] && !(pixel_data ? is_one_of(h.vr, "OB OW ") : is_one_of(h.vr, "SQ UN ")))
                return fail(w, h.value - 4, "undefined length on an element that cannot have one");
            /* An UN sequence of undefined length is encoded implicit VR. */
            int inner_explicit = strcmp(h.vr, "UN") != 0 ? explicit_vr : IMPLICIT_VR;
            if (walk_items(w, at, end, pixel_data ? explicit_vr : inner_explicit, 0, pixel_data,
                           depth) != 0)
                return -1;
            continue;
        }
        /* Values have even lengths; GDCM asserts when one inside an item of
         * undefined length is odd (it adds them up to the item's length). */
        if (w->open_undefined_items > 0 && h.length % 2)
            return fail(w, h.value - 4, "odd value length inside an item");
        if (h.length > end - *at) {
            snprintf(w->why, sizeof w->why,
                     "truncated or corrupt: element (%04X,%04X) declares %u bytes, %zu remain",
                     h.group, h.element, h.length, end - *at);
            w->where = *at;
            return -1;
        }
        if (strcmp(h.vr, "SQ") == 0) {
            size_t inner = *at;
            if (walk_items(w, &inner, *at + h.length, explicit_vr, 1, 0, depth) != 0)
                return -1;
        }
        *at += h.length;
    }
    if (until_delimiter)
        return fail(w, *at, "an item of undefined length has no delimiter");
    return 0;
}

/* Items of a sequence, whose content is a nested data set, or with
 * `fragments` the fragments of encapsulated pixel data, whose content is
 * opaque. With `defined`, the items fill [*at, end); otherwise a sequence
 * delimiter ends them. */
static int walk_items(walker *w, size_t *at, size_t end, int explicit_vr, int defined,
                      int fragments, int depth)
{
    for (;;) {
        if (defined && *at == end)
            return 0;
        header h;
        if (read_header(w, *at, end, 0, &h) != 0)
            return -1;
        if (h.group != 0xFFFE)
            return fail(w, *at, "expected an item in a sequence");
        *at = h.value;
        if (h.element == 0xE0DD && !defined) {
            if (h.length != 0)
                return fail(w, h.value - 8, "a sequence delimiter with a length");
            return 0;
        }
        if (h.element != 0xE000)
            return fail(w, h.value - 8, "expected an item in a sequence");
        if (h.length == UNDEFINED_LENGTH) {
            if (fragments)
                return fail(w, h.value - 8, "a pixel data fragment without a length");
            w->open_undefined_items++;
            int rc = walk_elements(w, at, end, explicit_vr, 1, depth + 1);
            w->open_undefined_items--;
            if (rc != 0)
                return -1;
        } else {
            if (h.length > end - *at)
                return fail(w, *at, "truncated or corrupt: an item runs past its end");
            if (!fragments && w->open_undefined_items > 0 && h.length % 2)
                return fail(w, h.value - 8, "an item of odd length");
            size_t inner = *at;
            if (!fragments && walk_elements(w, &inner, *at + h.length, explicit_vr, 0, depth + 1) != 0)
                return -1;
            *at += h.length;
        }
    }
}

/* Where the data set starts and how it is encoded, from the meta group. */
static int walk_meta(walker *w, size_t *at, char *syntax, size_t syntax_size)
{
    syntax[0] = '\0';
    if (w->size >= 132 && memcmp(w->d + 128, "DICM", 4) == 0) {
        *at = 132;
        /* Part 10: the marker is followed by the meta group. GDCM guesses
         * a legacy encoding otherwise and then asserts on what it reads. */
        if (w->size < 140 || u16(w, 132) != 0x0002)
            return fail(w, 132, "no file meta information after the DICM marker");
    } else {
        /* No preamble: GDCM still reads a leading group 0002 as the meta
         * group (and asserts unless it is explicit VR), so it is checked
         * the same way. */
        *at = 0;
        if (w->size < 8 || u16(w, 0) != 0x0002)
            return 0;
    }
    /* GDCM reads the meta group explicit VR when it starts with (0002,0000)
     * UL after a preamble (FileMetaInformation::Read); otherwise
     * (ReadCompat) explicit only if the first VR is one it knows
     * (VR::IsValid: the standard's VRs), and else as implicit VR, where
     * its reader asserts on what this walk would accept. */
    {
        const unsigned char *first = w->d + *at;
        char vr[3] = {(char)first[4], (char)first[5], 0};
        int group_length_ul = *at == 132 && u16(w, *at + 2) == 0 && strcmp(vr, "UL") == 0;
        if (!group_length_ul && !is_one_of(vr, KNOWN_VRS))
            return fail(w, *at, "file meta information without a valid VR in its first "
                                "element (GDCM would read it as implicit VR)");
    }
    while (w->size - *at >= 8 && u16(w, *at) == 0x0002) {
        header h;
        if (read_header(w, *at, w->size, 1, &h) != 0)
            return -1;
        if (h.length == UNDEFINED_LENGTH || h.length > w->size - h.value)
            return fail(w, *at, "truncated or corrupt file meta information");
        if (strcmp(h.vr, "SQ") == 0) /* GDCM asserts on a sequence here */
            return fail(w, *at, "a sequence in the file meta information");
        if (h.element == 0x0010) {
            size_t n = h.length < syntax_size - 1 ? h.length : syntax_size - 1;
            memcpy(syntax, w->d + h.value, n);
            while (n > 0 && (syntax[n - 1] == '\0' || syntax[n - 1] == ' '))
                n--;
            syntax[n] = '\0';
        }
        *at = h.value + h.length;
    }
    if (*at == w->size)
        return fail(w, *at, "the file ends after its file meta information");
    return 0;
}

/* A deflated data set: inflate it (raw deflate, as the transfer syntax
 * says; at most `limit` bytes) and walk the result as explicit VR little
 * endian. */
static ich_status check_deflated(const char *path, const unsigned char *data, size_t size,
                                 uint64_t limit)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: cannot start inflating", path);
    /* One byte more than the limit tells "exactly the limit" from "more". */
    size_t cap = limit >= (uint64_t)SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)limit + 1;
    size_t capacity = size < (SIZE_MAX - 4096) / 4 ? size * 4 + 4096 : cap, used = 0;
    if (capacity > cap)
        capacity = cap;
    unsigned char *out = malloc(capacity);
    int rc = Z_OK, too_big = 0;
    z.next_in = (unsigned char *)data;
    while (out && rc == Z_OK) {
        if (used == capacity) {
            if (capacity == cap) {
                too_big = 1;
                break;
            }
            size_t next = capacity < cap / 2 ? capacity * 2 : cap;
            unsigned char *bigger = realloc(out, next);
            if (!bigger)
                break;
            out = bigger;
            capacity = next;
        }
        /* zlib counts in uInt: feed and drain at most 1 GiB at a time. */
        size_t in_left = size - (size_t)(z.next_in - data);
        z.avail_in = (uInt)(in_left < (1u << 30) ? in_left : (1u << 30));
        size_t room = capacity - used;
        z.next_out = out + used;
        z.avail_out = (uInt)(room < (1u << 30) ? room : (1u << 30));
        uInt before = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        used += before - z.avail_out;
        if (rc == Z_BUF_ERROR && z.avail_in == 0)
            break; /* input ended before the stream did */
    }
    inflateEnd(&z);
    ich_status st;
    if (too_big) {
        st = ich_fail(ICH_ERR_UNSUPPORTED,
                      "%s: the deflated data set inflates to more than the limit "
                      "max_decoded_bytes (%llu bytes)",
                      path, (unsigned long long)limit);
    } else if (!out) {
        st = ich_fail(ICH_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes to inflate", path,
                      capacity);
    } else if (rc != Z_STREAM_END) {
        st = ich_fail(ICH_ERR_FORMAT, "%s: deflated data set is truncated or corrupt", path);
    } else {
        walker w = {out, used, 0, 0, "", 0};
        size_t at = 0;
        st = walk_elements(&w, &at, used, 1, 0, 0) == 0
                 ? ICH_OK
                 : ich_fail(ICH_ERR_FORMAT, "%s: %s (byte %zu of the inflated data set)", path,
                            w.why, w.where);
    }
    free(out);
    return st;
}

/* ---- GDCM's "VR16" fallback -------------------------------------------
 * When a transfer syntax says explicit VR but an element has no valid VR
 * (a data set written implicit VR under an explicit VR syntax, as
 * pydicom's SC_rgb_jpeg.dcm), GDCM's reader (gdcmReader.cxx) rereads the
 * data set from that element with VR16ExplicitDataElement: a VR that
 * gdcm_vr() accepts is read as explicit VR, an invalid one as two bytes
 * followed by a 16-bit length. In an implicit data set this reads values as element headers,
 * and a text value can so become a long VR with a 32-bit length, which
 * GDCM allocates (ByteValue::SetLength) before it finds the file too
 * short: gigabytes from a few bytes of text. Only if that reading throws
 * does GDCM fall back to the explicit/implicit reading that
 * walk_elements() checks. The functions below follow the VR16 reading:
 * they return 0 when it ends, 1 where it would throw (harmless: GDCM then
 * falls back), and -1 where it would allocate a 32-bit length past the end
 * of the data, or fail one of that code's assertions. */

#define VR16_STOP 1

static int vr16_elements(walker *w, size_t *at, size_t end, int until_delimiter, int depth);

static int vr16_refuse(walker *w, size_t at, const char *why, uint32_t length)
{
    snprintf(w->why, sizeof w->why, "%s (%u bytes)", why, length);
    w->where = at;
    return -1;
}

/* Items of a sequence: (FFFE,E000) and a 32-bit length each, ended by the
 * sequence's length or (undefined length) by (FFFE,E0DD). */
static int vr16_items(walker *w, size_t *at, size_t end, int defined, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(w, *at, "sequences nested too deeply");
    for (;;) {
        if (defined && *at >= end)
            return 0;
        if (end - *at < 8)
            return VR16_STOP;
        unsigned group = u16(w, *at), element = u16(w, *at + 2);
        uint32_t length = u32(w, *at + 4);
        if (group == 0xFFFE && element == 0xE0DD && !defined) {
            *at += 8;
            return 0;
        }
        if (group != 0xFFFE || element != 0xE000)
            return VR16_STOP;
        *at += 8;
        int rc;
        if (length == UNDEFINED_LENGTH) {
            rc = vr16_elements(w, at, end, 1, depth + 1);
        } else {
            if (length > end - *at)
                return VR16_STOP;
            size_t inner = *at;
            rc = vr16_elements(w, &inner, *at + length, 0, depth + 1);
            *at += length;
        }
        if (rc != 0)
            return rc;
    }
}

/* Fragments of encapsulated pixel data: GDCM allocates each one. */
static int vr16_fragments(walker *w, size_t *at, size_t end)
{
    for (;;) {
        if (end - *at < 8)
            return VR16_STOP;
        unsigned group = u16(w, *at), element = u16(w, *at + 2);
        uint32_t length = u32(w, *at + 4);
        *at += 8;
        if (group == 0xFFFE && element == 0xE0DD)
            return 0;
        if (group != 0xFFFE || element != 0xE000)
            return VR16_STOP;
        if (length > end - *at)
            return vr16_refuse(w, *at - 8, "a pixel data fragment runs past the end", length);
        *at += length;
    }
}

static int vr16_elements(walker *w, size_t *at, size_t end, int until_delimiter, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(w, *at, "sequences nested too deeply");
    while (*at < end) {
        if (end - *at < 8)
            return VR16_STOP;
        size_t start = *at;
        unsigned group = u16(w, start), element = u16(w, start + 2);
        if (group == 0xFFFE) {
            if (element == 0xE00D) { /* item delimiter */
                *at += 8;
                if (until_delimiter)
                    return 0;
                continue;
            }
            /* VR16ExplicitDataElement::Read asserts on (FFFE,E0DD) and
             * (FFFE,0000), and throws or misreads other item tags. */
            return fail(w, start, "an item tag where GDCM's fallback reading expects an element");
        }
        if (group == 0x00FF && element == 0x4AA5) /* asserted on */
            return fail(w, start, "element (00FF,4AA5), on which GDCM's fallback reading asserts");
        char vr[3];
        const int known = gdcm_vr(w->d + start + 4, vr);
        const int pixel_data = group == 0x7FE0 && element == 0x0010;
        uint32_t length;
        int wide; /* a 32-bit length */
        if (known && is_one_of(vr, LONG_VRS)) {
            if (end - start < 12)
                return VR16_STOP;
            length = u32(w, start + 8);
            *at = start + 12;
            wide = 1;
        } else if (!known && pixel_data) {
            /* GDCM's "OX" hack: two bytes it asserts are zero, then a
             * 32-bit length, which it asserts is defined. */
            if (end - start < 12)
                return VR16_STOP;
            length = u32(w, start + 8);
            if (w->d[start + 6] || w->d[start + 7] || length == UNDEFINED_LENGTH)
                return fail(w, start, "pixel data without a VR, on which GDCM's fallback "
                                      "reading asserts");
            *at = start + 12;
            wide = 1;
        } else {
            length = u16(w, start + 6);
            *at = start + 8;
            wide = 0;
        }
        if (group == 0 && element == 0 && length == 0 && !known)
            return VR16_STOP;
        if (length == 0)
            continue;
        if (known && strcmp(vr, "SQ") == 0) {
            int rc;
            if (length == UNDEFINED_LENGTH) {
                rc = vr16_items(w, at, end, 0, depth);
            } else {
                if (length > end - *at)
                    return VR16_STOP;
                size_t inner = *at;
                rc = vr16_items(w, &inner, *at + length, 1, depth);
                *at += length;
            }
            if (rc != 0)
                return rc;
            continue;
        }
        if (length == UNDEFINED_LENGTH) {
            /* UN: a nested implicit VR reading; pixel data: fragments;
             * anything else is asserted on. */
            if (pixel_data && known && is_one_of(vr, "OB OW ")) {
                int rc = vr16_fragments(w, at, end);
                if (rc != 0)
                    return rc;
                continue;
            }
            return fail(w, start, "an undefined length that GDCM's fallback reading cannot take");
        }
        if (length > end - *at) {
            if (!wide)
                return VR16_STOP; /* at most 64 KiB allocated, then GDCM throws */
            return vr16_refuse(w, start,
                               "GDCM's fallback reading of this mislabelled data set would "
                               "allocate an element length read from its values",
                               length);
        }
        *at += length;
    }
    return until_delimiter ? VR16_STOP : 0;
}

ich_status ich_dicom_check_framing(const char *path, const unsigned char *data, size_t size,
                                   uint64_t max_inflated)
{
    walker w = {data, size, 0, 0, "", 0};
    size_t start;
    char syntax[80];
    if (walk_meta(&w, &start, syntax, sizeof syntax) != 0)
        return ich_fail(ICH_ERR_FORMAT, "%s: %s (byte %zu)", path, w.why, w.where);
    if (strcmp(syntax, "1.2.840.10008.1.2.1.99") == 0)
        return check_deflated(path, data + start, size - start, max_inflated);

    int explicit_vr, big_endian = strcmp(syntax, "1.2.840.10008.1.2.2") == 0;
    if (syntax[0]) {
        explicit_vr = strcmp(syntax, "1.2.840.10008.1.2") != 0;
    } else if (start == 0 && size >= 8) {
        /* No meta group: the encoding GDCM's FileMetaInformation::ReadCompat
         * guesses from the first element (tag read little endian; a VR it
         * knows makes it explicit). A fuzz finding: tag (0000,1000) with a
         * VR is explicit *big* endian to GDCM (element > 0xFF). */
        unsigned g = (unsigned)(data[0] | data[1] << 8), e = (unsigned)(data[2] | data[3] << 8);
        int known = is_one_of((const char *)data + 4, KNOWN_VRS);
        uint32_t length = (uint32_t)data[4] | (uint32_t)data[5] << 8 |
                          (uint32_t)data[6] << 16 | (uint32_t)data[7] << 24;
        if (g == 0x0008) {
            explicit_vr = known, big_endian = 0;
        } else if (g == 0x0800) {
            explicit_vr = known, big_endian = 1;
        } else if (e == 0x0010) {
            explicit_vr = known, big_endian = 0;
        } else if (known) {
            explicit_vr = 1, big_endian = g > 0xFF || e > 0xFF;
        } else if (g == 0 && e == 0 && length == 4) {
            explicit_vr = 0, big_endian = 0;
        } else {
            return ich_fail(ICH_ERR_FORMAT,
                            "%s: no file meta information, and the first element says no "
                            "encoding GDCM reads: not DICOM",
                            path);
        }
        if (big_endian && !explicit_vr)
            return ich_fail(ICH_ERR_FORMAT, "%s: implicit VR big endian data set: not DICOM",
                            path);
    } else { /* no transfer syntax: guess from the first element */
        explicit_vr = size - start >= 6 && is_one_of((const char *)data + start + 4, KNOWN_VRS);
        big_endian = size - start >= 2 && data[start] == 0 && data[start + 1] != 0;
    }
    w.big_endian = big_endian;
    /* Some writers label an implicit VR data set explicit, or the reverse;
     * like pydicom and GDCM, believe the first element's bytes. */
    if (syntax[0] && size - start >= 6) {
        char vr[3];
        int first_has_vr = gdcm_vr(data + start + 4, vr);
        /* GDCM reads such a data set with its VR16 fallback first. */
        if (explicit_vr && !big_endian && !first_has_vr) {
            size_t at = start;
            if (vr16_elements(&w, &at, size, 0, 0) < 0)
                return ich_fail(ICH_ERR_FORMAT,
                                "%s: data set written implicit VR under an explicit VR transfer "
                                "syntax: %s (byte %zu)",
                                path, w.why, w.where);
        }
        /* ... and when that throws, reads it explicit where a VR is found and
         * implicit elsewhere: walk it the same way. */
        explicit_vr = first_has_vr ? EXPLICIT_VR : explicit_vr ? MIXED_VR : IMPLICIT_VR;
    }

    size_t at = start;
    if (walk_elements(&w, &at, size, explicit_vr, 0, 0) == 0)
        return ICH_OK;
    return ich_fail(ICH_ERR_FORMAT, "%s: %s (byte %zu)", path, w.why, w.where);
}
