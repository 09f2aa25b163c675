/* Internal: data-parallel training over the ranks of a distributed run
 * (dist/comm.h), for the driver (train.c); include/ich/train.h,
 * "Distributed training", says what users see.
 *
 * Each rank trains on its share of every global batch (the datasets are
 * sharded: data/dataset_internal.h, ich_dataset_set_shard()). After its
 * backward pass, a step's gradients are combined so that every rank holds
 * the gradient of the mean loss over the whole global batch, as one
 * process computes it: rank r's gradient (of the mean over its n_r
 * samples) is scaled by n_r / N and the ranks' are summed (N = the sum of
 * n_r, so a short last batch, an uneven split or samples that failed to
 * load count exactly). In the same pass the batch-norm running statistics
 * (the model's buffers) become rank 0's on every rank, as PyTorch's DDP
 * broadcasts rank 0's buffers (broadcast_buffers): the batch statistics a
 * rank normalises with are its own share's. One allreduce of the step's
 * counts, sums and buffers (doubles), then one of the gradients
 * (ich_model_allreduce_gradients: NCCL on a CUDA backend that has it, MPI
 * on the host otherwise): a single bucket after the backward pass (no
 * overlap with it). */
#ifndef ICH_INTERNAL_DIST_TRAIN_H
#define ICH_INTERNAL_DIST_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "ich/model.h"

/* Running sums of a pass (training or validation). */
typedef struct pass_sums {
    double loss;     /* sum of batch mean loss x samples */
    int64_t samples;
    int64_t correct; /* elements predicted right */
    int64_t elements;
} pass_sums;

typedef struct ich_train_dist {
    int32_t rank, ranks; /* 0 of 1: a single process (every call below is trivial) */
    double *extra;       /* counts, sums, buffers */
    size_t extra_capacity;
} ich_train_dist;

/* Start the communicator (dist/comm.h) and learn this rank's place. */
ich_status ich_train_dist_begin(ich_train_dist *d);

void ich_train_dist_free(ich_train_dist *d);

/* Every tensor of `model` (parameters and buffers) from rank 0 to every
 * rank. */
ich_status ich_train_dist_sync_model(ich_train_dist *d, ich_model *model);

/* After this rank's backward pass over its n samples (gradients of the
 * mean loss over them; none, zero, when n is 0): the step's gradients and
 * buffers on every rank as the header says, `step` (this rank's sums) the
 * global batch's, *global the global batch's sample count N (0: every
 * sample failed, skip the step). `what` names the step in a watchdog's
 * message. */
ich_status ich_train_dist_reduce_step(ich_train_dist *d, ich_model *model, int32_t n,
                                      pass_sums *step, int64_t *global, const char *what);

/* A pass's sums summed over the ranks. */
ich_status ich_train_dist_reduce_sums(ich_train_dist *d, pass_sums *sums, const char *what);

/* Every rank holds rank 0's weights and buffers, bit for bit (a checksum
 * of every tensor, gathered): ICH_ERR_INTERNAL naming the ranks that
 * differ. `when` says when, for the message ("the end of epoch 3"). */
ich_status ich_train_dist_check_model(ich_train_dist *d, const ich_model *model,
                                      const char *when);

#endif
