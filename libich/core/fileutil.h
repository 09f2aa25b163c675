/* Internal: writing whole files so that readers never see half of one. */
#ifndef ICH_INTERNAL_FILEUTIL_H
#define ICH_INTERNAL_FILEUTIL_H

#include <stddef.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write `size` bytes to a temporary file beside `path`, then rename it to
 * `path`: the target either keeps its old content or gets all of the new.
 * With `durable`, the data are fsynced before the rename (and the folder
 * after it), so the file also survives a power loss; that costs a disk
 * flush per file, so bulk image outputs skip it and checkpoints use it.
 * On failure nothing is left behind and the last error names `path`.
 * The temporary file is "<path>.tmp-ich" (a name too long for that suffix
 * is shortened to 200 bytes and a hash, so any name up to NAME_MAX works),
 * locked by its writer; one left by a killed writer is taken over and
 * renamed into place by the next write of the same file (fileutil.c). */
ich_status ich_write_file_atomic(const char *path, const void *data, size_t size, int durable);

/* mkdir -p: create the folder `path` and any missing parents (mode 0777
 * before umask). ICH_ERR_IO naming the folder on failure. */
ich_status ich_make_dirs(const char *path);

/* Create the folders that will hold the file `path` (everything before its
 * last '/'); nothing to do for a bare file name. */
ich_status ich_make_parent_dirs(const char *path);

/* "dir/name" in new memory (free() it); NULL when out of memory. An empty
 * or NULL dir gives a copy of name. */
char *ich_path_join(const char *dir, const char *name);

/* Growable text buffer for writing CSV, JSON and the like in memory before
 * one atomic write. */
typedef struct ich_buf {
    char *data; /* NUL-terminated once anything was appended */
    size_t length;
    size_t capacity;
    int failed; /* an allocation failed: the content is incomplete */
} ich_buf;

void ich_buf_append(ich_buf *buf, const char *text, size_t length);
void ich_buf_printf(ich_buf *buf, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void ich_buf_free(ich_buf *buf);

#ifdef __cplusplus
}
#endif
#endif
