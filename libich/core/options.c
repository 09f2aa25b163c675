/* Reading the caller's options structs (see options.h). */
#include <string.h>

#include "core/error.h"
#include "core/options.h"

ich_status ich_options_merge(void *out, size_t out_size, const void *in, size_t minimum,
                             const char *function)
{
    if (!in)
        return ICH_OK;
    size_t size;
    memcpy(&size, in, sizeof size);
    if (size < minimum || size > (1u << 20))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: options->size is %zu, expected sizeof the options struct (%zu); "
                        "fill the struct with its _init() function",
                        function, size, out_size);
    memcpy(out, in, size < out_size ? size : out_size);
    memcpy(out, &out_size, sizeof out_size);
    return ICH_OK;
}
