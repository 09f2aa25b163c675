/* Internal: the DICOM files of a folder, as every folder step finds them
 * (ich_preprocess_folder(), ich_predict_files(); <ich/pipeline.h>). */
#ifndef ICH_INTERNAL_DICOM_FILES_H
#define ICH_INTERNAL_DICOM_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "ich/core.h"

/* One file found: its path ("<folder>/<relative>") and its path below the
 * folder walked. */
typedef struct ich_found_file {
    char *path;
    char *relative;
} ich_found_file;

typedef struct ich_found_files {
    ich_found_file *items;
    size_t count, capacity;
} ich_found_files;

/* Called for each entry the walk did not open (a FIFO, a device, a broken
 * or looping link...), after it was logged; non-zero stops the walk. */
typedef int (*ich_found_skip_fn)(void *user, const char *path, const char *reason);

/* 1 when the file `path` (whose last component is `name`) is a DICOM file
 * by its name (*.dcm, *.dicom, any case) or by the "DICM" marker after the
 * 128-byte preamble. Opens only regular files. */
int ich_looks_like_dicom(const char *path, const char *name);

/* Append to `list` every DICOM file under `folder` (ich_walk(): each real
 * file once, no link loops, hidden names left out), sorted by path among
 * those this call adds. Each entry the walk skips is logged at
 * ICH_LOG_WARNING ("skipped PATH: REASON"), counted in *skipped (may be
 * NULL) and given to `skip` (may be NULL). Errors: those of ich_walk()
 * ("cancelled" when skip stopped it), ICH_ERR_NO_MEMORY. */
ich_status ich_find_dicom_files(const char *folder, ich_found_files *list,
                                ich_found_skip_fn skip, void *user, int64_t *skipped);

/* Append one file as it is (relative: its last component). */
ich_status ich_found_files_add(ich_found_files *list, const char *path, const char *relative);

void ich_found_files_free(ich_found_files *list);

#endif
