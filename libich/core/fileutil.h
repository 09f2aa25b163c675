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
 * On failure nothing is left behind and the last error names `path`. */
ich_status ich_write_file_atomic(const char *path, const void *data, size_t size, int durable);

#ifdef __cplusplus
}
#endif
#endif
