/* Internal: UTF-8, checked the one strict way every module uses (the JSON
 * writer and parser, the SVG plots, the safetensors writer): overlong forms,
 * UTF-16 surrogates and code points above U+10FFFF are invalid. */
#ifndef ICH_INTERNAL_UTF8_H
#define ICH_INTERNAL_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes (1..4) of the valid UTF-8 sequence that starts at `s`, reading at
 * most `n` bytes; 0 when the bytes there are not valid UTF-8 or n is 0. A
 * NUL byte is a one-byte sequence: callers on C strings stop before it. */
size_t ich_utf8_sequence(const char *s, size_t n);

/* 1 when the C string `text` is valid UTF-8 throughout, else 0. */
int ich_utf8_valid(const char *text);

/* Write code point `cp` (at most U+10FFFF, not a surrogate) as UTF-8 to
 * `out` (room for 4 bytes); returns the bytes written. */
size_t ich_utf8_encode(uint32_t cp, char *out);

#ifdef __cplusplus
}
#endif
#endif
