/* PNG writing: stb_image_write encodes in memory, then one atomic write. */
#include <pthread.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "ich/image.h"

#include <zlib.h>

/* stb's own deflate spends most of the preprocessing step's time; zlib at
 * its fastest level is several times quicker for a similar size. */
static unsigned char *zlib_deflate(unsigned char *data, int size, int *out_size, int quality)
{
    (void)quality;
    uLongf bound = compressBound((uLong)size);
    unsigned char *out = malloc(bound);
    if (!out || compress2(out, &bound, data, (uLong)size, Z_BEST_SPEED) != Z_OK) {
        free(out);
        return NULL;
    }
    *out_size = (int)bound;
    return out;
}

#define STBIW_ZLIB_COMPRESS zlib_deflate
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>

/* Choosing among the five row filters for every row costs more than it
 * gains on CT images; Paeth alone compresses them about as well. */
static pthread_once_t filter_once = PTHREAD_ONCE_INIT;
static void use_paeth_filter(void) { stbi_write_force_png_filter = 4; }

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
    pthread_once(&filter_once, use_paeth_filter);
    unsigned char *png = stbi_write_png_to_mem(pixels, width * channels, width, height, channels,
                                               &size);
    if (!png)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: cannot encode PNG: out of memory", path);
    ich_status st = ich_write_file_atomic(path, png, (size_t)size, 0);
    STBIW_FREE(png);
    return st;
}
