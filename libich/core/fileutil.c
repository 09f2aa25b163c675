/* Atomic whole-file writes: temporary file, optional fsync, rename. */
#include <errno.h>
#include <fcntl.h>
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
