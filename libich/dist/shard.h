/* Internal: the long folder jobs sharded over the ranks of a distributed
 * run (ich_preprocess_folder(), ich_predict_folder(), ich_evaluate_report()
 * under mpirun). Every rank finds the same sorted list of work (the files
 * of a folder, the rows of a label table), takes one contiguous block of
 * it (ich_shard_block()), writes the outputs of its own items, and the
 * shared outputs (a predictions CSV, a report) are gathered to rank 0 in
 * list order and written there alone: the same files a single process
 * writes. A single process is rank 0 of 1 and takes the whole list.
 *
 * The ranks stay in step through ich_shard_agree() after each step that
 * can fail: a failure every rank shares (a wrong path, bad options) is
 * returned by each, as one process returns it; a failure of some ranks
 * only (out of memory, a share that cannot be read or written) ends every
 * rank with the failing rank's message, so no rank waits for ever and no
 * shared output is half-written. */
#ifndef ICH_INTERNAL_DIST_SHARD_H
#define ICH_INTERNAL_DIST_SHARD_H

#include <stdint.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rank `rank` of `ranks`'s block [*first, *end) of `count` items, cut
 * between whole units of `unit` items (a batch: each rank's batches are
 * then the single process's, so a kernel that depends on the batch size
 * gives the same bits). The units are split as evenly as possible (later
 * ranks take the one more); a rank may get none. */
void ich_shard_block(int64_t count, int64_t unit, int32_t rank, int32_t ranks, int64_t *first,
                     int64_t *end);

/* After a step every rank ran with outcome `st` (`what` names the step in
 * the messages): ICH_OK when every rank succeeded; `st` itself, with this
 * rank's message, when every rank failed; when only some failed, each
 * failing rank ends every rank (ich_comm_abort_all() with its message) and
 * the others wait to be ended (does not return, but for the watchdog). A
 * single process gets `st`. */
ich_status ich_shard_agree(ich_status st, const char *what);

/* ich_shard_agree() after this rank's share of the work, which took
 * `seconds`: a rank that finished first waits for the others up to
 * ICH_DIST_TIMEOUT plus twice that time (the shares are about equal: a rank
 * three times slower is taken for hung), so a long job is not ended by the
 * watchdog only because the ranks finish minutes apart. */
ich_status ich_shard_agree_work(ich_status st, double seconds, const char *what);

/* Seconds on a monotonic clock (for ich_shard_agree_work()). */
double ich_shard_now(void);

/* Whether every rank has the same `value` (a count or a checksum of the
 * work list) as rank 0: ICH_OK, else ICH_ERR_IO on every rank, saying
 * that the ranks see different `what` (e.g. folders not shared between
 * the machines). */
ich_status ich_shard_same(uint64_t value, const char *what);

/* FNV-1a of `bytes` bytes, continuing from `hash` (start with
 * ICH_SHARD_HASH_START): the checksum of a work list for ich_shard_same(). */
#define ICH_SHARD_HASH_START 14695981039346656037ull
uint64_t ich_shard_hash(uint64_t hash, const void *bytes, size_t size);

#ifdef __cplusplus
}
#endif
#endif
