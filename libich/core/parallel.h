/* Internal: run independent items on worker threads. */
#ifndef ICH_INTERNAL_PARALLEL_H
#define ICH_INTERNAL_PARALLEL_H

#include <stdint.h>

#include "ich/core.h"

/* Number of CPUs this process may run on (its affinity mask: an MPI
 * launcher's binding, taskset; else the online CPUs; at least 1). */
int ich_cpu_count(void);

/* threads <= 0 means ich_cpu_count(); never more threads than items. */
int ich_thread_count(int threads, int64_t items);

/* One item of work: `index` in [0, count), `worker` in [0, threads). Returns
 * ICH_OK, or a failure that the caller wants counted (the item is then
 * reported and skipped, the others still run). */
typedef ich_status (*ich_item_fn)(void *context, int64_t index, int worker);

/* Run item(context, i, worker) for every i in [0, count) on `threads` threads
 * (see ich_thread_count; 1 runs everything on the calling thread, in order).
 * Items are handed out in increasing order. `progress` (may be NULL) is
 * called from the calling thread as items finish, at most ~10 times a second
 * and once at the end; when it returns non-zero no new items start and the
 * call returns ICH_ERR_CANCELLED ("<what>: cancelled").
 * *failed (may be NULL) receives the number of items that did not return
 * ICH_OK. Returns ICH_OK when the work ran (even if items failed: the caller
 * decides), or an error when threads could not start or it was cancelled. */
ich_status ich_parallel_for(int64_t count, int threads, ich_item_fn item, void *context,
                            ich_progress_fn progress, void *progress_user, const char *what,
                            int64_t *failed);

#endif
