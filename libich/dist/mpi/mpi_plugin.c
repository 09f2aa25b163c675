/* libich-mpi.so: libich's communicator over MPI (dist/plugin_api.h).
 *
 * Every collective is MPI's nonblocking one (MPI_Iallreduce, ...) followed
 * by a loop of MPI_Test: MPI's blocking calls wait for ever when a rank
 * hangs or its machine is gone, the loop gives up after the timeout and
 * aborts every rank with a message (the watchdog). The loop spins for the
 * first 2 ms (a gradient allreduce between ranks of one machine takes
 * less) and then sleeps 100 us between tests, so a rank that waits long
 * for a slower one leaves the CPU to it.
 *
 * MPI is started here unless the program already started it (mpi4py, its
 * own MPI_Init), and finished at exit by whoever started it. */
#include <dlfcn.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist/plugin_api.h"

#define EXPORT __attribute__((visibility("default")))

static const ich_dist_host *g_host;
static MPI_Comm g_comm = MPI_COMM_NULL;
static int g_rank, g_ranks;
static int g_started_mpi; /* this plugin called MPI_Init: it finalizes */
static volatile int g_failed;
static char g_describe[512];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ich_status mpi_error(int code, const char *call, const char *what)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int length = 0;
    MPI_Error_string(code, text, &length);
    return g_host->fail(ICH_ERR_IO, "MPI rank %d of %d: %s (%s) failed: %s", g_rank, g_ranks,
                        call, what, text);
}

static void abort_all(const char *message)
{
    /* stderr directly: the process ends here, and the log callback may
     * not print. One write, so the ranks' lines do not interleave. */
    char line[2048];
    int n = snprintf(line, sizeof line, "libich: %s: aborting every rank\n", message);
    if (n > 0 && write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0)
        n = 0;
    g_failed = 1;
    MPI_Abort(g_comm != MPI_COMM_NULL ? g_comm : MPI_COMM_WORLD, 1);
    _exit(1); /* MPI_Abort does not return; this is in case it does */
}

/* Wait for `request`, at most `timeout` seconds (0: for ever). */
static ich_status wait_for(MPI_Request *request, double timeout, const char *call,
                           const char *what)
{
    const double start = now();
    const struct timespec nap = {0, 100000};
    for (long tests = 0;; tests++) {
        int done = 0;
        int code = MPI_Test(request, &done, MPI_STATUS_IGNORE);
        if (code != MPI_SUCCESS)
            return mpi_error(code, call, what);
        if (done)
            return ICH_OK;
        if ((tests & 63) != 0)
            continue;
        double waited = now() - start;
        if (timeout > 0 && waited > timeout) {
            char message[1024];
            snprintf(message, sizeof message,
                     "rank %d of %d waited more than %g s in %s (%s) for the other ranks "
                     "(ICH_DIST_TIMEOUT): a rank died, hangs or was never started",
                     g_rank, g_ranks, timeout, call, what);
            abort_all(message);
        }
        if (waited > 0.002)
            nanosleep(&nap, NULL);
    }
}

static MPI_Datatype datatype(int32_t type)
{
    switch (type) {
    case ICH_DIST_FLOAT: return MPI_FLOAT;
    case ICH_DIST_DOUBLE: return MPI_DOUBLE;
    case ICH_DIST_INT64: return MPI_INT64_T;
    default: return MPI_DATATYPE_NULL;
    }
}

static size_t type_size(int32_t type)
{
    return type == ICH_DIST_FLOAT ? sizeof(float) : 8;
}

/* MPI counts are ints: long buffers go in pieces of at most 2^30 elements. */
#define PIECE ((size_t)1 << 30)

static ich_status allreduce_sum(void *data, size_t count, int32_t type, double timeout,
                                const char *what)
{
    MPI_Datatype t = datatype(type);
    if (t == MPI_DATATYPE_NULL)
        return g_host->fail(ICH_ERR_INVALID_ARGUMENT, "allreduce (%s): unknown type %d", what,
                            type);
    for (size_t done = 0; done < count; done += PIECE) {
        size_t n = count - done < PIECE ? count - done : PIECE;
        MPI_Request request;
        int code = MPI_Iallreduce(MPI_IN_PLACE, (char *)data + done * type_size(type), (int)n, t,
                                  MPI_SUM, g_comm, &request);
        ich_status st = code != MPI_SUCCESS ? mpi_error(code, "MPI_Iallreduce", what)
                                            : wait_for(&request, timeout, "allreduce", what);
        if (st)
            return st;
    }
    return ICH_OK;
}

static ich_status broadcast(void *data, size_t bytes, int32_t root, double timeout,
                            const char *what)
{
    for (size_t done = 0; done < bytes; done += PIECE) {
        size_t n = bytes - done < PIECE ? bytes - done : PIECE;
        MPI_Request request;
        int code = MPI_Ibcast((char *)data + done, (int)n, MPI_BYTE, root, g_comm, &request);
        ich_status st = code != MPI_SUCCESS ? mpi_error(code, "MPI_Ibcast", what)
                                            : wait_for(&request, timeout, "broadcast", what);
        if (st)
            return st;
    }
    return ICH_OK;
}

/* MPI's int counts and displacements of a gather; fails past 2 GiB. */
static ich_status int_counts(const size_t *counts, int *sizes, int *offsets, const char *what)
{
    size_t total = 0;
    for (int r = 0; r < g_ranks; r++) {
        if (counts[r] > (size_t)INT_MAX || total > (size_t)INT_MAX - counts[r])
            return g_host->fail(ICH_ERR_UNSUPPORTED, "gather (%s): more than 2 GiB in all", what);
        sizes[r] = (int)counts[r];
        offsets[r] = (int)total;
        total += counts[r];
    }
    return ICH_OK;
}

static ich_status gather_any(const void *data, size_t bytes, void *out, const size_t *counts,
                             int32_t root, double timeout, const char *what)
{
    int *sizes = calloc((size_t)g_ranks, sizeof *sizes);
    int *offsets = calloc((size_t)g_ranks, sizeof *offsets);
    ich_status st = sizes && offsets ? int_counts(counts, sizes, offsets, what)
                                     : g_host->fail(ICH_ERR_NO_MEMORY, "gather: out of memory");
    MPI_Request request;
    int code = MPI_SUCCESS;
    if (!st && bytes != counts[g_rank])
        st = g_host->fail(ICH_ERR_INTERNAL, "gather (%s): %zu bytes but counts say %zu", what,
                          bytes, counts[g_rank]);
    if (!st) {
        code = root < 0 ? MPI_Iallgatherv(data, (int)bytes, MPI_BYTE, out, sizes, offsets,
                                          MPI_BYTE, g_comm, &request)
                        : MPI_Igatherv(data, (int)bytes, MPI_BYTE, out, sizes, offsets,
                                       MPI_BYTE, root, g_comm, &request);
        st = code != MPI_SUCCESS ? mpi_error(code, root < 0 ? "MPI_Iallgatherv" : "MPI_Igatherv",
                                             what)
                                 : wait_for(&request, timeout,
                                            root < 0 ? "allgather" : "gather", what);
    }
    free(sizes);
    free(offsets);
    return st;
}

static ich_status allgather(const void *data, size_t bytes, void *out, const size_t *counts,
                            double timeout, const char *what)
{
    return gather_any(data, bytes, out, counts, -1, timeout, what);
}

static ich_status gather(const void *data, size_t bytes, void *out, const size_t *counts,
                         int32_t root, double timeout, const char *what)
{
    return gather_any(data, bytes, out, counts, root, timeout, what);
}

static ich_status barrier(double timeout, const char *what)
{
    MPI_Request request;
    int code = MPI_Ibarrier(g_comm, &request);
    return code != MPI_SUCCESS ? mpi_error(code, "MPI_Ibarrier", what)
                               : wait_for(&request, timeout, "barrier", what);
}

static const char *describe(void) { return g_describe; }
static int32_t rank(void) { return g_rank; }
static int32_t ranks(void) { return g_ranks; }
static void mark_failed(void) { g_failed = 1; }

static const ich_dist_ops g_ops = {
    .interface_version = ICH_DIST_INTERFACE_VERSION,
    .size = sizeof(ich_dist_ops),
    .describe = describe,
    .rank = rank,
    .ranks = ranks,
    .allreduce_sum = allreduce_sum,
    .broadcast = broadcast,
    .allgather = allgather,
    .gather = gather,
    .barrier = barrier,
    .abort_all = abort_all,
    .mark_failed = mark_failed,
};

/* At exit: finish MPI when this plugin started it, or, after a failure,
 * end every rank (MPI_Finalize would wait for ranks that wait for us). */
static void at_exit(void)
{
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
        return;
    if (g_failed)
        MPI_Abort(g_comm != MPI_COMM_NULL ? g_comm : MPI_COMM_WORLD, 1);
    if (!g_started_mpi)
        return;
    if (g_comm != MPI_COMM_NULL)
        MPI_Comm_free(&g_comm);
    MPI_Finalize();
}

/* libich opens this plugin RTLD_LOCAL; Open MPI's own components (its MCA
 * plugins, which it dlopens in MPI_Init) need libmpi's symbols global, as
 * mpi4py arranges too. */
static void make_mpi_global(void)
{
    Dl_info info;
    if (dladdr((void *)MPI_Init, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

static ich_status start(void)
{
    int initialized = 0, provided = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        make_mpi_global();
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
            return g_host->fail(ICH_ERR_UNSUPPORTED, "MPI_Init_thread failed");
        g_started_mpi = 1;
    } else {
        MPI_Query_thread(&provided);
    }
    atexit(at_exit);
    /* libich's calls come from one thread at a time, any thread. */
    if (provided < MPI_THREAD_SERIALIZED)
        return g_host->fail(ICH_ERR_UNSUPPORTED, "MPI gives thread level %d, libich needs "
                            "MPI_THREAD_SERIALIZED", provided);
    if (MPI_Comm_dup(MPI_COMM_WORLD, &g_comm) != MPI_SUCCESS)
        return g_host->fail(ICH_ERR_UNSUPPORTED, "MPI_Comm_dup failed");
    MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g_comm, &g_rank);
    MPI_Comm_size(g_comm, &g_ranks);
    char library[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int length = 0, version = 0, subversion = 0;
    MPI_Get_library_version(library, &length);
    MPI_Get_version(&version, &subversion);
    /* the first line: "Open MPI v4.1.4, package: ..." up to the comma */
    library[strcspn(library, ",\n")] = '\0';
    snprintf(g_describe, sizeof g_describe, "%s, MPI %d.%d", library, version, subversion);
    return ICH_OK;
}

EXPORT const ich_dist_ops *ich_dist_plugin(const ich_dist_host *host, uint32_t *version)
{
    *version = ICH_DIST_INTERFACE_VERSION;
    if (!host || host->interface_version != ICH_DIST_INTERFACE_VERSION ||
        host->size < offsetof(ich_dist_host, log) + sizeof host->log)
        return NULL;
    g_host = host;
    return start() == ICH_OK ? &g_ops : NULL;
}
