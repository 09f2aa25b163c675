/* Shared pieces of the CPU backend: memory, the oneDNN engine and stream,
 * parameters, and the bit mask of fused ReLUs. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/profile.h"
#include "core/threads.h"

#define HUGE_PAGE ((size_t)2 << 20)

/* Activations of a big network are hundreds of megabytes, allocated and
 * freed every step: with 4 KiB pages the kernel takes a fault for each on
 * every step (~775,000 per training step of the tutorial net at batch 16,
 * 10-20% of the step). Blocks of 2 MiB or more are therefore aligned to
 * 2 MiB and offered to the kernel as transparent huge pages; that asks
 * nothing of the rest of the process (no allocator setting changes). */
void *ich_cpu_alloc(size_t bytes)
{
    if (bytes >= HUGE_PAGE) {
        size_t rounded = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        void *pointer = aligned_alloc(HUGE_PAGE, rounded);
        if (pointer)
            madvise(pointer, rounded, MADV_HUGEPAGE); /* advice: failure is harmless */
        return pointer;
    }
    /* aligned_alloc wants a multiple of the alignment. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, rounded ? rounded : 64);
}

void *ich_cpu_calloc(size_t bytes)
{
    void *pointer = ich_cpu_alloc(bytes);
    if (pointer)
        memset(pointer, 0, bytes);
    return pointer;
}

void ich_cpu_free(void *pointer)
{
    free(pointer);
}

static pthread_once_t g_dnnl_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

static void dnnl_start(void)
{
    if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) {
        g_engine = NULL;
        return;
    }
    if (dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags) != dnnl_success)
        g_stream = NULL;
}

dnnl_engine_t ich_cpu_engine(void)
{
    /* Every primitive is made with the engine: give the calling thread the
     * process's thread count first. A oneDNN primitive keeps the OpenMP
     * thread count of the thread that made it (it runs its parallel
     * regions with num_threads of that count), so one made before the
     * first execute would run on every CPU whatever ich_set_threads said. */
    ich_compute_threads_apply();
    pthread_once(&g_dnnl_once, dnnl_start);
    if (!g_engine || !g_stream) {
        ich_fail(ICH_ERR_INTERNAL, "oneDNN: cannot create the CPU engine");
        return NULL;
    }
    return g_engine;
}

dnnl_stream_t ich_cpu_stream(void)
{
    return ich_cpu_engine() ? g_stream : NULL;
}

ich_status ich_cpu_dnnl_fail(const ich_layer *layer, const char *what, dnnl_status_t status)
{
    ich_status code = status == dnnl_out_of_memory   ? ICH_ERR_NO_MEMORY
                      : status == dnnl_unimplemented ? ICH_ERR_UNSUPPORTED
                                                     : ICH_ERR_INTERNAL;
    return ich_fail(code, "%s (%s): oneDNN %s failed with status %d", layer->name, layer->ops->kind,
                    what, (int)status);
}

ich_status ich_cpu_grow(const ich_layer *layer, void **buffer, size_t *size, size_t want)
{
    if (want <= *size)
        return ICH_OK;
    ich_cpu_free(*buffer);
    *buffer = ich_cpu_alloc(want);
    *size = *buffer ? want : 0;
    if (!*buffer)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory (%zu bytes of layer state)",
                        layer->name, want);
    return ICH_OK;
}

ich_status ich_cpu_params_alloc(ich_layer *layer, int32_t count)
{
    layer->params = calloc((size_t)count, sizeof *layer->params);
    if (!layer->params)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for parameters", layer->name);
    layer->nparams = count;
    return ICH_OK;
}

ich_status ich_cpu_shape(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    return ich_layer_shape(layer, in, out, ich_fail);
}

ich_status ich_cpu_param_init(ich_param *param, const char *name, ich_dtype dtype, int32_t ndim,
                              const int64_t *dims, int trainable)
{
    int64_t count = ich_param_describe(param, name, dtype, ndim, dims, trainable);
    size_t element = dtype == ICH_DTYPE_I64 ? sizeof(int64_t) : sizeof(float);
    param->data = ich_cpu_calloc((size_t)count * element);
    if (trainable)
        param->grad = ich_cpu_calloc((size_t)count * sizeof(float));
    if (!param->data || (trainable && !param->grad))
        return ich_fail(ICH_ERR_NO_MEMORY, "out of memory for parameter %s", name);
    return ICH_OK;
}

void ich_cpu_params_free(ich_layer *layer)
{
    for (int32_t i = 0; i < layer->nparams; i++) {
        ich_cpu_free(layer->params[i].data);
        ich_cpu_free(layer->params[i].grad);
    }
    free(layer->params);
    layer->params = NULL;
    layer->nparams = 0;
}

typedef struct mask_job {
    uint8_t *bits;
    float *grad;
    const float *out;
    int64_t count;
} mask_job;

/* Bytes [begin, end) of the mask from out > 0. */
static void mask_record_range(void *context, int64_t begin, int64_t end)
{
    const mask_job *job = context;
    for (int64_t i = begin; i < end; i++) {
        const float *v = job->out + 8 * i;
        int64_t left = job->count - 8 * i;
        if (left >= 8) {
            job->bits[i] =
                (uint8_t)((v[0] > 0) | (v[1] > 0) << 1 | (v[2] > 0) << 2 | (v[3] > 0) << 3 |
                          (v[4] > 0) << 4 | (v[5] > 0) << 5 | (v[6] > 0) << 6 | (v[7] > 0) << 7);
        } else {
            uint8_t last = 0;
            for (int64_t j = 0; j < left; j++)
                last |= (uint8_t)((v[j] > 0) << j);
            job->bits[i] = last;
        }
    }
}

ich_status ich_relu_mask_record(ich_relu_mask *mask, const float *out, int64_t count)
{
    if (mask->capacity < count) {
        ich_cpu_free(mask->bits);
        mask->bits = ich_cpu_alloc((size_t)(count + 7) / 8);
        mask->capacity = mask->bits ? count : 0;
        if (!mask->bits)
            return ich_fail(ICH_ERR_NO_MEMORY, "out of memory for a ReLU mask");
    }
    mask_job job = {mask->bits, NULL, out, count};
    ich_parallel_range((count + 7) / 8, mask_record_range, &job);
    return ICH_OK;
}

/* Values [8 begin, 8 end) of grad zeroed where the mask bit is 0. */
static void mask_apply_range(void *context, int64_t begin, int64_t end)
{
    const mask_job *job = context;
    int64_t stop = 8 * end < job->count ? 8 * end : job->count;
    for (int64_t i = 8 * begin; i < stop; i++)
        job->grad[i] = (job->bits[i >> 3] >> (i & 7) & 1) ? job->grad[i] : 0.0f;
}

void ich_relu_mask_apply(const ich_relu_mask *mask, float *grad, int64_t count)
{
    mask_job job = {mask->bits, grad, NULL, count};
    ich_parallel_range((count + 7) / 8, mask_apply_range, &job);
}

void ich_relu_mask_free(ich_relu_mask *mask)
{
    ich_cpu_free(mask->bits);
    mask->bits = NULL;
    mask->capacity = 0;
}

size_t ich_cpu_scratchpad_size(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

/* Primitives built so far: [0] forward, [1] backward (any gradient). */
static _Atomic int64_t g_built[2];

void ich_cpu_primitives_built(int64_t *forward, int64_t *backward)
{
    *forward = g_built[0];
    *backward = g_built[1];
}

void ich_cpu_log_impl(const ich_layer *layer, const char *what, const_dnnl_primitive_desc_t pd)
{
    ich_profile_part part = ich_profile_part_of(what);
    g_built[part == ICH_PROFILE_BACKWARD || part == ICH_PROFILE_BACKWARD_DATA ||
            part == ICH_PROFILE_BACKWARD_WEIGHTS]++;
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        ich_log(ICH_LOG_DEBUG, "%s: %s uses oneDNN %s", layer->name, what, impl);
}

ich_status ich_cpu_execute(const ich_layer *layer, dnnl_primitive_t prim,
                           const_dnnl_primitive_desc_t pd, const ich_dnnl_arg *list, int count,
                           void *scratch, const char *what)
{
    dnnl_exec_arg_t args[12];
    int n = 0;
    dnnl_status_t st = dnnl_success;
    dnnl_engine_t engine = ich_cpu_engine();
    if (!engine)
        return ICH_ERR_INTERNAL;
    ich_compute_threads_apply();
    if (!pd && dnnl_primitive_get_primitive_desc(prim, &pd) != dnnl_success)
        return ich_fail(ICH_ERR_INTERNAL, "%s: oneDNN %s: no primitive descriptor", layer->name,
                        what);
    for (int i = 0; i < count && i < 11 && st == dnnl_success; i++) {
        args[n].arg = list[i].arg;
        st = dnnl_memory_create(&args[n].memory, list[i].md, engine, (void *)list[i].data);
        if (st == dnnl_success)
            n++;
    }
    const dnnl_memory_desc_t *sp_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (st == dnnl_success && sp_md && dnnl_memory_desc_get_size(sp_md) > 0) {
        args[n].arg = DNNL_ARG_SCRATCHPAD;
        st = dnnl_memory_create(&args[n].memory, sp_md, engine, scratch);
        if (st == dnnl_success)
            n++;
    }
    /* ICH_PROFILE=1: the model set a sink for this layer call (profile.h) */
    const double t0 = ich_profile_sink_now() ? ich_profile_clock() : 0.0;
    if (st == dnnl_success)
        st = dnnl_primitive_execute(prim, ich_cpu_stream(), n, args);
    if (st == dnnl_success && ich_profile_sink_now())
        ich_profile_record(what, ich_profile_clock() - t0);
    for (int i = 0; i < n; i++)
        dnnl_memory_destroy(args[i].memory);
    return st == dnnl_success ? ICH_OK : ich_cpu_dnnl_fail(layer, what, st);
}


/* oneDNN's OpenMP thread count for the calling thread (omp_set_num_threads,
 * looked up at run time as core/threads.c does); NULL without OpenMP. */
static void (*g_omp_set_threads)(int);
static pthread_once_t g_omp_once = PTHREAD_ONCE_INIT;

static void omp_set_lookup(void)
{
    g_omp_set_threads = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
}

ich_status ich_cpu_execute_serial(const ich_layer *layer, dnnl_primitive_t prim,
                                  const ich_dnnl_arg *list, int count, const char *what)
{
    pthread_once(&g_omp_once, omp_set_lookup);
    ich_compute_threads_apply();
    const int threads = ich_compute_threads();
    if (threads > 1 && g_omp_set_threads)
        g_omp_set_threads(1);
    ich_status st = ich_cpu_execute(layer, prim, NULL, list, count, NULL, what);
    /* back to the count ich_compute_threads_apply() recorded as applied */
    if (threads > 1 && g_omp_set_threads)
        g_omp_set_threads(threads);
    return st;
}
