/* Stand-ins for libich-cuda.so, to test libich's plugin loader and the
 * model's device-memory path on a machine without a GPU. One source, built
 * once per FAKE_MODE (tests/CMakeLists.txt), each as a libich-cuda.so in
 * its own folder:
 *
 *   FAKE_VERSION   built for another interface version (999)
 *   FAKE_NO_ENTRY  exports no ich_backend_plugin
 *   FAKE_NO_DEVICE starts like the real plugin on a machine without a GPU
 *   FAKE_DEVICE    a working "cuda" backend: the CPU backend's layers (this
 *                  module links its own copy of libich's objects) behind
 *                  host_memory = 0, so the model must move input, logits
 *                  and gradients with to_device / to_host / accumulate,
 *                  which count their calls and refuse memory this backend
 *                  did not allocate. describe() reports the counts.
 *   FAKE_SMALL_TABLE FAKE_DEVICE whose backend table is shorter than this
 *                  interface's first layout (as if built before host_alloc
 *                  was added): libich must refuse it, naming both sizes.
 *   FAKE_SMALL_LAYER FAKE_DEVICE whose conv layer table is one member short.
 *   FAKE_NEWER     FAKE_DEVICE built as a later plugin of the same interface
 *                  version: its backend and layer tables have a member
 *                  appended that this libich does not know, which it must
 *                  ignore and use the plugin.
 *
 * Every mode that starts checks the host's services as the real plugin
 * does (ich_plugin_check_host).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

#define EXPORT __attribute__((visibility("default")))

#define FAKE_VERSION 1
#define FAKE_NO_ENTRY 2
#define FAKE_NO_DEVICE 3
#define FAKE_DEVICE 4
#define FAKE_SMALL_TABLE 5
#define FAKE_SMALL_LAYER 6
#define FAKE_NEWER 7

#if FAKE_MODE == FAKE_VERSION

EXPORT const ich_backend *ich_backend_plugin(const ich_plugin_host *host, uint32_t *version)
{
    (void)host;
    *version = 999;
    return NULL;
}

#elif FAKE_MODE == FAKE_NO_ENTRY

EXPORT int ich_backend_plugin_misnamed(void)
{
    return 0;
}

#elif FAKE_MODE == FAKE_NO_DEVICE

EXPORT const ich_backend *ich_backend_plugin(const ich_plugin_host *host, uint32_t *version)
{
    *version = ICH_BACKEND_INTERFACE_VERSION;
    if (!ich_plugin_check_host(host, "fake cuda"))
        return NULL;
    host->fail(ICH_ERR_UNSUPPORTED, "cuda: no usable GPU: fake plugin without a device");
    return NULL;
}

#elif FAKE_MODE == FAKE_DEVICE || FAKE_MODE == FAKE_SMALL_TABLE || \
    FAKE_MODE == FAKE_SMALL_LAYER || FAKE_MODE == FAKE_NEWER

/* Every live block, so copies can check their pointers. */
static struct {
    pthread_mutex_t lock;
    void *blocks[4096];
    size_t sizes[4096];
    int count;
    long to_device, to_host, accumulate, foreign;
} g = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, 0, 0, 0, 0, 0};

static void *fake_alloc(size_t bytes)
{
    void *pointer = aligned_alloc(64, (bytes + 63) / 64 * 64);
    pthread_mutex_lock(&g.lock);
    if (pointer && g.count < 4096) {
        g.blocks[g.count] = pointer;
        g.sizes[g.count++] = bytes;
    } else if (pointer) {
        free(pointer);
        pointer = NULL;
    }
    pthread_mutex_unlock(&g.lock);
    return pointer;
}

static void fake_free(void *pointer)
{
    if (!pointer)
        return;
    pthread_mutex_lock(&g.lock);
    for (int i = 0; i < g.count; i++)
        if (g.blocks[i] == pointer) {
            g.blocks[i] = g.blocks[--g.count];
            g.sizes[i] = g.sizes[g.count];
            break;
        }
    pthread_mutex_unlock(&g.lock);
    free(pointer);
}

/* 1 when [pointer, pointer + bytes) lies in a block of this backend. */
static int owned(const void *pointer, size_t bytes)
{
    int found = 0;
    pthread_mutex_lock(&g.lock);
    for (int i = 0; i < g.count && !found; i++) {
        const char *start = g.blocks[i];
        found = (const char *)pointer >= start &&
                (const char *)pointer + bytes <= start + g.sizes[i];
    }
    if (!found)
        g.foreign++;
    pthread_mutex_unlock(&g.lock);
    return found;
}

static const ich_plugin_host *g_host;

static ich_status fake_to_device(void *dst, const void *src, size_t bytes)
{
    if (!owned(dst, bytes))
        return g_host->fail(ICH_ERR_INTERNAL, "fake cuda: to_device into foreign memory");
    g.to_device++;
    memcpy(dst, src, bytes);
    return ICH_OK;
}

static ich_status fake_to_host(void *dst, const void *src, size_t bytes)
{
    if (!owned(src, bytes))
        return g_host->fail(ICH_ERR_INTERNAL, "fake cuda: to_host from foreign memory");
    g.to_host++;
    memcpy(dst, src, bytes);
    return ICH_OK;
}

static ich_status fake_accumulate(float *acc, const float *x, int64_t count)
{
    if (!owned(acc, (size_t)count * sizeof(float)) || !owned(x, (size_t)count * sizeof(float)))
        return g_host->fail(ICH_ERR_INTERNAL, "fake cuda: accumulate on foreign memory");
    g.accumulate++;
    for (int64_t i = 0; i < count; i++)
        acc[i] += x[i];
    return ICH_OK;
}

static const char *fake_describe(void)
{
    static char text[256];
    snprintf(text, sizeof text,
             "cuda: fake device (CPU layers), to_device %ld, to_host %ld, accumulate %ld, "
             "foreign %ld",
             g.to_device, g.to_host, g.accumulate, g.foreign);
    return text;
}

/* The backend table and the layer tables as this mode lays them out: with
 * a member appended after everything this libich knows (FAKE_NEWER), whose
 * value no reader may depend on. */
static struct {
    ich_backend table;
    void (*appended)(void);
} g_backend;

static const char *const g_kinds[] = {ICH_LAYER_KINDS};
#define KINDS (sizeof g_kinds / sizeof g_kinds[0])

static struct {
    ich_layer_ops ops;
    void (*appended)(void);
} g_layers[KINDS];

static const ich_layer_ops *fake_layer(const char *kind)
{
    for (size_t i = 0; kind && i < KINDS; i++)
        if (g_layers[i].ops.kind && !strcmp(g_layers[i].ops.kind, kind))
            return &g_layers[i].ops;
    return NULL;
}

static void fake_appended(void)
{
    abort(); /* a reader that calls what it does not know */
}

EXPORT const ich_backend *ich_backend_plugin(const ich_plugin_host *host, uint32_t *version)
{
    *version = ICH_BACKEND_INTERFACE_VERSION;
    if (!ich_plugin_check_host(host, "fake cuda"))
        return NULL;
    g_host = host;
    const ich_backend *cpu = ich_backend_cpu();
    for (size_t i = 0; i < KINDS; i++) {
        const ich_layer_ops *ops = cpu->layer(g_kinds[i]);
        if (ops)
            g_layers[i].ops = *ops;
        g_layers[i].appended = fake_appended;
    }
    ich_backend *table = &g_backend.table;
    *table = *cpu;
    table->name = "cuda";
    table->host_memory = 0;
    table->alloc = fake_alloc;
    table->free = fake_free;
    table->to_device = fake_to_device;
    table->to_host = fake_to_host;
    table->accumulate = fake_accumulate;
    table->describe = fake_describe;
    table->layer = fake_layer;
    g_backend.appended = fake_appended;
#if FAKE_MODE == FAKE_SMALL_TABLE
    table->size = offsetof(ich_backend, host_alloc);
#elif FAKE_MODE == FAKE_SMALL_LAYER
    g_layers[0].ops.size = offsetof(ich_layer_ops, destroy); /* "conv" */
#elif FAKE_MODE == FAKE_NEWER
    table->size = sizeof g_backend;
    for (size_t i = 0; i < KINDS; i++)
        g_layers[i].ops.size = sizeof g_layers[i];
#endif
    return table;
}

#else
#error "FAKE_MODE must be one of the modes listed at the top of this file"
#endif
