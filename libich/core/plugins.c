/* Finding and opening libich's plugins: see core/plugins.h. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/plugins.h"

/* Where the library holding this function lives ("" when unknown). */
static void own_folder(char *folder, size_t size)
{
    Dl_info info;
    folder[0] = '\0';
    if (!dladdr((void *)own_folder, &info) || !info.dli_fname)
        return;
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash)
        snprintf(folder, size, "%.*s", (int)(slash - info.dli_fname), info.dli_fname);
}

/* Not in any folder: the dynamic loader's own search, when the gate lets it. */
static void *open_from_loader(const char *file, ich_plugin_gate_fn gate, const char *folder,
                              const char *search, char *path, size_t size, char *error,
                              size_t error_size)
{
    char why[512];
    snprintf(path, size, "%s", file);
    if (gate && !gate(file, 0, why, sizeof why)) {
        snprintf(error, error_size, "%s not found beside libich (%s) or in ICH_PLUGIN_PATH "
                 "(%s); the library search path was not tried: %s",
                 file, folder[0] ? folder : "?", search && *search ? search : "unset", why);
        return NULL;
    }
    void *handle = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!handle)
        snprintf(error, error_size, "%s not found beside libich (%s), in ICH_PLUGIN_PATH (%s) "
                 "or on the library search path",
                 file, folder[0] ? folder : "?", search && *search ? search : "unset");
    return handle;
}

void *ich_plugin_open(const char *file, ich_plugin_gate_fn gate, char *path, size_t size,
                      char *error, size_t error_size, ich_status *status)
{
    char folder[4096];
    own_folder(folder, sizeof folder);
    const char *search = getenv("ICH_PLUGIN_PATH");
    size_t length = strlen(folder) + 2 + (search ? strlen(search) : 0);
    *status = ICH_ERR_NOT_FOUND;
    error[0] = '\0';
    char *folders = malloc(length);
    if (!folders) {
        snprintf(error, error_size, "out of memory looking for %s", file);
        return NULL;
    }
    snprintf(folders, length, "%s%s%s", folder, search && *search ? ":" : "",
             search ? search : "");
    void *handle = NULL;
    char why[512];
    for (char *save = NULL, *dir = strtok_r(folders, ":", &save); dir && !handle;
         dir = strtok_r(NULL, ":", &save)) {
        snprintf(path, size, "%s/%s", dir, file);
        if (access(path, F_OK) != 0)
            continue;
        if (gate && !gate(path, 1, why, sizeof why)) {
            snprintf(error, error_size, "%s could not start: %s", path, why);
            *status = ICH_ERR_UNSUPPORTED;
            break;
        }
        if (!(handle = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
            snprintf(error, error_size, "%s", dlerror());
    }
    free(folders);
    if (!handle && !error[0])
        handle = open_from_loader(file, gate, folder, search, path, size, error, error_size);
    return handle;
}
