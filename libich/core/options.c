/* The size protocol of the public structs (see options.h). */
#include <string.h>

#include "core/error.h"
#include "core/options.h"

/* Larger than any public struct will ever be: a size beyond it is an
 * uninitialised field, not a newer header. */
#define MAX_STRUCT_SIZE ((size_t)1 << 20)

static size_t size_of(const void *s)
{
    size_t size;
    memcpy(&size, s, sizeof size); /* the caller's struct may be unaligned in a byte buffer */
    return size;
}

ich_status ich_options_merge(void *out, size_t out_size, const void *in, size_t minimum,
                             const char *function)
{
    if (!in)
        return ICH_OK;
    size_t size = size_of(in);
    if (size < minimum || size > MAX_STRUCT_SIZE)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: options->size is %zu, expected sizeof the options struct (%zu, "
                        "at least %zu); fill the struct with its _init() function",
                        function, size, out_size, minimum);
    memcpy(out, in, size < out_size ? size : out_size);
    memcpy(out, &out_size, sizeof out_size);
    return ICH_OK;
}

size_t ich_options_size(const void *s, size_t own_size, size_t minimum, const char *function)
{
    if (!s) {
        ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL struct", function);
        return 0;
    }
    size_t size = size_of(s);
    if (size < minimum || size > MAX_STRUCT_SIZE) {
        ich_fail(ICH_ERR_INVALID_ARGUMENT,
                 "%s: size is %zu, expected sizeof the struct (%zu, at least %zu); set it "
                 "before the call",
                 function, size, own_size, minimum);
        return 0;
    }
    return size < own_size ? size : own_size;
}

ich_status ich_options_write(void *out, const void *value, size_t value_size, size_t minimum,
                             const char *function)
{
    size_t n = ich_options_size(out, value_size, minimum, function);
    if (!n)
        return ICH_ERR_INVALID_ARGUMENT;
    memcpy(out, value, n);
    memcpy(out, &n, sizeof n);
    return ICH_OK;
}

void ich_options_init_write(void *out, const void *value, size_t value_size, size_t minimum)
{
    size_t size = size_of(out);
    size_t n = size >= minimum && size < value_size ? size : value_size;
    memcpy(out, value, n);
    memcpy(out, &n, sizeof n);
}
