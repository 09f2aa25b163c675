/* A small work queue: an atomic counter hands out item indexes in order. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/parallel.h"

int ich_cpu_count(void)
{
    /* The CPUs this process may run on: an MPI launcher binds each rank to
     * its cores (as taskset and container limits do), and a thread per
     * CPU of the machine in every rank would crowd them. */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int ich_thread_count(int threads, int64_t items)
{
    if (threads <= 0)
        threads = ich_cpu_count();
    if (items < threads)
        threads = items > 0 ? (int)items : 1;
    return threads;
}

typedef struct queue {
    int64_t count;
    ich_item_fn item;
    void *context;
    atomic_llong next;
    atomic_llong done;
    atomic_llong failed;
    atomic_int stop;
    /* the watching thread sleeps on `idle` until the last worker leaves
     * (running: workers started and not yet finished) */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int running;
} queue;

typedef struct worker_arg {
    queue *q;
    int worker;
} worker_arg;

static void run_items(queue *q, int worker)
{
    while (!atomic_load(&q->stop)) {
        int64_t i = atomic_fetch_add(&q->next, 1);
        if (i >= q->count)
            break;
        if (q->item(q->context, i, worker) != ICH_OK)
            atomic_fetch_add(&q->failed, 1);
        atomic_fetch_add(&q->done, 1);
    }
}

static void *worker_main(void *arg)
{
    worker_arg *w = arg;
    run_items(w->q, w->worker);
    pthread_mutex_lock(&w->q->lock);
    if (--w->q->running == 0)
        pthread_cond_signal(&w->q->idle);
    pthread_mutex_unlock(&w->q->lock);
    return NULL;
}

/* The calling thread reports progress every 0.1 s until the workers are
 * done, and returns as soon as they are (a fixed polling sleep cost up
 * to its length at the end of every call: 2% of ich-preprocess on 300
 * slices). Returns 1 when the callback cancelled the work. */
static int watch(queue *q, ich_progress_fn progress, void *user, const char *what)
{
    int cancelled = 0;
    pthread_mutex_lock(&q->lock);
    while (q->running > 0) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        if (until.tv_nsec >= 1000 * 1000 * 1000) {
            until.tv_sec++;
            until.tv_nsec -= 1000 * 1000 * 1000;
        }
        while (q->running > 0 && pthread_cond_timedwait(&q->idle, &q->lock, &until) == 0) {
        }
        if (q->running == 0 || cancelled)
            continue; /* a cancelled run still waits for its workers */
        pthread_mutex_unlock(&q->lock);
        if (progress(user, atomic_load(&q->done), q->count, what) != 0) {
            atomic_store(&q->stop, 1);
            cancelled = 1;
        }
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return cancelled;
}

/* The watcher's condition, timed on the monotonic clock (a change of the
 * wall clock must not stall the progress). */
static int queue_sync_init(queue *q)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    int ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&q->idle, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!ok)
        return -1;
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        pthread_cond_destroy(&q->idle);
        return -1;
    }
    return 0;
}

ich_status ich_parallel_for(int64_t count, int threads, ich_item_fn item, void *context,
                            ich_progress_fn progress, void *progress_user, const char *what,
                            int64_t *failed)
{
    if (failed)
        *failed = 0;
    if (count < 0 || !item)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "parallel work: bad arguments");
    if (!what)
        what = "work";
    queue q = {.count = count, .item = item, .context = context};
    threads = ich_thread_count(threads, count);
    int cancelled = 0;
    if (threads == 1 && !progress) {
        run_items(&q, 0);
    } else {
        pthread_t *ids = calloc((size_t)threads, sizeof *ids);
        worker_arg *args = calloc((size_t)threads, sizeof *args);
        if (!ids || !args || queue_sync_init(&q) != 0) {
            free(ids);
            free(args);
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", what);
        }
        int started = 0;
        pthread_mutex_lock(&q.lock); /* running counts the workers before any can leave */
        for (; started < threads; started++) {
            args[started] = (worker_arg){&q, started};
            if (pthread_create(&ids[started], NULL, worker_main, &args[started]) != 0)
                break;
            q.running++;
        }
        pthread_mutex_unlock(&q.lock);
        if (started > 0 && progress)
            cancelled = watch(&q, progress, progress_user, what);
        for (int t = 0; t < started; t++)
            pthread_join(ids[t], NULL);
        pthread_cond_destroy(&q.idle);
        pthread_mutex_destroy(&q.lock);
        free(ids);
        free(args);
        if (started == 0)
            return ich_fail(ICH_ERR_INTERNAL, "%s: cannot start threads", what);
    }
    if (failed)
        *failed = atomic_load(&q.failed);
    if (cancelled)
        return ich_fail(ICH_ERR_CANCELLED, "%s: cancelled", what);
    if (progress && progress(progress_user, count, count, what) != 0)
        return ich_fail(ICH_ERR_CANCELLED, "%s: cancelled", what);
    return ICH_OK;
}
