/* The CUDA plugin's collectives (ich_backend.collective_id,
 * collective_init, allreduce_sum; backend/plugin_api.h): NCCL, loaded at
 * run time (nccl_api.h), on the plugin's one stream, so a sum comes after
 * the work queued before it without an extra wait.
 *
 * One GPU per rank: NCCL refuses two ranks of one communicator on one
 * device, and the plugin picks each rank's device from the launcher's
 * local rank (backend.c). A failure here makes libich sum through the
 * host instead (ICH_NCCL=0 asks for that), on every rank.
 *
 * The wait for a sum polls the stream and NCCL's error state instead of
 * blocking in cudaStreamSynchronize: a peer that died leaves NCCL's kernel
 * waiting for ever, so past `timeout` seconds the communicator is aborted
 * (which ends that kernel) and the error names the rank and the step;
 * libich then ends every rank (backend/collective.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/nccl_api.h"

static struct {
    const ich_cuda_nccl *api;
    ncclComm_t comm;
    int32_t rank, ranks;
} g;

static ich_status nccl_error(const char *what, ncclResult_t result)
{
    ich_status code = result == ncclSystemError || result == ncclRemoteError ? ICH_ERR_IO
                      : result == ncclInvalidUsage                          ? ICH_ERR_UNSUPPORTED
                                                                            : ICH_ERR_INTERNAL;
    return cuda_fail(code, "cuda: NCCL %s failed: %s (ncclResult %d)", what,
                     g.api->GetErrorString(result), (int)result);
}

ich_status ich_cuda_collective_load(void)
{
    if (g.api)
        return ICH_OK;
    const char *choice = getenv("ICH_NCCL");
    if (choice && !strcmp(choice, "0"))
        return cuda_fail(ICH_ERR_UNSUPPORTED, "cuda: NCCL not used (ICH_NCCL=0)");
    char why[512] = "";
    g.api = ich_cuda_nccl_load(why, sizeof why);
    if (!g.api)
        return cuda_fail(ICH_ERR_UNSUPPORTED, "cuda: no NCCL: %s", why);
    cuda_log(ICH_LOG_DEBUG, "cuda: %s, NCCL %d.%d.%d", g.api->library, g.api->version / 10000,
             g.api->version / 100 % 100, g.api->version % 100);
    return ICH_OK;
}

ich_status ich_cuda_collective_id(void *id, size_t *bytes)
{
    if (!id || !bytes)
        return cuda_fail(ICH_ERR_INVALID_ARGUMENT, "cuda: collective_id: NULL id or bytes");
    ich_status status = ich_cuda_collective_load();
    if (status)
        return status;
    ncclUniqueId unique;
    ncclResult_t result = g.api->GetUniqueId(&unique);
    if (result != ncclSuccess)
        return nccl_error("ncclGetUniqueId", result);
    memcpy(id, &unique, sizeof unique);
    *bytes = sizeof unique;
    return ICH_OK;
}

ich_status ich_cuda_collective_init(int32_t rank, int32_t ranks, const void *id, size_t bytes)
{
    if (!id || bytes != sizeof(ncclUniqueId) || ranks < 1 || rank < 0 || rank >= ranks)
        return cuda_fail(ICH_ERR_INVALID_ARGUMENT,
                         "cuda: collective_init: rank %d of %d with a %zu-byte id (NCCL's has "
                         "%zu)", rank, ranks, bytes, sizeof(ncclUniqueId));
    ich_status status = ich_cuda_collective_load();
    if (status)
        return status;
    if (g.comm) {
        g.api->CommAbort(g.comm);
        g.comm = NULL;
    }
    ncclUniqueId unique;
    memcpy(&unique, id, sizeof unique);
    ncclResult_t result = g.api->CommInitRank(&g.comm, ranks, unique, rank);
    if (result != ncclSuccess) {
        g.comm = NULL;
        return nccl_error("ncclCommInitRank", result);
    }
    g.rank = rank;
    g.ranks = ranks;
    return ICH_OK;
}

static double seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

/* After an error the communicator is gone: a later sum fails at once. */
static ich_status abandon(ich_status status)
{
    g.api->CommAbort(g.comm);
    g.comm = NULL;
    return status;
}

/* Until the stream has done the queued sum, NCCL reports an error, or
 * `timeout` seconds (0: no limit) have passed. */
static ich_status wait_for_sum(double timeout, const char *what)
{
    const double start = seconds();
    for (;;) {
        cudaError_t error = cudaStreamQuery(ich_cuda_stream());
        if (error == cudaSuccess)
            return ICH_OK;
        if (error != cudaErrorNotReady)
            return abandon(ich_cuda_error(NULL, "allreduce (waiting for the stream)", error));
        ncclResult_t async = ncclSuccess;
        if (g.api->CommGetAsyncError(g.comm, &async) != ncclSuccess ||
            (async != ncclSuccess && async != ncclInProgress))
            return abandon(cuda_fail(ICH_ERR_IO,
                                     "cuda: rank %d of %d: the NCCL allreduce (%s) failed: %s",
                                     g.rank, g.ranks, what, g.api->GetErrorString(async)));
        if (timeout > 0 && seconds() - start > timeout)
            return abandon(cuda_fail(ICH_ERR_IO,
                                     "cuda: rank %d of %d waited more than %g s in the NCCL "
                                     "allreduce (%s)", g.rank, g.ranks, timeout, what));
        struct timespec pause = {0, 50 * 1000};
        nanosleep(&pause, NULL);
    }
}

ich_status ich_cuda_allreduce_sum(float *data, int64_t count, double timeout, const char *what)
{
    if (!g.comm)
        return cuda_fail(ICH_ERR_INTERNAL, "cuda: allreduce (%s) without a communicator "
                         "(collective_init failed or was not called)", what);
    if (count <= 0)
        return ICH_OK;
    if (!data)
        return cuda_fail(ICH_ERR_INVALID_ARGUMENT, "cuda: allreduce (%s): NULL data", what);
    ncclResult_t result = g.api->AllReduce(data, data, (size_t)count, ncclFloat32, ncclSum,
                                           g.comm, ich_cuda_stream());
    if (result != ncclSuccess)
        return abandon(nccl_error("ncclAllReduce", result));
    return wait_for_sum(timeout, what);
}
