/* PNG writing: stb_image_write encodes in memory, then one atomic write. */
#include <stdlib.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "ich/image.h"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

ich_status ich_png_write(const char *path, const uint8_t *pixels, int32_t width, int32_t height,
                         int32_t channels)
{
    if (!path || !pixels)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_png_write: NULL %s", path ? "pixels" : "path");
    if (width <= 0 || height <= 0 || width > 65535 || height > 65535 || channels < 1 ||
        channels > 4)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: cannot write a %d x %d PNG with %d channels (1..65535, 1..4)", path,
                        width, height, channels);
    int size = 0;
    unsigned char *png = stbi_write_png_to_mem(pixels, width * channels, width, height, channels,
                                               &size);
    if (!png)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: cannot encode PNG: out of memory", path);
    ich_status st = ich_write_file_atomic(path, png, (size_t)size, 0);
    STBIW_FREE(png);
    return st;
}
