/* Internal: reading the caller's options structs.
 *
 * Every public options struct begins with `size_t size`, which the caller
 * sets to sizeof the struct it was compiled with. Fields are only ever
 * appended, so a program built against an older header passes a shorter
 * struct: its fields are read, the newer ones keep their defaults. */
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

#endif
