/* Setting up a backend's own collectives (NCCL in the CUDA plugin) for a
 * distributed run, and calling them (backend/backend.h).
 *
 * The set-up is once per process and backend. Its rule is that all ranks
 * make the same choice: a rank that sums with NCCL while another sums
 * with MPI would wait for ever, so each rank's success is counted with an
 * allreduce and the backend's sums are used only when every rank has
 * them. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"
#include "dist/comm.h"

static struct {
    pthread_mutex_t lock;
    const ich_backend *backend; /* the one the answer is for (NULL: none yet) */
    int available;
} g = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static int has_collectives(const ich_backend *backend)
{
    return ICH_PLUGIN_HAS(backend, allreduce_sum) && backend->collective_load &&
           backend->collective_id && backend->collective_init && backend->allreduce_sum;
}

/* How many ranks had `mine` == ICH_OK (an allreduce); this rank's
 * failure's message into `why` first (the allreduce may replace it). */
static ich_status count_ready(ich_status mine, const char *what, int64_t *ready, char *why,
                              size_t size)
{
    if (mine)
        snprintf(why, size, "%s", ich_last_error());
    *ready = mine == ICH_OK;
    return ich_comm_allreduce_int64(ready, 1, what);
}

/* The steps of the set-up, each followed by a count of the ranks that
 * succeeded, so that no rank enters the next (joining waits for every
 * rank) unless all can: load the library, make the id (rank 0), join.
 * *available as ich_backend_collectives says; *mine is this rank's own
 * failure, if any, and `why` its message. */
static ich_status agree(const ich_backend *backend, int *available, ich_status *mine, char *why,
                        size_t size)
{
    const int32_t rank = ich_comm_rank(), ranks = ich_comm_size();
    struct {
        int64_t bytes;
        unsigned char id[ICH_COLLECTIVE_ID_MAX];
    } made;
    memset(&made, 0, sizeof made);
    *mine = backend->collective_load();
    if (!*mine && rank == 0) {
        size_t bytes = 0;
        *mine = backend->collective_id(made.id, &bytes);
        if (!*mine && (bytes == 0 || bytes > sizeof made.id))
            *mine = ich_fail(ICH_ERR_INTERNAL, "%s: collective_id gave a %zu-byte id",
                             backend->name, bytes);
        made.bytes = (int64_t)bytes;
    }
    int64_t ready = 0;
    ich_status st = count_ready(*mine, "whether every rank can load the backend's collectives",
                                &ready, why, size);
    if (!st && ready == ranks)
        st = ich_comm_broadcast(&made, sizeof made, 0, "the backend's communicator id");
    if (st || ready != ranks)
        return st;
    *mine = backend->collective_init(rank, ranks, made.id, (size_t)made.bytes);
    st = count_ready(*mine, "whether every rank joined the backend's communicator", &ready, why,
                     size);
    *available = !st && ready == ranks;
    return st;
}

static ich_status set_up(const ich_backend *backend, int *available)
{
    const int32_t rank = ich_comm_rank(), ranks = ich_comm_size();
    ich_status mine = ICH_OK;
    char why[1024] = "";
    ich_status st = agree(backend, available, &mine, why, sizeof why);
    if (st)
        return st;
    if (mine)
        ich_log(ICH_LOG_WARNING, "%s: rank %d of %d: no collectives on the device (%s): "
                "gradients are summed through the host", backend->name, rank, ranks, why);
    else if (!*available)
        ich_log(ICH_LOG_WARNING, "%s: rank %d of %d: not every rank could start the device's "
                "collectives: gradients are summed through the host", backend->name, rank,
                ranks);
    else
        ich_log(ICH_LOG_INFO, "%s: gradients are summed on the device, by %d rank%s",
                backend->name, ranks, ranks == 1 ? "" : "s");
    return ICH_OK;
}

ich_status ich_backend_collectives(const ich_backend *backend, int *available)
{
    if (!backend || !available)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_backend_collectives: NULL argument");
    *available = 0;
    ich_status st = ich_comm_start();
    if (st || !has_collectives(backend))
        return st;
    pthread_mutex_lock(&g.lock);
    if (g.backend != backend) {
        int answer = 0;
        st = set_up(backend, &answer);
        if (!st) {
            g.backend = backend;
            g.available = answer;
        }
    }
    *available = !st && g.available;
    pthread_mutex_unlock(&g.lock);
    return st;
}

ich_status ich_backend_allreduce(const ich_backend *backend, float *data, int64_t count,
                                 const char *what)
{
    if (!backend || (!data && count > 0) || !what)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_backend_allreduce: NULL argument");
    if (!has_collectives(backend))
        return ich_fail(ICH_ERR_INTERNAL, "%s: no collectives (ich_backend_collectives first)",
                        backend->name);
    ich_status st = backend->allreduce_sum(data, count, ich_comm_timeout(), what);
    if (st && ich_comm_size() > 1)
        return ich_comm_abort_all(st, "%s", ich_last_error());
    return st;
}
