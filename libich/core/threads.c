/* The process-wide compute thread count, OpenMP's share of it, and the
 * element-loop runner (see threads.h). */
#include "core/threads.h"

#include <dlfcn.h>
#include <pthread.h>
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

typedef struct range_job {
    ich_range_fn fn;
    void *context;
    int64_t count, chunks;
} range_job;

static ich_status range_item(void *context, int64_t index, int worker)
{
    (void)worker;
    const range_job *job = context;
    int64_t begin = job->count * index / job->chunks;
    int64_t end = job->count * (index + 1) / job->chunks;
    job->fn(job->context, begin, end);
    return ICH_OK;
}

/* oneDNN runs on OpenMP (libgomp, loaded with libdnnl). Running libich's
 * own element loops on the same thread team, rather than on threads of
 * our own, keeps OpenMP's spinning workers from competing with them. The
 * entry points are looked up at run time since libich is not compiled
 * with -fopenmp. */
typedef void (*gomp_parallel_fn)(void (*body)(void *), void *data, unsigned threads,
                                 unsigned flags);
typedef int (*omp_int_fn)(void);
typedef void (*omp_set_fn)(int);

static struct {
    pthread_once_t once;
    gomp_parallel_fn parallel;
    omp_int_fn thread_num, num_threads;
    omp_set_fn set_num_threads;
} g_omp = {PTHREAD_ONCE_INIT, NULL, NULL, NULL, NULL};

static void omp_lookup(void)
{
    g_omp.set_num_threads = (omp_set_fn)dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    g_omp.parallel = (gomp_parallel_fn)dlsym(RTLD_DEFAULT, "GOMP_parallel");
    g_omp.thread_num = (omp_int_fn)dlsym(RTLD_DEFAULT, "omp_get_thread_num");
    g_omp.num_threads = (omp_int_fn)dlsym(RTLD_DEFAULT, "omp_get_num_threads");
    if (!g_omp.thread_num || !g_omp.num_threads)
        g_omp.parallel = NULL;
}

static void omp_body(void *data)
{
    const range_job *job = data;
    int64_t index = g_omp.thread_num(), chunks = g_omp.num_threads();
    int64_t begin = job->count * index / chunks, end = job->count * (index + 1) / chunks;
    if (begin < end)
        job->fn(job->context, begin, end);
}

/* OpenMP's thread count is a per-thread setting: give the calling thread
 * the process's count (ich_set_threads may have run on another thread). */
void ich_compute_threads_apply(void)
{
    static _Thread_local int applied;
    int want = ich_compute_threads();
    if (applied == want)
        return;
    pthread_once(&g_omp.once, omp_lookup);
    if (g_omp.set_num_threads)
        g_omp.set_num_threads(want);
    applied = want;
}

void ich_parallel_range(int64_t count, ich_range_fn fn, void *context)
{
    /* Waking threads costs microseconds: only for big ranges. */
    if (count < (1 << 16)) {
        fn(context, 0, count);
        return;
    }
    ich_parallel_split(count, fn, context);
}

void ich_parallel_split(int64_t count, ich_range_fn fn, void *context)
{
    int threads = ich_compute_threads();
    if (threads <= 1 || count <= 1) {
        fn(context, 0, count);
        return;
    }
    range_job job = {fn, context, count, threads};
    ich_compute_threads_apply();
    if (g_omp.parallel) {
        g_omp.parallel(omp_body, &job, (unsigned)threads, 0);
        return;
    }
    if (ich_parallel_for(threads, threads, range_item, &job, NULL, NULL, "element loop", NULL) != ICH_OK)
        fn(context, 0, count); /* threads could not start: do it here */
}
