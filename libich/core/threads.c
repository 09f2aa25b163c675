/* The process-wide compute thread count (see threads.h). */
#include "core/threads.h"

#include <stdatomic.h>

#include "core/parallel.h"

static atomic_int g_threads; /* 0: one per CPU */
static atomic_int g_set;     /* ich_set_threads has run */
static void (*_Atomic g_listener)(int threads);

int ich_compute_threads(void)
{
    int threads = atomic_load(&g_threads);
    return threads > 0 ? threads : ich_cpu_count();
}

void ich_compute_threads_listen(void (*fn)(int threads))
{
    atomic_store(&g_listener, fn);
    if (fn && atomic_load(&g_set))
        fn(ich_compute_threads());
}

void ich_set_threads(int32_t threads)
{
    atomic_store(&g_threads, threads > 0 ? (int)threads : 0);
    atomic_store(&g_set, 1);
    void (*fn)(int) = atomic_load(&g_listener);
    if (fn)
        fn(ich_compute_threads());
}
