/* The communicator (libich/dist/comm.h), white box: run as
 *   test_comm single          one process: size 1, trivial collectives,
 *                             nothing of MPI mapped (/proc/self/maps)
 *   mpirun -np N test_comm    allreduce, broadcast, allgather, gather and
 *                             barrier give the right values on every rank
 *   mpirun -np 2 test_comm hang   rank 1 never joins; rank 0's allreduce
 *                             must end the run (ICH_DIST_TIMEOUT)
 *   mpirun -np 2 test_comm fail   rank 1 fails and exits 1 while rank 0
 *                             waits in a barrier: every rank must end
 * Exit 0 when every check held; otherwise a line per failed check. Driven
 * by tests/CMakeLists.txt and tests/dist/test_dist.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "dist/comm.h"

#include "rank_check.h"

/* Whether a mapping of the process names `needle`. */
static int mapped(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        found |= strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void single(void)
{
    char text[512];
    CHECK(ich_comm_start() == ICH_OK, "%s", ich_last_error());
    CHECK(ich_comm_size() == 1 && ich_comm_rank() == 0, "size %d rank %d", ich_comm_size(),
          ich_comm_rank());
    CHECK(ich_comm_describe(text, sizeof text) == ICH_OK && strstr(text, "single process"),
          "%s", text);
    float f[3] = {1, 2, 3};
    CHECK(ich_comm_allreduce_float(f, 3, "single") == ICH_OK && f[0] == 1 && f[2] == 3, "%g",
          f[2]);
    ich_comm_gathered g;
    CHECK(ich_comm_allgather("abc", 3, &g, "single") == ICH_OK && g.ranks == 1 &&
              g.offsets[1] == 3 && !memcmp(g.data, "abc", 3), "gather");
    ich_comm_gathered_free(&g);
    CHECK(ich_comm_barrier("single") == ICH_OK, "barrier");
    CHECK(ich_comm_abort_all(ICH_ERR_IO, "only a message") == ICH_ERR_IO &&
              strstr(ich_last_error(), "only a message"), "abort in a single process returns");
    CHECK(!mapped("libmpi") && !mapped("libich-mpi") && !mapped("libopen-pal"),
          "MPI is mapped in a single process");
}

static void collectives(void)
{
    CHECK(ich_comm_start() == ICH_OK, "%s", ich_last_error());
    const int32_t rank = ich_comm_rank(), size = ich_comm_size();
    CHECK(size > 1, "size %d under mpirun", size);
    CHECK(mapped("libich-mpi.so"), "the plugin is not mapped");
    /* allreduce: element i of rank r is r * 1000 + i (a long buffer too) */
    const size_t n = 100003;
    float *f = malloc(n * sizeof *f);
    double d[4];
    int64_t k[2] = {rank + 1, (int64_t)1 << 40};
    for (size_t i = 0; i < n; i++)
        f[i] = (float)(rank * 1000 + (int)(i % 1000));
    for (int i = 0; i < 4; i++)
        d[i] = rank + 0.25 * i;
    CHECK(ich_comm_allreduce_float(f, n, "test floats") == ICH_OK, "%s", ich_last_error());
    CHECK(ich_comm_allreduce_double(d, 4, "test doubles") == ICH_OK, "%s", ich_last_error());
    CHECK(ich_comm_allreduce_int64(k, 2, "test int64") == ICH_OK, "%s", ich_last_error());
    const double ranks_sum = size * (size - 1) / 2.0;
    for (size_t i = 0; i < n; i++)
        if (f[i] != (float)(ranks_sum * 1000 + size * (double)(i % 1000))) {
            CHECK(0, "float %zu: %g", i, f[i]);
            break;
        }
    for (int i = 0; i < 4; i++)
        CHECK(d[i] == ranks_sum + size * 0.25 * i, "double %d: %g", i, d[i]);
    CHECK(k[0] == (int64_t)size * (size + 1) / 2 && k[1] == (int64_t)size << 40, "int64 %lld",
          (long long)k[0]);
    free(f);
    /* broadcast from the last rank */
    char word[32];
    snprintf(word, sizeof word, "rank-%d", rank);
    CHECK(ich_comm_broadcast(word, sizeof word, size - 1, "test broadcast") == ICH_OK, "%s",
          ich_last_error());
    char expected[32];
    snprintf(expected, sizeof expected, "rank-%d", size - 1);
    CHECK(!strcmp(word, expected), "broadcast gave %s", word);
    /* allgather and gather: rank r sends r + 1 bytes 'a' + r (rank 0 also
     * tries 0 bytes in the gather) */
    char mine[64];
    memset(mine, 'a' + rank, sizeof mine);
    ich_comm_gathered g;
    CHECK(ich_comm_allgather(mine, (size_t)rank + 1, &g, "test allgather") == ICH_OK, "%s",
          ich_last_error());
    CHECK(g.ranks == size, "allgather ranks %d", g.ranks);
    for (int32_t r = 0; r < g.ranks; r++) {
        CHECK(g.offsets[r + 1] - g.offsets[r] == (size_t)r + 1, "allgather count of %d", r);
        for (size_t i = g.offsets[r]; i < g.offsets[r + 1]; i++)
            CHECK(g.data[i] == 'a' + r, "allgather byte %zu of rank %d", i, r);
    }
    ich_comm_gathered_free(&g);
    size_t bytes = rank == 0 ? 0 : (size_t)rank + 1;
    CHECK(ich_comm_gather(mine, bytes, 1, &g, "test gather") == ICH_OK, "%s", ich_last_error());
    if (rank == 1) {
        CHECK(g.ranks == size && g.offsets[1] == 0, "gather at root");
        for (int32_t r = 1; r < size; r++)
            CHECK(g.offsets[r + 1] - g.offsets[r] == (size_t)r + 1 &&
                      g.data[g.offsets[r]] == 'a' + r, "gather of rank %d", r);
    } else {
        CHECK(g.ranks == 0 && !g.data, "gather elsewhere");
    }
    ich_comm_gathered_free(&g);
    CHECK(ich_comm_barrier("test barrier") == ICH_OK, "%s", ich_last_error());
    if (!failures)
        printf("rank %d of %d: collectives ok\n", rank, size);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "collectives";
    if (!strcmp(mode, "single")) {
        single();
    } else if (!strcmp(mode, "collectives")) {
        collectives();
    } else if (!strcmp(mode, "hang")) {
        /* rank 1 never joins: rank 0's watchdog must end both */
        if (ich_comm_rank() == 1) {
            sleep(120);
            return 3;
        }
        double x = 1;
        ich_comm_allreduce_double(&x, 1, "test hang");
        return 4; /* never reached */
    } else if (!strcmp(mode, "fail")) {
        /* rank 1 fails (its exit ends every rank) while rank 0 waits */
        if (ich_comm_rank() == 1) {
            ich_comm_mark_failed();
            fprintf(stderr, "rank 1: failing on purpose\n");
            return 1;
        }
        ich_comm_barrier("test fail");
        return 4;
    } else {
        fprintf(stderr, "usage: test_comm [single|collectives|hang|fail]\n");
        return 2;
    }
    return failures ? 1 : 0;
}
