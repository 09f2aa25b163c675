/* Internal: finding and opening libich's plugins (libich-<name>.so), the
 * one search every plugin shares: the CUDA backend (backend/plugin.c) and
 * the MPI communicator (dist/comm.c).
 *
 * Where a plugin is looked for, in order: beside libich.so itself (found
 * with dladdr, so an installed or a build-tree libich finds the plugin
 * installed or built with it, whatever the program's own folder), each
 * folder of ICH_PLUGIN_PATH (colon-separated), then the dlopen search path
 * (LD_LIBRARY_PATH, the system's folders). A plugin is opened RTLD_NOW |
 * RTLD_LOCAL and never closed by this code. */
#ifndef ICH_INTERNAL_PLUGINS_H
#define ICH_INTERNAL_PLUGINS_H

#include <stddef.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Asked before a candidate is opened: `path` is the file found in a folder
 * (in_folder 1) or the bare file name the dynamic loader would search for
 * (in_folder 0). Returns 1 to open it; 0 to stop the search, with the
 * reason in `why`. */
typedef int (*ich_plugin_gate_fn)(const char *path, int in_folder, char *why, size_t size);

/* dlopen the first candidate for `file` that exists, in the order above.
 * `gate` (may be NULL: open anything found) is asked first. Returns the
 * handle, or NULL with *status ICH_ERR_NOT_FOUND (nowhere, or not loadable:
 * dlerror() in `error`) or ICH_ERR_UNSUPPORTED (the gate said no: `error`
 * says why). `path` receives the file loaded (or the last one that exists
 * and failed, or `file` itself for the loader's search). Sets no thread
 * error: callers keep `error` and report it with their own context. */
void *ich_plugin_open(const char *file, ich_plugin_gate_fn gate, char *path, size_t path_size,
                      char *error, size_t error_size, ich_status *status);

#ifdef __cplusplus
}
#endif
#endif
