/* Internal: the binary interface between libich and its communicator
 * plugin, libich-mpi.so (libich/dist/mpi/), in one header.
 *
 * libich.so never links MPI: when the launcher says this process is one of
 * several ranks (dist/comm.c), libich finds libich-mpi.so as it finds the
 * CUDA plugin (core/plugins.h), calls its one entry point
 * ICH_DIST_PLUGIN_ENTRY, which starts MPI and returns the table of
 * collectives below. A single process loads nothing of MPI.
 *
 * Compatibility: the rules of backend/plugin_api.h. ICH_DIST_INTERFACE_VERSION
 * is the major version (libich refuses a plugin of another one); each
 * table begins with interface_version and size (sizeof the table as its
 * filler was compiled); members are only ever appended at the end, and a
 * table smaller than its first layout (ICH_DIST_*_MIN_SIZE) is refused.
 *
 * Every collective is called by every rank, in the same order, from one
 * thread at a time (dist/comm.c serialises the calls). It waits for the
 * other ranks at most `timeout` seconds (0: without limit); past that, it
 * does not return: the plugin writes a message naming this rank and `what`
 * to stderr and aborts every rank (the watchdog: a rank that died or hangs
 * must not leave the others waiting for ever). An MPI error returns an
 * ich_status with a message (host->fail). */
#ifndef ICH_INTERNAL_DIST_PLUGIN_API_H
#define ICH_INTERNAL_DIST_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ICH_DIST_INTERFACE_VERSION 1
#define ICH_DIST_PLUGIN_ENTRY "ich_dist_plugin"

/* Element types of allreduce_sum. */
typedef enum ich_dist_type {
    ICH_DIST_FLOAT = 0,
    ICH_DIST_DOUBLE = 1,
    ICH_DIST_INT64 = 2
} ich_dist_type;

/* What libich lends the plugin. */
typedef struct ich_dist_host {
    uint32_t interface_version; /* ICH_DIST_INTERFACE_VERSION */
    uint32_t size;              /* sizeof(ich_dist_host) as libich was compiled */
    /* Set the calling thread's error message and return `status`. */
    ich_status (*fail)(ich_status status, const char *fmt, ...);
    void (*log)(ich_log_level level, const char *fmt, ...);
    /* Append new members here. */
} ich_dist_host;

/* The communicator: MPI_COMM_WORLD's ranks (a duplicate of it, so a
 * program's own MPI traffic never mixes with libich's). */
typedef struct ich_dist_ops {
    uint32_t interface_version; /* ICH_DIST_INTERFACE_VERSION */
    uint32_t size;              /* sizeof(ich_dist_ops) as the plugin was compiled */
    /* One line: the MPI library and its version ("Open MPI v4.1.4, MPI 3.1"). */
    const char *(*describe)(void);
    int32_t (*rank)(void);
    int32_t (*ranks)(void);
    /* Sum `count` elements of `type` over the ranks, in place: every rank
     * ends with the same sums, bit for bit. */
    ich_status (*allreduce_sum)(void *data, size_t count, int32_t type, double timeout,
                                const char *what);
    /* `bytes` bytes of root's `data` into every rank's `data`. */
    ich_status (*broadcast)(void *data, size_t bytes, int32_t root, double timeout,
                            const char *what);
    /* Every rank's `bytes` bytes (bytes == counts[rank]) into `out` on every
     * rank (allgather) or on root only (gather; `out` unused elsewhere), in
     * rank order, rank r's at offset counts[0] + ... + counts[r-1]. */
    ich_status (*allgather)(const void *data, size_t bytes, void *out, const size_t *counts,
                            double timeout, const char *what);
    ich_status (*gather)(const void *data, size_t bytes, void *out, const size_t *counts,
                         int32_t root, double timeout, const char *what);
    ich_status (*barrier)(double timeout, const char *what);
    /* Write `message` to stderr and end every rank (MPI_Abort). Never
     * returns. */
    void (*abort_all)(const char *message);
    /* The process will end after a failure: at exit, abort every rank
     * instead of finalizing MPI (MPI_Finalize waits for the other ranks,
     * which may be waiting in a collective this rank will never join). */
    void (*mark_failed)(void);
    /* Append new members here (see the rules at the top). */
} ich_dist_ops;

/* The first layouts of this major version: smaller tables are refused. */
#define ICH_DIST_OPS_MIN_SIZE (offsetof(ich_dist_ops, mark_failed) + sizeof(void (*)(void)))

/* The entry point: starts MPI (unless the program already did) and returns
 * the table, or NULL after host->fail() said why. *version receives the
 * plugin's ICH_DIST_INTERFACE_VERSION in any case; a plugin whose
 * interface differs from host->interface_version returns NULL. */
typedef const ich_dist_ops *(*ich_dist_plugin_fn)(const ich_dist_host *host, uint32_t *version);

#ifdef __cplusplus
}
#endif
#endif
