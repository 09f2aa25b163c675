/* NCCL for the CUDA plugin's collectives, loaded at run time (see
 * nccl_api.h): libnccl.so.2 from the library path (the CUDA toolkit's
 * lib64, a Python's nvidia-nccl package on LD_LIBRARY_PATH, the system's
 * libnccl2), the first time a distributed run asks for it. The
 * tests/cuda_emu build replaces this file with its emulation. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "backend/cuda/nccl_api.h"

static struct {
    pthread_mutex_t lock;
    int tried;
    ich_cuda_nccl table;
    int loaded;
    char why[512];
} g = {PTHREAD_MUTEX_INITIALIZER, 0, {0}, 0, ""};

/* One symbol into *slot; 0 (and the reason) when the library lacks it. */
static int resolve(void *handle, const char *name, void **slot)
{
    *slot = dlsym(handle, name);
    if (!*slot)
        snprintf(g.why, sizeof g.why, "libnccl.so.2 has no %s (NCCL older than 2.4?)", name);
    return *slot != NULL;
}

static void load(void)
{
    void *handle = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(g.why, sizeof g.why, "libnccl.so.2 cannot be loaded: %s", dlerror());
        return;
    }
    ich_cuda_nccl *t = &g.table;
    ncclResult_t (*get_version)(int *) = NULL;
    /* Object to function pointers through void *: what dlsym's POSIX
     * contract allows. */
    if (!resolve(handle, "ncclGetVersion", (void **)&get_version) ||
        !resolve(handle, "ncclGetUniqueId", (void **)&t->GetUniqueId) ||
        !resolve(handle, "ncclCommInitRank", (void **)&t->CommInitRank) ||
        !resolve(handle, "ncclAllReduce", (void **)&t->AllReduce) ||
        !resolve(handle, "ncclCommGetAsyncError", (void **)&t->CommGetAsyncError) ||
        !resolve(handle, "ncclCommAbort", (void **)&t->CommAbort) ||
        !resolve(handle, "ncclGetErrorString", (void **)&t->GetErrorString)) {
        dlclose(handle);
        return;
    }
    t->library = "libnccl.so.2";
    if (get_version(&t->version) != ncclSuccess)
        t->version = 0;
    g.loaded = 1; /* kept loaded: NCCL's threads outlive any call */
}

const ich_cuda_nccl *ich_cuda_nccl_load(char *why, size_t size)
{
    pthread_mutex_lock(&g.lock);
    if (!g.tried) {
        load();
        g.tried = 1;
    }
    pthread_mutex_unlock(&g.lock);
    if (!g.loaded)
        snprintf(why, size, "%s", g.why);
    return g.loaded ? &g.table : NULL;
}
