/* Sharded folder jobs: the blocks, the ranks' agreement after each step
 * and the check that they see the same work (dist/shard.h). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "dist/comm.h"
#include "dist/shard.h"

void ich_shard_block(int64_t count, int64_t unit, int32_t rank, int32_t ranks, int64_t *first,
                     int64_t *end)
{
    if (unit < 1)
        unit = 1;
    if (ranks < 1)
        ranks = 1;
    int64_t units = count > 0 ? (count + unit - 1) / unit : 0;
    int64_t lo = units * rank / ranks, hi = units * (rank + 1) / ranks;
    *first = lo * unit < count ? lo * unit : count;
    *end = hi * unit < count ? hi * unit : count;
}

/* ich_shard_agree(), its wait allowed `at_least` seconds (dist/comm.h). */
static ich_status agree(ich_status st, double at_least, const char *what)
{
    int32_t ranks = ich_comm_size();
    if (ranks == 1)
        return st;
    /* The message first: the collective below may set another. */
    char message[4096];
    strncpy(message, st ? ich_last_error() : "", sizeof message - 1);
    message[sizeof message - 1] = '\0';
    int64_t failed = st != ICH_OK;
    ich_status comm = ich_comm_allreduce_int64_within(&failed, 1, at_least, what);
    if (comm != ICH_OK)
        return comm;
    if (failed == 0)
        return ICH_OK;
    if (failed == ranks)
        return ich_fail(st, "%s", message);
    if (st != ICH_OK)
        return ich_comm_abort_all(st, "%s: %s", what, message);
    /* Another rank failed and is ending every rank: wait for it. */
    ich_comm_barrier(what);
    return ich_comm_abort_all(ICH_ERR_IO, "%s: %lld other rank(s) failed", what,
                              (long long)failed);
}

ich_status ich_shard_agree(ich_status st, const char *what)
{
    return agree(st, 0, what);
}

ich_status ich_shard_agree_work(ich_status st, double seconds, const char *what)
{
    return agree(st, ich_comm_timeout() + 2 * seconds, what);
}

double ich_shard_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

ich_status ich_shard_same(uint64_t value, const char *what)
{
    if (ich_comm_size() == 1)
        return ICH_OK;
    ich_comm_gathered all;
    ich_status st = ich_comm_allgather(&value, sizeof value, &all, what);
    if (st != ICH_OK)
        return st;
    uint64_t first;
    memcpy(&first, all.data, sizeof first);
    for (int32_t r = 1; st == ICH_OK && r < all.ranks; r++) {
        uint64_t other;
        memcpy(&other, all.data + all.offsets[r], sizeof other);
        if (other != first)
            st = ich_fail(ICH_ERR_IO, "rank %d of %d found other %s than rank 0: every rank "
                          "must see the same files (a folder shared by the machines)",
                          (int)r, (int)all.ranks, what);
    }
    ich_comm_gathered_free(&all);
    return st;
}

uint64_t ich_shard_hash(uint64_t hash, const void *bytes, size_t size)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < size; i++) {
        hash ^= p[i];
        hash *= 1099511628211ull;
    }
    return hash;
}
