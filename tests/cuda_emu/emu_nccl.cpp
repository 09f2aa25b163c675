// NCCL on the CPU, for the emulation of the CUDA plugin
// (tests/cuda_emu/README.md): built instead of libich/backend/cuda/
// nccl_load.c, it fills the same table (nccl_api.h), so the plugin's
// collective code (collective.c) runs unchanged.
//
// A real NCCL moves data between GPUs itself; this one has no transport
// of its own and sums through the communicator libich lends the plugin
// (ich_plugin_host.allreduce_float: dist/comm.h over MPI), in host memory.
// The sum is queued on the emulated stream as NCCL's kernel is on the
// GPU's, so it runs when the plugin waits for the stream, reading device
// memory that is open to the host only then.
//
// What it checks as NCCL would fail: an id that did not come from
// ncclGetUniqueId, ranks that disagree on the id or their count, buffers
// that are not device memory, another type or operation than float sums.
// Environment: ICH_EMU_NO_NCCL=1 plays a machine without libnccl.so.2;
// ICH_EMU_NCCL_STALL=1 makes every sum hang, as a kernel waiting for a
// dead peer does (the plugin's wait must give up and abort).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/nccl_api.h"

struct ncclComm {
    int rank, ranks;
    ncclResult_t error; // what a failed sum left (CommGetAsyncError)
};

namespace {

const char magic[] = "libich emulated NCCL id";

// 48 bits of the id after the magic, as three exact floats (16 bits each).
void id_digits(const ncclUniqueId &id, float digits[3])
{
    uint64_t bits = 0;
    memcpy(&bits, id.internal + sizeof magic, sizeof bits);
    for (int i = 0; i < 3; i++)
        digits[i] = (float)((bits >> (16 * i)) & 0xffff);
}

ich_status host_sum(float *data, size_t count, const char *what)
{
    const ich_plugin_host *host = ich_cuda_host;
    if (!ICH_PLUGIN_HAS(host, allreduce_float) || !host->allreduce_float) {
        ich_emu_misuse(cudaErrorInvalidValue,
                       "emulated NCCL: libich's host table has no allreduce_float");
        return ICH_ERR_UNSUPPORTED;
    }
    return host->allreduce_float(data, count, what);
}

ncclResult_t get_unique_id(ncclUniqueId *id)
{
    memset(id, 0, sizeof *id);
    memcpy(id->internal, magic, sizeof magic);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t bits = (uint64_t)now.tv_nsec * 2654435761u ^ (uint64_t)getpid() << 20;
    bits |= 1; // never all zero: a zeroed id must not pass for this one
    memcpy(id->internal + sizeof magic, &bits, sizeof bits);
    return ncclSuccess;
}

ncclResult_t comm_init_rank(ncclComm_t *comm, int ranks, ncclUniqueId id, int rank)
{
    *comm = NULL;
    if (memcmp(id.internal, magic, sizeof magic) != 0 || ranks < 1 || rank < 0 ||
        rank >= ranks) {
        ich_emu_misuse(cudaErrorInvalidValue,
                       "emulated ncclCommInitRank: rank %d of %d, id %s", rank, ranks,
                       memcmp(id.internal, magic, sizeof magic) ? "not from ncclGetUniqueId"
                                                                : "ok");
        return ncclInvalidArgument;
    }
    // As NCCL's bootstrap, every rank meets the others: they must agree on
    // the id and the count (the sum of 1s is the count, of the ranks
    // 0 + 1 + ... + n-1, of each id digit n times the digit).
    float mine[6] = {1.0f, (float)rank, 0, 0, 0, (float)ranks};
    id_digits(id, mine + 2);
    float all[6];
    memcpy(all, mine, sizeof all);
    if (host_sum(all, 6, "emulated NCCL: joining the communicator"))
        return ncclSystemError;
    bool agree = all[0] == (float)ranks && all[1] == (float)ranks * (ranks - 1) / 2 &&
                 all[5] == (float)ranks * ranks;
    for (int i = 2; i < 5; i++)
        agree = agree && all[i] == mine[i] * ranks;
    if (!agree) {
        ich_emu_misuse(cudaErrorInvalidValue,
                       "emulated ncclCommInitRank: rank %d of %d: the ranks disagree on the id "
                       "or their count", rank, ranks);
        return ncclInvalidUsage;
    }
    *comm = new ncclComm{rank, ranks, ncclSuccess};
    return ncclSuccess;
}

ncclResult_t all_reduce(const void *send, void *receive, size_t count, ncclDataType_t type,
                        ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)
{
    (void)stream;
    const size_t bytes = count * sizeof(float);
    if (!comm || type != ncclFloat32 || op != ncclSum || !ich_emu_is_device(send, bytes) ||
        !ich_emu_is_device(receive, bytes)) {
        ich_emu_misuse(cudaErrorInvalidValue,
                       "emulated ncclAllReduce(%p, %p, %zu, type %d, op %d): float sums of "
                       "device buffers only", send, receive, count, (int)type, (int)op);
        return ncclInvalidArgument;
    }
    const char *stall = getenv("ICH_EMU_NCCL_STALL");
    if (stall && !strcmp(stall, "1")) {
        ich_emu_stall(1);
        return ncclSuccess;
    }
    float *sums = (float *)receive;
    ich_emu_enqueue([=]() {
        if (send != receive)
            memmove(sums, send, bytes);
        if (host_sum(sums, count, "emulated NCCL allreduce"))
            comm->error = ncclSystemError;
    });
    return ncclSuccess;
}

ncclResult_t comm_get_async_error(ncclComm_t comm, ncclResult_t *error)
{
    *error = comm ? comm->error : ncclInvalidArgument;
    return comm ? ncclSuccess : ncclInvalidArgument;
}

ncclResult_t comm_abort(ncclComm_t comm)
{
    ich_emu_stall(0);
    delete comm;
    return ncclSuccess;
}

const char *get_error_string(ncclResult_t result)
{
    switch (result) {
    case ncclSuccess: return "no error";
    case ncclSystemError: return "unhandled system error (emulated)";
    case ncclInvalidArgument: return "invalid argument (emulated)";
    case ncclInvalidUsage: return "invalid usage (emulated)";
    default: return "error (emulated)";
    }
}

} // namespace

extern "C" const ich_cuda_nccl *ich_cuda_nccl_load(char *why, size_t size)
{
    static const ich_cuda_nccl table = {
        "the CPU emulation of NCCL (tests/cuda_emu)", 22809, get_unique_id, comm_init_rank,
        all_reduce, comm_get_async_error, comm_abort, get_error_string};
    const char *missing = getenv("ICH_EMU_NO_NCCL");
    if (missing && !strcmp(missing, "1")) {
        snprintf(why, size, "libnccl.so.2 cannot be loaded (ICH_EMU_NO_NCCL=1: the emulation "
                 "plays a machine without NCCL)");
        return NULL;
    }
    return &table;
}
