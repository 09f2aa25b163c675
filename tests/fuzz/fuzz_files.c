/* libFuzzer target for the text and image files libich reads besides DICOM:
 * the first input byte picks label CSV (ich_labels_read, then writing the
 * table back) or PNG (ich_png_read); the rest is the file. The bytes go to
 * a memory file so the real file-reading code runs. Build and run it with
 * scripts/fuzz.sh files. Any crash, sanitizer report or leak is a finding. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ich/ich.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_labels(const char *path)
{
    ich_labels *labels = NULL;
    if (ich_labels_read(path, &labels) != ICH_OK)
        return;
    int64_t mismatches = 0;
    ich_labels_check_any(labels, 1, &mismatches);
    ich_labels_write(labels, "/dev/null/not-a-folder/x.csv"); /* fails: exercises clean-up */
    ich_labels_free(labels);
}

static void read_png(const char *path)
{
    uint8_t *pixels = NULL;
    int32_t width = 0, height = 0, channels = 0;
    if (ich_png_read(path, &pixels, &width, &height, &channels) == ICH_OK)
        ich_free(pixels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data + 1, size - 1) == (ssize_t)(size - 1)) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (data[0] & 1)
            read_png(path);
        else
            read_labels(path);
    }
    close(fd);
    return 0;
}
