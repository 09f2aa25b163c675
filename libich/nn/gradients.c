/* Summing a model's gradients over the ranks of a distributed run
 * (ich_model_allreduce_gradients, nn/model_internal.h).
 *
 * The gradients are the host's ich_param.grad on every backend
 * (backend/plugin_api.h, "Memory"), scattered over the parameters: they
 * are packed into one buffer, so a step makes one collective call, not
 * one per parameter (the tutorial ConvNet has 10, a ResNet-18 62). With
 * the backend's collectives (NCCL) the packed buffer goes to the device,
 * is summed there and comes back: two copies of 2.5 MB for the tutorial
 * ConvNet, the price of keeping the master gradients on the host. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "dist/comm.h"
#include "nn/model_internal.h"

struct model_gradient_sum {
    float *host;   /* packed gradients: ich_model_host_alloc (pinned on CUDA) */
    float *device; /* the same in backend memory, for the backend's sums */
    int64_t count;
    int checked;   /* the ranks' counts agreed */
};

static int summed(const ich_param *p)
{
    return p->trainable && !p->frozen && p->grad && p->dtype == ICH_DTYPE_F32;
}

static int64_t gradient_count(const ich_model *m)
{
    int64_t count = 0;
    for (int t = 0; t < m->ntensors; t++)
        if (summed(m->tensors[t].param))
            count += ich_param_count(m->tensors[t].param);
    return count;
}

void ich_model_gradient_sum_free(ich_model *m)
{
    struct model_gradient_sum *s = m ? m->gradient_sum : NULL;
    if (!s)
        return;
    ich_model_host_free(m, s->host);
    if (s->device)
        m->backend->free(s->device);
    free(s);
    m->gradient_sum = NULL;
}

/* Buffers for `count` floats (freezing changes the count: then anew). */
static ich_status buffers(ich_model *m, int64_t count, int on_device)
{
    struct model_gradient_sum *s = m->gradient_sum;
    if (s && s->count == count && (!on_device || s->device))
        return ICH_OK;
    int checked = s && s->count == count && s->checked;
    ich_model_gradient_sum_free(m);
    if (!(s = m->gradient_sum = calloc(1, sizeof *s)))
        return ich_fail(ICH_ERR_NO_MEMORY, "gradient sum: out of memory");
    s->count = count;
    s->checked = checked;
    size_t bytes = (size_t)(count > 0 ? count : 1) * sizeof(float);
    s->host = ich_model_host_alloc(m, bytes);
    if (on_device)
        s->device = m->backend->alloc(bytes);
    if (!s->host || (on_device && !s->device))
        return ich_fail(ICH_ERR_NO_MEMORY, "gradient sum: out of %s memory for %lld gradients",
                        s->host ? m->backend->name : "host", (long long)count);
    return ICH_OK;
}

/* Every rank's count must be this one: a rank with another model would
 * otherwise sum its gradients into the wrong parameters. */
static ich_status check_counts(int64_t count, const char *what)
{
    ich_comm_gathered all = {0};
    ich_status st = ich_comm_allgather(&count, sizeof count, &all, what);
    for (int32_t r = 0; !st && r < all.ranks; r++) {
        int64_t theirs = 0;
        if (all.offsets[r + 1] - all.offsets[r] == sizeof theirs)
            memcpy(&theirs, all.data + all.offsets[r], sizeof theirs);
        if (theirs != count)
            st = ich_fail(ICH_ERR_SHAPE, "gradient sum (%s): rank %d has %lld gradients, rank "
                          "%d %lld: the ranks' models differ", what, ich_comm_rank(),
                          (long long)count, r, (long long)theirs);
    }
    ich_comm_gathered_free(&all);
    return st;
}

/* The gradients one after another, in the tensors' order. */
static void pack(const ich_model *m, float *to)
{
    for (int t = 0; t < m->ntensors; t++) {
        const ich_param *p = m->tensors[t].param;
        if (!summed(p))
            continue;
        const int64_t n = ich_param_count(p);
        memcpy(to, p->grad, (size_t)n * sizeof(float));
        to += n;
    }
}

static void unpack(ich_model *m, const float *from, float scale)
{
    for (int t = 0; t < m->ntensors; t++) {
        ich_param *p = m->tensors[t].param;
        if (!summed(p))
            continue;
        const int64_t n = ich_param_count(p);
        for (int64_t i = 0; i < n; i++)
            p->grad[i] = from[i] * scale;
        from += n;
    }
}

static void scale_only(ich_model *m, float scale)
{
    for (int t = 0; t < m->ntensors; t++) {
        ich_param *p = m->tensors[t].param;
        if (summed(p))
            for (int64_t i = 0, n = ich_param_count(p); i < n; i++)
                p->grad[i] *= scale;
    }
}

/* The packed sum on the device: up, summed, down. */
static ich_status sum_on_device(ich_model *m, const char *what)
{
    struct model_gradient_sum *s = m->gradient_sum;
    const size_t bytes = (size_t)s->count * sizeof(float);
    ich_status st = m->backend->to_device(s->device, s->host, bytes);
    if (!st)
        st = ich_backend_allreduce(m->backend, s->device, s->count, what);
    if (!st)
        st = m->backend->to_host(s->host, s->device, bytes);
    return st;
}

ich_status ich_model_allreduce_gradients(ich_model *m, float scale, const char *what)
{
    if (!m || !what)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_allreduce_gradients: NULL argument");
    if (!isfinite(scale))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "gradient sum (%s): scale %g is not finite",
                        what, (double)scale);
    ich_status st = ich_comm_start();
    if (st)
        return st;
    if (ich_comm_size() == 1) {
        if (scale != 1.0f)
            scale_only(m, scale);
        return ICH_OK;
    }
    int on_device = 0;
    const int64_t count = gradient_count(m);
    if ((st = ich_backend_collectives(m->backend, &on_device)) ||
        (st = buffers(m, count, on_device)))
        return st;
    struct model_gradient_sum *s = m->gradient_sum;
    if (!s->checked) {
        if ((st = check_counts(count, what)))
            return st;
        s->checked = 1;
    }
    pack(m, s->host);
    st = on_device ? sum_on_device(m, what)
                   : ich_comm_allreduce_float(s->host, (size_t)count, what);
    if (!st)
        unpack(m, s->host, scale);
    return st;
}
