/* Data-parallel training steps over the ranks (see train/dist_train.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "dist/comm.h"
#include "nn/model_internal.h"
#include "train/dist_train.h"

/* The step's doubles: counts and sums first, then the int64 buffers. */
enum { EXTRA_N, EXTRA_LOSS, EXTRA_SAMPLES, EXTRA_CORRECT, EXTRA_ELEMENTS, EXTRA_FIXED };

ich_status ich_train_dist_begin(ich_train_dist *d)
{
    memset(d, 0, sizeof *d);
    d->ranks = 1;
    ich_status st = ich_comm_start();
    if (st)
        return st;
    d->rank = ich_comm_rank();
    d->ranks = ich_comm_size();
    return ICH_OK;
}

void ich_train_dist_free(ich_train_dist *d)
{
    free(d->extra);
    memset(d, 0, sizeof *d);
}

static size_t view_bytes(const ich_tensor_view *v)
{
    return (size_t)v->count * (v->type == ICH_TENSOR_I64 ? sizeof(int64_t) : sizeof(float));
}

ich_status ich_train_dist_sync_model(ich_train_dist *d, ich_model *model)
{
    int32_t count = ich_model_tensor_count(model);
    ich_status st = ICH_OK;
    for (int32_t i = 0; !st && d->ranks > 1 && i < count; i++) {
        ich_tensor_view v = {.size = sizeof v};
        st = ich_model_tensor(model, i, &v);
        if (!st)
            st = ich_comm_broadcast(v.data, view_bytes(&v), 0, "rank 0's weights");
    }
    if (!st && d->ranks > 1)
        ich_model_tensor_changed(model, -1);
    return st;
}

/* Room for `extra` doubles. */
static ich_status reserve(ich_train_dist *d, size_t extra)
{
    if (extra > d->extra_capacity) {
        double *p = realloc(d->extra, extra * sizeof *p);
        if (!p)
            return ich_fail(ICH_ERR_NO_MEMORY, "ich_train: out of memory");
        d->extra = p;
        d->extra_capacity = extra;
    }
    return ICH_OK;
}

/* The size of the step's double buffer: the counts, then every buffer
 * (batch-norm statistics, float or int64). */
static ich_status step_size(const ich_model *model, size_t *extra)
{
    *extra = EXTRA_FIXED;
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v};
        ich_status st = ich_model_tensor(model, i, &v);
        if (st)
            return st;
        if (!v.trainable)
            *extra += (size_t)v.count;
    }
    return ICH_OK;
}

/* pack (1) or unpack (0) the model's buffers in the double buffer: packed,
 * rank 0's values and zeros elsewhere, so the sum is rank 0's exactly
 * (a float or an int64 below 2^53 is exact as a double). */
static ich_status move_buffers(ich_train_dist *d, ich_model *model, int pack)
{
    size_t e = EXTRA_FIXED;
    const int root = d->rank == 0;
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v};
        ich_status st = ich_model_tensor(model, i, &v);
        if (st)
            return st;
        if (v.trainable)
            continue;
        const size_t n = (size_t)v.count;
        const int wide = v.type == ICH_TENSOR_I64;
        for (size_t k = 0; k < n; k++) {
            double *x = d->extra + e + k;
            if (pack && !root)
                *x = 0.0;
            else if (pack)
                *x = wide ? (double)((int64_t *)v.data)[k] : (double)((float *)v.data)[k];
            else if (wide)
                ((int64_t *)v.data)[k] = (int64_t)*x;
            else
                ((float *)v.data)[k] = (float)*x;
        }
        e += n;
        if (!pack)
            ich_model_tensor_changed(model, i);
    }
    return ICH_OK;
}

/* Each learning parameter's gradient times `factor`. */
static ich_status scale_gradients(ich_model *model, float factor)
{
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v};
        ich_status st = ich_model_tensor(model, i, &v);
        if (st)
            return st;
        if (v.trainable && !v.frozen)
            for (int64_t k = 0; k < v.count; k++)
                v.grad[k] *= factor;
    }
    return ICH_OK;
}

ich_status ich_train_dist_reduce_step(ich_train_dist *d, ich_model *model, int32_t n,
                                      pass_sums *step, int64_t *global, const char *what)
{
    *global = n;
    if (d->ranks <= 1)
        return ICH_OK;
    size_t extra = 0;
    ich_status st = step_size(model, &extra);
    if (!st)
        st = reserve(d, extra);
    if (st)
        return st;
    d->extra[EXTRA_N] = n;
    d->extra[EXTRA_LOSS] = step->loss;
    d->extra[EXTRA_SAMPLES] = (double)step->samples;
    d->extra[EXTRA_CORRECT] = (double)step->correct;
    d->extra[EXTRA_ELEMENTS] = (double)step->elements;
    st = move_buffers(d, model, 1);
    if (!st)
        st = ich_comm_allreduce_double(d->extra, extra, what);
    if (!st)
        st = move_buffers(d, model, 0);
    if (st)
        return st;
    *global = (int64_t)d->extra[EXTRA_N];
    step->loss = d->extra[EXTRA_LOSS];
    step->samples = (int64_t)d->extra[EXTRA_SAMPLES];
    step->correct = (int64_t)d->extra[EXTRA_CORRECT];
    step->elements = (int64_t)d->extra[EXTRA_ELEMENTS];
    if (*global == 0)
        return ICH_OK;
    /* Each rank's gradient of the mean over its n samples, times n: the
     * sum over them; the ranks' sums added (on the GPU with NCCL when the
     * backend has it: nn/gradients.c), divided by the global N: the mean
     * over the global batch. */
    st = scale_gradients(model, (float)n);
    if (!st)
        st = ich_model_allreduce_gradients(model, 1.0f / (float)*global, what);
    return st;
}

ich_status ich_train_dist_reduce_sums(ich_train_dist *d, pass_sums *sums, const char *what)
{
    if (d->ranks <= 1)
        return ICH_OK;
    double v[4] = {sums->loss, (double)sums->samples, (double)sums->correct,
                   (double)sums->elements};
    ich_status st = ich_comm_allreduce_double(v, 4, what);
    if (!st) {
        sums->loss = v[0];
        sums->samples = (int64_t)v[1];
        sums->correct = (int64_t)v[2];
        sums->elements = (int64_t)v[3];
    }
    return st;
}

/* FNV-1a over the bytes of every tensor. */
static ich_status model_checksum(const ich_model *model, uint64_t *hash)
{
    uint64_t h = 14695981039346656037ull;
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view v = {.size = sizeof v};
        ich_status st = ich_model_tensor(model, i, &v);
        if (st)
            return st;
        const unsigned char *p = v.data;
        for (size_t k = 0; k < view_bytes(&v); k++)
            h = (h ^ p[k]) * 1099511628211ull;
    }
    *hash = h;
    return ICH_OK;
}

ich_status ich_train_dist_check_model(ich_train_dist *d, const ich_model *model,
                                      const char *when)
{
    if (d->ranks <= 1)
        return ICH_OK;
    uint64_t mine = 0;
    ich_comm_gathered all = {0};
    ich_status st = model_checksum(model, &mine);
    if (!st)
        st = ich_comm_allgather(&mine, sizeof mine, &all, "the weights' checksums");
    if (st)
        return st;
    char differ[256] = "";
    for (int32_t r = 1; r < all.ranks; r++) {
        uint64_t theirs, first;
        memcpy(&first, all.data + all.offsets[0], sizeof first);
        memcpy(&theirs, all.data + all.offsets[r], sizeof theirs);
        size_t used = strlen(differ);
        if (theirs != first && used + 16 < sizeof differ)
            snprintf(differ + used, sizeof differ - used, "%s%d", used ? ", " : "", r);
    }
    ich_comm_gathered_free(&all);
    if (*differ)
        return ich_fail(ICH_ERR_INTERNAL, "ich_train: at %s the weights of rank(s) %s differ "
                        "from rank 0's: the ranks no longer train the same model (a resumed "
                        "checkpoint that differs between ranks, or an MPI whose allreduce "
                        "gives different sums on different ranks)", when, differ);
    return ICH_OK;
}
