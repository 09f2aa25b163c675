/* Atomic whole-file writes: temporary file, optional fsync, rename. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileutil.h"

static int write_all(int fd, const unsigned char *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

ich_status ich_write_file_atomic(const char *path, const void *data, size_t size, int durable)
{
    if (!path || (!data && size > 0))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_write_file_atomic: NULL argument");
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp-XXXXXX", 12);

    int fd = mkstemp(tmp);
    if (fd < 0) {
        ich_status st = ich_fail(ICH_ERR_IO, "%s: cannot create file: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    const char *step = NULL;
    if (fchmod(fd, 0644) != 0)
        step = "cannot set permissions";
    else if (write_all(fd, data, size) != 0)
        step = "cannot write";
    else if (durable && fsync(fd) != 0)
        step = "cannot sync";
    int saved_errno = errno;
    if (close(fd) != 0 && !step) {
        step = "cannot close";
        saved_errno = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "cannot rename temporary file into place";
        saved_errno = errno;
    }
    if (step) {
        unlink(tmp);
        free(tmp);
        return ich_fail(ICH_ERR_IO, "%s: %s: %s", path, step, strerror(saved_errno));
    }
    free(tmp);
    if (durable)
        sync_parent_dir(path);
    return ICH_OK;
}

ich_status ich_make_dirs(const char *path)
{
    if (!path || !*path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "empty folder name");
    char *copy = strdup(path);
    if (!copy)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        struct stat st;
        if (mkdir(copy, 0777) != 0 && errno != EEXIST) {
            int err = errno;
            free(copy);
            return ich_fail(ICH_ERR_IO, "%s: cannot create folder: %s", path, strerror(err));
        }
        if (saved == '\0') {
            int is_dir = stat(copy, &st) == 0 && S_ISDIR(st.st_mode);
            free(copy);
            return is_dir ? ICH_OK
                          : ich_fail(ICH_ERR_IO, "%s: exists and is not a folder", path);
        }
        *p = saved;
    }
}

ich_status ich_make_parent_dirs(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (!slash || slash == path)
        return ICH_OK;
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    ich_status status = ich_make_dirs(dir);
    free(dir);
    return status;
}

char *ich_path_join(const char *dir, const char *name)
{
    if (!dir || !*dir)
        return strdup(name);
    size_t a = strlen(dir), b = strlen(name);
    char *out = malloc(a + b + 2);
    if (!out)
        return NULL;
    memcpy(out, dir, a);
    size_t at = a;
    if (dir[a - 1] != '/')
        out[at++] = '/';
    memcpy(out + at, name, b + 1);
    return out;
}

void ich_buf_append(ich_buf *buf, const char *text, size_t length)
{
    if (buf->failed)
        return;
    if (buf->length + length + 1 > buf->capacity) {
        size_t capacity = buf->capacity ? buf->capacity : 4096;
        while (capacity < buf->length + length + 1)
            capacity *= 2;
        char *data = realloc(buf->data, capacity);
        if (!data) {
            buf->failed = 1;
            return;
        }
        buf->data = data;
        buf->capacity = capacity;
    }
    memcpy(buf->data + buf->length, text, length);
    buf->length += length;
    buf->data[buf->length] = '\0';
}

void ich_buf_printf(ich_buf *buf, const char *fmt, ...)
{
    char small[512];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(small, sizeof small, fmt, args);
    va_end(args);
    if (n < 0) {
        buf->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        ich_buf_append(buf, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        buf->failed = 1;
        return;
    }
    va_start(args, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, args);
    va_end(args);
    ich_buf_append(buf, big, (size_t)n);
    free(big);
}

void ich_buf_free(ich_buf *buf)
{
    free(buf->data);
    *buf = (ich_buf){0};
}
