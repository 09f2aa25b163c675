/* Internal: the size protocol of the public structs.
 *
 * Every public struct begins with `size_t size`, which the caller sets to
 * sizeof the struct it was compiled with. Fields are only ever appended, so
 * a program built against an older header passes a shorter struct. One rule
 * for every call, in both directions:
 *  - passed IN (options, a slice to write): the library reads only the
 *    caller's `size` bytes; the fields past them keep their defaults
 *    (ich_options_merge());
 *  - passed OUT (results, views, limits): the library writes only
 *    min(caller's size, its own sizeof) bytes (ich_options_write()).
 * Both refuse a size below the struct's first version (the size of the
 * first header that had the struct, ICH_OPTIONS_V1_SIZE, written beside
 * each struct in its header) and absurdly large ones. */
#ifndef ICH_INTERNAL_OPTIONS_H
#define ICH_INTERNAL_OPTIONS_H

#include <stddef.h>

#include "ich/core.h"

/* The size of a struct's first version: up to and including its last field
 * then. Stays fixed when fields are appended later. */
#define ICH_OPTIONS_V1_SIZE(type, last_field) \
    (offsetof(type, last_field) + sizeof(((type *)0)->last_field))

/* Copy `in` over the defaults already in `out` (out_size bytes), as far as
 * in->size reaches, and set out's size to out_size. NULL `in` keeps the
 * defaults. in->size below `minimum` (ICH_OPTIONS_V1_SIZE) or absurdly large
 * gives ICH_ERR_INVALID_ARGUMENT naming `function`. */
ich_status ich_options_merge(void *out, size_t out_size, const void *in, size_t minimum,
                             const char *function);

/* Write `value` (a whole struct of this library's version, value_size
 * bytes) into the caller's struct `out`, as far as out->size reaches, and
 * set out->size to the bytes written (min(out->size, value_size): a newer
 * caller learns which fields were filled, an older one keeps its size).
 * Nothing is written, and ICH_ERR_INVALID_ARGUMENT names `function`, when
 * out is NULL or out->size is below `minimum` (ICH_OPTIONS_V1_SIZE) or
 * absurdly large. */
ich_status ich_options_write(void *out, const void *value, size_t value_size, size_t minimum,
                             const char *function);

/* What the _init functions do: write `value` (the defaults, value_size
 * bytes) into the caller's struct `out` as far as out->size reaches, which
 * the header's macro set to the caller's sizeof (ICH_SIZED in <ich/core.h>).
 * A size that is not valid (below `minimum` or absurdly large: a caller
 * that bypassed the macro) is taken as the library's own sizeof, as before
 * structs had grown. out->size becomes the bytes written. */
void ich_options_init_write(void *out, const void *value, size_t value_size, size_t minimum);

/* The bytes the caller's struct `s` may hold: 0 when s is NULL or s->size
 * is below `minimum` or absurdly large (and then ICH_ERR_INVALID_ARGUMENT is
 * recorded naming `function`), else min(s->size, own_size). For callers
 * that check the size before they compute what ich_options_write() then
 * writes. */
size_t ich_options_size(const void *s, size_t own_size, size_t minimum, const char *function);

#endif
