/* The communicator of a distributed run: deciding from the launcher's
 * environment, loading libich-mpi.so, the collectives (see dist/comm.h),
 * and the public ich_dist_* calls (include/ich/dist.h). */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ich/dist.h"

#include "core/error.h"
#include "core/plugins.h"
#include "dist/comm.h"
#include "dist/plugin_api.h"

#define DEFAULT_TIMEOUT 300.0

static const ich_dist_host g_host = {
    .interface_version = ICH_DIST_INTERFACE_VERSION,
    .size = sizeof(ich_dist_host),
    .fail = ich_fail,
    .log = ich_log,
};

static struct {
    pthread_mutex_t lock; /* the start, and every collective after it */
    int started;
    ich_status status;
    const ich_dist_ops *ops; /* NULL: a single process */
    int32_t rank, size;
    double timeout;
    char path[4096];
    char text[8192]; /* the describe line, or the error */
} g = {PTHREAD_MUTEX_INITIALIZER, 0, ICH_OK, NULL, 0, 1, DEFAULT_TIMEOUT, "", ""};

/* ---- Deciding ------------------------------------------------------------- */

/* A launcher's environment variable as a count (-1 when unset or not a
 * number). */
static long env_count(const char *name)
{
    const char *value = getenv(name);
    if (!value || !*value)
        return -1;
    char *end = NULL;
    errno = 0;
    long n = strtol(value, &end, 10);
    return errno || *end || n < 0 ? -1 : n;
}

/* Whether a launcher started this process as one of several: *size the
 * launcher's count (-1: unknown, PMIx gives only the rank), *source the
 * variable that says so. */
static int launched_as_many(long *size, const char **source)
{
    static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                        "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        long n = env_count(sizes[i]);
        if (n >= 0) {
            *size = n;
            *source = sizes[i];
            return n > 1;
        }
    }
    *size = -1;
    *source = "PMIX_RANK";
    return env_count("PMIX_RANK") >= 0;
}

static ich_status read_timeout(double *timeout)
{
    const char *value = getenv("ICH_DIST_TIMEOUT");
    *timeout = DEFAULT_TIMEOUT;
    if (!value || !*value)
        return ICH_OK;
    char *end = NULL;
    double t = strtod(value, &end);
    if (*end || !isfinite(t) || t < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ICH_DIST_TIMEOUT=%s: not a number of seconds "
                        "(>= 0; 0: no limit; default %g)", value, DEFAULT_TIMEOUT);
    *timeout = t;
    return ICH_OK;
}

/* ---- Loading the plugin ----------------------------------------------------- */

static ich_status check_table(const ich_dist_ops *ops, uint32_t version)
{
    if (version != ICH_DIST_INTERFACE_VERSION)
        return ich_fail(ICH_ERR_UNSUPPORTED, "%s was built for communicator interface %u, this "
                        "libich %s has interface %d: use the plugin built with this libich",
                        g.path, version, ich_version(), ICH_DIST_INTERFACE_VERSION);
    if (!ops) {
        char why[4096];
        snprintf(why, sizeof why, "%s", ich_last_error());
        return ich_fail(ICH_ERR_UNSUPPORTED, "%s could not start: %s", g.path,
                        *why ? why : "no reason given");
    }
    if (ops->interface_version != ICH_DIST_INTERFACE_VERSION || ops->size < ICH_DIST_OPS_MIN_SIZE)
        return ich_fail(ICH_ERR_UNSUPPORTED, "%s returned a table of interface %u, %u bytes; "
                        "this libich %s needs interface %d, at least %u bytes: use the plugin "
                        "built with this libich", g.path, ops->interface_version, ops->size,
                        ich_version(), ICH_DIST_INTERFACE_VERSION,
                        (unsigned)ICH_DIST_OPS_MIN_SIZE);
    return ICH_OK;
}

static ich_status load_plugin(const ich_dist_ops **out)
{
    char error[4096];
    ich_status st;
    void *handle = ich_plugin_open("libich-mpi.so", NULL, g.path, sizeof g.path, error,
                                   sizeof error, &st);
    if (!handle)
        return ich_fail(st, "%s", error);
    ich_dist_plugin_fn entry = (ich_dist_plugin_fn)dlsym(handle, ICH_DIST_PLUGIN_ENTRY);
    if (!entry)
        return ich_fail(ICH_ERR_FORMAT, "%s has no %s(): not libich's communicator plugin",
                        g.path, ICH_DIST_PLUGIN_ENTRY);
    uint32_t version = 0;
    ich_clear_error();
    const ich_dist_ops *ops = entry(&g_host, &version);
    st = check_table(ops, version);
    *out = st ? NULL : ops;
    return st;
}

/* The communicator's start, with g.lock held. */
static ich_status start_locked(void)
{
    const char *mode = getenv("ICH_DIST");
    long launched = -1;
    const char *source = NULL;
    int many = launched_as_many(&launched, &source);
    ich_status st = read_timeout(&g.timeout);
    if (st)
        return st;
    if (mode && *mode && strcmp(mode, "auto") && strcmp(mode, "mpi") && strcmp(mode, "off"))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ICH_DIST=%s: unknown (auto, mpi or off)",
                        mode);
    int off = mode && !strcmp(mode, "off"), forced = mode && !strcmp(mode, "mpi");
    if (off || (!many && !forced)) {
        snprintf(g.text, sizeof g.text, "single process (%s)",
                 off ? "ICH_DIST=off" : "no MPI launcher seen");
        return ICH_OK;
    }
    const ich_dist_ops *ops = NULL;
    st = load_plugin(&ops);
    if (!st && launched > 0 && ops->ranks() != launched)
        st = ich_fail(ICH_ERR_UNSUPPORTED, "%s: MPI sees %d rank(s), the launcher %ld: the "
                      "launcher (mpirun, srun) is not of the MPI libich-mpi.so was built with",
                      g.path, ops->ranks(), launched);
    if (st) {
        char why[8192];
        snprintf(why, sizeof why, "%s", ich_last_error());
        if (forced && !many)
            return ich_fail(st, "ICH_DIST=mpi, but the communicator cannot start: %s", why);
        return ich_fail(st, "this process was launched as one of several ranks (%s=%s) but "
                        "the communicator cannot start: %s; refusing to run as independent "
                        "processes writing the same files (ICH_DIST=off allows that)",
                        source, getenv(source), why);
    }
    g.ops = ops;
    g.rank = ops->rank();
    g.size = ops->ranks();
    snprintf(g.text, sizeof g.text, "mpi: rank %d of %d, %s, %s", g.rank, g.size,
             ops->describe(), g.path);
    ich_log(ICH_LOG_INFO, "distributed: %s", g.text);
    return ICH_OK;
}

ich_status ich_comm_start(void)
{
    pthread_mutex_lock(&g.lock);
    if (!g.started) {
        g.status = start_locked();
        if (g.status)
            snprintf(g.text, sizeof g.text, "%s", ich_last_error());
        g.started = 1;
    }
    ich_status st = g.status;
    if (st)
        ich_fail(st, "%s", g.text);
    pthread_mutex_unlock(&g.lock);
    return st;
}

int32_t ich_comm_rank(void)
{
    return ich_comm_start() ? 0 : g.rank;
}

int32_t ich_comm_size(void)
{
    return ich_comm_start() ? 1 : g.size;
}

double ich_comm_timeout(void)
{
    ich_comm_start();
    return g.timeout;
}

ich_status ich_comm_describe(char *text, size_t size)
{
    if (!text || size == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dist_describe: NULL or empty text");
    text[0] = '\0';
    ich_status st = ich_comm_start();
    if (st)
        return st;
    if ((size_t)snprintf(text, size, "%s", g.text) >= size)
        return ich_fail(ICH_ERR_SHAPE, "ich_dist_describe: text holds %zu bytes, too few", size);
    return ICH_OK;
}

/* ---- Collectives ---------------------------------------------------------------- */

/* Started, and more than one rank: the plugin is called (with g.lock). */
static ich_status begin(int *many)
{
    ich_status st = ich_comm_start();
    *many = !st && g.ops != NULL;
    if (*many)
        pthread_mutex_lock(&g.lock);
    return st;
}

static ich_status end(int many, ich_status st)
{
    if (many)
        pthread_mutex_unlock(&g.lock);
    return st;
}

/* The watchdog waits ICH_DIST_TIMEOUT seconds, or `at_least` when longer
 * (never a limit when ICH_DIST_TIMEOUT is 0: none). */
static ich_status allreduce(void *data, size_t count, int32_t type, double at_least,
                            const char *what)
{
    int many = 0;
    ich_status st = begin(&many);
    double timeout = g.timeout > 0 && at_least > g.timeout ? at_least : g.timeout;
    if (!st && many && count > 0)
        st = g.ops->allreduce_sum(data, count, type, timeout, what);
    return end(many, st);
}

ich_status ich_comm_allreduce_float(float *data, size_t count, const char *what)
{
    return allreduce(data, count, ICH_DIST_FLOAT, 0, what);
}

ich_status ich_comm_allreduce_double(double *data, size_t count, const char *what)
{
    return allreduce(data, count, ICH_DIST_DOUBLE, 0, what);
}

ich_status ich_comm_allreduce_int64(int64_t *data, size_t count, const char *what)
{
    return allreduce(data, count, ICH_DIST_INT64, 0, what);
}

ich_status ich_comm_allreduce_int64_within(int64_t *data, size_t count, double timeout,
                                           const char *what)
{
    return allreduce(data, count, ICH_DIST_INT64, timeout, what);
}

ich_status ich_comm_broadcast(void *data, size_t bytes, int32_t root, const char *what)
{
    int many = 0;
    ich_status st = begin(&many);
    if (!st && (root < 0 || root >= g.size))
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "broadcast (%s): root %d of %d ranks", what,
                      root, g.size);
    if (!st && many && bytes > 0)
        st = g.ops->broadcast(data, bytes, root, g.timeout, what);
    return end(many, st);
}

void ich_comm_gathered_free(ich_comm_gathered *gathered)
{
    if (!gathered)
        return;
    free(gathered->data);
    free(gathered->offsets);
    memset(gathered, 0, sizeof *gathered);
}

/* Every rank's byte count (an allgather of one int64 each), as offsets. */
static ich_status gather_counts(size_t bytes, size_t *counts, size_t *offsets, const char *what)
{
    int64_t *all = calloc((size_t)g.size, sizeof *all);
    size_t *eight = calloc((size_t)g.size, sizeof *eight);
    ich_status st = all && eight ? ICH_OK : ich_fail(ICH_ERR_NO_MEMORY, "gather: out of memory");
    int64_t mine = (int64_t)bytes;
    for (int32_t r = 0; !st && r < g.size; r++)
        eight[r] = sizeof(int64_t);
    if (!st)
        st = g.ops->allgather(&mine, sizeof mine, all, eight, g.timeout, what);
    offsets[0] = 0;
    for (int32_t r = 0; !st && r < g.size; r++) {
        counts[r] = (size_t)all[r];
        offsets[r + 1] = offsets[r] + counts[r];
    }
    free(all);
    free(eight);
    return st;
}

/* allgather (root < 0) or gather to root, with g.lock held. */
static ich_status gather_locked(const void *data, size_t bytes, int32_t root,
                                ich_comm_gathered *out, const char *what)
{
    size_t *counts = calloc((size_t)g.size, sizeof *counts);
    size_t *offsets = calloc((size_t)g.size + 1, sizeof *offsets);
    ich_status st = counts && offsets ? gather_counts(bytes, counts, offsets, what)
                                      : ich_fail(ICH_ERR_NO_MEMORY, "gather: out of memory");
    int receives = root < 0 || root == g.rank;
    char *all = NULL;
    if (!st && receives && !(all = malloc(offsets[g.size] + 1)))
        st = ich_fail(ICH_ERR_NO_MEMORY, "gather (%s): out of memory for %zu bytes", what,
                      offsets[g.size]);
    if (!st)
        st = root < 0 ? g.ops->allgather(data, bytes, all, counts, g.timeout, what)
                      : g.ops->gather(data, bytes, all, counts, root, g.timeout, what);
    free(counts);
    if (!st && receives) {
        out->data = all;
        out->offsets = offsets;
        out->ranks = g.size;
        return ICH_OK;
    }
    free(all);
    free(offsets);
    return st;
}

/* A single process's gather: a copy of its own bytes. */
static ich_status gather_single(const void *data, size_t bytes, ich_comm_gathered *out)
{
    out->data = malloc(bytes + 1);
    out->offsets = calloc(2, sizeof *out->offsets);
    if (!out->data || !out->offsets) {
        ich_comm_gathered_free(out);
        return ich_fail(ICH_ERR_NO_MEMORY, "gather: out of memory for %zu bytes", bytes);
    }
    if (bytes)
        memcpy(out->data, data, bytes);
    out->offsets[1] = bytes;
    out->ranks = 1;
    return ICH_OK;
}

static ich_status gather_any(const void *data, size_t bytes, int32_t root,
                             ich_comm_gathered *out, const char *what)
{
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "gather (%s): NULL result", what);
    memset(out, 0, sizeof *out);
    int many = 0;
    ich_status st = begin(&many);
    if (!st && root >= g.size)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "gather (%s): root %d of %d ranks", what, root,
                      g.size);
    if (!st)
        st = many ? gather_locked(data, bytes, root, out, what)
                  : gather_single(data, bytes, out);
    return end(many, st);
}

ich_status ich_comm_allgather(const void *data, size_t bytes, ich_comm_gathered *out,
                              const char *what)
{
    return gather_any(data, bytes, -1, out, what);
}

ich_status ich_comm_gather(const void *data, size_t bytes, int32_t root,
                           ich_comm_gathered *out, const char *what)
{
    if (root < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "gather (%s): root %d", what, root);
    return gather_any(data, bytes, root, out, what);
}

ich_status ich_comm_barrier(const char *what)
{
    int many = 0;
    ich_status st = begin(&many);
    if (!st && many)
        st = g.ops->barrier(g.timeout, what);
    return end(many, st);
}

ich_status ich_comm_abort_all(ich_status status, const char *fmt, ...)
{
    char message[4096], line[4200];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    if (ich_comm_start() == ICH_OK && g.ops) {
        snprintf(line, sizeof line, "rank %d of %d: %s", g.rank, g.size, message);
        g.ops->abort_all(line);
    }
    return ich_fail(status, "%s", message);
}

void ich_comm_mark_failed(void)
{
    if (ich_comm_start() == ICH_OK && g.ops)
        g.ops->mark_failed();
}

/* ---- Public: include/ich/dist.h --------------------------------------------- */

int32_t ich_dist_rank(void)
{
    return ich_comm_start() ? -1 : g.rank;
}

int32_t ich_dist_size(void)
{
    return ich_comm_start() ? -1 : g.size;
}

ich_status ich_dist_describe(char *text, size_t size)
{
    return ich_comm_describe(text, size);
}

ich_status ich_dist_barrier(void)
{
    return ich_comm_barrier("ich_dist_barrier");
}

void ich_dist_mark_failed(void)
{
    pthread_mutex_lock(&g.lock);
    const ich_dist_ops *ops = g.started ? g.ops : NULL;
    pthread_mutex_unlock(&g.lock);
    if (ops)
        ops->mark_failed();
}
