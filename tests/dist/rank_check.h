/* The check of the distributed test programs (test_comm, test_collective):
 * each rank runs every check and prints the ones that fail, prefixed with
 * its rank, so that one run of mpiexec shows every rank's failures; the
 * program exits non-zero when `failures` is not 0. */
#ifndef ICH_TESTS_DIST_RANK_CHECK_H
#define ICH_TESTS_DIST_RANK_CHECK_H

#include <stdio.h>

#include "dist/comm.h"

static int failures;

#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", ich_comm_rank(), __FILE__, \
                    __LINE__, #cond);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fprintf(stderr, "\n");                                                          \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

#endif
