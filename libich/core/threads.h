/* Internal: the compute threads, one count for the whole process.
 *
 * ich_set_threads() (<ich/core.h>) stores the count here; the CPU backend
 * reads it before each oneDNN call and sizes OpenBLAS's pool through a
 * listener, since core/ cannot call up into backend/. */
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

#ifdef __cplusplus
}
#endif
#endif
