/* The compressed-frame pre-checks of libich/dicom/codestream.c, on streams
 * built byte by byte: each walk is tried with a segment or box that ends
 * exactly at the end of the buffer (accepted) and one byte past it
 * (refused), since GDCM's own walk of JPEG 2000 markers and JP2 boxes
 * follows such lengths out of the buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dicom/codestream.h"

typedef struct {
    unsigned char d[512];
    size_t n;
} stream;

static void put(stream *s, const void *bytes, size_t n)
{
    assert_true(s->n + n <= sizeof s->d);
    memcpy(s->d + s->n, bytes, n);
    s->n += n;
}

static void put16(stream *s, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(s, b, 2);
}

static void put32(stream *s, uint32_t v)
{
    put16(s, v >> 16);
    put16(s, v & 0xFFFF);
}

/* SOC, then SIZ for a `side` x `side` image of one 16-bit component. */
static void j2k_main_header(stream *s, unsigned side)
{
    put16(s, 0xFF4F);
    put16(s, 0xFF51);
    put16(s, 41);
    put16(s, 0);               /* Rsiz */
    put32(s, side);            /* Xsiz */
    put32(s, side);            /* Ysiz */
    put32(s, 0);               /* XOsiz */
    put32(s, 0);               /* YOsiz */
    put32(s, side);            /* XTsiz */
    put32(s, side);            /* YTsiz */
    put32(s, 0);               /* XTOsiz */
    put32(s, 0);               /* YTOsiz */
    put16(s, 1);               /* Csiz */
    unsigned char comp[3] = {15, 1, 1};
    put(s, comp, 3);
}

static const ich_frame_shape shape64 = {64, 64, 1, 16};

static int j2k_ok(const stream *s)
{
    return ich_check_codestream("f.dcm", s->d, s->n, &shape64, ICH_CODEC_JPEG2000) == ICH_OK;
}

/* A COM segment of `length` (its own 2 bytes included) as the last thing
 * in the buffer, after `body` bytes of content. */
static void test_j2k_segment_to_the_end(void **state)
{
    (void)state;
    for (unsigned past = 0; past <= 1; past++) {
        stream s = {.n = 0};
        j2k_main_header(&s, 64);
        put16(&s, 0xFF64);
        put16(&s, 2 + 20 + past);
        unsigned char body[20] = {0};
        put(&s, body, sizeof body);
        if (past) {
            assert_false(j2k_ok(&s));
            assert_non_null(strstr(ich_last_error(), "f.dcm: corrupt JPEG 2000 stream: the "
                                                     "marker segment at byte 45"));
        } else {
            assert_true(j2k_ok(&s));
        }
    }
}

/* GDCM's walk reads a COD segment's bytes 4 and 9 whatever its length. */
static void test_j2k_short_cod(void **state)
{
    (void)state;
    for (unsigned bytes = 9; bytes <= 10; bytes++) {
        stream s = {.n = 0};
        j2k_main_header(&s, 64);
        put16(&s, 0xFF52);
        put16(&s, 2); /* a length that claims nothing */
        unsigned char body[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        put(&s, body, bytes);
        assert_int_equal(j2k_ok(&s), bytes == 10);
    }
}

/* The walk stops at SOD: what follows is entropy-coded data, never read
 * as markers; and at a length below 2. */
static void test_j2k_walk_stops(void **state)
{
    (void)state;
    stream s = {.n = 0};
    j2k_main_header(&s, 64);
    put16(&s, 0xFF90); /* SOT */
    put16(&s, 10);
    unsigned char sot[8] = {0};
    put(&s, sot, sizeof sot);
    put16(&s, 0xFF93);
    put16(&s, 0x1234);
    put16(&s, 0xFFFF); /* would be a segment past the end if walked */
    assert_true(j2k_ok(&s));
    s.d[s.n - 6] = 0x12; /* SOD no more: the walk reads 0x1293 0x1234... */
    assert_false(j2k_ok(&s));
    stream t = {.n = 0};
    j2k_main_header(&t, 64);
    put16(&t, 0xFF64);
    put16(&t, 1);      /* below 2: GDCM stops */
    put16(&t, 0xFFFF); /* never read */
    assert_true(j2k_ok(&t));
}

/* The SIZ check still runs after the walk. */
static void test_j2k_size_mismatch(void **state)
{
    (void)state;
    stream s = {.n = 0};
    j2k_main_header(&s, 32);
    assert_false(j2k_ok(&s));
    assert_non_null(strstr(ich_last_error(), "32 x 32"));
    stream tiny = {.n = 0};
    put16(&tiny, 0xFF4F);
    assert_false(j2k_ok(&tiny));
}

/* A JP2 file: signature, ftyp, then jp2c holding the codestream. */
static void jp2_start(stream *s)
{
    static const unsigned char signature[12] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A,
                                                0x87, 0x0A};
    put(s, signature, sizeof signature);
    put32(s, 20);
    put(s, "ftypjp2 ", 8);
    put32(s, 0);
    put(s, "jp2 ", 4);
}

static void test_jp2_boxes(void **state)
{
    (void)state;
    stream code = {.n = 0};
    j2k_main_header(&code, 64);
    for (unsigned past = 0; past <= 1; past++) {
        stream s = {.n = 0};
        jp2_start(&s);
        put32(&s, (uint32_t)(8 + code.n + past));
        put(&s, "jp2c", 4);
        put(&s, code.d, code.n);
        assert_int_equal(j2k_ok(&s), !past);
        if (past)
            assert_non_null(strstr(ich_last_error(), "JP2 box at byte 32"));
    }
    /* jp2c of length 0: to the end of the buffer */
    stream zero = {.n = 0};
    jp2_start(&zero);
    put32(&zero, 0);
    put(&zero, "jp2c", 4);
    put(&zero, code.d, code.n);
    assert_true(j2k_ok(&zero));
    /* a box skipped past the end, and a 64-bit length cut short */
    stream skip = {.n = 0};
    jp2_start(&skip);
    put32(&skip, 1000);
    put(&skip, "xml ", 4);
    assert_false(ich_check_j2k_walk("f.dcm", skip.d, skip.n) == ICH_OK);
    stream wide = {.n = 0};
    jp2_start(&wide);
    put32(&wide, 1);
    put(&wide, "xml ", 4);
    put32(&wide, 0);
    assert_false(ich_check_j2k_walk("f.dcm", wide.d, wide.n) == ICH_OK);
    /* a box header the walk would read past the end: GDCM's count of what
     * is left ignores the boxes it skipped */
    stream tail = {.n = 0};
    jp2_start(&tail);
    put32(&tail, 12);
    put(&tail, "xml ", 4);
    put32(&tail, 0);
    put32(&tail, 0); /* 4 bytes of a next box header */
    assert_false(ich_check_j2k_walk("f.dcm", tail.d, tail.n) == ICH_OK);
}

/* The other codecs' checks are reached by their kind, not by a guess from
 * the first bytes: a JPEG 2000 fragment that starts with garbage is still
 * walked. */
static void test_codec_dispatch(void **state)
{
    (void)state;
    stream s = {.n = 0};
    put16(&s, 0x0001);
    put16(&s, 0x7FFF); /* "marker" 0x0001 with a length past the end */
    unsigned char pad[16] = {0};
    put(&s, pad, sizeof pad);
    assert_false(ich_check_codestream("f.dcm", s.d, s.n, &shape64, ICH_CODEC_JPEG2000) == ICH_OK);
    assert_true(ich_check_codestream("f.dcm", s.d, s.n, &shape64, ICH_CODEC_OTHER) == ICH_OK);
    stream rle = {.n = 0};
    put(&rle, pad, sizeof pad);
    assert_false(ich_check_codestream("f.dcm", rle.d, rle.n, &shape64, ICH_CODEC_RLE) == ICH_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_j2k_segment_to_the_end),
        cmocka_unit_test(test_j2k_short_cod),
        cmocka_unit_test(test_j2k_walk_stops),
        cmocka_unit_test(test_j2k_size_mismatch),
        cmocka_unit_test(test_jp2_boxes),
        cmocka_unit_test(test_codec_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
