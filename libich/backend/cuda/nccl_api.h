/* Internal to the CUDA plugin: the NCCL functions its collectives
 * (collective.c) call, reached through a table filled at run time, so the
 * plugin links no NCCL: a GPU machine without libnccl.so.2 loads the
 * plugin and runs single-process; only a distributed run asks for NCCL,
 * and falls back to summing through the host when it is missing.
 *
 * nccl_load.c fills the table from libnccl.so.2 (dlopen). The CPU
 * emulation of CUDA (tests/cuda_emu) builds emu_nccl.cpp instead of
 * nccl_load.c: the same table, its sums going through libich's own
 * communicator (ich_plugin_host.allreduce_float). */
#ifndef ICH_INTERNAL_BACKEND_CUDA_NCCL_API_H
#define ICH_INTERNAL_BACKEND_CUDA_NCCL_API_H

#include <stddef.h>

#include <cuda_runtime.h>

#ifdef ICH_CUDA_HAVE_NCCL_H
#include <nccl.h>
#else
/* The parts of nccl.h used here, as NCCL 2 declares them (stable since
 * 2.0; ncclInProgress since 2.14), for toolkits without NCCL's headers
 * and for the emulation. The build uses the real nccl.h when it finds it
 * (ICH_CUDA_HAVE_NCCL_H), which checks these against it. */
#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;
typedef struct ncclComm *ncclComm_t;
typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7
} ncclResult_t;
typedef enum { ncclFloat32 = 7 } ncclDataType_t;
typedef enum { ncclSum = 0 } ncclRedOp_t;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* NCCL's functions, under their names without the prefix. */
typedef struct ich_cuda_nccl {
    const char *library; /* what was loaded, for messages */
    int version;         /* NCCL_VERSION_CODE of the library (22809: 2.28.9) */
    ncclResult_t (*GetUniqueId)(ncclUniqueId *id);
    ncclResult_t (*CommInitRank)(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank);
    ncclResult_t (*AllReduce)(const void *send, void *receive, size_t count,
                              ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                              cudaStream_t stream);
    ncclResult_t (*CommGetAsyncError)(ncclComm_t comm, ncclResult_t *error);
    /* Ends the communicator's work (kernels waiting for a dead peer
     * included) and frees it. */
    ncclResult_t (*CommAbort)(ncclComm_t comm);
    const char *(*GetErrorString)(ncclResult_t result);
} ich_cuda_nccl;

/* The table, loaded on the first call; later calls give the same answer.
 * NULL, with the reason in `why`, when NCCL cannot be loaded. */
const ich_cuda_nccl *ich_cuda_nccl_load(char *why, size_t size);

#ifdef __cplusplus
}
#endif
#endif
