/*
 * libich files: image IDs as file names, and finding the files of a folder.
 *
 * Two rules that every libich call follows, for programs that handle files
 * themselves:
 *
 * - An image ID from a label CSV becomes the file <folder>/<id><extension>
 *   only when it stays inside the folder: ich_image_path() refuses an empty
 *   ID, an absolute one ("/etc/passwd"), one with a "." or ".." component
 *   or an empty one ("a//b", "a/"), control characters, more than
 *   ICH_ID_MAX bytes, or a file name (last component with the extension)
 *   longer than 255 bytes. IDs may hold folders ("P1/scan1/IM4"). The
 *   dataset, ich_labels_select_files(), ich_labels_groups_from_dicom(),
 *   ich_labels_propagate() and ich_augment_offline() all use this rule.
 *
 * - ich_files_walk() visits every regular file under a folder once:
 *   symbolic links to files and folders are followed, but a folder or file
 *   reached a second time (a link to "." or to a parent, two links to one
 *   file, hard links) is not visited again, so a walk always ends; FIFOs,
 *   devices and sockets are never opened (reading a FIFO blocks) but
 *   reported to the caller and counted as skipped.
 *
 * Both are safe to call from several threads at once.
 */
#ifndef ICH_FILES_H
#define ICH_FILES_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest image ID accepted, in bytes. */
#define ICH_ID_MAX 1024

/** The file of image `id` in `folder`: "<folder>/<id><extension>" in new
 *  memory (free it with ich_free()), after checking that the ID names a
 *  file inside the folder (see the introduction). `extension` may be NULL
 *  or "" (none) and must not hold a '/'. Errors: ICH_ERR_INVALID_ARGUMENT
 *  (NULL folder, id or path; an extension with '/'), ICH_ERR_FORMAT (the
 *  ID is refused; the message names it and says why), ICH_ERR_NO_MEMORY.
 *  *path is NULL on failure. */
ICH_API ich_status ich_image_path(const char *folder, const char *id, const char *extension,
                                  char **path);

/** Called by ich_files_walk() for each regular file, and for each entry
 *  it does not visit: `path` is "<folder>/<relative>", `relative` the path
 *  below the folder (through the names of any symbolic links followed).
 *  `skipped` is NULL for a regular file; otherwise it says why the entry
 *  is not visited ("a FIFO, not a regular file", "broken symbolic link",
 *  "symbolic link loop", "Permission denied", ...), for the caller to
 *  report: the walk itself does not log. The strings are valid during the
 *  call only. Return 0 to go on, non-zero to stop the walk. */
typedef int (*ich_file_fn)(void *user, const char *path, const char *relative,
                           const char *skipped);

/** ich_files_walk() flag: also visit names beginning with '.' (by
 *  default hidden files and folders are left out). */
#define ICH_WALK_HIDDEN 1u

/** Call `fn` once for every regular file under `folder`, recursively.
 *  Each folder's entries come in name order; what is reached only through
 *  a symbolic link comes after the rest, so a file is named by its real
 *  path when the walk sees one. Every real file and folder is visited
 *  once (compared by device and inode). Not visited, but given to `fn`
 *  with the reason and counted in *skipped (may be NULL): FIFOs,
 *  character and block devices, sockets (never opened), broken or looping
 *  symbolic links, folders that cannot be read and folders nested more
 *  than 64 deep. Errors: ICH_ERR_INVALID_ARGUMENT (NULL folder or fn),
 *  ICH_ERR_CANCELLED (fn returned non-zero to stop the walk), ICH_ERR_IO
 *  (`folder` cannot be read or is not a folder), ICH_ERR_NO_MEMORY. */
ICH_API ich_status ich_files_walk(const char *folder, uint32_t flags, ich_file_fn fn,
                                  void *user, int64_t *skipped);

#ifdef __cplusplus
}
#endif
#endif /* ICH_FILES_H */
