/* The model graph: built from a spec tree (libich/nn/spec.c), run layer by
 * layer on the current backend, activations in NHWC.
 *
 * Building lowers the spec tree to a list of nodes in execution order, each
 * reading one or two values (activations) and writing one. Two rewrites
 * save time and memory without changing any result:
 *   - "relu, maxpool" becomes "maxpool, relu" (max commutes with ReLU, and
 *     so do their gradients): the ReLU runs on the pooled, 4x smaller
 *     tensor, and the full-size pre-pool activation need not be kept for
 *     backward (max pooling remembers its arg-max in its own workspace);
 *   - a ReLU read only by a following conv, linear or batch norm output is
 *     fused into that layer (args.fuse_relu).
 * Each value is freed as soon as its last reader ran, unless backward needs
 * it (a reader's needs_input, the producer's needs_output);
 * ReLU and dropout run in place when their input has no other use.
 *
 * On the CPU, activations and gradients are carved from one reserved
 * address range (the arena: best fit, neighbours merged when freed). A
 * training step allocates and frees the same sizes in the same order every
 * time, and the arena is all free between steps, so every step gets the
 * same places: after the first steps no fresh page is faulted in and
 * zeroed by the kernel (a step of the tutorial net used to fault in
 * thousands of pages, a cache of whole blocks either freed and refetched
 * them or, kept, held 50% more memory). The resident memory is the
 * arena's highest offset ever used, given back to the system when the
 * batch size changes or the model is freed. Elsewhere (the CUDA plugin's
 * device memory, sanitizer builds that must see each block) freed buffers
 * return to a small cache reused by later allocations, bounded by the
 * largest amount ever live at once. */
#include "nn/model_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"

#include "core/decision.h"
#include "core/error.h"
#include "core/fileutil.h"
#include "core/options.h"
#include "core/profile.h"
#include "core/rng.h"

/* ---- activation buffers ------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define ICH_ARENA_DEFAULT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define ICH_ARENA_DEFAULT 0
#endif
#endif
#ifndef ICH_ARENA_DEFAULT
#define ICH_ARENA_DEFAULT 1
#endif

#define ARENA_ALIGN ((size_t)4096)

typedef struct {
    size_t offset, bytes;
} arena_extent;

struct model_arena {
    char *base;
    size_t reserved; /* address space, bytes */
    size_t used_top; /* highest offset ever used since the last trim */
    arena_extent *free_list; /* sorted by offset, neighbours merged */
    int nfree, capacity;
    int live; /* blocks handed out */
};

static void arena_destroy(struct model_arena *a)
{
    if (!a)
        return;
    munmap(a->base, a->reserved);
    free(a->free_list);
    free(a);
}

/* An address range as large as the machine's memory: only pages used are
 * ever backed (MAP_NORESERVE), huge pages where the kernel has them. */
static struct model_arena *arena_create(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return NULL;
    size_t reserved = (size_t)pages * (size_t)page;
    if (reserved > ((size_t)1 << 40))
        reserved = (size_t)1 << 40;
    reserved &= ~(((size_t)2 << 20) - 1);
    struct model_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    void *base = mmap(NULL, reserved, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED || !(a->free_list = malloc(16 * sizeof *a->free_list))) {
        if (base != MAP_FAILED)
            munmap(base, reserved);
        free(a);
        return NULL;
    }
    madvise(base, reserved, MADV_HUGEPAGE); /* advice: failure is harmless */
    a->base = base;
    a->reserved = reserved;
    a->capacity = 16;
    a->free_list[0] = (arena_extent){0, reserved};
    a->nfree = 1;
    return a;
}

/* Best fit; the lowest offset among equals. NULL when nothing fits. */
static void *arena_take(struct model_arena *a, size_t bytes)
{
    bytes = (bytes + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    int best = -1;
    for (int i = 0; i < a->nfree; i++)
        if (a->free_list[i].bytes >= bytes
            && (best < 0 || a->free_list[i].bytes < a->free_list[best].bytes))
            best = i;
    if (best < 0)
        return NULL;
    arena_extent *e = &a->free_list[best];
    size_t offset = e->offset;
    e->offset += bytes;
    e->bytes -= bytes;
    if (!e->bytes) {
        memmove(e, e + 1, (size_t)(a->nfree - best - 1) * sizeof *e);
        a->nfree--;
    }
    if (offset + bytes > a->used_top)
        a->used_top = offset + bytes;
    a->live++;
    return a->base + offset;
}

/* Returns the block [p, p + bytes) to the free list; 0 when the list could
 * not grow (the range is then lost until the model is freed). */
static int arena_give(struct model_arena *a, void *p, size_t bytes)
{
    bytes = (bytes + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    size_t offset = (size_t)((char *)p - a->base);
    a->live--;
    int at = 0;
    while (at < a->nfree && a->free_list[at].offset < offset)
        at++;
    int joins_left = at > 0 && a->free_list[at - 1].offset + a->free_list[at - 1].bytes == offset;
    int joins_right = at < a->nfree && offset + bytes == a->free_list[at].offset;
    if (joins_left && joins_right) {
        a->free_list[at - 1].bytes += bytes + a->free_list[at].bytes;
        memmove(&a->free_list[at], &a->free_list[at + 1],
                (size_t)(a->nfree - at - 1) * sizeof *a->free_list);
        a->nfree--;
    } else if (joins_left) {
        a->free_list[at - 1].bytes += bytes;
    } else if (joins_right) {
        a->free_list[at].offset = offset;
        a->free_list[at].bytes += bytes;
    } else {
        if (a->nfree == a->capacity) {
            arena_extent *grown = realloc(a->free_list, (size_t)a->capacity * 2 * sizeof *grown);
            if (!grown)
                return 0;
            a->free_list = grown;
            a->capacity *= 2;
        }
        memmove(&a->free_list[at + 1], &a->free_list[at],
                (size_t)(a->nfree - at) * sizeof *a->free_list);
        a->free_list[at] = (arena_extent){offset, bytes};
        a->nfree++;
    }
    return 1;
}

static int in_arena(const ich_model *m, const void *p)
{
    return m->arena && (const char *)p >= m->arena->base
           && (const char *)p < m->arena->base + m->arena->reserved;
}

static void release_cached(ich_model *m, int index)
{
    m->backend->free(m->buffers[index].pointer);
    m->buffers[index] = m->buffers[--m->nbuffers];
}

static float *buffer_alloc(ich_model *m, int64_t count)
{
    size_t bytes = (size_t)count * sizeof(float);
    if (!m->arena && !m->arena_off) {
        if (ICH_ARENA_DEFAULT && m->backend == ich_backend_cpu())
            m->arena = arena_create();
        m->arena_off = !m->arena;
    }
    if (m->arena) {
        model_buffer *grown = realloc(m->buffers, (size_t)(m->nbuffers + 1) * sizeof *grown);
        if (!grown)
            return NULL;
        m->buffers = grown;
        void *p = arena_take(m->arena, bytes ? bytes : 64);
        if (p) {
            m->buffers[m->nbuffers++] = (model_buffer){p, bytes, 1};
            m->live_bytes += bytes;
            if (m->live_bytes > m->high_water)
                m->high_water = m->live_bytes;
            return p;
        }
        /* the address range is full: a block of its own, below */
    }
    int best = -1;
    for (int i = 0; i < m->nbuffers; i++) {
        model_buffer *b = &m->buffers[i];
        if (!b->in_use && b->bytes >= bytes && b->bytes <= bytes + bytes / 4 + 65536
            && (best < 0 || b->bytes < m->buffers[best].bytes))
            best = i;
    }
    if (best < 0) {
        /* Keep cached + live within the largest live total seen. */
        size_t cached = 0;
        for (int i = 0; i < m->nbuffers; i++)
            if (!m->buffers[i].in_use)
                cached += m->buffers[i].bytes;
        for (int i = m->nbuffers - 1; i >= 0 && m->live_bytes + cached + bytes > m->high_water;
             i--) {
            if (!m->buffers[i].in_use) {
                cached -= m->buffers[i].bytes;
                release_cached(m, i);
            }
        }
        model_buffer *grown = realloc(m->buffers, (size_t)(m->nbuffers + 1) * sizeof *grown);
        if (!grown)
            return NULL;
        m->buffers = grown;
        void *p = m->backend->alloc(bytes ? bytes : 64);
        if (!p)
            return NULL;
        best = m->nbuffers++;
        m->buffers[best] = (model_buffer){p, bytes, 0};
    }
    m->buffers[best].in_use = 1;
    m->live_bytes += m->buffers[best].bytes;
    if (m->live_bytes > m->high_water)
        m->high_water = m->live_bytes;
    return m->buffers[best].pointer;
}

static void buffer_free(ich_model *m, float *p)
{
    if (!p)
        return;
    for (int i = 0; i < m->nbuffers; i++) {
        if (m->buffers[i].pointer == p) {
            m->buffers[i].in_use = 0;
            m->live_bytes -= m->buffers[i].bytes;
            if (in_arena(m, p)) {
                arena_give(m->arena, p, m->buffers[i].bytes ? m->buffers[i].bytes : 64);
                m->buffers[i] = m->buffers[--m->nbuffers];
            }
            return;
        }
    }
}

static void buffers_trim(ich_model *m)
{
    for (int i = m->nbuffers - 1; i >= 0; i--)
        if (!m->buffers[i].in_use)
            release_cached(m, i);
    m->high_water = m->live_bytes;
    if (m->arena && !m->arena->live && m->arena->used_top) {
        /* all free: give the pages back (the range stays reserved) */
        madvise(m->arena->base, m->arena->used_top, MADV_DONTNEED);
        m->arena->used_top = 0;
    }
}

/* Free every activation and gradient (the end of a pass). */
static void release_values(ich_model *m)
{
    for (int v = 0; v < m->nvalues; v++) {
        buffer_free(m, m->values[v].data);
        buffer_free(m, m->values[v].grad);
        m->values[v].data = m->values[v].grad = NULL;
    }
    m->have_forward = 0;
}

/* ---- profile (ICH_PROFILE=1) ------------------------------------------- */

/* ICH_PROFILE=1 times every layer's forward and backward (its first call
 * left out) and logs a table at ICH_LOG_INFO when the model is freed: per
 * layer and direction the milliseconds per call, GFLOP/s of the
 * convolutions and linear layers, the share of the step, and the reorders
 * (count and time per call). Backward rows are followed by their input
 * gradient ("- data") and weight gradient ("- weights") parts where the
 * backend runs them as separate primitives (the CPU backend times each
 * primitive: core/profile.h). With ICH_PROFILE_PEAK=G (the FMA peak in
 * GFLOP/s for the ISA in use, e.g. from bench/peak_flops.c) each rate is
 * also given as a percentage of it. oneDNN's implementation of each
 * primitive is logged at ICH_LOG_DEBUG when it is created. On the CUDA
 * plugin the times are those of the calls (kernels run asynchronously)
 * and there are no parts. */
static int profile_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("ICH_PROFILE");
        on = v && *v && strcmp(v, "0") != 0;
    }
    return on;
}

/* ICH_PROFILE_PEAK in GFLOP/s, 0 when unset or not a positive number. */
static double profile_peak(void)
{
    const char *v = getenv("ICH_PROFILE_PEAK");
    char *end = NULL;
    double peak = v ? strtod(v, &end) : 0.0;
    return v && end != v && *end == '\0' && peak > 0 ? peak : 0.0;
}

/* Start timing a call of `node` in direction d (0 forward, 1 backward):
 * its parts go to the node's sink, except on the first call. */
static double profile_begin(model_node *node, int d)
{
    if (!profile_on())
        return 0.0;
    if (node->profile_calls[d] > 0)
        ich_profile_set_sink(&node->profile_parts[d]);
    return ich_profile_clock();
}

static void profile_end(model_node *node, int d, double t0)
{
    if (!profile_on())
        return;
    ich_profile_set_sink(NULL);
    if (node->profile_calls[d]++ > 0)
        node->profile_seconds[d] += ich_profile_clock() - t0;
}

/* Forward FLOPs of one pass of a convolution or linear layer (0: others). */
static double node_flops(const model_node *node)
{
    const ich_layer *l = &node->layer;
    const char *kind = l->ops ? l->ops->kind : "";
    double out = (double)ich_shape_count(l->out);
    if (!strcmp(kind, "conv"))
        return 2.0 * out * (l->in[0].c / (l->args.groups > 0 ? l->args.groups : 1))
               * l->args.kernel[0] * l->args.kernel[1];
    if (!strcmp(kind, "pointwise_linear"))
        return 2.0 * out * l->in[0].c;
    if (!strcmp(kind, "linear"))
        return 2.0 * out * ((double)ich_shape_count(l->in[0]) / (l->in[0].n ? l->in[0].n : 1));
    return 0.0;
}

/* "GFLOP/s" and "% of peak" cells of a row (or "-"). */
static void profile_rates(double flops, double seconds, double peak, char *rate, char *pct,
                          size_t size)
{
    snprintf(rate, size, "-");
    snprintf(pct, size, "-");
    if (flops <= 0 || seconds <= 0)
        return;
    snprintf(rate, size, "%.1f", flops / seconds * 1e-9);
    if (peak > 0)
        snprintf(pct, size, "%.0f%%", 100.0 * flops / seconds * 1e-9 / peak);
}

static void profile_row(const char *name, const char *kind, const char *pass, double seconds,
                        double flops, double total, double peak, const char *reorders)
{
    char rate[32], pct[32];
    profile_rates(flops, seconds, peak, rate, pct, sizeof rate);
    ich_log(ICH_LOG_INFO, "%-28s %-16s %-10s %10.2f %9s %6s %6.1f%% %s", name, kind, pass,
            seconds * 1e3, rate, pct, 100.0 * seconds / total, reorders);
}

/* One layer's rows for direction d; returns its FLOPs per call. */
static double profile_node(const model_node *node, int d, double total, double peak)
{
    const double calls = (double)(node->profile_calls[d] - 1);
    const ich_profile_sink *p = &node->profile_parts[d];
    const char *name = node->layer.name, *kind = node->layer.ops ? node->layer.ops->kind : "?";
    const double flops = node_flops(node);
    char reorders[96] = "", *at = reorders;
    static const char *const names[] = {"weight", "activation"};
    for (int r = 0; r < 2; r++) {
        const int part = r ? ICH_PROFILE_ACTIVATION_REORDER : ICH_PROFILE_WEIGHT_REORDER;
        if (p->calls[part] > 0)
            at += snprintf(at, sizeof reorders - (size_t)(at - reorders), "%s%g %s %.2f ms",
                           at == reorders ? "" : ", ", p->calls[part] / calls, names[r],
                           p->seconds[part] / calls * 1e3);
    }
    /* backward: input and weight gradients, each the forward's FLOPs; the
     * first layer computes no input gradient, a frozen one no weight
     * gradient (without parts, as on the CUDA plugin: both counted) */
    const int has_data = p->calls[ICH_PROFILE_BACKWARD_DATA] > 0;
    const int has_weights = p->calls[ICH_PROFILE_BACKWARD_WEIGHTS] > 0;
    const int parts = has_data + has_weights;
    const double pass_flops = d == 0 ? flops : (parts ? parts : 2) * flops;
    profile_row(name, kind, d ? "backward" : "forward", node->profile_seconds[d] / calls,
                pass_flops, total, peak, reorders);
    if (has_data)
        profile_row(name, kind, "- data", p->seconds[ICH_PROFILE_BACKWARD_DATA] / calls, flops,
                    total, peak, "");
    if (has_weights)
        profile_row(name, kind, "- weights", p->seconds[ICH_PROFILE_BACKWARD_WEIGHTS] / calls,
                    flops, total, peak, "");
    return pass_flops;
}

static void profile_report(const ich_model *m)
{
    double total = 0;
    for (int i = 0; i < m->nnodes; i++)
        for (int d = 0; d < 2; d++)
            if (m->nodes[i].profile_calls[d] > 1)
                total += m->nodes[i].profile_seconds[d] / (m->nodes[i].profile_calls[d] - 1);
    if (total <= 0)
        return;
    const double peak = profile_peak();
    ich_log(ICH_LOG_INFO, "profile (ICH_PROFILE): per call, the first left out; %%peak: of "
                          "ICH_PROFILE_PEAK=%s GFLOP/s; reorders: count and time per call",
            peak > 0 ? getenv("ICH_PROFILE_PEAK") : "(unset)");
    ich_log(ICH_LOG_INFO, "%-28s %-16s %-10s %10s %9s %6s %7s %s", "layer", "kind", "pass", "ms",
            "GFLOP/s", "%peak", "share", "reorders");
    double flops_total = 0;
    for (int i = 0; i < m->nnodes; i++) {
        const model_node *node = &m->nodes[i];
        for (int d = 0; d < 2; d++)
            if (!node->removed && node->profile_calls[d] >= 2)
                flops_total += profile_node(node, d, total, peak);
    }
    char rate[32], pct[32];
    profile_rates(flops_total, total, peak, rate, pct, sizeof rate);
    ich_log(ICH_LOG_INFO, "profile total: %.2f ms in the layers, %.3f GFLOP, %s GFLOP/s, %s of "
            "the FMA peak%s", total * 1e3, flops_total * 1e-9, rate, pct,
            peak > 0 ? "" : " (set ICH_PROFILE_PEAK=GFLOP/s)");
}

/* ---- building ------------------------------------------------------------ */

static ich_status add_value(ich_model *m, ich_shape shape, int *out)
{
    model_value *grown = realloc(m->values, (size_t)(m->nvalues + 1) * sizeof *grown);
    if (!grown)
        return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    m->values = grown;
    memset(&m->values[m->nvalues], 0, sizeof *grown);
    m->values[m->nvalues].shape = shape;
    *out = m->nvalues++;
    return ICH_OK;
}

static int pool_extent(int size, int k, int s, int p, int d)
{
    int span = d * (k - 1) + 1;
    if (size + 2 * p < span)
        return 0;
    return (size + 2 * p - span) / s + 1;
}

/* The output shape of a layer (the same formulas as PyTorch), or an error
 * naming the layer. */
static ich_status infer_shape(const spec_item *item, const ich_shape *in, int nin,
                              ich_shape *out)
{
    const ich_layer_args *a = &item->args;
    *out = in[0];
    switch (item->kind) {
    case SPEC_CONV:
    case SPEC_MAXPOOL:
    case SPEC_AVGPOOL: {
        int d0 = item->kind == SPEC_CONV ? a->dilation[0] : 1;
        int d1 = item->kind == SPEC_CONV ? a->dilation[1] : 1;
        if (item->kind != SPEC_CONV
            && (a->padding[0] * 2 > a->kernel[0] || a->padding[1] * 2 > a->kernel[1]))
            return ich_fail(ICH_ERR_SHAPE, "model: %s: padding must be at most half the kernel",
                            item->name);
        out->h = pool_extent(in->h, a->kernel[0], a->stride[0], a->padding[0], d0);
        out->w = pool_extent(in->w, a->kernel[1], a->stride[1], a->padding[1], d1);
        if (out->h < 1 || out->w < 1)
            return ich_fail(ICH_ERR_SHAPE,
                            "model: %s: kernel %dx%d does not fit its %dx%d input", item->name,
                            a->kernel[0], a->kernel[1], in->h, in->w);
        if (item->kind == SPEC_CONV) {
            int g = a->groups > 0 ? a->groups : 1;
            if (in->c % g || a->out % g)
                return ich_fail(ICH_ERR_SHAPE,
                                "model: %s: groups %d must divide the input channels (%d) and "
                                "the output channels (%d)",
                                item->name, g, in->c, a->out);
            out->c = a->out;
        }
        return ICH_OK;
    }
    case SPEC_LINEAR:
        if (!item->pointwise && (in->h != 1 || in->w != 1))
            return ich_fail(ICH_ERR_SHAPE,
                            "model: %s: linear needs a flat input (its input is %dx%dx%d: add "
                            "flatten or gap before it, or say \"pointwise\" to apply it to "
                            "each position's channels)",
                            item->name, in->c, in->h, in->w);
        out->c = a->out; /* pointwise: the same rows and columns */
        return ICH_OK;
    case SPEC_FLATTEN: {
        /* Sizes are bounded by the parser's limits, their product is not. */
        int64_t features = (int64_t)in->c * in->h * in->w;
        if (features > ICH_MODEL_MAX_ACTIVATION_BYTES / (int64_t)sizeof(float))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "model spec: %s is too large (%lld features; at most %lld)",
                            item->name, (long long)features,
                            (long long)(ICH_MODEL_MAX_ACTIVATION_BYTES / (int64_t)sizeof(float)));
        out->c = (int)features;
        out->h = out->w = 1;
        return ICH_OK;
    }
    case SPEC_GAP:
        out->h = out->w = 1;
        return ICH_OK;
    case SPEC_LAYERNORM:
        if (in->h != 1 || in->w != 1)
            return ich_fail(ICH_ERR_SHAPE,
                            "model: %s: layernorm normalises a flat input (its input is "
                            "%dx%dx%d: add flatten or gap before it, or use layernorm2d over "
                            "the channels)",
                            item->name, in->c, in->h, in->w);
        return ICH_OK;
    case SPEC_RESIDUAL:
        if (nin == 2
            && (in[0].c != in[1].c || in[0].h != in[1].h || in[0].w != in[1].w))
            return ich_fail(ICH_ERR_SHAPE,
                            "model: %s: the body gives %dx%dx%d but the shortcut %dx%dx%d "
                            "(give the shortcut a conv with the body's stride and width)",
                            item->name, in[0].c, in[0].h, in[0].w, in[1].c, in[1].h, in[1].w);
        return ICH_OK;
    case SPEC_SCALE:
        /* in[0]: x; in[1]: the body's per-channel factors */
        if (in[1].h != 1 || in[1].w != 1 || in[1].c != in[0].c)
            return ich_fail(ICH_ERR_SHAPE,
                            "model: %s: a scale block's body must give one value per channel "
                            "(%dx1x1), it gives %dx%dx%d (start it with gap, end it with %d "
                            "channels)",
                            item->name, in[0].c, in[1].c, in[1].h, in[1].w, in[0].c);
        return ICH_OK;
    case SPEC_CONCAT:
    case SPEC_CASCADE:
        if (in[0].h != in[1].h || in[0].w != in[1].w)
            return ich_fail(ICH_ERR_SHAPE,
                            "model: %s: branches give %dx%d and %dx%d rows x columns",
                            item->name, in[0].h, in[0].w, in[1].h, in[1].w);
        if ((int64_t)in[0].c + in[1].c > ICH_MODEL_MAX_CHANNELS)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "model spec: %s is too large (%d + %d channels; at most %d)",
                            item->name, in[0].c, in[1].c, ICH_MODEL_MAX_CHANNELS);
        out->c = in[0].c + in[1].c;
        return ICH_OK;
    default:
        return ICH_OK;
    }
}

static ich_status add_node(ich_model *m, const spec_item *item, spec_kind kind, const int *in,
                           int nin, int *out_value)
{
    ich_shape shapes[2];
    for (int i = 0; i < nin; i++)
        shapes[i] = m->values[in[i]].shape;
    ich_shape out;
    ich_status st = infer_shape(item, shapes, nin, &out);
    if (st)
        return st;
    model_node *grown = realloc(m->nodes, (size_t)(m->nnodes + 1) * sizeof *grown);
    if (!grown)
        return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    m->nodes = grown;
    model_node *node = &m->nodes[m->nnodes];
    memset(node, 0, sizeof *node);
    node->kind = kind;
    node->pointwise = item->pointwise;
    node->stage = -1;
    node->layer.args = item->args;
    snprintf(node->layer.name, sizeof node->layer.name, "%s", item->name);
    node->nin = nin;
    for (int i = 0; i < nin; i++)
        node->in[i] = in[i];
    int v;
    if ((st = add_value(m, out, &v)))
        return st;
    node = &m->nodes[m->nnodes++];
    node->out = v;
    *out_value = v;
    return ICH_OK;
}

static ich_status lower_seq(ich_model *m, const spec_seq *seq, int first, int value, int *out)
{
    ich_status st;
    for (int i = first; i < seq->count; i++) {
        const spec_item *item = &seq->items[i];
        if (item->kind == SPEC_INPUT)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "model spec: %s at position %d: \"input\" must be the first item only",
                            item->name, item->position);
        if (item->kind == SPEC_CASCADE && (seq->prefix[0] || i != seq->count - 1))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "model spec: %s: a cascade must be the last item of the model",
                            item->name);
        if (item->kind == SPEC_RESIDUAL) {
            int in[2];
            if ((st = lower_seq(m, &item->seqs[0], 0, value, &in[0])))
                return st;
            in[1] = value;
            if (item->seqs[1].count && (st = lower_seq(m, &item->seqs[1], 0, value, &in[1])))
                return st;
            if ((st = add_node(m, item, SPEC_RESIDUAL, in, 2, &value)))
                return st;
        } else if (item->kind == SPEC_SCALE) {
            int in[2] = {value, -1};
            if ((st = lower_seq(m, &item->seqs[0], 0, value, &in[1])))
                return st;
            if ((st = add_node(m, item, SPEC_SCALE, in, 2, &value)))
                return st;
        } else if (item->kind == SPEC_CONCAT || item->kind == SPEC_CASCADE) {
            int in[2];
            for (int b = 0; b < item->nseqs; b++) {
                int first_node = m->nnodes;
                if ((st = lower_seq(m, &item->seqs[b], 0, value, &in[b ? 1 : 0])))
                    return st;
                if (item->kind == SPEC_CASCADE) {
                    /* the stage's layers (ich_model_set_active_stage) */
                    for (int k = first_node; k < m->nnodes; k++)
                        m->nodes[k].stage = b;
                    snprintf(m->stage_prefix[b], sizeof m->stage_prefix[b], "%s",
                             item->seqs[b].prefix);
                    m->stage_outputs[b] = m->values[in[b ? 1 : 0]].shape.c;
                }
                if (item->kind == SPEC_CASCADE && b == 0) {
                    ich_shape s = m->values[in[0]].shape;
                    if (s.h != 1 || s.w != 1 || s.c != 1)
                        return ich_fail(ICH_ERR_SHAPE,
                                        "model spec: %s: a cascade's first branch must give "
                                        "one output (\"any\")",
                                        item->name);
                }
                if (b > 0 && (st = add_node(m, item, item->kind, in, 2, &in[0])))
                    return st;
            }
            if (item->kind == SPEC_CASCADE) {
                m->stage_first[0] = 0;
                m->stage_first[1] = m->stage_outputs[0];
            }
            value = in[0];
        } else {
            if ((st = add_node(m, item, item->kind, &value, 1, &value)))
                return st;
        }
    }
    *out = value;
    return ICH_OK;
}

static void count_consumers(ich_model *m)
{
    for (int v = 0; v < m->nvalues; v++) {
        m->values[v].consumers = 0;
        m->values[v].last_consumer = -1;
        m->values[v].producer = -1;
    }
    for (int i = 0; i < m->nnodes; i++) {
        model_node *node = &m->nodes[i];
        if (node->removed)
            continue;
        m->values[node->out].producer = i;
        for (int j = 0; j < node->nin; j++) {
            m->values[node->in[j]].consumers++;
            m->values[node->in[j]].last_consumer = i;
        }
    }
}

/* "relu, maxpool" -> "maxpool, relu" (see the top of this file). */
static void swap_relu_maxpool(ich_model *m)
{
    count_consumers(m);
    for (int i = 0; i + 1 < m->nnodes; i++) {
        model_node *r = &m->nodes[i], *p = &m->nodes[i + 1];
        if (r->kind != SPEC_RELU || p->kind != SPEC_MAXPOOL || p->in[0] != r->out
            || m->values[r->out].consumers != 1)
            continue;
        int v = r->in[0], mid = r->out, end = p->out;
        m->values[mid].shape = m->values[end].shape;
        model_node relu = *r;
        *r = *p;
        r->in[0] = v;
        r->out = mid;
        relu.in[0] = mid;
        relu.out = end;
        *p = relu;
        i++;
    }
}

/* Fuse a ReLU into the conv, linear or batch norm before it. */
static void fuse_relus(ich_model *m)
{
    count_consumers(m);
    for (int i = 0; i < m->nnodes; i++) {
        model_node *r = &m->nodes[i];
        if (r->kind != SPEC_RELU || r->removed)
            continue;
        int v = r->in[0];
        int p = m->values[v].producer;
        if (p < 0 || m->values[v].consumers != 1)
            continue;
        model_node *prod = &m->nodes[p];
        if (prod->kind != SPEC_CONV && prod->kind != SPEC_LINEAR && prod->kind != SPEC_BATCHNORM)
            continue;
        if (prod->layer.args.fuse_relu)
            continue;
        prod->layer.args.fuse_relu = 1;
        prod->out = r->out;
        r->removed = 1;
        m->values[r->out].producer = p;
    }
    int kept = 0;
    for (int i = 0; i < m->nnodes; i++)
        if (!m->nodes[i].removed) {
            if (i == m->cascade_node)
                m->cascade_node = kept;
            m->nodes[kept++] = m->nodes[i];
        }
    m->nnodes = kept;
    count_consumers(m);
}

static const char *backend_kind(spec_kind kind)
{
    switch (kind) {
    case SPEC_RESIDUAL:
        return "add";
    case SPEC_CASCADE:
        return "concat";
    case SPEC_SCALE:
        return "mul";
    case SPEC_LAYERNORM2D: /* both normalise the innermost (channel) values */
        return "layernorm";
    default:
        return ich_spec_kind_name(kind);
    }
}

static int node_needs_output(const model_node *node)
{
    /* A fused ReLU keeps its own mask (layer.h): it does not need the output. */
    return node->layer.ops->needs_output;
}

/* Whether node i runs: all do, except the layers of the cascade stage that
 * ich_model_set_active_stage() switched off. */
static int node_runs(const ich_model *m, int i)
{
    return m->active_stage < 0 || m->nodes[i].stage < 0
           || m->nodes[i].stage == m->active_stage;
}

/* Whether node i reads its input j: the cascade node does not read the
 * branch of a stage that is switched off (it takes zeros instead). */
static int node_reads(const ich_model *m, int i, int j)
{
    return node_runs(m, i)
           && !(i == m->cascade_node && m->active_stage >= 0 && j != m->active_stage);
}

/* Which values backward needs, the last reader of each value (after which
 * forward frees it), counting only the layers that run (the active
 * stage's), and which layers may run in place (decided on every reader, so
 * still valid when a stage is off: a value has fewer readers then). */
static void plan_memory(ich_model *m)
{
    for (int v = 0; v < m->nvalues; v++) {
        model_value *val = &m->values[v];
        val->keep = val->producer >= 0 && node_runs(m, val->producer)
                    && node_needs_output(&m->nodes[val->producer]);
        val->last_consumer = -1;
    }
    for (int i = 0; i < m->nnodes; i++)
        for (int j = 0; j < m->nodes[i].nin; j++) {
            if (!node_reads(m, i, j))
                continue;
            m->values[m->nodes[i].in[j]].last_consumer = i;
            if (m->nodes[i].layer.ops->needs_input)
                m->values[m->nodes[i].in[j]].keep = 1;
        }
    for (int i = 0; i < m->nnodes; i++) {
        model_node *node = &m->nodes[i];
        model_value *in = &m->values[node->in[0]];
        int ok = node->layer.ops->in_place && node->nin == 1 && in->consumers == 1;
        node->inplace_eval = ok;
        node->inplace_train = ok && !node->layer.ops->needs_input
                              && !(in->producer >= 0 && node_needs_output(&m->nodes[in->producer]));
    }
}

static ich_status add_tensors(ich_model *m, int index)
{
    ich_layer *layer = &m->nodes[index].layer;
    for (int p = 0; p < layer->nparams; p++) {
        model_tensor *grown = realloc(m->tensors, (size_t)(m->ntensors + 1) * sizeof *grown);
        if (!grown)
            return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
        m->tensors = grown;
        model_tensor *t = &m->tensors[m->ntensors];
        snprintf(t->name, sizeof t->name, "%s.%s", layer->name, layer->params[p].name);
        for (int k = 0; k < m->ntensors; k++)
            if (!strcmp(m->tensors[k].name, t->name))
                return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                                "model spec: two layers are named \"%s\"", layer->name);
        t->param = &layer->params[p];
        t->node = index;
        m->ntensors++;
    }
    return ICH_OK;
}

static ich_status create_layers(ich_model *m)
{
    for (int i = 0; i < m->nnodes; i++) {
        model_node *node = &m->nodes[i];
        const char *kind = node->pointwise ? "pointwise_linear" : backend_kind(node->kind);
        node->layer.ops = m->backend->layer(kind);
        if (!node->layer.ops)
            return ich_fail(ICH_ERR_UNSUPPORTED, "model: the %s backend has no %s layer",
                            m->backend->name, kind);
        ich_shape in[2], out;
        for (int j = 0; j < node->nin; j++) {
            in[j] = m->values[node->in[j]].shape;
            node->layer.in[j] = in[j];
        }
        ich_status st = node->layer.ops->create(&node->layer, in, &out);
        if (st)
            return st;
        ich_shape want = m->values[node->out].shape;
        if (out.n != want.n || out.h != want.h || out.w != want.w || out.c != want.c)
            return ich_fail(ICH_ERR_INTERNAL,
                            "model: %s: the backend gives shape %dx%dx%d, expected %dx%dx%d",
                            node->layer.name, out.c, out.h, out.w, want.c, want.h, want.w);
        node->layer.out = out;
        if ((st = add_tensors(m, i)))
            return st;
    }
    return ICH_OK;
}

/* a * b, saturating at INT64_MAX (both >= 0). */
static int64_t mul_sat(int64_t a, int64_t b)
{
    return b && a > INT64_MAX / b ? INT64_MAX : a * b;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* Bytes of the tensors (parameters and buffers) a node will hold: what a
 * checkpoint of the model must contain for it. */
static int64_t node_tensor_bytes(const ich_model *m, const model_node *node)
{
    ich_shape in = m->values[node->in[0]].shape, out = m->values[node->out].shape;
    const ich_layer_args *a = &node->layer.args;
    int64_t floats = 0, other = 0;
    if (node->kind == SPEC_CONV) /* weight [out, in / groups, kh, kw] */
        floats = mul_sat(mul_sat(out.c, in.c / (a->groups > 1 ? a->groups : 1)),
                         mul_sat(a->kernel[0], a->kernel[1]));
    else if (node->kind == SPEC_LINEAR && node->pointwise) /* weight [out, in channels] */
        floats = mul_sat(out.c, in.c);
    else if (node->kind == SPEC_LINEAR)
        floats = mul_sat(out.c, mul_sat(in.c, mul_sat(in.h, in.w)));
    if ((node->kind == SPEC_CONV || node->kind == SPEC_LINEAR) && a->bias)
        floats = add_sat(floats, out.c);
    if (node->kind == SPEC_LAYERNORM2D || node->kind == SPEC_LAYERNORM)
        floats = 2 * (int64_t)out.c; /* weight, bias */
    if (node->kind == SPEC_LAYERSCALE)
        floats = out.c;
    if (node->kind == SPEC_BATCHNORM) {
        floats = 4 * (int64_t)out.c; /* weight, bias, running mean and variance */
        other = sizeof(int64_t);    /* num_batches_tracked */
    }
    return add_sat(mul_sat(floats, sizeof(float)), other);
}

/* A spec may come from a file: compute what the network needs before
 * allocating anything and refuse one beyond the limits of ich/model.h
 * (parameter bytes in total, activation bytes per image), instead of
 * letting the allocator overcommit. Sets the totals. */
static ich_status check_sizes(const ich_model *m, int64_t *tensor_bytes, int64_t *activation_bytes)
{
    int64_t params = 0, activations = 0;
    for (int v = 0; v < m->nvalues; v++) {
        ich_shape s = m->values[v].shape;
        activations = add_sat(activations,
                              mul_sat(mul_sat(s.c, sizeof(float)), mul_sat(s.h, s.w)));
    }
    const char *largest = NULL;
    int64_t largest_bytes = -1;
    for (int i = 0; i < m->nnodes; i++) {
        int64_t bytes = node_tensor_bytes(m, &m->nodes[i]);
        params = add_sat(params, bytes);
        if (bytes > largest_bytes) {
            largest_bytes = bytes;
            largest = m->nodes[i].layer.name;
        }
    }
    if (params > ICH_MODEL_MAX_PARAM_BYTES)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "model spec: the network is too large: %lld bytes of parameters (%s "
                        "alone %lld; at most %lld, ICH_MODEL_MAX_PARAM_BYTES)",
                        (long long)params, largest ? largest : "?", (long long)largest_bytes,
                        (long long)ICH_MODEL_MAX_PARAM_BYTES);
    if (activations > ICH_MODEL_MAX_ACTIVATION_BYTES)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "model spec: the network is too large: %lld bytes of activations per "
                        "image (at most %lld, ICH_MODEL_MAX_ACTIVATION_BYTES)",
                        (long long)activations, (long long)ICH_MODEL_MAX_ACTIVATION_BYTES);
    if (tensor_bytes)
        *tensor_bytes = params;
    if (activation_bytes)
        *activation_bytes = activations;
    return ICH_OK;
}

/* The graph of the spec, shapes checked and sizes bounded; nothing but
 * the node and value lists is allocated. */
static ich_status build_graph(ich_model *m, const spec_seq *tree, int64_t *tensor_bytes)
{
    const spec_item *first = &tree->items[0];
    if (first->kind != SPEC_INPUT)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "model spec: item 1 (%s) at position %d: the first item must be the "
                        "input shape, e.g. \"input 1x512x512\"",
                        ich_spec_kind_name(first->kind), first->position);
    memcpy(m->input, first->input, sizeof m->input);
    m->batch = 1;
    int v0, out;
    ich_status st = add_value(m, (ich_shape){1, m->input[1], m->input[2], m->input[0]}, &v0);
    if (!st)
        st = lower_seq(m, tree, 1, v0, &out);
    if (st)
        return st;
    if (m->nnodes == 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "model spec: no layers after the input");
    ich_shape s = m->values[out].shape;
    if (s.h != 1 || s.w != 1)
        return ich_fail(ICH_ERR_SHAPE,
                        "model spec: the last layer gives %dx%dx%d; it must be flat (end with "
                        "flatten/gap and linear)",
                        s.c, s.h, s.w);
    m->out_value = out;
    m->outputs = s.c;
    m->gated = tree->items[tree->count - 1].kind == SPEC_CASCADE;
    m->cascade_node = m->gated ? m->nnodes - 1 : -1;
    m->active_stage = -1;
    return check_sizes(m, tensor_bytes, NULL);
}

ich_status ich_model_spec_tensor_bytes(const char *spec, int64_t *bytes)
{
    spec_seq tree;
    ich_status st = ich_spec_parse(spec, &tree);
    if (st)
        return st;
    ich_model *m = calloc(1, sizeof *m);
    if (!m)
        st = ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    else
        st = build_graph(m, &tree, bytes);
    ich_spec_free(&tree);
    if (m) {
        free(m->nodes);
        free(m->values);
        free(m);
    }
    return st;
}

static ich_status build(ich_model *m, const spec_seq *tree)
{
    ich_status st = build_graph(m, tree, NULL);
    if (st)
        return st;
    swap_relu_maxpool(m);
    fuse_relus(m);
    if ((st = create_layers(m)))
        return st;
    plan_memory(m);
    return ICH_OK;
}

/* ---- metadata ------------------------------------------------------------ */

static int meta_find(const ich_model *m, const char *key)
{
    for (int i = 0; i < m->nmeta; i++)
        if (!strcmp(m->meta_keys[i], key))
            return i;
    return -1;
}

/* Store key = value without the special meaning of ich.* keys. */
static ich_status meta_store(ich_model *m, const char *key, const char *value)
{
    int i = meta_find(m, key);
    if (!value) {
        if (i >= 0) {
            free(m->meta_keys[i]);
            free(m->meta_values[i]);
            memmove(&m->meta_keys[i], &m->meta_keys[i + 1],
                    (size_t)(m->nmeta - i - 1) * sizeof(char *));
            memmove(&m->meta_values[i], &m->meta_values[i + 1],
                    (size_t)(m->nmeta - i - 1) * sizeof(char *));
            m->nmeta--;
        }
        return ICH_OK;
    }
    char *copy = strdup(value);
    if (!copy)
        return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    if (i >= 0) {
        free(m->meta_values[i]);
        m->meta_values[i] = copy;
        return ICH_OK;
    }
    char *key_copy = strdup(key);
    char **keys = realloc(m->meta_keys, (size_t)(m->nmeta + 1) * sizeof(char *));
    if (keys)
        m->meta_keys = keys;
    char **values = realloc(m->meta_values, (size_t)(m->nmeta + 1) * sizeof(char *));
    if (values)
        m->meta_values = values;
    if (!key_copy || !keys || !values) {
        free(copy);
        free(key_copy);
        return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    }
    m->meta_keys[m->nmeta] = key_copy;
    m->meta_values[m->nmeta++] = copy;
    return ICH_OK;
}

/* The kinds that draw random numbers from (seed, step): their steps are
 * saved in the metadata ich.steps, in node order. */
static int seeded_kind(spec_kind kind)
{
    return kind == SPEC_DROPOUT || kind == SPEC_DROPPATH;
}

static uint64_t dropout_seed(uint64_t seed, int index)
{
    ich_rng rng = ich_rng_init(seed, 0xD50D, (uint64_t)index);
    return ich_rng_next(&rng);
}

ich_status ich_model_update_state_metadata(ich_model *m)
{
    char text[32];
    snprintf(text, sizeof text, "%llu", (unsigned long long)m->seed);
    ich_status st = meta_store(m, "ich.seed", text);
    ich_buf buf = {0};
    int any = 0;
    for (int i = 0; i < m->nnodes; i++) {
        if (!seeded_kind(m->nodes[i].kind))
            continue;
        ich_buf_printf(&buf, "%s%llu", any ? "," : "",
                       (unsigned long long)m->nodes[i].layer.step);
        any = 1;
    }
    if (buf.failed)
        st = ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    if (!st && any)
        st = meta_store(m, "ich.steps", buf.data);
    ich_buf_free(&buf);
    return st;
}

static void set_seed(ich_model *m, uint64_t seed)
{
    m->seed = seed;
    for (int i = 0; i < m->nnodes; i++)
        m->nodes[i].layer.seed = dropout_seed(seed, i);
}

static ich_status restore_steps(ich_model *m, const char *text)
{
    const char *s = text;
    for (int i = 0; i < m->nnodes; i++) {
        if (!seeded_kind(m->nodes[i].kind))
            continue;
        char *end;
        unsigned long long step = strtoull(s, &end, 10);
        if (end == s || (*end && *end != ','))
            return ich_fail(ICH_ERR_FORMAT,
                            "model: metadata ich.steps \"%s\" does not match the model's "
                            "dropout and droppath layers",
                            text);
        m->nodes[i].layer.step = step;
        s = *end ? end + 1 : end;
    }
    if (*s)
        return ich_fail(ICH_ERR_FORMAT, "model: metadata ich.steps \"%s\" has extra values",
                        text);
    return ICH_OK;
}

ICH_API ich_status ich_model_set_metadata(ich_model *m, const char *key, const char *value)
{
    if (!m || !key || !*key)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_set_metadata: NULL model or key");
    if (!strcmp(key, "ich.spec"))
        return ICH_OK; /* the model's own, canonical spec stays */
    if (!strcmp(key, "ich.seed")) {
        char *end;
        if (!value)
            return ICH_OK;
        unsigned long long seed = strtoull(value, &end, 10);
        if (end == value || *end)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT, "model: bad ich.seed \"%s\"", value);
        set_seed(m, seed);
        return ich_model_update_state_metadata(m);
    }
    if (!strcmp(key, "ich.steps")) {
        if (!value)
            return ICH_OK;
        ich_status st = restore_steps(m, value);
        return st ? st : ich_model_update_state_metadata(m);
    }
    return meta_store(m, key, value);
}

ICH_API const char *ich_model_metadata(const ich_model *m, const char *key)
{
    if (!m || !key)
        return NULL;
    int i = meta_find(m, key);
    return i < 0 ? NULL : m->meta_values[i];
}

ICH_API int32_t ich_model_metadata_count(const ich_model *m)
{
    return m ? m->nmeta : 0;
}

ICH_API const char *ich_model_metadata_key(const ich_model *m, int32_t index)
{
    return m && index >= 0 && index < m->nmeta ? m->meta_keys[index] : NULL;
}

/* ---- create / free ------------------------------------------------------- */

ICH_API ich_status ich_model_create(const char *spec, ich_model **out)
{
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_create: NULL out");
    *out = NULL;
    spec_seq tree;
    ich_status st = ich_spec_parse(spec, &tree);
    if (st)
        return st;
    ich_model *m = calloc(1, sizeof *m);
    if (!m) {
        ich_spec_free(&tree);
        return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    }
    if ((st = ich_backend_get(&m->backend)) != ICH_OK) {
        ich_spec_free(&tree);
        free(m);
        return st;
    }
    ich_buf text = {0};
    ich_spec_print(&tree, &text);
    m->spec = text.data;
    if (text.failed || !m->spec)
        st = ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    if (!st)
        st = build(m, &tree);
    ich_spec_free(&tree);
    if (!st)
        st = meta_store(m, "ich.spec", m->spec);
    if (!st)
        st = ich_model_init_weights(m, 0);
    if (st) {
        ich_model_free(m);
        return st;
    }
    *out = m;
    return ICH_OK;
}

ICH_API ich_status ich_model_create_preset(const char *name, ich_model **out)
{
    if (!out || !name)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_create_preset: NULL argument");
    *out = NULL;
    ich_buf spec = {0};
    ich_status st = ich_model_preset_build(name, &spec);
    if (!st)
        st = ich_model_create(spec.data, out);
    ich_buf_free(&spec);
    return st;
}

ICH_API void ich_model_free(ich_model *m)
{
    if (!m)
        return;
    if (profile_on())
        profile_report(m);
    release_values(m);
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].layer.ops && m->nodes[i].layer.ops->destroy)
            m->nodes[i].layer.ops->destroy(&m->nodes[i].layer);
    buffers_trim(m);
    free(m->buffers);
    arena_destroy(m->arena);
    for (int i = 0; i < m->nmeta; i++) {
        free(m->meta_keys[i]);
        free(m->meta_values[i]);
    }
    free(m->meta_keys);
    free(m->meta_values);
    free(m->tensors);
    free(m->nodes);
    free(m->values);
    free(m->spec);
    free(m->staging);
    ich_model_gradient_sum_free(m);
    free(m);
}

ICH_API const char *ich_model_backend(const ich_model *m)
{
    return m ? m->backend->name : NULL;
}

ICH_API const char *ich_model_spec(const ich_model *m)
{
    return m ? m->spec : NULL;
}

ICH_API ich_status ich_model_input_shape(const ich_model *m, int32_t *channels, int32_t *rows,
                                         int32_t *columns)
{
    if (!m)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_input_shape: NULL model");
    if (channels)
        *channels = m->input[0];
    if (rows)
        *rows = m->input[1];
    if (columns)
        *columns = m->input[2];
    return ICH_OK;
}

ICH_API int32_t ich_model_outputs(const ich_model *m)
{
    return m ? m->outputs : 0;
}

ICH_API ich_status ich_model_init_weights(ich_model *m, uint64_t seed)
{
    if (!m)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_init_weights: NULL model");
    for (int i = 0; i < m->nnodes; i++)
        ich_model_init_node(m, i, seed);
    set_seed(m, seed);
    for (int i = 0; i < m->nnodes; i++)
        m->nodes[i].layer.step = 0;
    ich_model_tensor_changed(m, -1);
    return ich_model_update_state_metadata(m);
}

ICH_API ich_status ich_model_set_training(ich_model *m, int training)
{
    if (!m)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_set_training: NULL model");
    m->training = training != 0;
    return ICH_OK;
}

/* ---- forward / backward -------------------------------------------------- */

static ich_status resize_batch(ich_model *m, int32_t n)
{
    release_values(m);
    buffers_trim(m);
    for (int v = 0; v < m->nvalues; v++)
        m->values[v].shape.n = n;
    for (int i = 0; i < m->nnodes; i++) {
        model_node *node = &m->nodes[i];
        ich_shape in[2], out;
        for (int j = 0; j < node->nin; j++)
            in[j] = node->layer.in[j] = m->values[node->in[j]].shape;
        out = m->values[node->out].shape;
        ich_status st = node->layer.ops->resize(&node->layer, in, &out);
        if (st)
            return st;
        node->layer.out = out;
    }
    m->batch = n;
    return ICH_OK;
}

/* NCHW images into the model's NHWC input value. */
static void to_nhwc(const float *src, float *dst, int n, int c, int h, int w)
{
    if (c == 1) {
        memcpy(dst, src, (size_t)n * h * w * sizeof(float));
        return;
    }
    size_t plane = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        const float *s = src + (size_t)b * c * plane;
        float *d = dst + (size_t)b * c * plane;
        for (size_t p = 0; p < plane; p++)
            for (int k = 0; k < c; k++)
                d[p * c + k] = s[(size_t)k * plane + p];
    }
}

/* The images (NCHW, host) into the model's input value (NHWC, backend
 * memory): directly on the CPU, through a host staging copy otherwise. */
static ich_status upload_input(ich_model *m, const float *images, int32_t n, float *input)
{
    int c = m->input[0], h = m->input[1], w = m->input[2];
    if (m->backend->host_memory) {
        to_nhwc(images, input, n, c, h, w);
        return ICH_OK;
    }
    size_t bytes = (size_t)n * c * h * w * sizeof(float);
    if (c == 1)
        return m->backend->to_device(input, images, bytes);
    if (m->backend->upload_nchw)
        return m->backend->upload_nchw(input, images, n, c, h, w);
    if (m->staging_bytes < bytes) {
        free(m->staging);
        m->staging = malloc(bytes);
        m->staging_bytes = m->staging ? bytes : 0;
        if (!m->staging)
            return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory for the input");
    }
    to_nhwc(images, m->staging, n, c, h, w);
    return m->backend->to_device(input, m->staging, bytes);
}

void *ich_model_host_alloc(const ich_model *m, size_t bytes)
{
    return m->backend->host_alloc ? m->backend->host_alloc(bytes) : malloc(bytes);
}

void ich_model_host_free(const ich_model *m, void *pointer)
{
    if (m->backend->host_free)
        m->backend->host_free(pointer);
    else
        free(pointer);
}

/* The backend's queued work done and its host-side results in place
 * (backend.h), after a pass that ended with `st`: its first error wins. */
static ich_status finish_pass(ich_model *m, ich_status st)
{
    ich_status done = m->backend->synchronize ? m->backend->synchronize() : ICH_OK;
    return st ? st : done;
}

/* A backend buffer of zeros with `shape` (the cascade's input from a stage
 * that is switched off), through the backend's own copy: no backend needs
 * anything of its own for it. NULL with *st set when out of memory. */
static float *zero_buffer(ich_model *m, ich_shape shape, ich_status *st)
{
    int64_t count = ich_shape_count(shape);
    float *zeros = buffer_alloc(m, count);
    if (zeros && m->backend->host_memory) {
        memset(zeros, 0, (size_t)count * sizeof(float));
        return zeros;
    }
    float *host = zeros ? calloc((size_t)count, sizeof(float)) : NULL;
    if (!host) {
        buffer_free(m, zeros);
        *st = ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory for the cascade's zeros");
        return NULL;
    }
    *st = m->backend->to_device(zeros, host, (size_t)count * sizeof(float));
    free(host);
    if (*st) {
        buffer_free(m, zeros);
        return NULL;
    }
    return zeros;
}

static ich_status forward_pass(ich_model *m, const float *images, int32_t n, float *logits,
                               int training)
{
    ich_status st = ICH_OK;
    float *zeros = NULL;
    if (n != m->batch && (st = resize_batch(m, n)))
        return st;
    release_values(m);
    model_value *v0 = &m->values[0];
    if (!(v0->data = buffer_alloc(m, ich_shape_count(v0->shape))))
        return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory for the input");
    if ((st = upload_input(m, images, n, v0->data))) {
        release_values(m);
        return st;
    }
    for (int i = 0; i < m->nnodes && !st; i++) {
        /* A large layer takes seconds on a CPU: Ctrl-C is looked at between them. */
        if ((st = ich_check_cancel("model forward pass")) != ICH_OK)
            break;
        if (!node_runs(m, i))
            continue; /* a cascade stage switched off */
        model_node *node = &m->nodes[i];
        model_value *out = &m->values[node->out];
        const float *in[2];
        for (int j = 0; j < node->nin; j++)
            in[j] = node_reads(m, i, j) ? m->values[node->in[j]].data : NULL;
        if (i == m->cascade_node && m->active_stage >= 0) {
            int off = 1 - m->active_stage;
            if (!(zeros = zero_buffer(m, m->values[node->in[off]].shape, &st)))
                break;
            in[off] = zeros;
        }
        if (training ? node->inplace_train : node->inplace_eval) {
            out->data = m->values[node->in[0]].data;
            m->values[node->in[0]].data = NULL;
        } else if (!(out->data = buffer_alloc(m, ich_shape_count(out->shape)))) {
            st = ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory for %s's output",
                          node->layer.name);
            break;
        }
        double t0 = profile_begin(node, 0);
        st = node->layer.ops->forward(&node->layer, in, out->data, training);
        profile_end(node, 0, t0);
        buffer_free(m, zeros);
        zeros = NULL;
        for (int j = 0; j < node->nin; j++) {
            model_value *val = &m->values[node->in[j]];
            if (node_reads(m, i, j) && val->last_consumer == i && !(training && val->keep)) {
                buffer_free(m, val->data);
                val->data = NULL;
            }
        }
    }
    buffer_free(m, zeros); /* when the loop stopped between its allocation and use */
    if (st) {
        release_values(m);
        return st;
    }
    model_value *out = &m->values[m->out_value];
    size_t logits_bytes = (size_t)n * m->outputs * sizeof(float);
    if (m->backend->host_memory)
        memcpy(logits, out->data, logits_bytes);
    else
        st = m->backend->to_host(logits, out->data, logits_bytes);
    if (!training || !out->keep) {
        buffer_free(m, out->data);
        out->data = NULL;
    }
    if (st) {
        release_values(m);
        return st;
    }
    m->have_forward = training;
    if (training)
        st = ich_model_update_state_metadata(m);
    return st;
}

/* ---- evaluation in slices of the batch ----------------------------------- */

/* The CPU's rule when ICH_INFER_MEMORY is unset: passes that hold at most
 * INFER_DEFAULT_MIB of activations, of at least INFER_DEFAULT_IMAGES
 * images each. ichnet holds 2 MiB per 256 x 256 image, so a batch of 16
 * runs as 4 x 4 images and peaks at 34 MiB above the process's start
 * instead of 66 (PyTorch: 70-99). The tutorial's net holds 62 MiB per
 * 512 x 512 image (conv1's output beside maxpool1's): 4 x 4 images, 318
 * MiB instead of 1056. Passes of 4 cost no measurable speed on a quiet
 * machine; a pass of one tutorial image cost 15-20% (fewer rows for each
 * thread), and on an oversubscribed machine each pass's per-layer meeting
 * of the threads can wait for a descheduled thread (ichnet in passes of 4,
 * at load 6-7 on 2 cores: 25-30% slower), hence the floor. A GPU wants
 * large batches: other backends slice only when ICH_INFER_MEMORY asks. */
#define INFER_DEFAULT_MIB 8
#define INFER_DEFAULT_IMAGES 4

/* The budget in bytes (0: none, the whole batch in one pass) and the
 * fewest images a pass may hold. */
static ich_status infer_budget(const ich_model *m, int64_t *bytes, int64_t *least)
{
    const char *text = getenv("ICH_INFER_MEMORY");
    *least = 1;
    if (!text || !*text) {
        *bytes = m->backend->host_memory ? (int64_t)INFER_DEFAULT_MIB << 20 : 0;
        *least = INFER_DEFAULT_IMAGES;
        return ICH_OK;
    }
    char *end = NULL;
    errno = 0;
    long long mib = strtoll(text, &end, 10);
    if (errno || end == text || *end || mib < 0 || mib > (INT64_MAX >> 20))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ICH_INFER_MEMORY=\"%s\": expected a whole number of MiB, 0 for no "
                        "limit (the whole batch in one pass)",
                        text);
    *bytes = (int64_t)mib << 20;
    return ICH_OK;
}

static int64_t image_bytes(const ich_model *m, int value)
{
    ich_shape s = m->values[value].shape;
    return (int64_t)s.c * s.h * s.w * (int64_t)sizeof(float);
}

/* The most activation bytes per image an evaluation forward holds at
 * once: forward_pass's allocations and frees replayed on the value shapes
 * (outputs allocated unless the layer runs in place, inputs freed after
 * their last reader, the cascade's zeros for a stage switched off). */
static int64_t eval_bytes_per_image(const ich_model *m)
{
    int64_t live = image_bytes(m, 0), peak = live;
    for (int i = 0; i < m->nnodes; i++) {
        if (!node_runs(m, i))
            continue;
        const model_node *node = &m->nodes[i];
        int64_t zeros = 0;
        if (i == m->cascade_node && m->active_stage >= 0)
            zeros = image_bytes(m, node->in[1 - m->active_stage]);
        if (!node->inplace_eval)
            live += image_bytes(m, node->out);
        peak = live + zeros > peak ? live + zeros : peak;
        for (int j = 0; j < node->nin; j++)
            if (!node->inplace_eval && node_reads(m, i, j)
                && m->values[node->in[j]].last_consumer == i)
                live -= image_bytes(m, node->in[j]);
    }
    return peak;
}

ich_status ich_model_infer_slice(const ich_model *m, int32_t n, int32_t *slice)
{
    int64_t budget = 0, least = 1;
    ich_status st = infer_budget(m, &budget, &least);
    if (st)
        return st;
    int64_t per_image = eval_bytes_per_image(m);
    *slice = n;
    if (budget > 0 && per_image > 0 && mul_sat(per_image, n) > budget) {
        int64_t most = budget / per_image > least ? budget / per_image : least;
        int64_t passes = (n + most - 1) / most;
        *slice = (int32_t)((n + passes - 1) / passes);
    }
    return ICH_OK;
}

/* An evaluation forward of n images in passes of `slice` images. In
 * evaluation every image is computed alone (batch norm uses its running
 * statistics, dropout is off), so the logits are those of one pass. */
static ich_status forward_slices(ich_model *m, const float *images, int32_t n, int32_t slice,
                                 float *logits)
{
    size_t image = (size_t)m->input[0] * m->input[1] * m->input[2];
    ich_status st = ICH_OK;
    for (int32_t first = 0; first < n && !st; first += slice) {
        int32_t at = first + slice <= n ? first : n - slice;
        st = forward_pass(m, images + (size_t)at * image, slice,
                          logits + (size_t)at * m->outputs, 0);
    }
    return st;
}

/* A forward pass; in evaluation, in slices of the batch when the whole
 * batch's activations would exceed ICH_INFER_MEMORY (training is never
 * sliced: batch norm's statistics are the whole batch's). */
static ich_status run_forward(ich_model *m, const float *images, int32_t n, float *logits,
                              int training)
{
    int32_t slice = n;
    ich_status st = training ? ICH_OK : ich_model_infer_slice(m, n, &slice);
    if (!st)
        st = slice < n ? forward_slices(m, images, n, slice, logits)
                       : forward_pass(m, images, n, logits, training);
    return finish_pass(m, st);
}

static ich_status check_images(const ich_model *m, const float *images, int32_t n,
                               const float *out, size_t count, const char *what)
{
    if (!m || !images || !out || n < 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL argument or n < 1", what);
    if (count != (size_t)n * (size_t)m->outputs)
        return ich_fail(ICH_ERR_SHAPE, "%s: the output holds %zu floats, expected %d x %d",
                        what, count, n, m->outputs);
    return ICH_OK;
}

ICH_API ich_status ich_model_forward(ich_model *m, const float *images, int32_t n, float *logits,
                                     size_t logits_count)
{
    ich_status st = check_images(m, images, n, logits, logits_count, "ich_model_forward");
    return st ? st : run_forward(m, images, n, logits, m->training);
}

/* Where input j of a node receives its gradient: the value's gradient
 * buffer when this is its first contribution, else a scratch buffer added
 * to it afterwards (values read twice, as a residual block's input). */
static ich_status grad_target(ich_model *m, const model_node *node, int j, float **target,
                              int *scratch)
{
    model_value *val = &m->values[node->in[j]];
    *scratch = 0;
    *target = NULL;
    if (node->in[j] == 0)
        return ICH_OK; /* the model's input needs no gradient */
    int64_t count = ich_shape_count(val->shape);
    if (!val->grad && !(j == 1 && node->in[0] == node->in[1])) {
        val->grad = buffer_alloc(m, count);
        *target = val->grad;
    } else {
        *target = buffer_alloc(m, count);
        *scratch = 1;
    }
    if (!*target)
        return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory for %s's gradient",
                        node->layer.name);
    return ICH_OK;
}

static ich_status backward_node(ich_model *m, int i)
{
    model_node *node = &m->nodes[i];
    model_value *out = &m->values[node->out];
    ich_status st = ICH_OK;
    if (out->grad) {
        const float *in[2] = {NULL, NULL};
        float *grad_in[2] = {NULL, NULL};
        int scratch[2] = {0, 0};
        for (int j = 0; j < node->nin && !st; j++) {
            if (!node_reads(m, i, j))
                continue; /* a cascade stage switched off: no gradient into it */
            if (node->layer.ops->needs_input)
                in[j] = m->values[node->in[j]].data;
            st = grad_target(m, node, j, &grad_in[j], &scratch[j]);
        }
        double t0 = profile_begin(node, 1);
        if (!st)
            st = node->layer.ops->backward(&node->layer, in,
                                           node_needs_output(node) ? out->data : NULL, out->grad,
                                           grad_in);
        profile_end(node, 1, t0);
        for (int j = 0; j < node->nin; j++) {
            if (!scratch[j])
                continue;
            if (!st)
                st = m->backend->accumulate(m->values[node->in[j]].grad, grad_in[j],
                                            ich_shape_count(m->values[node->in[j]].shape));
            buffer_free(m, grad_in[j]);
        }
    }
    buffer_free(m, out->grad);
    buffer_free(m, out->data);
    out->grad = out->data = NULL;
    return st;
}

ICH_API ich_status ich_model_backward(ich_model *m, const float *grad_logits, size_t grad_count)
{
    if (!m || !grad_logits)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_backward: NULL argument");
    if (!m->have_forward)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_backward: no training-mode forward pass before it");
    if (grad_count != (size_t)m->batch * (size_t)m->outputs)
        return ich_fail(ICH_ERR_SHAPE, "ich_model_backward: %zu gradients, expected %d x %d",
                        grad_count, m->batch, m->outputs);
    model_value *last = &m->values[m->out_value];
    if (!(last->grad = buffer_alloc(m, ich_shape_count(last->shape))))
        return ich_fail(ICH_ERR_NO_MEMORY, "model: out of memory");
    ich_status st = ICH_OK;
    if (m->backend->host_memory)
        memcpy(last->grad, grad_logits, grad_count * sizeof(float));
    else
        st = m->backend->to_device(last->grad, grad_logits, grad_count * sizeof(float));
    for (int i = m->nnodes - 1; i >= 0 && !st; i--)
        if ((st = ich_check_cancel("model backward pass")) == ICH_OK)
            st = backward_node(m, i);
    st = finish_pass(m, st);
    release_values(m);
    return st;
}

ICH_API ich_status ich_model_zero_grad(ich_model *m)
{
    if (!m)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_zero_grad: NULL model");
    for (int t = 0; t < m->ntensors; t++) {
        ich_param *p = m->tensors[t].param;
        int64_t count = 1;
        for (int d = 0; d < p->ndim; d++)
            count *= p->dims[d];
        if (p->grad)
            memset(p->grad, 0, (size_t)count * sizeof(float));
    }
    return ICH_OK;
}

ICH_API ich_status ich_model_predict(ich_model *m, const float *images, int32_t n,
                                     float threshold, float *probabilities, size_t count)
{
    return ich_model_predict_ungated(m, images, n, threshold, probabilities, count, NULL);
}

ich_status ich_model_predict_ungated(ich_model *m, const float *images, int32_t n,
                                     float threshold, float *probabilities, size_t count,
                                     float *ungated)
{
    ich_status st = check_images(m, images, n, probabilities, count, "ich_model_predict");
    if (!st)
        st = run_forward(m, images, n, probabilities, 0);
    if (st)
        return st;
    if (threshold <= 0.0f)
        threshold = 0.5f;
    for (size_t k = 0; k < count; k++) {
        probabilities[k] = ich_sigmoidf(probabilities[k]);
        /* Never report a NaN as a probability (a NaN or infinity in the
         * weights or the image, or an overflow inside the network). */
        if (!isfinite(probabilities[k]))
            return ich_fail(ICH_ERR_FORMAT,
                            "ich_model_predict: image %zu of %d gives a non-finite probability "
                            "for output %zu (a NaN or an infinity in the image or the weights)",
                            k / (size_t)m->outputs, (int)n, k % (size_t)m->outputs);
    }
    if (ungated)
        memcpy(ungated, probabilities, count * sizeof *ungated);
    if (m->gated) {
        /* The subtype stage counts only where the "any" stage fires: above
         * the threshold, as core/decision.h's rule is at 0.5. */
        for (int32_t b = 0; b < n; b++) {
            float *row = probabilities + (size_t)b * m->outputs;
            if (!(row[0] > threshold))
                for (int k = 1; k < m->outputs; k++)
                    row[k] = 0.0f;
        }
    }
    return ICH_OK;
}

/* ---- cascade stages ------------------------------------------------------ */

ICH_API int32_t ich_model_cascade_stages(const ich_model *m)
{
    return m && m->gated ? 2 : 0;
}

ICH_API ich_status ich_model_cascade_stage(const ich_model *m, int32_t stage, const char **prefix,
                                           int32_t *first_output, int32_t *outputs)
{
    if (!m)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_cascade_stage: NULL model");
    if (!m->gated)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_cascade_stage: not a cascade model (its spec does not end "
                        "with cascade(...))");
    if (stage < 0 || stage > 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_cascade_stage: stage %d out of range (0 = any, 1 = subtypes)",
                        (int)stage);
    if (prefix)
        *prefix = m->stage_prefix[stage];
    if (first_output)
        *first_output = m->stage_first[stage];
    if (outputs)
        *outputs = m->stage_outputs[stage];
    return ICH_OK;
}

ICH_API ich_status ich_model_set_active_stage(ich_model *m, int32_t stage)
{
    if (!m)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_set_active_stage: NULL model");
    if (stage < -1 || stage > 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_set_active_stage: stage %d out of range (-1 = both, 0 = any, "
                        "1 = subtypes)",
                        (int)stage);
    if (!m->gated && stage != -1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_set_active_stage: not a cascade model (its spec does not end "
                        "with cascade(...))");
    if (stage == m->active_stage)
        return ICH_OK;
    release_values(m); /* a kept training forward was planned for the other stages */
    m->active_stage = stage;
    plan_memory(m);
    return ICH_OK;
}

ICH_API int32_t ich_model_active_stage(const ich_model *m)
{
    return m ? m->active_stage : -1;
}

/* ---- tensors ------------------------------------------------------------- */

ICH_API int32_t ich_model_tensor_count(const ich_model *m)
{
    return m ? m->ntensors : 0;
}

ICH_API ich_status ich_model_tensor(const ich_model *m, int32_t index, ich_tensor_view *view)
{
    if (!m || index < 0 || index >= m->ntensors)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_model_tensor: NULL model or index %d out of range", (int)index);
    const ich_param *p = m->tensors[index].param;
    ich_tensor_view v = {.size = sizeof v};
    v.name = m->tensors[index].name;
    v.type = p->dtype == ICH_DTYPE_I64 ? ICH_TENSOR_I64 : ICH_TENSOR_F32;
    v.ndim = p->ndim;
    v.count = 1;
    for (int d = 0; d < 4; d++) {
        v.dims[d] = d < p->ndim ? p->dims[d] : 0;
        if (d < p->ndim)
            v.count *= p->dims[d];
    }
    v.data = p->data;
    v.grad = p->grad;
    v.trainable = p->trainable;
    v.frozen = p->frozen;
    /* Only the caller's view->size bytes are written (an older header's
     * view is shorter). */
    return ich_options_write(view, &v, sizeof v, ICH_OPTIONS_V1_SIZE(ich_tensor_view, frozen),
                             "ich_model_tensor");
}

ICH_API int32_t ich_model_find_tensor(const ich_model *m, const char *name)
{
    if (!m || !name)
        return -1;
    for (int t = 0; t < m->ntensors; t++)
        if (!strcmp(m->tensors[t].name, name))
            return t;
    return -1;
}

ICH_API void ich_model_tensor_changed(ich_model *m, int32_t index)
{
    if (!m)
        return;
    for (int t = 0; t < m->ntensors; t++)
        if (index < 0 || t == index)
            m->tensors[t].param->version++;
}

ICH_API ich_status ich_model_freeze(ich_model *m, const char *prefix, int frozen,
                                    int32_t *matched)
{
    if (matched)
        *matched = 0;
    if (!m)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_freeze: NULL model");
    size_t length = prefix ? strlen(prefix) : 0;
    int32_t count = 0;
    for (int t = 0; t < m->ntensors; t++) {
        ich_param *p = m->tensors[t].param;
        if (!p->trainable || (length && strncmp(m->tensors[t].name, prefix, length)))
            continue;
        p->frozen = frozen != 0;
        count++;
    }
    if (matched)
        *matched = count;
    if (!count)
        return ich_fail(ICH_ERR_NOT_FOUND, "ich_model_freeze: no parameter name starts with \"%s\"",
                        prefix ? prefix : "");
    return ICH_OK;
}
