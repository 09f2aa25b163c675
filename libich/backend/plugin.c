/* Loading backend plugins (libich-<name>.so) and choosing the backend new
 * models use: ich_backend_select(), ICH_BACKEND, ich_backend_describe().
 *
 * Where the plugin is looked for, in order: beside libich.so itself (found
 * with dladdr, so an installed or a build-tree libich finds the plugin
 * installed or built with it, whatever the program's own folder), each
 * folder of ICH_PLUGIN_PATH, then the dlopen search path
 * (LD_LIBRARY_PATH, the system's folders). A plugin that was found but
 * could not start (no GPU, no driver, a missing cuDNN, another interface
 * version, a table smaller than this libich's: backend/plugin_api.h) is
 * reported with its path and the reason, and never closed
 * again: a CUDA runtime that ran its start-up must stay mapped. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ich/backend.h"

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "core/error.h"

static const ich_plugin_host g_host = {
    .interface_version = ICH_BACKEND_INTERFACE_VERSION,
    .size = sizeof(ich_plugin_host),
    .fail = ich_fail,
    .log = ich_log,
    .parallel = ich_parallel_range,
};

/* The one plugin libich knows: "cuda". Its load is tried once. */
static struct {
    pthread_mutex_t lock;
    int tried;
    const ich_backend *table;
    ich_status status;
    char path[4096];
    char error[8192];
} g_cuda = {PTHREAD_MUTEX_INITIALIZER, 0, NULL, ICH_OK, "", ""};

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

/* dlopen the first candidate that exists; *path is the one loaded (or the
 * last one that exists and failed). */
static void *open_plugin(const char *file, char *path, size_t size, char *error, size_t error_size)
{
    char folder[4096];
    own_folder(folder, sizeof folder);
    const char *search = getenv("ICH_PLUGIN_PATH");
    char *folders = NULL;
    size_t length = strlen(folder) + 2 + (search ? strlen(search) : 0);
    if (!(folders = malloc(length)))
        return NULL;
    snprintf(folders, length, "%s%s%s", folder, search && *search ? ":" : "",
             search ? search : "");
    void *handle = NULL;
    error[0] = '\0';
    for (char *save = NULL, *dir = strtok_r(folders, ":", &save); dir && !handle;
         dir = strtok_r(NULL, ":", &save)) {
        snprintf(path, size, "%s/%s", dir, file);
        if (access(path, F_OK) != 0)
            continue;
        if (!(handle = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
            snprintf(error, error_size, "%s", dlerror());
    }
    free(folders);
    if (!handle && !error[0]) {
        /* Not in any folder above: the dynamic loader's own search. */
        snprintf(path, size, "%s", file);
        if (!(handle = dlopen(file, RTLD_NOW | RTLD_LOCAL)))
            snprintf(error, error_size, "%s not found beside libich (%s), in ICH_PLUGIN_PATH (%s) "
                     "or on the library search path",
                     file, folder[0] ? folder : "?", search && *search ? search : "unset");
    }
    return handle;
}

static ich_status load_cuda(void)
{
    const char *file = "libich-cuda.so";
    void *handle = open_plugin(file, g_cuda.path, sizeof g_cuda.path, g_cuda.error,
                               sizeof g_cuda.error);
    if (!handle)
        return ICH_ERR_NOT_FOUND;
    ich_backend_plugin_fn entry = (ich_backend_plugin_fn)dlsym(handle, ICH_BACKEND_PLUGIN_ENTRY);
    if (!entry) {
        snprintf(g_cuda.error, sizeof g_cuda.error, "%s has no %s(): not a libich backend plugin",
                 g_cuda.path, ICH_BACKEND_PLUGIN_ENTRY);
        dlclose(handle);
        return ICH_ERR_FORMAT;
    }
    uint32_t version = 0;
    ich_clear_error();
    const ich_backend *table = entry(&g_host, &version);
    if (version != ICH_BACKEND_INTERFACE_VERSION) {
        snprintf(g_cuda.error, sizeof g_cuda.error,
                 "%s was built for backend interface %u, this libich %s has interface %d: "
                 "use the plugin built with this libich",
                 g_cuda.path, version, ich_version(), ICH_BACKEND_INTERFACE_VERSION);
        return ICH_ERR_UNSUPPORTED;
    }
    if (!table) {
        const char *why = ich_last_error();
        snprintf(g_cuda.error, sizeof g_cuda.error, "%s could not start: %s", g_cuda.path,
                 why && *why ? why : "no reason given");
        return ICH_ERR_UNSUPPORTED;
    }
    /* The sizes first: a member past the end of the plugin's table would
     * be read from whatever memory follows it. */
    if (table->interface_version != ICH_BACKEND_INTERFACE_VERSION) {
        snprintf(g_cuda.error, sizeof g_cuda.error,
                 "%s returned a backend table for interface %u, this libich %s has interface "
                 "%d: use the plugin built with this libich",
                 g_cuda.path, table->interface_version, ich_version(),
                 ICH_BACKEND_INTERFACE_VERSION);
        return ICH_ERR_UNSUPPORTED;
    }
    if (table->size < ICH_PLUGIN_BACKEND_MIN_SIZE) {
        snprintf(g_cuda.error, sizeof g_cuda.error,
                 "%s: its backend table has %u bytes, this libich %s needs at least %u "
                 "(interface %d): the plugin was built from another plugin_api.h; use the "
                 "plugin built with this libich",
                 g_cuda.path, table->size, ich_version(), (unsigned)ICH_PLUGIN_BACKEND_MIN_SIZE,
                 ICH_BACKEND_INTERFACE_VERSION);
        return ICH_ERR_UNSUPPORTED;
    }
    if (!table->layer || !table->alloc || !table->free || !table->to_device ||
        !table->to_host || !table->accumulate || !table->describe) {
        snprintf(g_cuda.error, sizeof g_cuda.error, "%s returned an incomplete backend table",
                 g_cuda.path);
        return ICH_ERR_UNSUPPORTED;
    }
    /* Every layer kind now, so that a bad one refuses the plugin with its
     * path instead of failing some model later. */
    static const char *const kinds[] = {ICH_LAYER_KINDS};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const ich_layer_ops *ops = table->layer(kinds[i]);
        if (!ops)
            continue; /* not implemented: models with this kind fail when built */
        if (ops->size < ICH_PLUGIN_LAYER_OPS_MIN_SIZE) {
            snprintf(g_cuda.error, sizeof g_cuda.error,
                     "%s: its %s layer table has %u bytes, this libich %s needs at least %u "
                     "(interface %d): the plugin was built from another plugin_api.h; use the "
                     "plugin built with this libich",
                     g_cuda.path, kinds[i], ops->size, ich_version(),
                     (unsigned)ICH_PLUGIN_LAYER_OPS_MIN_SIZE, ICH_BACKEND_INTERFACE_VERSION);
            return ICH_ERR_UNSUPPORTED;
        }
        if (!ops->kind || strcmp(ops->kind, kinds[i]) != 0 || !ops->create || !ops->resize ||
            !ops->forward || !ops->backward || !ops->destroy) {
            snprintf(g_cuda.error, sizeof g_cuda.error,
                     "%s returned an incomplete %s layer table", g_cuda.path, kinds[i]);
            return ICH_ERR_UNSUPPORTED;
        }
    }
    g_cuda.table = table;
    return ICH_OK;
}

ich_status ich_backend_plugin_load(const char *name, const ich_backend **out, const char **path)
{
    *out = NULL;
    if (path)
        *path = NULL;
    if (strcmp(name, "cuda") != 0)
        return ich_fail(ICH_ERR_NOT_FOUND, "backend \"%s\": no such plugin (known: cuda)", name);
    pthread_mutex_lock(&g_cuda.lock);
    if (!g_cuda.tried) {
        g_cuda.status = load_cuda();
        g_cuda.tried = 1;
    }
    ich_status status = g_cuda.status;
    *out = g_cuda.table;
    if (path)
        *path = g_cuda.path;
    if (status)
        ich_fail(status, "%s", g_cuda.error);
    pthread_mutex_unlock(&g_cuda.lock);
    return status;
}

/* ---- selection ---------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    const ich_backend *current; /* NULL until chosen */
} g_choice = {PTHREAD_MUTEX_INITIALIZER, NULL};

/* The backend `name` stands for (NULL/"": $ICH_BACKEND, else auto). */
static ich_status resolve(const char *name, const ich_backend **out)
{
    const char *source = "backend ";
    if (!name || !*name) {
        name = getenv("ICH_BACKEND");
        source = "ICH_BACKEND=";
        if (!name || !*name)
            name = "auto";
    }
    if (!strcmp(name, "cpu")) {
        *out = ich_backend_cpu();
        return ICH_OK;
    }
    if (!strcmp(name, "cuda")) {
        ich_status status = ich_backend_plugin_load("cuda", out, NULL);
        if (status) {
            char why[8400];
            snprintf(why, sizeof why, "%s", ich_last_error());
            return ich_fail(status, "%scuda: %s", source, why);
        }
        return ICH_OK;
    }
    if (!strcmp(name, "auto")) {
        if (ich_backend_plugin_load("cuda", out, NULL) != ICH_OK) {
            ich_log(ICH_LOG_DEBUG, "backend auto: using the CPU (%s)", ich_last_error());
            ich_clear_error();
            *out = ich_backend_cpu();
        }
        return ICH_OK;
    }
    return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s%s: unknown backend (known: auto, cpu, cuda)",
                    source, name);
}

ICH_API ich_status ich_backend_select(const char *name)
{
    const ich_backend *chosen = NULL;
    ich_status status = resolve(name, &chosen);
    if (status)
        return status;
    pthread_mutex_lock(&g_choice.lock);
    g_choice.current = chosen;
    pthread_mutex_unlock(&g_choice.lock);
    ich_log(ICH_LOG_INFO, "backend: %s", chosen->describe());
    return ICH_OK;
}

ich_status ich_backend_get(const ich_backend **out)
{
    pthread_mutex_lock(&g_choice.lock);
    const ich_backend *current = g_choice.current;
    pthread_mutex_unlock(&g_choice.lock);
    if (current) {
        *out = current;
        return ICH_OK;
    }
    /* First use: the environment decides. A failure is not remembered, so
     * every model creation reports it. */
    ich_status status = resolve(NULL, &current);
    if (status)
        return status;
    pthread_mutex_lock(&g_choice.lock);
    if (!g_choice.current)
        g_choice.current = current;
    *out = g_choice.current;
    pthread_mutex_unlock(&g_choice.lock);
    return ICH_OK;
}

const ich_backend *ich_backend_current(void)
{
    const ich_backend *current = NULL;
    if (ich_backend_get(&current) != ICH_OK)
        return ich_backend_cpu();
    return current;
}

ICH_API const char *ich_backend_name(void)
{
    const ich_backend *current = NULL;
    return ich_backend_get(&current) == ICH_OK ? current->name : NULL;
}

ICH_API ich_status ich_backend_describe(const char *name, char *text, size_t size)
{
    if (!text || size == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_backend_describe: NULL or empty text");
    text[0] = '\0';
    const ich_backend *backend = NULL;
    ich_status status = !name || !*name ? ich_backend_get(&backend) : resolve(name, &backend);
    if (status)
        return status;
    if ((size_t)snprintf(text, size, "%s", backend->describe()) >= size)
        return ich_fail(ICH_ERR_SHAPE, "ich_backend_describe: text holds %zu bytes, too few",
                        size);
    return ICH_OK;
}
