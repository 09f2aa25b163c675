/* A model's gradients summed over the ranks of a distributed run
 * (ich_model_allreduce_gradients, nn/gradients.c) and the backend's own
 * collectives under it (backend/collective.c, the CUDA plugin's NCCL path
 * in libich/backend/cuda/collective.c), white box. Run as
 *   test_collective single     one process: only the scaling
 *   mpiexec -np N test_collective gradients expect-device|expect-host
 *                              every rank's summed gradients equal the sum
 *                              of the gradients of every rank's batch,
 *                              computed here on each rank without any
 *                              communication; frozen ones untouched; every
 *                              rank bit-identical; the path taken is the
 *                              one expected
 *   mpiexec -np 2 test_collective no-nccl-on-1   rank 1 plays a machine
 *                              without NCCL (the CPU emulation's
 *                              ICH_EMU_NO_NCCL): every rank sums on the
 *                              host, and the sums are right
 *   mpiexec -np 2 test_collective mismatch   rank 1's model has more
 *                              gradients: every rank fails, naming both
 *   mpiexec -np N test_collective direct     the backend's allreduce of a
 *                              device buffer of 1,000,003 floats (N may be
 *                              1: scripts/gpu_check.sh runs it on one GPU)
 *   mpiexec -np 2 test_collective direct  with ICH_EMU_NCCL_STALL=1 and
 *                              ICH_DIST_TIMEOUT=2: the sum hangs, every
 *                              rank ends with a message (ctest matches it)
 * With ICH_BACKEND=cuda and the plugin of tests/cuda_emu (NCCL emulated
 * through MPI) or the real plugin on a GPU; ICH_BACKEND=cpu sums on the
 * host. Exit 0 when every check held; otherwise a line per failed check.
 * TEST_EXPECT_LOG=PHRASE: fail unless libich's log said PHRASE.
 * Driven by tests/dist/CMakeLists.txt and scripts/gpu_check.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"
#include "dist/comm.h"
#include "nn/model_internal.h"

#include "rank_check.h"

#define SPEC_OF(hidden)                                                                    \
    "input 2x8x8, conv 4 3 pad 1, bn, relu, maxpool 2, flatten, linear " hidden               \
    ", relu, linear 3"
#define SPEC SPEC_OF("8")
#define BATCH 3

/* Rank r's batch and its d loss / d logits. */
static void batch_of(int32_t r, float *images, float *grad_logits)
{
    for (int i = 0; i < BATCH * 2 * 8 * 8; i++)
        images[i] = sinf(0.37f * (float)i + 1.3f * (float)r);
    for (int i = 0; i < BATCH * 3; i++)
        grad_logits[i] = cosf(0.71f * (float)i - 0.9f * (float)r) / BATCH;
}

static ich_status forward_backward(ich_model *m, int32_t r)
{
    float images[BATCH * 2 * 8 * 8], grad_logits[BATCH * 3], logits[BATCH * 3];
    batch_of(r, images, grad_logits);
    ich_status st = ich_model_zero_grad(m);
    if (!st)
        st = ich_model_forward(m, images, BATCH, logits, BATCH * 3);
    if (!st)
        st = ich_model_backward(m, grad_logits, BATCH * 3);
    return st;
}

static ich_model *make_model(const char *spec)
{
    ich_model *m = NULL;
    CHECK(ich_model_create(spec, &m) == ICH_OK, "%s", ich_last_error());
    if (m) {
        CHECK(ich_model_init_weights(m, 7) == ICH_OK, "%s", ich_last_error());
        CHECK(ich_model_set_training(m, 1) == ICH_OK, "%s", ich_last_error());
    }
    return m;
}

static int summed(const ich_tensor_view *v)
{
    return v->trainable && !v->frozen && v->grad;
}

/* Every gradient of the model, in tensor order, into a new array. */
static float *all_gradients(ich_model *m, int64_t *count)
{
    int64_t n = 0;
    ich_tensor_view v = {.size = sizeof v};
    for (int32_t t = 0; t < ich_model_tensor_count(m); t++)
        if (ich_model_tensor(m, t, &v) == ICH_OK && v.grad)
            n += v.count;
    float *out = calloc((size_t)n + 1, sizeof *out);
    n = 0;
    for (int32_t t = 0; out && t < ich_model_tensor_count(m); t++)
        if (ich_model_tensor(m, t, &v) == ICH_OK && v.grad) {
            memcpy(out + n, v.grad, (size_t)v.count * sizeof(float));
            n += v.count;
        }
    *count = n;
    return out;
}

/* ranks x scale: the checks of `gradients` on the model `m` (its last
 * trainable parameter frozen). */
static void check_sums(ich_model *m, float scale)
{
    const int32_t rank = ich_comm_rank(), ranks = ich_comm_size();
    /* What the sum must be: every rank's batch run here, gradients added
     * in rank order (float, as the communicator adds), and how large the
     * terms were (the tolerance). */
    int64_t n = 0;
    float *expected = NULL;
    double *magnitude = NULL;
    for (int32_t r = 0; r < ranks; r++) {
        CHECK(forward_backward(m, r) == ICH_OK, "%s", ich_last_error());
        float *g = all_gradients(m, &n);
        if (!expected) {
            expected = calloc((size_t)n + 1, sizeof *expected);
            magnitude = calloc((size_t)n + 1, sizeof *magnitude);
        }
        for (int64_t i = 0; i < n; i++) {
            expected[i] += g[i];
            magnitude[i] += fabs(g[i]);
        }
        free(g);
    }
    /* This rank's own step, a sentinel in the frozen gradient. */
    CHECK(forward_backward(m, rank) == ICH_OK, "%s", ich_last_error());
    ich_tensor_view v = {.size = sizeof v};
    int32_t frozen = -1;
    for (int32_t t = 0; t < ich_model_tensor_count(m); t++)
        if (ich_model_tensor(m, t, &v) == ICH_OK && v.trainable && v.frozen) {
            frozen = t;
            for (int64_t i = 0; i < v.count; i++)
                v.grad[i] = 7.0f;
        }
    CHECK(frozen >= 0, "no frozen parameter");
    CHECK(ich_model_allreduce_gradients(m, scale, "test gradients") == ICH_OK, "%s",
          ich_last_error());
    int64_t got_count = 0, off = 0, bad = 0;
    float *got = all_gradients(m, &got_count);
    CHECK(got_count == n, "%lld gradients, %lld expected", (long long)got_count, (long long)n);
    for (int32_t t = 0; t < ich_model_tensor_count(m) && got_count == n; t++) {
        if (ich_model_tensor(m, t, &v) != ICH_OK || !v.grad)
            continue;
        for (int64_t i = 0; i < v.count; i++, off++) {
            double want = t == frozen ? 7.0 : (double)expected[off] * scale;
            double tolerance = t == frozen ? 0 : 1e-6 * magnitude[off] * fabs(scale) + 1e-30;
            if (fabs((double)got[off] - want) > tolerance && bad++ < 5)
                CHECK(0, "%s[%lld]: %.9g, expected %.9g", v.name, (long long)i, got[off], want);
        }
        CHECK(t == frozen || summed(&v), "%s", v.name);
    }
    CHECK(bad == 0, "%lld of %lld gradients wrong", (long long)bad, (long long)n);
    /* Every rank the same bits: rank 0's gradients against everyone's. */
    ich_comm_gathered all = {0};
    CHECK(ich_comm_allgather(got, (size_t)got_count * sizeof(float), &all, "test bits") == ICH_OK,
          "%s", ich_last_error());
    for (int32_t r = 0; r < all.ranks; r++)
        CHECK(all.offsets[r + 1] - all.offsets[r] == all.offsets[1] &&
                  !memcmp(all.data + all.offsets[r], all.data, all.offsets[1]),
              "rank %d's summed gradients differ from rank 0's", r);
    ich_comm_gathered_free(&all);
    free(got);
    free(expected);
    free(magnitude);
}

/* Which path the sums took: 1 on the device (backend collectives). */
static int on_device(ich_model *m)
{
    int available = 0;
    /* answered from the set-up the first sum made: no collective here */
    CHECK(ich_backend_collectives(m->backend, &available) == ICH_OK, "%s", ich_last_error());
    return available;
}

static ich_model *frozen_model(void)
{
    ich_model *m = make_model(SPEC);
    ich_tensor_view v = {.size = sizeof v};
    int32_t last = -1;
    for (int32_t t = 0; m && t < ich_model_tensor_count(m); t++)
        if (ich_model_tensor(m, t, &v) == ICH_OK && v.trainable)
            last = t;
    if (m && last >= 0 && ich_model_tensor(m, last, &v) == ICH_OK)
        CHECK(ich_model_freeze(m, v.name, 1, NULL) == ICH_OK, "%s", ich_last_error());
    return m;
}

static void gradients(const char *expect)
{
    CHECK(ich_comm_start() == ICH_OK, "%s", ich_last_error());
    ich_model *m = frozen_model();
    if (!m)
        return;
    const float scale = 1.0f / (float)ich_comm_size();
    check_sums(m, scale);
    /* a second step reuses the buffers; another scale */
    check_sums(m, 1.0f);
    int device = on_device(m);
    if (expect)
        CHECK(device == !strcmp(expect, "expect-device"), "the sums ran on the %s, %s",
              device ? "device" : "host", expect);
    if (!failures)
        printf("rank %d of %d: %s gradients summed on the %s: ok\n", ich_comm_rank(),
               ich_comm_size(), ich_model_backend(m), device ? "device" : "host");
    ich_model_free(m);
}

static void single(void)
{
    CHECK(ich_comm_size() == 1, "size %d", ich_comm_size());
    ich_model *m = frozen_model();
    if (!m)
        return;
    check_sums(m, 0.25f);
    if (!failures)
        printf("single process: gradients scaled: ok\n");
    ich_model_free(m);
}

static void mismatch(void)
{
    ich_model *m = ich_comm_rank() == 1 ? make_model(SPEC_OF("9")) : frozen_model();
    if (!m)
        return;
    CHECK(forward_backward(m, 0) == ICH_OK, "%s", ich_last_error());
    ich_status st = ich_model_allreduce_gradients(m, 1.0f, "test mismatch");
    CHECK(st == ICH_ERR_SHAPE && strstr(ich_last_error(), "the ranks' models differ"),
          "status %d: %s", st, ich_last_error());
    if (!failures)
        printf("rank %d: %s\n", ich_comm_rank(), ich_last_error());
    ich_model_free(m);
}

static void direct(void)
{
    const int32_t rank = ich_comm_rank(), ranks = ich_comm_size();
    const ich_backend *backend = NULL;
    CHECK(ich_backend_get(&backend) == ICH_OK, "%s", ich_last_error());
    if (!backend)
        return;
    int available = 0;
    CHECK(ich_backend_collectives(backend, &available) == ICH_OK, "%s", ich_last_error());
    CHECK(available, "%s has no collectives (see the log above)", backend->name);
    if (!available)
        return;
    const int64_t n = 1000003;
    float *host = malloc((size_t)n * sizeof *host);
    float *device = backend->alloc((size_t)n * sizeof(float));
    CHECK(host && device, "out of memory");
    if (!host || !device)
        return;
    for (int64_t i = 0; i < n; i++)
        host[i] = 0.5f * (float)(i % 1000) + (float)rank;
    CHECK(backend->to_device(device, host, (size_t)n * sizeof(float)) == ICH_OK, "%s",
          ich_last_error());
    CHECK(ich_backend_allreduce(backend, device, n, "test direct") == ICH_OK, "%s",
          ich_last_error());
    CHECK(backend->to_host(host, device, (size_t)n * sizeof(float)) == ICH_OK, "%s",
          ich_last_error());
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float want = (float)ranks * 0.5f * (float)(i % 1000) + (float)(ranks * (ranks - 1) / 2);
        if (host[i] != want && bad++ < 5)
            CHECK(0, "element %lld: %g, expected %g", (long long)i, host[i], want);
    }
    CHECK(bad == 0, "%lld of %lld sums wrong", (long long)bad, (long long)n);
    backend->free(device);
    free(host);
    if (!failures)
        printf("rank %d of %d: %s: allreduce of %lld floats on the device: ok\n", rank, ranks,
               backend->describe(), (long long)n);
}

/* TEST_EXPECT_LOG: a phrase libich's log must say on every rank (the
 * set-up's warnings), and whether it did. */
static const char *g_expect_log;
static int g_seen_log;

/* libich's log on stdout. Not ich_comm_rank() here: the communicator logs
 * while it starts, holding its lock. */
static void print_log(ich_log_level level, const char *message, void *user)
{
    (void)level;
    (void)user;
    g_seen_log |= g_expect_log && strstr(message, g_expect_log);
    printf("libich: %s\n", message);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "gradients";
    ich_set_log_callback(print_log, NULL, ICH_LOG_INFO);
    g_expect_log = getenv("TEST_EXPECT_LOG");
    if (!strcmp(mode, "single")) {
        single();
    } else if (!strcmp(mode, "gradients")) {
        gradients(argc > 2 ? argv[2] : NULL);
    } else if (!strcmp(mode, "no-nccl-on-1")) {
        if (ich_comm_rank() == 1)
            setenv("ICH_EMU_NO_NCCL", "1", 1); /* read when NCCL is first asked for */
        gradients("expect-host");
    } else if (!strcmp(mode, "mismatch")) {
        mismatch();
    } else if (!strcmp(mode, "direct")) {
        direct();
    } else {
        fprintf(stderr, "usage: test_collective [single|gradients [expect-device|expect-host]|"
                        "no-nccl-on-1|mismatch|direct]\n");
        return 2;
    }
    if (g_expect_log)
        CHECK(g_seen_log, "libich's log never said \"%s\"", g_expect_log);
    return failures ? 1 : 0;
}
