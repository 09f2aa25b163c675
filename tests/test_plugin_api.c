/* The plugin side of the interface checks (libich/backend/plugin_api.h):
 * a plugin's entry point given host services that are too small, or for
 * another interface version, refuses them with a message naming both
 * sizes, and never calls through a member the table does not have. Run
 * on the stand-in plugin (tests/plugins/fake_plugin.c) and on the CUDA
 * plugin's own code built against the CPU emulation of CUDA (its entry
 * point checks the host before it looks for a device). libich's side of
 * the checks is in bindings/python/tests/test_backend.py. */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "backend/plugin_api.h"

static char g_message[1024];
static int g_fails;

static ich_status record_fail(ich_status status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(g_message, sizeof g_message, fmt, args);
    va_end(args);
    g_fails++;
    return status;
}

static void quiet_log(ich_log_level level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}

static void serial(int64_t count, void (*fn)(void *, int64_t, int64_t), void *context)
{
    fn(context, 0, count);
}

/* A host table as a libich built from some header would fill it. */
static ich_plugin_host host_of(uint32_t version, uint32_t size)
{
    ich_plugin_host host = {version, size, record_fail, quiet_log, serial, NULL};
    g_message[0] = '\0';
    g_fails = 0;
    return host;
}

static ich_backend_plugin_fn entry_of(const char *path)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle)
        fail_msg("%s", dlerror());
    ich_backend_plugin_fn entry = (ich_backend_plugin_fn)dlsym(handle, ICH_BACKEND_PLUGIN_ENTRY);
    assert_non_null(entry);
    return entry; /* kept loaded: the plugins are not made to be unloaded */
}

/* What every plugin must do with a host that does not fit. */
static void refuses_hosts_that_do_not_fit(ich_backend_plugin_fn entry, const char *name)
{
    uint32_t version = 0;

    /* Another interface: the version is stored, nothing else is touched. */
    ich_plugin_host host = host_of(ICH_BACKEND_INTERFACE_VERSION + 1, sizeof host);
    assert_null(entry(&host, &version));
    assert_int_equal(version, ICH_BACKEND_INTERFACE_VERSION);
    assert_int_equal(g_fails, 0);

    /* Shorter than the first layout, fail still there: refused, saying why
     * with both sizes. */
    host = host_of(ICH_BACKEND_INTERFACE_VERSION, ICH_PLUGIN_END(ich_plugin_host, fail));
    version = 0;
    assert_null(entry(&host, &version));
    assert_int_equal(version, ICH_BACKEND_INTERFACE_VERSION);
    assert_int_equal(g_fails, 1);
    char expected[256];
    snprintf(expected, sizeof expected,
             "%s: libich's host services table has %u bytes, this plugin needs at least %u "
             "(backend interface %d)",
             name, (unsigned)ICH_PLUGIN_END(ich_plugin_host, fail),
             (unsigned)ICH_PLUGIN_HOST_MIN_SIZE, ICH_BACKEND_INTERFACE_VERSION);
    assert_non_null(strstr(g_message, expected));

    /* Too short to hold fail: refused without calling it. */
    host = host_of(ICH_BACKEND_INTERFACE_VERSION, 8);
    assert_null(entry(&host, &version));
    assert_int_equal(g_fails, 0);
}

static void test_fake_plugin_checks_the_host(void **state)
{
    (void)state;
    ich_backend_plugin_fn entry = entry_of(FAKE_DEVICE_PLUGIN);
    refuses_hosts_that_do_not_fit(entry, "fake cuda");

    /* A host from a later libich (a member appended) is used. */
    struct {
        ich_plugin_host host;
        void *appended;
    } newer = {host_of(ICH_BACKEND_INTERFACE_VERSION, sizeof newer), NULL};
    uint32_t version = 0;
    const ich_backend *table = entry(&newer.host, &version);
    assert_non_null(table);
    assert_int_equal(g_fails, 0);
    assert_int_equal(table->interface_version, ICH_BACKEND_INTERFACE_VERSION);
    assert_int_equal(table->size, sizeof(ich_backend));
    const ich_layer_ops *conv = table->layer("conv");
    assert_non_null(conv);
    assert_int_equal(conv->size, sizeof(ich_layer_ops));
}

static void test_cuda_plugin_checks_the_host(void **state)
{
    (void)state;
    refuses_hosts_that_do_not_fit(entry_of(CUDA_EMU_PLUGIN), "cuda");
}

/* ICH_PLUGIN_HAS reads the filler's size, not this side's sizeof. */
static void test_has_follows_the_fillers_size(void **state)
{
    (void)state;
    ich_backend table = {0};
    table.size = sizeof table;
    assert_true(ICH_PLUGIN_HAS(&table, describe));
    table.size = (uint32_t)offsetof(ich_backend, describe);
    assert_false(ICH_PLUGIN_HAS(&table, describe));
    assert_true(ICH_PLUGIN_HAS(&table, gemm));
    table.size = (uint32_t)offsetof(ich_backend, describe) + 7;
    assert_false(ICH_PLUGIN_HAS(&table, describe));
    ich_plugin_host host = {0};
    host.size = ICH_PLUGIN_HOST_MIN_SIZE;
    assert_true(ICH_PLUGIN_HAS(&host, parallel));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_has_follows_the_fillers_size),
        cmocka_unit_test(test_fake_plugin_checks_the_host),
        cmocka_unit_test(test_cuda_plugin_checks_the_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
