/* libich — distributed runs: one process of several, launched by MPI.
 *
 * libich trains data-parallel when a program is started as several
 * processes ("ranks") by an MPI launcher, on one machine or many:
 *
 *   mpirun -np 4 ich-train ...                      one machine, 4 ranks
 *   mpirun -np 8 -H node1:4,node2:4 ich-train ...   two machines
 *   srun -N 2 --ntasks-per-node=4 ich-train ...      under SLURM
 *
 * libich.so itself never links MPI: the communicator is a plugin,
 * libich-mpi.so (built when Open MPI's development files are found, e.g.
 * Debian's libopenmpi-dev), loaded at run time only when the launcher's
 * environment says this process is one of several ranks: Open MPI's
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE (MPICH, Intel MPI) or SLURM_STEP_NUM_TASKS
 * (srun) greater than 1, or PMIX_RANK (a PMIx launcher). The plugin is
 * looked for where the CUDA plugin is (<ich/backend.h>): beside libich.so,
 * in ICH_PLUGIN_PATH, then on the library path. A single process loads
 * nothing of MPI.
 *
 * Environment:
 *   ICH_DIST          auto (default): from the launcher's environment;
 *                     mpi: always start MPI (also a single rank);
 *                     off: every process runs alone (size 1), whatever
 *                     launched it: N independent runs, on purpose
 *   ICH_DIST_TIMEOUT  seconds a rank waits in one collective operation
 *                     for the others (default 300; 0: no limit); past it
 *                     every rank ends, with a message on stderr naming the
 *                     rank and the operation, so that a rank that died or
 *                     hangs never leaves the others waiting for ever
 *
 * A process launched as one of several whose communicator cannot start
 * (libich-mpi.so missing, built for another MPI than the launcher's) fails
 * the calls below and every distributed call (ich_train()) with the reason,
 * rather than running as N independent processes writing the same files.
 * Where libich ends a run of several ranks (the timeout, or a rank that
 * failed: at its exit every rank ends instead of waiting for it), it writes
 * its message to stderr: the only case where libich prints or ends the
 * process itself.
 *
 * What runs distributed: ich_train() (<ich/train.h>, "Distributed
 * training"); ich_preprocess_folder() and ich_predict_folder()
 * (<ich/pipeline.h>) and ich_evaluate_report() (<ich/report.h>) share
 * the files among the ranks and write one output, as a single process. MPI is started at the first call below or the first
 * distributed call, and finished at the process's exit (unless the program
 * started MPI itself: then it finishes it). These calls may come from any
 * thread.
 */
#ifndef ICH_DIST_H
#define ICH_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** This process's rank, 0 .. ich_dist_size() - 1 (0 for a single
 *  process), starting the communicator if needed. -1 when it cannot start
 *  (ich_last_error() says why: see above). */
ICH_API int32_t ich_dist_rank(void);

/** The number of ranks of the run (1 for a single process), starting the
 *  communicator if needed. -1 when it cannot start (ich_last_error() says
 *  why). */
ICH_API int32_t ich_dist_size(void);

/** One line on the communicator into `text` (size bytes): "single process
 *  (no MPI launcher seen)", "single process (ICH_DIST=off)", or "mpi: rank R
 *  of N, Open MPI v4.1.4, MPI 3.1, /path/to/libich-mpi.so". Starts it if
 *  needed. Errors: ICH_ERR_INVALID_ARGUMENT (NULL or empty text; a bad
 *  ICH_DIST or ICH_DIST_TIMEOUT), ICH_ERR_NOT_FOUND (launched as several
 *  ranks, libich-mpi.so not found), ICH_ERR_UNSUPPORTED (found but cannot
 *  start, or MPI's size differs from the launcher's), ICH_ERR_FORMAT (not
 *  libich's plugin), ICH_ERR_SHAPE (`text` too small). */
ICH_API ich_status ich_dist_describe(char *text, size_t size);

/** Wait until every rank has called it (MPI_Barrier, under the
 *  ICH_DIST_TIMEOUT watchdog): e.g. rank 0 prepares files the others then
 *  read. Every rank must call it. Starts the communicator if needed;
 *  returns at once in a single process. Errors: those of
 *  ich_dist_describe() when the communicator cannot start, ICH_ERR_IO
 *  when MPI fails. */
ICH_API ich_status ich_dist_barrier(void);

/** This rank failed and is about to end (exit with an error): at its exit,
 *  every rank of the run is ended (MPI_Abort, with Open MPI's message)
 *  instead of this one waiting in MPI_Finalize for ranks that may wait for
 *  it in a collective operation. ich_train() calls it itself when it fails;
 *  programs call it before exiting with an error after the communicator
 *  started (ich-train does; Python's ich.dist does on an uncaught
 *  exception). Nothing in a single process or before the communicator
 *  started (MPI is not started by this call). */
ICH_API void ich_dist_mark_failed(void);

#ifdef __cplusplus
}
#endif

#endif
