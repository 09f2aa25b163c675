/* Internal: backends inside libich: the built-in CPU backend, choosing the
 * backend new models use, loading plugins.
 *
 * A backend supplies the layer implementations and its memory through the
 * table ich_backend. The CPU backend (oneDNN for convolution, pooling and
 * batch norm; OpenBLAS for matrix products) is built in. The CUDA backend
 * is a plugin, libich-cuda.so (libich/backend/cuda/), loaded with dlopen
 * by libich/backend/plugin.c; it exports one function,
 * ICH_BACKEND_PLUGIN_ENTRY, that returns its table. The model graph talks
 * to a backend only through this table, so the optimizers, checkpoints and
 * training driver run unchanged on either.
 *
 * Everything that crosses between libich and a plugin (the backend table,
 * the host services, the layer interface, the entry point, the interface
 * version and the rules for changing them) is in backend/plugin_api.h.
 */
#ifndef ICH_INTERNAL_BACKEND_H
#define ICH_INTERNAL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "backend/plugin_api.h"
#include "backend/layer.h"

/* The built-in CPU backend. */
const ich_backend *ich_backend_cpu(void);

/* The backend new models use: chosen by ich_backend_select(), else by the
 * ICH_BACKEND environment variable (auto|cpu|cuda, default auto) on first
 * use. Fails (with the reason) only when a backend that cannot start was
 * asked for by name. */
ich_status ich_backend_get(const ich_backend **out);

/* The backend new models use, falling back to the CPU when
 * ich_backend_get fails (for calls that cannot report an error). */
const ich_backend *ich_backend_current(void);

/* Load the named plugin backend ("cuda"): libich-<name>.so beside libich.so,
 * in the folders of ICH_PLUGIN_PATH, then on the dlopen search path. Loaded
 * once per process; later calls return the same table or the same error.
 * *path receives the file that was loaded (or the last one tried). */
ich_status ich_backend_plugin_load(const char *name, const ich_backend **out, const char **path);

/* ---- collectives on backend memory (backend/collective.c) --------------- */

/* Whether `backend` sums buffers in its own memory over the ranks of the
 * distributed run (dist/comm.h) with its own collectives (NCCL on CUDA:
 * ich_backend.collective_*), setting them up on the first call for this
 * backend: rank 0 makes the communicator's id, ich_comm_broadcast gives it
 * to every rank, every rank joins, and the ranks agree (an allreduce), so
 * that either all of them use the backend's sums or none does. A
 * collective: every rank calls it at the same point. *available is 0 when
 * the backend has no collectives or a rank could not start them (logged
 * with the reason, ICH_LOG_WARNING): sum on the host (ich_comm_*) then.
 * Errors: those of dist/comm.h's collectives. */
ich_status ich_backend_collectives(const ich_backend *backend, int *available);

/* Sum `count` floats at `data`, in `backend`'s memory, over the ranks, in
 * place, with the backend's collectives (after ich_backend_collectives
 * said they are available), waiting at most ich_comm_timeout() seconds.
 * `what` names the step in messages. A failure in a run of several ranks
 * ends every rank with its message (ich_comm_abort_all): the others may be
 * waiting in the same sum on their device. */
ich_status ich_backend_allreduce(const ich_backend *backend, float *data, int64_t count,
                                 const char *what);

#endif
