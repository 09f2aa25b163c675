/* Internal: image IDs as file names inside a folder, and walking folders.
 *
 * The one rule for turning an image ID (from a label CSV) into a file name
 * is here: every place that builds <folder>/<id><suffix> goes through
 * ich_id_path(), and every place that walks a folder tree goes through
 * ich_walk(). The public faces are ich_image_path() and ich_files_walk()
 * (<ich/files.h>). */
#ifndef ICH_INTERNAL_PATHS_H
#define ICH_INTERNAL_PATHS_H

#include <stdint.h>
#include <sys/stat.h>

#include "ich/files.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Why `id` followed by `suffix` cannot name a file inside a folder (a
 * static phrase such as "it holds a \"..\" component"), or NULL when it
 * can. With `one_name`, a '/' is refused too (the ID must be a single
 * name, not a path below the folder). */
const char *ich_id_problem(const char *id, const char *suffix, int one_name);

/* "<dir>/<id><suffix>" in new memory (free() it) after ich_id_problem()
 * accepted the ID. Refused: ICH_ERR_FORMAT, "ID \"<id>\" cannot name a file
 * inside <dir>: <why>" (control characters shown escaped); out of memory:
 * ICH_ERR_NO_MEMORY. *out is NULL on failure. */
ich_status ich_id_path(const char *dir, const char *id, const char *suffix, int one_name,
                       char **out);

/* ich_id_path() for a file about to be read: also refused (ICH_ERR_IO,
 * naming the path) when the path exists but is a FIFO, device or socket,
 * which a reader must never open (a FIFO blocks it). A missing file is
 * left to the reader to report. */
ich_status ich_id_input_path(const char *dir, const char *id, const char *suffix, char **out);

/* `id` for a message: at most ~100 characters, control characters as \xNN. */
void ich_id_printable(const char *id, char *out, size_t size);

/* How ich_walk() walks. */
typedef struct ich_walk_config {
    int hidden;                  /* also names beginning with '.' */
    const struct stat *skip_dir; /* a folder not to enter (NULL: none) */
} ich_walk_config;

/* ich_files_walk() with the internal extras of `config` (NULL: the
 * defaults). */
ich_status ich_walk(const char *folder, const ich_walk_config *config, ich_file_fn fn, void *user,
                    int64_t *skipped);

/* 1 when `path` (after symbolic links) is a regular file. Never opens it. */
int ich_is_regular_file(const char *path);

#ifdef __cplusplus
}
#endif
#endif
