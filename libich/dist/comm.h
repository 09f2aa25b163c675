/* Internal: the communicator between the ranks of a distributed run (MPI
 * launched with mpirun, srun, ...), for data-parallel training and sharded
 * jobs. include/ich/dist.h is its public face.
 *
 * When: the launcher's environment says this process is one of several
 * (Open MPI's OMPI_COMM_WORLD_SIZE, PMI_SIZE of MPICH/Intel MPI,
 * SLURM_STEP_NUM_TASKS under srun, each > 1; PMIX_RANK of a PMIx launcher),
 * or ICH_DIST=mpi forces it. ICH_DIST=off makes every process a single one
 * (size 1) whatever launched it; ICH_DIST=auto (or unset) decides from the
 * environment. The communicator is then libich-mpi.so, found as every
 * plugin is (core/plugins.h: beside libich.so, ICH_PLUGIN_PATH, the
 * library path) and started once per process (MPI_Init, unless the
 * program already called it). A process launched as one of several whose
 * communicator cannot start (no plugin, another MPI than the launcher's, a
 * size that differs from the launcher's) fails every call below with the
 * reason: never N independent runs writing the same files. Otherwise a
 * single process: size 1, rank 0, every collective trivial, nothing of MPI
 * loaded.
 *
 * Collectives: every rank calls the same ones in the same order, from one
 * thread at a time (the calls are serialised here). Each waits for the
 * other ranks at most ICH_DIST_TIMEOUT seconds (default 300; 0: no limit),
 * then aborts every rank with a message on stderr naming the rank and the
 * operation (`what`: a short phrase such as "gradients, epoch 3"): a rank
 * that died or hangs ends the run instead of leaving the others waiting.
 * This abort, and ich_comm_abort_all(), are the only places libich ends a
 * process or writes to stderr itself: in a run of many ranks a lone
 * error return would leave the others waiting for ever.
 *
 * After a failure on one rank, call ich_comm_mark_failed() before
 * returning the error: the process then ends every rank at exit instead of
 * finalizing MPI (which would wait for the others). */
#ifndef ICH_INTERNAL_DIST_COMM_H
#define ICH_INTERNAL_DIST_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Start the communicator (once per process; later calls return the first
 * answer). ICH_ERR_INVALID_ARGUMENT for a bad ICH_DIST or ICH_DIST_TIMEOUT;
 * ICH_ERR_NOT_FOUND / ICH_ERR_UNSUPPORTED when launched as one of several
 * ranks but libich-mpi.so is missing or cannot start, the message saying
 * which launcher variable and why. */
ich_status ich_comm_start(void);

/* This process's rank (0 ..) and the number of ranks, starting the
 * communicator if needed; 0 and 1 when it cannot start. */
int32_t ich_comm_rank(void);
int32_t ich_comm_size(void);

/* One line: "single process (...)" or "mpi: rank R of N, <MPI library>,
 * <plugin path>". Starts the communicator; fails as ich_comm_start(). */
ich_status ich_comm_describe(char *text, size_t size);

/* The watchdog's limit in seconds (0: none). */
double ich_comm_timeout(void);

/* Sums over the ranks, in place: every rank ends with the same values,
 * bit for bit. */
ich_status ich_comm_allreduce_float(float *data, size_t count, const char *what);
ich_status ich_comm_allreduce_double(double *data, size_t count, const char *what);
ich_status ich_comm_allreduce_int64(int64_t *data, size_t count, const char *what);

/* ich_comm_allreduce_int64() whose watchdog waits `timeout` seconds when
 * that is longer than ICH_DIST_TIMEOUT (no limit still when that is 0).
 * For the end of a sharded job (dist/shard.h), where a rank that finished
 * its share may wait for slower ones longer than for one collective. */
ich_status ich_comm_allreduce_int64_within(int64_t *data, size_t count, double timeout,
                                           const char *what);

/* Root's `bytes` bytes at `data` into every rank's `data` (every rank
 * passes the same `bytes`). */
ich_status ich_comm_broadcast(void *data, size_t bytes, int32_t root, const char *what);

/* What a gather returns: rank r's bytes are data[offsets[r] ..
 * offsets[r + 1]), for r in 0 .. ranks - 1 (offsets has ranks + 1
 * entries). Free with ich_comm_gathered_free(). */
typedef struct ich_comm_gathered {
    char *data;
    size_t *offsets;
    int32_t ranks;
} ich_comm_gathered;

void ich_comm_gathered_free(ich_comm_gathered *gathered);

/* Every rank's `bytes` bytes at `data` (each rank its own count, 0 too)
 * into *out on every rank. */
ich_status ich_comm_allgather(const void *data, size_t bytes, ich_comm_gathered *out,
                              const char *what);

/* The same into root's *out only; the other ranks' *out is empty (NULL,
 * ranks 0). */
ich_status ich_comm_gather(const void *data, size_t bytes, int32_t root,
                           ich_comm_gathered *out, const char *what);

ich_status ich_comm_barrier(const char *what);

/* With more than one rank: write "libich: rank R of N: <message>: aborting
 * every rank" to stderr and end every rank; does not return. A single
 * process: records the message as the thread's error (ich_fail) and
 * returns `status`. */
ich_status ich_comm_abort_all(ich_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* This rank failed and will end: at exit, end every rank instead of
 * finalizing MPI. Nothing for a single process. */
void ich_comm_mark_failed(void);

#ifdef __cplusplus
}
#endif
#endif
