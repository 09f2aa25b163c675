/* PNG reading: the file's chunk structure and CRCs are checked first, then
 * stb_image decodes it from memory. */
#include <errno.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ich/image.h"

/* Only the PNG decoder, only from memory, and every stb function static, so
 * that nothing but ich_* leaves the library. The writer's limit. */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS 65535
/* stb declares API functions that this file never uses (static, so they
 * warn at the end of the file; no push/pop for that reason). */
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb_image.h>

/* stb takes the length as an int: larger files are refused before reading
 * (no image libich writes comes near 2 GiB). */
#define PNG_MAX_FILE_BYTES ((size_t)INT32_MAX)

static const unsigned char png_signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};

static uint32_t load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The whole file in new memory. */
static ich_status read_whole_file(const char *path, unsigned char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ich_fail(ICH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ich_status st = ICH_OK;
    long length = -1;
    if (fseek(f, 0, SEEK_END) != 0 || (length = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        st = ich_fail(ICH_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    else if ((size_t)length > PNG_MAX_FILE_BYTES)
        st = ich_fail(ICH_ERR_FORMAT, "%s: %ld bytes: too large for a PNG libich reads", path,
                      length);
    unsigned char *buffer = NULL;
    if (st == ICH_OK && !(buffer = malloc(length > 0 ? (size_t)length : 1)))
        st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for %ld bytes", path, length);
    if (st == ICH_OK && length > 0 && fread(buffer, 1, (size_t)length, f) != (size_t)length)
        st = ich_fail(ICH_ERR_IO, "%s: cannot read: %s", path,
                      ferror(f) ? strerror(errno) : "file shrank while reading");
    fclose(f);
    if (st != ICH_OK) {
        free(buffer);
        return st;
    }
    *data = buffer;
    *size = (size_t)length;
    return ICH_OK;
}

/* stb_image does not check chunk CRCs, so a damaged byte can decode into a
 * wrong picture silently. Walk the chunks and check each CRC and that the
 * file ends with IEND: every truncation and every damaged byte is then a
 * format error that names the file. */
static ich_status check_chunks(const char *path, const unsigned char *data, size_t size)
{
    if (size < sizeof png_signature || memcmp(data, png_signature, sizeof png_signature) != 0)
        return ich_fail(ICH_ERR_FORMAT, "%s: not a PNG file (no PNG signature)", path);
    size_t at = sizeof png_signature;
    for (;;) {
        if (size - at < 12)
            return ich_fail(ICH_ERR_FORMAT, "%s: truncated PNG: chunk header cut at byte %zu",
                            path, at);
        uint32_t length = load_be32(data + at);
        const unsigned char *type = data + at + 4;
        if (length > 0x7fffffffu || length > size - at - 12)
            return ich_fail(ICH_ERR_FORMAT,
                            "%s: truncated or corrupt PNG: chunk at byte %zu claims %u bytes, "
                            "%zu remain",
                            path, at, (unsigned)length, size - at - 12);
        uint32_t stored = load_be32(data + at + 8 + length);
        uint32_t actual = libdeflate_crc32(0, type, (size_t)length + 4);
        if (stored != actual)
            return ich_fail(ICH_ERR_FORMAT, "%s: corrupt PNG: CRC mismatch in the chunk at byte %zu",
                            path, at);
        at += 12 + (size_t)length;
        if (memcmp(type, "IEND", 4) == 0)
            return ICH_OK;
    }
}

ich_status ich_png_read(const char *path, uint8_t **pixels, int32_t *width, int32_t *height,
                        int32_t *channels)
{
    if (pixels)
        *pixels = NULL;
    if (!path || !pixels || !width || !height || !channels)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_png_read: NULL argument");
    unsigned char *data = NULL;
    size_t size = 0;
    ich_status st = read_whole_file(path, &data, &size);
    if (st != ICH_OK)
        return st;
    st = check_chunks(path, data, size);
    if (st != ICH_OK) {
        free(data);
        return st;
    }
    int w = 0, h = 0, c = 0;
    stbi_uc *decoded = stbi_load_from_memory(data, (int)size, &w, &h, &c, 0);
    free(data);
    if (!decoded) {
        const char *why = stbi_failure_reason();
        if (why && strcmp(why, "outofmem") == 0)
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory decoding the PNG", path);
        return ich_fail(ICH_ERR_FORMAT, "%s: cannot decode the PNG: %s", path,
                        why ? why : "unknown error");
    }
    /* Hand out memory that ich_free() (free()) releases: stb uses malloc. */
    *pixels = decoded;
    *width = w;
    *height = h;
    *channels = c;
    return ICH_OK;
}
