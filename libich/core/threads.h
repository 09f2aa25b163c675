/* Internal: the compute threads, one count for the whole process, and a
 * backend-neutral loop over them.
 *
 * ich_set_threads() (<ich/core.h>) stores the count here; the CPU backend
 * gives it to OpenMP (oneDNN's pool) before each oneDNN call and sizes
 * OpenBLAS's pool through a listener, since core/ cannot call up into
 * backend/. Element loops outside the backends (the optimizers) and inside
 * them (ReLU, the CUDA plugin's host loops) run on ich_parallel_range. */
#ifndef ICH_INTERNAL_THREADS_H
#define ICH_INTERNAL_THREADS_H

#include <stdint.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The count ich_set_threads() chose, resolved: ich_cpu_count() when it was
 * 0 or never called. */
int ich_compute_threads(void);

/* Call `fn` with the resolved count each time ich_set_threads() runs, and
 * once now if it already ran (a library's own default, such as
 * OPENBLAS_NUM_THREADS, is kept until the application sets a count). One
 * listener; a later call replaces it. */
void ich_compute_threads_listen(void (*fn)(int threads));

/* Give the calling thread's OpenMP the count (OpenMP's is a per-thread
 * setting; ich_set_threads may have run on another thread): before oneDNN
 * calls. Cheap when nothing changed. Nothing when no OpenMP runtime is
 * loaded (it comes with oneDNN; looked up at run time). */
void ich_compute_threads_apply(void);

/* Run fn(context, begin, end) over [0, count) in contiguous chunks, one per
 * compute thread, and return when all are done; on the calling thread alone
 * when there is one thread or count is small (below 65536). The chunks run
 * on OpenMP's team when one is loaded, else on ich_parallel_for's threads.
 * fn must give the same result however [0, count) is cut. */
typedef void (*ich_range_fn)(void *context, int64_t begin, int64_t end);
void ich_parallel_range(int64_t count, ich_range_fn fn, void *context);

/* ich_parallel_range without its size threshold: one chunk per compute
 * thread whatever count is (on the calling thread alone with one thread),
 * for a few items that are each a lot of work (the CPU convolutions'
 * Winograd tiles: count = the threads, each chunk with its own buffers). */
void ich_parallel_split(int64_t count, ich_range_fn fn, void *context);

#ifdef __cplusplus
}
#endif
#endif
