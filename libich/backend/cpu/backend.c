/* The backend table of the built-in CPU backend. Choosing a backend and
 * loading plugins: plugin.c.
 *
 * Threads: oneDNN (Debian's build) and OpenBLAS keep their own pools. The
 * count is the process's (ich_set_threads(), core/threads.h): oneDNN's
 * pool is OpenMP's, whose count is a per-thread setting given before each
 * oneDNN call (ich_compute_threads_apply); OpenBLAS's is one for the process,
 * sized when the count changes. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "core/threads.h"

static void cpu_set_threads(int threads)
{
    ich_set_threads(threads);
}

static void blas_set_threads(int threads)
{
    openblas_set_num_threads(threads);
}

static void listen_threads(void)
{
    ich_compute_threads_listen(blas_set_threads);
}

static const ich_layer_ops *cpu_layer(const char *kind)
{
    static const ich_layer_ops *const all[] = {
        &ich_cpu_conv_ops,    &ich_cpu_linear_ops, &ich_cpu_relu_ops,      &ich_cpu_maxpool_ops,
        &ich_cpu_avgpool_ops, &ich_cpu_gap_ops,    &ich_cpu_batchnorm_ops, &ich_cpu_dropout_ops,
        &ich_cpu_flatten_ops, &ich_cpu_add_ops,    &ich_cpu_concat_ops,
        /* issue 14: activations and scale()'s multiply (act.c) */
        &ich_cpu_silu_ops,    &ich_cpu_gelu_ops,   &ich_cpu_sigmoid_ops,   &ich_cpu_mul_ops,
        /* norm.c */
        &ich_cpu_layernorm_ops, &ich_cpu_layerscale_ops, &ich_cpu_droppath_ops,
        /* linear.c: ConvNeXt's per-position Linear */
        &ich_cpu_pointwise_linear_ops,
    };
    if (!kind)
        return NULL;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->kind, kind) == 0)
            return all[i];
    return NULL;
}

static ich_status cpu_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes)
        memcpy(dst, src, bytes);
    return ICH_OK;
}

static void cpu_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta,
                c, (blasint)ldc);
}

static ich_status cpu_accumulate(float *acc, const float *x, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        acc[i] += x[i];
    return ICH_OK;
}

static const char *cpu_describe(void)
{
    static _Thread_local char text[256];
    const dnnl_version_t *dnnl = dnnl_version();
    snprintf(text, sizeof text, "cpu: %d threads, oneDNN %d.%d.%d (%s), OpenBLAS (%s)",
             ich_compute_threads(), dnnl->major, dnnl->minor, dnnl->patch, dnnl->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "threads", openblas_get_config());
    return text;
}

static const ich_backend g_cpu = {
    .interface_version = ICH_BACKEND_INTERFACE_VERSION,
    .size = sizeof(ich_backend),
    .name = "cpu",
    .host_memory = 1,
    .alloc = ich_cpu_alloc,
    .free = ich_cpu_free,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .layer = cpu_layer,
    .set_threads = cpu_set_threads,
    .threads = ich_compute_threads,
    .gemm = cpu_gemm,
    .accumulate = cpu_accumulate,
    .describe = cpu_describe,
};

const ich_backend *ich_backend_cpu(void)
{
    /* From the first use on, OpenBLAS follows ich_set_threads(). */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, listen_threads);
    return &g_cpu;
}
