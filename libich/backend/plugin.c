/* Loading backend plugins (libich-<name>.so) and choosing the backend new
 * models use: ich_backend_select(), ICH_BACKEND, ich_backend_describe().
 *
 * Where the plugin is looked for: core/plugins.h (beside libich.so, each
 * folder of ICH_PLUGIN_PATH, then the dlopen search path). A plugin that was found but
 * could not start (no GPU, no driver, a missing cuDNN, another interface
 * version, a table smaller than this libich's: backend/plugin_api.h) is
 * reported with its path and the reason, and never closed
 * again: a CUDA runtime that ran its start-up must stay mapped.
 *
 * A plugin linked against NVIDIA's libraries (the real one needs cuBLAS
 * and cuDNN: about 150 MiB mapped, 0.1 s to load) is loaded only after the
 * driver said it has a device: libcuda.so.1 is opened, cuInit and
 * cuDeviceGetCount asked, and closed again when there is none, so a
 * machine with the CUDA toolkit but no driver or GPU maps nothing of CUDA
 * (cuda_driver_ready). Plugins that need none of NVIDIA's libraries (the
 * CPU emulation, test stand-ins) skip the question. */
#include <dlfcn.h>
#include <elf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ich/backend.h"

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "core/error.h"
#include "core/plugins.h"
#include "dist/comm.h"

static const ich_plugin_host g_host = {
    .interface_version = ICH_BACKEND_INTERFACE_VERSION,
    .size = sizeof(ich_plugin_host),
    .fail = ich_fail,
    .log = ich_log,
    .parallel = ich_parallel_range,
    .allreduce_float = ich_comm_allreduce_float,
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

/* Whether the ELF shared object at `path` names one of NVIDIA's libraries
 * (libcuda*, libcublas*, libcudnn*, libcudart*, ...: "libcu") among its
 * DT_NEEDED entries. Read from the file's program headers, without loading
 * it. 1 when it does, 0 when it does not, -1 when the file cannot be read
 * as a 64-bit ELF (dlopen then says why). */
static int needs_nvidia_libraries(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int answer = -1;
    Elf64_Ehdr eh;
    Elf64_Phdr *ph = NULL;
    Elf64_Dyn *dyn = NULL;
    char *strtab = NULL;
    if (fread(&eh, sizeof eh, 1, f) != 1 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0
        || eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr)
        || eh.e_phnum == 0 || eh.e_phnum > 256)
        goto done;
    if (!(ph = calloc(eh.e_phnum, sizeof *ph)) || fseek(f, (long)eh.e_phoff, SEEK_SET) != 0
        || fread(ph, sizeof *ph, eh.e_phnum, f) != eh.e_phnum)
        goto done;
    const Elf64_Phdr *dynamic = NULL;
    for (int i = 0; i < eh.e_phnum; i++)
        if (ph[i].p_type == PT_DYNAMIC)
            dynamic = &ph[i];
    if (!dynamic || dynamic->p_filesz > (1u << 20))
        goto done;
    size_t ndyn = dynamic->p_filesz / sizeof *dyn;
    if (!(dyn = malloc(ndyn * sizeof *dyn + 1)) || fseek(f, (long)dynamic->p_offset, SEEK_SET) != 0
        || fread(dyn, sizeof *dyn, ndyn, f) != ndyn)
        goto done;
    Elf64_Addr strtab_address = 0;
    Elf64_Xword strtab_size = 0;
    for (size_t i = 0; i < ndyn && dyn[i].d_tag != DT_NULL; i++) {
        if (dyn[i].d_tag == DT_STRTAB)
            strtab_address = dyn[i].d_un.d_ptr;
        else if (dyn[i].d_tag == DT_STRSZ)
            strtab_size = dyn[i].d_un.d_val;
    }
    if (!strtab_address || !strtab_size || strtab_size > (16u << 20))
        goto done;
    /* The string table's address to its place in the file. */
    long offset = -1;
    for (int i = 0; i < eh.e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && strtab_address >= ph[i].p_vaddr
            && strtab_address + strtab_size <= ph[i].p_vaddr + ph[i].p_filesz)
            offset = (long)(ph[i].p_offset + (strtab_address - ph[i].p_vaddr));
    if (offset < 0 || !(strtab = malloc(strtab_size + 1)) || fseek(f, offset, SEEK_SET) != 0
        || fread(strtab, 1, strtab_size, f) != strtab_size)
        goto done;
    strtab[strtab_size] = '\0';
    answer = 0;
    for (size_t i = 0; i < ndyn && dyn[i].d_tag != DT_NULL; i++)
        if (dyn[i].d_tag == DT_NEEDED && dyn[i].d_un.d_val < strtab_size
            && !strncmp(strtab + dyn[i].d_un.d_val, "libcu", 5))
            answer = 1;
done:
    free(strtab);
    free(dyn);
    free(ph);
    fclose(f);
    return answer;
}

/* Whether the NVIDIA driver is there and has a device, asked of the driver
 * itself (libcuda.so.1: cuInit, cuDeviceGetCount) before anything links
 * the CUDA libraries in. The driver stays loaded when it has a device (the
 * plugin's runtime uses it) and is closed when it has none. */
static int cuda_driver_ready(char *why, size_t size)
{
    void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!driver) {
        snprintf(why, size, "no NVIDIA driver (libcuda.so.1 cannot be loaded)");
        return 0;
    }
    typedef int (*init_fn)(unsigned);
    typedef int (*count_fn)(int *);
    init_fn init = (init_fn)dlsym(driver, "cuInit");
    count_fn count = (count_fn)dlsym(driver, "cuDeviceGetCount");
    int devices = 0, result;
    if (!init || !count)
        snprintf(why, size, "libcuda.so.1 has no cuInit/cuDeviceGetCount");
    else if ((result = init(0)) != 0)
        snprintf(why, size, "the driver's cuInit failed (CUresult %d%s)", result,
                 result == 100 ? ", no CUDA device" : "");
    else if ((result = count(&devices)) != 0)
        snprintf(why, size, "the driver's cuDeviceGetCount failed (CUresult %d)", result);
    else if (devices <= 0)
        snprintf(why, size, "the driver reports no CUDA device");
    if (devices > 0)
        return 1;
    dlclose(driver);
    return 0;
}

/* The search's gate for the CUDA plugin (core/plugins.h): a candidate that
 * needs NVIDIA's libraries is opened only when the driver has a device;
 * the library search path, whose file libich cannot read first, only when
 * a driver is there at all. */
static int cuda_gate(const char *path, int in_folder, char *why, size_t size)
{
    char reason[400];
    if (in_folder && needs_nvidia_libraries(path) != 1)
        return 1;
    if (cuda_driver_ready(reason, sizeof reason))
        return 1;
    if (in_folder)
        snprintf(why, size, "cuda: no usable GPU: %s (the plugin and the CUDA libraries it "
                 "needs were not loaded)", reason);
    else
        snprintf(why, size, "no usable GPU: %s", reason);
    return 0;
}

static ich_status load_cuda(void)
{
    const char *file = "libich-cuda.so";
    ich_status status;
    void *handle = ich_plugin_open(file, cuda_gate, g_cuda.path, sizeof g_cuda.path,
                                   g_cuda.error, sizeof g_cuda.error, &status);
    if (!handle)
        return status;
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
