/* The CUDA plugin's entry point, its backend table, its stream and library
 * handles and its device-memory cache.
 *
 * libich loads this file's library with dlopen and calls
 * ich_backend_plugin() (the one exported symbol) once. Nothing runs at
 * load time: a machine without a GPU or driver can load the plugin and gets
 * a clear error from the entry point, which libich reports or falls back
 * from (ICH_BACKEND=auto). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/cuda/cuda_backend.h"

#define EXPORT __attribute__((visibility("default")))

const ich_plugin_host *ich_cuda_host;

static struct {
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    ich_cuda_math math;
    int benchmark;
    char description[512];
} g;

cudaStream_t ich_cuda_stream(void)
{
    return g.stream;
}

cudnnHandle_t ich_cuda_cudnn(void)
{
    return g.cudnn;
}

cublasHandle_t ich_cuda_cublas(void)
{
    return g.cublas;
}

ich_cuda_math ich_cuda_math_mode(void)
{
    return g.math;
}

int ich_cuda_benchmark(void)
{
    return g.benchmark;
}

/* ---- errors ---------------------------------------------------------------- */

static const char *layer_name(const ich_layer *layer)
{
    return layer ? layer->name : "cuda";
}

ich_status ich_cuda_error(const ich_layer *layer, const char *what, cudaError_t error)
{
    ich_status code = error == cudaErrorMemoryAllocation ? ICH_ERR_NO_MEMORY : ICH_ERR_INTERNAL;
    return cuda_fail(code, "%s: CUDA %s failed: %s (%s)", layer_name(layer), what,
                     cudaGetErrorString(error), cudaGetErrorName(error));
}

ich_status ich_cudnn_error(const ich_layer *layer, const char *what, cudnnStatus_t status)
{
    ich_status code = status == CUDNN_STATUS_ALLOC_FAILED    ? ICH_ERR_NO_MEMORY
                      : status == CUDNN_STATUS_NOT_SUPPORTED ? ICH_ERR_UNSUPPORTED
                                                             : ICH_ERR_INTERNAL;
    return cuda_fail(code, "%s: cuDNN %s failed: %s", layer_name(layer), what,
                     cudnnGetErrorString(status));
}

ich_status ich_cuda_check_launch(const ich_layer *layer, const char *what)
{
    cudaError_t error = cudaPeekAtLastError();
    return error == cudaSuccess ? ICH_OK : ich_cuda_error(layer, what, error);
}

ich_status ich_cublas_error(const ich_layer *layer, const char *what, cublasStatus_t status)
{
    ich_status code = status == CUBLAS_STATUS_ALLOC_FAILED ? ICH_ERR_NO_MEMORY : ICH_ERR_INTERNAL;
    return cuda_fail(code, "%s: cuBLAS %s failed: %s", layer_name(layer), what,
                     cublasGetStatusString(status));
}

/* ---- device memory cache ---------------------------------------------------- */

/* Every block the plugin got from cudaMalloc, in use or not. A training
 * step frees and allocates the same sizes again, so free blocks are kept
 * and handed out again (a block serves requests from half its size up);
 * when cudaMalloc fails the free ones are released and it is tried again.
 * All work runs on one stream, so a block freed here can be reused by the
 * next launch without waiting. */
typedef struct block {
    void *pointer;
    size_t size;
    int used;
} block;

static struct {
    pthread_mutex_t lock;
    block *blocks;
    size_t count, capacity;
} g_cache = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static void cache_release_free(void)
{
    size_t kept = 0;
    for (size_t i = 0; i < g_cache.count; i++) {
        if (g_cache.blocks[i].used)
            g_cache.blocks[kept++] = g_cache.blocks[i];
        else
            cudaFree(g_cache.blocks[i].pointer);
    }
    g_cache.count = kept;
}

static void *cache_take(size_t rounded)
{
    block *best = NULL;
    for (size_t i = 0; i < g_cache.count; i++) {
        block *b = &g_cache.blocks[i];
        if (!b->used && b->size >= rounded && b->size / 2 <= rounded &&
            (!best || b->size < best->size))
            best = b;
    }
    if (best) {
        best->used = 1;
        return best->pointer;
    }
    return NULL;
}

void *ich_cuda_alloc(size_t bytes)
{
    size_t rounded = (bytes + 255) / 256 * 256;
    if (!rounded)
        rounded = 256;
    pthread_mutex_lock(&g_cache.lock);
    void *pointer = cache_take(rounded);
    if (pointer) {
        pthread_mutex_unlock(&g_cache.lock);
        return pointer;
    }
    if (g_cache.count == g_cache.capacity) {
        size_t capacity = g_cache.capacity ? 2 * g_cache.capacity : 64;
        block *grown = realloc(g_cache.blocks, capacity * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&g_cache.lock);
            return NULL;
        }
        g_cache.blocks = grown;
        g_cache.capacity = capacity;
    }
    if (cudaMalloc(&pointer, rounded) != cudaSuccess) {
        cudaGetLastError(); /* clear the error so later calls do not see it */
        cache_release_free();
        if (cudaMalloc(&pointer, rounded) != cudaSuccess) {
            cudaGetLastError();
            pointer = NULL;
        }
    }
    if (pointer)
        g_cache.blocks[g_cache.count++] = (block){pointer, rounded, 1};
    pthread_mutex_unlock(&g_cache.lock);
    return pointer;
}

void ich_cuda_free(void *pointer)
{
    if (!pointer)
        return;
    pthread_mutex_lock(&g_cache.lock);
    for (size_t i = 0; i < g_cache.count; i++)
        if (g_cache.blocks[i].pointer == pointer)
            g_cache.blocks[i].used = 0;
    pthread_mutex_unlock(&g_cache.lock);
}

ich_status ich_cuda_grow(const ich_layer *layer, void **buffer, size_t *size, size_t want)
{
    if (want <= *size)
        return ICH_OK;
    ich_cuda_free(*buffer);
    *buffer = ich_cuda_alloc(want);
    *size = *buffer ? want : 0;
    if (!*buffer)
        return cuda_fail(ICH_ERR_NO_MEMORY, "%s: out of GPU memory (%zu bytes of layer state)",
                         layer_name(layer), want);
    return ICH_OK;
}

static struct {
    pthread_mutex_t lock;
    void *data;
    size_t bytes;
} g_workspace = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

void *ich_cuda_workspace(const ich_layer *layer, size_t bytes)
{
    pthread_mutex_lock(&g_workspace.lock);
    ich_status st = ich_cuda_grow(layer, &g_workspace.data, &g_workspace.bytes, bytes ? bytes : 256);
    void *data = st ? NULL : g_workspace.data;
    pthread_mutex_unlock(&g_workspace.lock);
    return data;
}

/* ---- the table ------------------------------------------------------------------ */

static ich_status copy_and_wait(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    const ich_layer *layer = NULL;
    if (!bytes)
        return ICH_OK;
    CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, kind, g.stream), "copy");
    CHECK_CUDA(cudaStreamSynchronize(g.stream), "copy (waiting for the stream)");
    return ICH_OK;
}

static ich_status cuda_to_device(void *dst, const void *src, size_t bytes)
{
    return copy_and_wait(dst, src, bytes, cudaMemcpyHostToDevice);
}

static ich_status cuda_to_host(void *dst, const void *src, size_t bytes)
{
    return copy_and_wait(dst, src, bytes, cudaMemcpyDeviceToHost);
}

/* The images as they come (NCHW) into a device staging buffer, then
 * reordered to NHWC on the GPU: the host does no per-element work. The
 * copy from pageable memory returns once `src` has been read; from pinned
 * memory (host_alloc) it is queued, and the pass's wait for its result
 * comes before the caller can change `src`. */
static struct {
    pthread_mutex_t lock;
    void *data;
    size_t bytes;
} g_upload = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static ich_status cuda_upload_nchw(float *dst, const float *src, int32_t n, int32_t c, int32_t h,
                                   int32_t w)
{
    const ich_layer *layer = NULL;
    size_t bytes = (size_t)n * c * h * w * sizeof(float);
    pthread_mutex_lock(&g_upload.lock);
    ich_status status = ich_cuda_grow(NULL, &g_upload.data, &g_upload.bytes, bytes);
    cudaError_t error = cudaSuccess;
    if (!status && (error = cudaMemcpyAsync(g_upload.data, src, bytes, cudaMemcpyHostToDevice,
                                            g.stream)) == cudaSuccess) {
        ich_cuda_k_nchw_to_nhwc(dst, g_upload.data, n, c, (int64_t)h * w);
        error = cudaPeekAtLastError();
    }
    pthread_mutex_unlock(&g_upload.lock);
    if (status)
        return status;
    CHECK_CUDA(error, "input upload");
    return ICH_OK;
}

static void *cuda_host_alloc(size_t bytes)
{
    void *pointer = NULL;
    if (cudaMallocHost(&pointer, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return pointer;
}

static void cuda_host_free(void *pointer)
{
    cudaFreeHost(pointer);
}

static ich_status cuda_accumulate(float *acc, const float *x, int64_t count)
{
    const ich_layer *layer = NULL;
    if (count <= 0)
        return ICH_OK;
    ich_cuda_k_accumulate(acc, x, count);
    CHECK_LAUNCH("accumulate");
    return ICH_OK;
}

static const ich_layer_ops *cuda_layer(const char *kind)
{
    static const ich_layer_ops *const all[] = {
        &ich_cuda_conv_ops,    &ich_cuda_linear_ops, &ich_cuda_relu_ops,      &ich_cuda_maxpool_ops,
        &ich_cuda_avgpool_ops, &ich_cuda_gap_ops,    &ich_cuda_batchnorm_ops, &ich_cuda_dropout_ops,
        &ich_cuda_flatten_ops, &ich_cuda_add_ops,    &ich_cuda_concat_ops,
        /* issue 14: activations and scale()'s multiply (act.c) */
        &ich_cuda_silu_ops,    &ich_cuda_gelu_ops,   &ich_cuda_sigmoid_ops,   &ich_cuda_mul_ops,
        /* norm.c */
        &ich_cuda_layernorm_ops, &ich_cuda_layerscale_ops, &ich_cuda_droppath_ops,
        /* linear.c: ConvNeXt's per-position Linear */
        &ich_cuda_pointwise_linear_ops,
    };
    if (!kind)
        return NULL;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->kind, kind) == 0)
            return all[i];
    return NULL;
}

/* The GPU runs the layers; host-side work is the data path's, whose
 * threads ich_set_threads also sets (the dataset's workers): nothing here. */
static void cuda_set_threads(int threads)
{
    (void)threads;
}

static int cuda_threads(void)
{
    return 1;
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T. */
static void cuda_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                      int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    cublasStatus_t status =
        cublasSgemm(g.cublas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                    (int)n, (int)m, (int)k, &alpha, b, (int)ldb, a, (int)lda, &beta, c, (int)ldc);
    if (status != CUBLAS_STATUS_SUCCESS)
        ich_cublas_error(NULL, "gemm", status);
}

static const char *cuda_describe(void)
{
    return g.description;
}

static const ich_backend g_table = {
    .interface_version = ICH_BACKEND_INTERFACE_VERSION,
    .size = sizeof(ich_backend),
    .name = "cuda",
    .host_memory = 0,
    .alloc = ich_cuda_alloc,
    .free = ich_cuda_free,
    .to_device = cuda_to_device,
    .to_host = cuda_to_host,
    .accumulate = cuda_accumulate,
    .upload_nchw = cuda_upload_nchw,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .synchronize = ich_cuda_synchronize,
    .layer = cuda_layer,
    .set_threads = cuda_set_threads,
    .threads = cuda_threads,
    .gemm = cuda_gemm,
    .describe = cuda_describe,
    .collective_load = ich_cuda_collective_load,
    .collective_id = ich_cuda_collective_id,
    .collective_init = ich_cuda_collective_init,
    .allreduce_sum = ich_cuda_allreduce_sum,
};

/* ---- start-up ---------------------------------------------------------------- */

/* This process's rank among those a launcher started on this machine
 * (Open MPI, MPICH/Intel MPI, SLURM's srun, torchrun), or 0. */
static long local_rank(void)
{
    static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                        "SLURM_LOCALID", "LOCAL_RANK"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *text = getenv(names[i]);
        char *end = NULL;
        long rank = text && *text ? strtol(text, &end, 10) : -1;
        if (rank >= 0 && end && !*end)
            return rank;
    }
    return 0;
}

/* ICH_CUDA_DEVICE, else one device per local rank of a distributed run
 * (NCCL needs a device per rank; a single process gets device 0); -1 for
 * a bad ICH_CUDA_DEVICE. */
static int device_from_environment(int count)
{
    const char *text = getenv("ICH_CUDA_DEVICE");
    if (!text || !*text)
        return (int)(local_rank() % count);
    char *end = NULL;
    long device = strtol(text, &end, 10);
    if (*end || device < 0 || device >= count)
        return -1;
    return (int)device;
}

static const char *const math_names[] = {"FP32", "TF32", "BF16"};

/* ICH_CUDA_MATH=fp32|tf32|bf16 (any case), else ICH_CUDA_TF32=1, else FP32. */
static ich_status math_from_environment(ich_cuda_math *math)
{
    const char *text = getenv("ICH_CUDA_MATH");
    const char *tf32 = getenv("ICH_CUDA_TF32");
    *math = tf32 && !strcmp(tf32, "1") ? ICH_CUDA_TF32 : ICH_CUDA_FP32;
    if (!text || !*text)
        return ICH_OK;
    for (int i = 0; i < 3; i++)
        if (!strcasecmp(text, math_names[i])) {
            *math = (ich_cuda_math)i;
            return ICH_OK;
        }
    return cuda_fail(ICH_ERR_INVALID_ARGUMENT,
                     "cuda: ICH_CUDA_MATH=%s is not one of fp32, tf32, bf16", text);
}

static ich_status start(void)
{
    const ich_layer *layer = NULL;
    int count = 0;
    cudaError_t error = cudaGetDeviceCount(&count);
    if (error != cudaSuccess || count == 0) {
        cudaGetLastError();
        /* The runtime says "driver version is insufficient" also when there
         * is no driver at all: tell the two apart. */
        void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
        const char *why = !driver ? "no NVIDIA driver (libcuda.so.1 cannot be loaded)"
                          : error != cudaSuccess ? cudaGetErrorString(error)
                                                 : "the driver reports no CUDA device";
        if (driver)
            dlclose(driver);
        return cuda_fail(ICH_ERR_UNSUPPORTED, "cuda: no usable GPU: %s", why);
    }
    int device = device_from_environment(count);
    if (device < 0)
        return cuda_fail(ICH_ERR_INVALID_ARGUMENT,
                         "cuda: ICH_CUDA_DEVICE=%s is not a device number below %d",
                         getenv("ICH_CUDA_DEVICE"), count);
    CHECK_CUDA(cudaSetDevice(device), "cudaSetDevice");
    CHECK_CUDA(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    CHECK_CUDNN(cudnnCreate(&g.cudnn), "cudnnCreate");
    CHECK_CUDNN(cudnnSetStream(g.cudnn, g.stream), "cudnnSetStream");
    CHECK_CUBLAS(cublasCreate(&g.cublas), "cublasCreate");
    CHECK_CUBLAS(cublasSetStream(g.cublas, g.stream), "cublasSetStream");
    ich_status status = math_from_environment(&g.math);
    if (status)
        return status;
    const char *benchmark = getenv("ICH_CUDA_BENCHMARK");
    g.benchmark = benchmark && !strcmp(benchmark, "1");
    CHECK_CUBLAS(cublasSetMathMode(g.cublas, g.math == ICH_CUDA_FP32 ? CUBLAS_DEFAULT_MATH
                                                                     : CUBLAS_TF32_TENSOR_OP_MATH),
                 "cublasSetMathMode");
    struct cudaDeviceProp prop;
    CHECK_CUDA(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    size_t version = cudnnGetVersion();
    snprintf(g.description, sizeof g.description,
             "cuda: device %d %.200s (sm_%d%d, %.0f GiB), cuDNN %zu.%zu.%zu, %s math%s", device,
             prop.name, prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30),
             version / 10000, version / 100 % 100, version % 100, math_names[g.math],
             g.benchmark ? ", algorithms timed" : "");
    return ICH_OK;
}

EXPORT const ich_backend *ich_backend_plugin(const ich_plugin_host *host, uint32_t *plugin_version)
{
    if (plugin_version)
        *plugin_version = ICH_BACKEND_INTERFACE_VERSION;
    if (!ich_plugin_check_host(host, "cuda"))
        return NULL;
    ich_cuda_host = host;
    if (start() != ICH_OK)
        return NULL;
    host->log(ICH_LOG_INFO, "%s", g.description);
    return &g_table;
}
