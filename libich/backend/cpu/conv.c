/* Convolution on oneDNN: forward (optionally with a fused ReLU), backward
 * data and backward weights (with bias); grouped and depthwise too.
 *
 * Activations are plain NHWC; the weights are PyTorch's OIHW in the
 * parameter and reordered once into the layout oneDNN's kernel prefers
 * (format_tag any), cached until param->version changes. The weight
 * gradient comes out in the kernel's layout and is added to the OIHW
 * gradient by a reorder with a sum post-op (accumulation without a
 * temporary). Primitives are built once per batch size; the backward ones
 * on the first backward call, so inference never builds them.
 *
 * Groups (args.groups = G > 1): oneDNN's grouped convolution, whose
 * weights are 5-D, G x OUT/G x IN/G x KH x KW. PyTorch's grouped weight
 * [OUT, IN/G, KH, KW] is that tensor in goihw order byte for byte (output
 * channel o is filter o % (OUT/G) of group o / (OUT/G)), so the parameter
 * is used and reordered as goihw; depthwise (G = IN) is the same call,
 * for which oneDNN picks its depthwise kernels.
 *
 * Layouts per pass (issue 16): each pass (forward, backward data, backward
 * weights) runs either on the model's NHWC activations or on the blocked
 * layout oneDNN's kernel prefers (format_tag any: nChw8c on AVX2, nChw16c
 * on AVX-512), with its activations reordered into the layer's two blocked
 * copies (one shaped like the input, one like the output) and its result
 * reordered back. oneDNN 2.6's NHWC backward kernels are slow on AVX2
 * (conv2 of the tutorial: backward weights 3x, backward data 1.7x slower
 * than nChw8c), while its NHWC forward is as fast. ICH_CPU_LAYOUT=nhwc|
 * blocked|auto chooses (auto, the default: choose_blocked()). A training
 * forward on the blocked layout leaves its input's copy for the backward
 * weights, which runs before the backward data (that overwrites it).
 *
 * Mixed precision (ICH_CPU_MATH=bf16, as the GPU's ICH_CUDA_MATH=bf16):
 * every pass reads bfloat16 copies of its activation inputs and weights
 * (the same reorders, converting) and writes FP32 results (dst, diff_src,
 * the weight and bias gradients) with FP32 sums; the parameters, their
 * gradients and the optimizer stay FP32. Only where oneDNN has bfloat16
 * kernels (AVX512-BF16 or AMX): elsewhere a warning and FP32.
 *
 * Winograd (issue 16): an inference forward (training = 0) of a 5x5,
 * stride-1, ungrouped convolution with enough channels runs Winograd
 * F(4x4,5x5) (winograd.c: 6.25x fewer multiplications, 2-3x less time
 * than oneDNN 2.6's direct kernels on the tutorial's conv2 and conv3, which
 * offer Winograd only for 3x3); training forwards stay direct: with
 * Winograd there, its rounding (about 1e-5 of the largest output) flipped
 * the ReLU of outputs near zero, and the tutorial's gradients left
 * PyTorch's 1e-4 parity on the AVX2 kernels (6.2e-4, bench/README.md).
 * ICH_CPU_WINOGRAD=0|1|auto chooses (auto, the default:
 * ich_cpu_winograd_pays()). */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu.h"
#include "backend/cpu/im2col.h"
#include "backend/cpu/winograd.h"
#include "core/error.h"
#include "core/profile.h"

/* A weight copy in a primitive's preferred layout. */
typedef struct weight_cache {
    dnnl_memory_desc_t from; /* the source's layout: OIHW (GOIHW), or the flipped IOHW below */
    dnnl_memory_desc_t md;
    int reorder_needed; /* 0: md is OIHW, use the parameter directly */
    void *data;
    dnnl_primitive_t reorder;
    int valid;
    uint64_t version;
} weight_cache;

enum { PASS_FWD, PASS_BWD_DATA, PASS_BWD_W, PASS_COUNT };
enum { LAYOUT_AUTO, LAYOUT_NHWC, LAYOUT_BLOCKED };
enum { WINOGRAD_AUTO, WINOGRAD_OFF, WINOGRAD_ON };

/* A pass's activations in its kernel's layout: [0] the input-shaped one
 * (src, or diff_src for backward data), [1] the output-shaped one (dst or
 * diff_dst), each with the reorder between NHWC and that layout (NHWC ->
 * kernel, except kernel -> NHWC for the pass's result); NULL when the
 * kernel works on NHWC. */
typedef struct pass_layout {
    int32_t images; /* per kernel call: the batch, or a chunk of it on the blocked layout */
    dnnl_memory_desc_t nhwc[2]; /* NHWC mds of one call's images */
    dnnl_memory_desc_t md[2];
    dnnl_primitive_t reorder[2];
} pass_layout;

/* The layer's blocked copy of one activation and what it holds now. */
typedef struct act_copy {
    void *data;
    size_t size;
    const dnnl_memory_desc_t *holds; /* the layout of what it holds; NULL: nothing reusable */
    const void *from;                /* the NHWC buffer it was reordered from */
} act_copy;

typedef struct conv_state {
    int layout; /* LAYOUT_*, from ICH_CPU_LAYOUT */
    int bf16;   /* ICH_CPU_MATH=bf16 on a CPU with bfloat16 instructions */
    int winograd; /* WINOGRAD_*, from ICH_CPU_WINOGRAD */
    ich_cpu_winograd wino;
    pass_layout pass[PASS_COUNT];
    act_copy copy[2];
    dnnl_memory_desc_t src_md, dst_md, w_user_md, b_md;
    dnnl_primitive_desc_t fwd_pd, bwd_data_pd, bwd_w_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_w;
    weight_cache w_fwd, w_bwd;
    int backward_built;
    int use_im2col; /* the weight gradient by im2col.c (use_im2col()) */
    ich_cpu_im2col im2col;
    /* backward data as a forward convolution (data_as_forward()): its
     * primitive, the weights flipped and transposed (OIHW of the forward
     * from OUT to IN channels), of parameter version flip_version */
    int data_fwd;
    dnnl_primitive_desc_t dfwd_pd;
    dnnl_primitive_t dfwd;
    dnnl_memory_desc_t flip_md, dy_md, dx_md;
    /* with pad_cols > 0, dy goes through a copy (in copy[1]) with that many
     * zero columns on the left: dy_md is the copy's, dy_in_md the view of
     * its other columns that a reorder fills from the NHWC gradient */
    int32_t pad_cols;
    dnnl_memory_desc_t dy_nhwc_md, dy_in_md;
    dnnl_primitive_t pad_reorder;
    float *flip;
    int flip_valid;
    uint64_t flip_version;
    weight_cache w_dfwd;
    /* backward weights: the kernel's diff weights and the reorder that adds
     * them into the OIHW gradient */
    void *dw;
    int dw_direct; /* the kernel's layout is OIHW: accumulate by a plain add */
    dnnl_primitive_t dw_add;
    float *db;
    void *scratch;
    size_t scratch_size;
    ich_relu_mask mask;
    int mask_valid;
} conv_state;

static void weight_cache_reset(weight_cache *cache)
{
    if (cache->reorder)
        dnnl_primitive_destroy(cache->reorder);
    ich_cpu_free(cache->data);
    memset(cache, 0, sizeof *cache);
}

static void primitives_free(conv_state *s)
{
    dnnl_primitive_t *prims[] = {&s->fwd,  &s->bwd_data, &s->bwd_w,
                                 &s->dw_add, &s->dfwd,   &s->pad_reorder};
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++)
        if (*prims[i]) {
            dnnl_primitive_destroy(*prims[i]);
            *prims[i] = NULL;
        }
    dnnl_primitive_desc_t *pds[] = {&s->fwd_pd, &s->bwd_data_pd, &s->bwd_w_pd, &s->dfwd_pd};
    for (size_t i = 0; i < sizeof pds / sizeof pds[0]; i++)
        if (*pds[i]) {
            dnnl_primitive_desc_destroy(*pds[i]);
            *pds[i] = NULL;
        }
    for (int p = 0; p < PASS_COUNT; p++)
        for (int i = 0; i < 2; i++)
            if (s->pass[p].reorder[i])
                dnnl_primitive_destroy(s->pass[p].reorder[i]);
    memset(s->pass, 0, sizeof s->pass);
    for (int i = 0; i < 2; i++)
        s->copy[i].holds = NULL;
    weight_cache_reset(&s->w_fwd);
    weight_cache_reset(&s->w_bwd);
    weight_cache_reset(&s->w_dfwd);
    s->backward_built = 0;
    s->use_im2col = 0;
    ich_cpu_free(s->flip);
    s->flip = NULL;
    s->flip_valid = 0;
    s->data_fwd = 0;
    ich_cpu_free(s->dw);
    s->dw = NULL;
    ich_cpu_free(s->db);
    s->db = NULL;
}

/* Grow the layer's scratchpad to what `pd` asks for. */
static ich_status scratch_reserve(ich_layer *layer, conv_state *s, const_dnnl_primitive_desc_t pd)
{
    return ich_cpu_grow(layer, &s->scratch, &s->scratch_size, ich_cpu_scratchpad_size(pd));
}

/* The weights' dims as oneDNN wants them: OIHW, or with groups GOIHW;
 * returns the number of dims. */
static int weight_dims(const ich_layer *layer, dnnl_dims_t dims)
{
    const ich_layer_args *a = &layer->args;
    int32_t g = a->groups > 1 ? a->groups : 1;
    int32_t out = layer->out.c, in = layer->in[0].c;
    int n = 0;
    if (g > 1)
        dims[n++] = g;
    dims[n++] = out / g;
    dims[n++] = in / g;
    dims[n++] = a->kernel[0];
    dims[n++] = a->kernel[1];
    return n;
}

/* The convolution's geometry as oneDNN wants it (dilation 0 = none). */
static void geometry(const ich_layer *layer, dnnl_dims_t strides, dnnl_dims_t dilates,
                     dnnl_dims_t pad_l, dnnl_dims_t pad_r)
{
    const ich_layer_args *a = &layer->args;
    for (int i = 0; i < 2; i++) {
        strides[i] = a->stride[i];
        dilates[i] = a->dilation[i] - 1;
        pad_l[i] = a->padding[i];
        /* right padding that gives exactly PyTorch's (floored) output size */
        int32_t in = i == 0 ? layer->in[0].h : layer->in[0].w;
        int32_t out = i == 0 ? layer->out.h : layer->out.w;
        int32_t span = a->dilation[i] * (a->kernel[i] - 1) + 1;
        pad_r[i] = (int64_t)(out - 1) * a->stride[i] + span - in - a->padding[i];
    }
}

static ich_status make_attr(ich_layer *layer, int relu, dnnl_primitive_attr_t *attr)
{
    CHECK_DNNL(dnnl_primitive_attr_create(attr), "attr_create");
    CHECK_DNNL(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user),
               "set_scratchpad_mode");
    if (relu) {
        dnnl_post_ops_t ops;
        CHECK_DNNL(dnnl_post_ops_create(&ops), "post_ops_create");
        dnnl_status_t st = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(*attr, ops);
        dnnl_post_ops_destroy(ops);
        CHECK_DNNL(st, "relu post-op");
    }
    return ICH_OK;
}

/* The environment variable `name` as the index of one of three `names`
 * (any case); unset or empty: 0. Another value fails, listing `choices`. */
static ich_status env_choice(ich_layer *layer, const char *name, const char *const names[3],
                             const char *choices, int *mode)
{
    const char *text = getenv(name);
    *mode = 0;
    if (!text || !*text)
        return ICH_OK;
    for (int m = 0; m < 3; m++)
        if (strcasecmp(text, names[m]) == 0) {
            *mode = m;
            return ICH_OK;
        }
    return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: %s=%s is not one of %s", layer->name, name,
                    text, choices);
}

/* ICH_CPU_LAYOUT: nhwc, blocked or auto (unset: auto), any case. */
static ich_status layout_mode(ich_layer *layer, int *mode)
{
    static const char *const names[] = {"auto", "nhwc", "blocked"};
    return env_choice(layer, "ICH_CPU_LAYOUT", names, "nhwc, blocked, auto", mode);
}

/* ICH_CPU_MATH: fp32 (unset: fp32) or bf16, any case. bf16 on a CPU (or
 * under ONEDNN_MAX_CPU_ISA) without bfloat16 instructions is FP32 with a
 * warning (once per process): oneDNN would emulate it, slower than FP32.
 * A convolution with fewer than 8 input channels (an image network's
 * first) stays FP32 on NHWC: the bf16 kernels' blocked layout pads its
 * channels to 16, which costs more than bf16 saves. */
static ich_status math_mode(ich_layer *layer, int *bf16)
{
    static int warned;
    const char *text = getenv("ICH_CPU_MATH");
    *bf16 = 0;
    if (!text || !*text || strcasecmp(text, "fp32") == 0)
        return ICH_OK;
    if (strcasecmp(text, "bf16") != 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "%s: ICH_CPU_MATH=%s is not one of fp32, bf16", layer->name, text);
    const dnnl_cpu_isa_t need = dnnl_cpu_isa_avx512_core_bf16;
    int has_bf16 = (dnnl_get_effective_cpu_isa() & need) == need;
    *bf16 = has_bf16 && layer->in[0].c >= 8;
    if (!has_bf16 && !__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        ich_log(ICH_LOG_WARNING,
                "ICH_CPU_MATH=bf16: this CPU (or ONEDNN_MAX_CPU_ISA) has no AVX512-BF16 or AMX "
                "instructions; convolutions stay FP32");
    return ICH_OK;
}

/* ICH_CPU_WINOGRAD: 0, 1 or auto (unset: auto), any case. */
static ich_status winograd_mode(ich_layer *layer, int *mode)
{
    static const char *const names[] = {"auto", "0", "1"};
    return env_choice(layer, "ICH_CPU_WINOGRAD", names, "0, 1, auto", mode);
}

/* The settings read from the environment when the primitives are built. */
static ich_status read_settings(ich_layer *layer)
{
    conv_state *s = layer->state;
    ich_status status = layout_mode(layer, &s->layout);
    if (status == ICH_OK)
        status = math_mode(layer, &s->bf16);
    return status == ICH_OK ? winograd_mode(layer, &s->winograd) : status;
}

/* Whether an inference forward runs Winograd: 1 forces it wherever the
 * geometry allows; auto where it pays, and not under ICH_CPU_MATH=bf16
 * (Winograd is FP32 arithmetic). */
static int use_winograd(const ich_layer *layer)
{
    const conv_state *s = layer->state;
    if (s->winograd == WINOGRAD_ON)
        return ich_cpu_winograd_fits(layer);
    return s->winograd == WINOGRAD_AUTO && !s->bf16 && ich_cpu_winograd_pays(layer);
}

int64_t ich_cpu_conv_winograd_runs(const ich_layer *layer)
{
    const conv_state *s = layer->state;
    return s->wino.runs;
}

/* Whether `pass` runs on the blocked layout. auto, by rule: the backward
 * passes of an ungrouped convolution with a kernel of 4x4 or more and at
 * least 8 input channels (one AVX2 block), on an AVX2 CPU without AVX-512
 * (or under ONEDNN_MAX_CPU_ISA=AVX2). Measured (bench/README.md): on
 * AVX2 the tutorial's 5x5 and 4x4 convolutions' blocked backward weights
 * is 1.3-2.9x and backward data 1.1-1.5x faster than NHWC, reorders
 * included, while their forward is as fast or faster on NHWC; with 1
 * input channel (conv1) the blocked layout pads the input to 8 and is 2x
 * slower; ichnet's 3x3 convolutions do too little work per value for the
 * reorders to pay (its step slower). With AVX-512, oneDNN's NHWC kernels
 * are as fast as the blocked ones before the reorders. */
static int choose_blocked(const ich_layer *layer, int pass)
{
    const conv_state *s = layer->state;
    if (s->layout != LAYOUT_AUTO)
        return s->layout == LAYOUT_BLOCKED;
    const dnnl_cpu_isa_t avx2 = dnnl_cpu_isa_avx2, avx512 = dnnl_cpu_isa_avx512_core;
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    /* AVX2 without AVX-512, where it was measured (below AVX2 oneDNN's
     * backward is gemm on plain layouts: nothing blocked to gain) */
    int avx2_only = (isa & avx2) == avx2 && (isa & avx512) != avx512;
    const ich_layer_args *a = &layer->args;
    return pass != PASS_FWD && avx2_only && a->groups <= 1 && layer->in[0].c >= 8 &&
           a->kernel[0] * a->kernel[1] >= 16;
}

/* The blocked copies of one call stay within this budget (at least one
 * image): a pass on the blocked layout runs over the batch in chunks, so
 * that the layer's copies add a bounded amount of memory (the tutorial's
 * conv2 at batch 16 would need 700 MiB for whole-batch copies) at no
 * measurable cost in speed. 64 MiB (conv2 one image a call, conv3 four)
 * took the tutorial's AVX2 training from 1410 to 1314 MiB, its step as
 * fast as with 128 MiB. */
#define BLOCKED_COPY_BUDGET ((int64_t)64 << 20)

/* Tests set a smaller budget to run the chunked passes on small shapes. */
static int64_t copy_budget_override;

void ich_cpu_conv_set_copy_budget(int64_t bytes)
{
    __atomic_store_n(&copy_budget_override, bytes, __ATOMIC_RELAXED);
}

/* Images per call of a blocked pass: the largest divisor of the batch
 * whose copies (channels rounded up to oneDNN's widest block, 16) fit the
 * budget. */
static int32_t blocked_chunk(const ich_layer *layer)
{
    const ich_shape *in = &layer->in[0], *out = &layer->out;
    int64_t image = 4 * ((int64_t)(in->c + 15) / 16 * 16 * in->h * in->w +
                         (int64_t)(out->c + 15) / 16 * 16 * out->h * out->w);
    int64_t budget = __atomic_load_n(&copy_budget_override, __ATOMIC_RELAXED);
    if (budget <= 0)
        budget = BLOCKED_COPY_BUDGET;
    int32_t chunk = in->n;
    while (chunk > 1 && (in->n % chunk || chunk * image > budget))
        chunk--;
    return chunk;
}

/* The activation mds a pass's descriptor gets: NHWC for the whole batch,
 * or "any" (the kernel chooses) for a chunk when the pass runs blocked;
 * records the pass's images per call and their NHWC mds. */
static ich_status pass_mds(ich_layer *layer, int pass, dnnl_memory_desc_t *src,
                           dnnl_memory_desc_t *dst)
{
    conv_state *s = layer->state;
    pass_layout *lay = &s->pass[pass];
    /* bfloat16 copies are reorders anyway: the kernel chooses their layout */
    int blocked = choose_blocked(layer, pass) || s->bf16;
    lay->images = blocked ? blocked_chunk(layer) : layer->in[0].n;
    const dnnl_memory_desc_t *full[2] = {&s->src_md, &s->dst_md};
    dnnl_memory_desc_t *any[2] = {src, dst};
    for (int i = 0; i < 2; i++) {
        dnnl_dims_t dims;
        memcpy(dims, full[i]->dims, sizeof dims);
        dims[0] = lay->images;
        CHECK_DNNL(dnnl_memory_desc_init_by_tag(&lay->nhwc[i], 4, dims, dnnl_f32, dnnl_nhwc),
                   "md");
        *any[i] = lay->nhwc[i];
        /* bf16: the pass's inputs (src, diff_dst), not its results */
        int input = pass == PASS_BWD_W || (pass == PASS_FWD) == (i == 0);
        dnnl_data_type_t type = s->bf16 && input ? dnnl_bf16 : dnnl_f32;
        if (blocked)
            CHECK_DNNL(dnnl_memory_desc_init_by_tag(any[i], 4, dims, type, dnnl_format_tag_any),
                       "md");
    }
    return ICH_OK;
}

/* Floats per image of the layer's input (i = 0) or output (i = 1). */
static int64_t image_size(const ich_layer *layer, int i)
{
    const ich_shape *shape = i ? &layer->out : &layer->in[0];
    return (int64_t)shape->h * shape->w * shape->c;
}

/* The reorders between the NHWC activations and the layouts `pd` chose,
 * and room for them in the layer's blocked copies. */
static ich_status pass_layout_init(ich_layer *layer, int pass, const_dnnl_primitive_desc_t pd)
{
    conv_state *s = layer->state;
    pass_layout *lay = &s->pass[pass];
    const dnnl_query_t query[PASS_COUNT][2] = {
        [PASS_FWD] = {dnnl_query_src_md, dnnl_query_dst_md},
        [PASS_BWD_DATA] = {dnnl_query_diff_src_md, dnnl_query_diff_dst_md},
        [PASS_BWD_W] = {dnnl_query_src_md, dnnl_query_diff_dst_md},
    };
    const dnnl_memory_desc_t *nhwc[2] = {&lay->nhwc[0], &lay->nhwc[1]};
    for (int i = 0; i < 2; i++) {
        lay->md[i] = *dnnl_primitive_desc_query_md(pd, query[pass][i], 0);
        if (dnnl_memory_desc_equal(&lay->md[i], nhwc[i]))
            continue;
        /* the pass's result goes back to NHWC, its inputs come from it */
        int result = (pass == PASS_FWD && i == 1) || (pass == PASS_BWD_DATA && i == 0);
        const dnnl_memory_desc_t *from = result ? &lay->md[i] : nhwc[i];
        const dnnl_memory_desc_t *to = result ? nhwc[i] : &lay->md[i];
        dnnl_primitive_desc_t rpd;
        dnnl_engine_t engine = ich_cpu_engine();
        CHECK_DNNL(dnnl_reorder_primitive_desc_create(&rpd, from, engine, to, engine, NULL),
                   "activation reorder");
        dnnl_status_t st = dnnl_primitive_create(&lay->reorder[i], rpd);
        dnnl_primitive_desc_destroy(rpd);
        CHECK_DNNL(st, "activation reorder");
        act_copy *c = &s->copy[i];
        void *before = c->data;
        ich_status status =
            ich_cpu_grow(layer, &c->data, &c->size, dnnl_memory_desc_get_size(&lay->md[i]));
        if (status != ICH_OK)
            return status;
        if (c->data != before)
            c->holds = NULL; /* a new buffer (the backward's, larger) holds nothing yet */
    }
    return ICH_OK;
}

/* A pass's input activation `i` in its kernel's layout: `nhwc` itself, or
 * the layer's copy, reordered unless it already holds `nhwc` so. */
static ich_status to_kernel(ich_layer *layer, int pass, int i, const void *nhwc,
                            const void **data)
{
    conv_state *s = layer->state;
    pass_layout *lay = &s->pass[pass];
    act_copy *c = &s->copy[i];
    if (!lay->reorder[i]) {
        *data = nhwc;
        return ICH_OK;
    }
    *data = c->data;
    if (c->holds && c->from == nhwc && dnnl_memory_desc_equal(c->holds, &lay->md[i]))
        return ICH_OK;
    const dnnl_memory_desc_t *nhwc_md = &lay->nhwc[i];
    ich_dnnl_arg args[] = {{DNNL_ARG_FROM, nhwc_md, nhwc}, {DNNL_ARG_TO, &lay->md[i], c->data}};
    c->holds = NULL;
    ich_status status =
        ich_cpu_execute(layer, lay->reorder[i], NULL, args, 2, NULL, "activation reorder");
    if (status == ICH_OK) {
        c->holds = &lay->md[i];
        c->from = nhwc;
    }
    return status;
}

/* Where a pass writes its result `i`: `nhwc` itself, or the layer's copy
 * (which then holds nothing reusable) for from_kernel() to reorder. */
static void *result_place(ich_layer *layer, int pass, int i, void *nhwc)
{
    conv_state *s = layer->state;
    if (!s->pass[pass].reorder[i])
        return nhwc;
    s->copy[i].holds = NULL;
    return s->copy[i].data;
}

static ich_status from_kernel(ich_layer *layer, int pass, int i, void *nhwc)
{
    conv_state *s = layer->state;
    pass_layout *lay = &s->pass[pass];
    if (!lay->reorder[i])
        return ICH_OK;
    const dnnl_memory_desc_t *nhwc_md = &lay->nhwc[i];
    ich_dnnl_arg args[] = {{DNNL_ARG_FROM, &lay->md[i], s->copy[i].data},
                           {DNNL_ARG_TO, nhwc_md, nhwc}};
    return ich_cpu_execute(layer, lay->reorder[i], NULL, args, 2, NULL, "activation reorder");
}

/* Weight cache for a primitive whose weights md is `md`, filled from
 * weights laid out as `from`. */
static ich_status weight_cache_init(ich_layer *layer, weight_cache *cache,
                                    const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *md)
{
    cache->from = *from;
    cache->md = *md;
    cache->reorder_needed = !dnnl_memory_desc_equal(md, from);
    if (!cache->reorder_needed)
        return ICH_OK;
    cache->data = ich_cpu_alloc(dnnl_memory_desc_get_size(md));
    if (!cache->data)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for the weights", layer->name);
    dnnl_primitive_desc_t pd;
    dnnl_engine_t engine = ich_cpu_engine();
    CHECK_DNNL(dnnl_reorder_primitive_desc_create(&pd, from, engine, md, engine, NULL),
               "weights reorder");
    dnnl_status_t st = dnnl_primitive_create(&cache->reorder, pd);
    dnnl_primitive_desc_destroy(pd);
    CHECK_DNNL(st, "weights reorder");
    return ICH_OK;
}

/* The weights `from` (laid out as the cache's source, of the parameter's
 * version) in the cache's layout, reordered again only when changed. */
static ich_status weight_cache_get(ich_layer *layer, weight_cache *cache, void *from,
                                   void **weights)
{
    ich_param *w = &layer->params[0];
    if (!cache->reorder_needed) {
        *weights = from;
        return ICH_OK;
    }
    if (!cache->valid || cache->version != w->version) {
        ich_dnnl_arg args[] = {{DNNL_ARG_FROM, &cache->from, from},
                               {DNNL_ARG_TO, &cache->md, cache->data}};
        ich_status status = ich_cpu_execute_serial(layer, cache->reorder, args, 2,
                                                   "weights reorder");
        if (status != ICH_OK)
            return status;
        cache->valid = 1;
        cache->version = w->version;
    }
    *weights = cache->data;
    return ICH_OK;
}

static ich_status build_forward(ich_layer *layer)
{
    conv_state *s = layer->state;
    const ich_shape *in = &layer->in[0];
    const ich_shape *out = &layer->out;
    dnnl_dims_t src_dims = {in->n, in->c, in->h, in->w};
    dnnl_dims_t dst_dims = {out->n, out->c, out->h, out->w};
    dnnl_dims_t w_dims;
    int w_ndims = weight_dims(layer, w_dims);
    dnnl_dims_t b_dims = {out->c};
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->src_md, 4, src_dims, dnnl_f32, dnnl_nhwc), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->w_user_md, w_ndims, w_dims, dnnl_f32,
                                            w_ndims == 5 ? dnnl_goihw : dnnl_oihw),
               "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->b_md, 1, b_dims, dnnl_f32, dnnl_x), "md");
    dnnl_memory_desc_t w_any;
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&w_any, w_ndims, w_dims,
                                            s->bf16 ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any),
               "md");
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(layer, strides, dilates, pad_l, pad_r);
    dnnl_memory_desc_t src, dst;
    ich_status status = pass_mds(layer, PASS_FWD, &src, &dst);
    if (status != ICH_OK)
        return status;
    dnnl_convolution_desc_t desc;
    CHECK_DNNL(dnnl_dilated_convolution_forward_desc_init(
                   &desc, dnnl_forward_training, dnnl_convolution_direct, &src, &w_any,
                   layer->args.bias ? &s->b_md : NULL, &dst, strides, dilates, pad_l, pad_r),
               "convolution forward desc");
    dnnl_primitive_attr_t attr;
    status = make_attr(layer, layer->args.fuse_relu, &attr);
    if (status != ICH_OK)
        return status;
    dnnl_status_t st = dnnl_primitive_desc_create(&s->fwd_pd, &desc, attr, ich_cpu_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    CHECK_DNNL(st, "convolution forward");
    CHECK_DNNL(dnnl_primitive_create(&s->fwd, s->fwd_pd), "convolution forward");
    ich_cpu_log_impl(layer, "forward", s->fwd_pd);
    if (use_winograd(layer))
        ich_log(ICH_LOG_DEBUG, "%s: inference forward uses Winograd F(4x4,5x5) (%s transforms)",
                layer->name, ich_cpu_winograd_isa());
    if ((status = scratch_reserve(layer, s, s->fwd_pd)) != ICH_OK ||
        (status = pass_layout_init(layer, PASS_FWD, s->fwd_pd)) != ICH_OK)
        return status;
    return weight_cache_init(layer, &s->w_fwd, &s->w_user_md,
                             dnnl_primitive_desc_query_md(s->fwd_pd, dnnl_query_weights_md, 0));
}

/* oneDNN 2.6.3's 1x1 kernels (jit_1x1:avx2, jit_1x1:avx512_core) get the
 * weight gradient of a strided 1x1 convolution wrong: their "reduce to unit
 * stride" copy of the NHWC source puts rows at (ic_b * is + sp) * ic_block
 * in a per-thread area sized is * ic, so when the input channels are not a
 * multiple of the kernel's channel block (8 on AVX2, 16 on AVX-512) it
 * writes past its scratchpad: wrong gradients that change from run to run
 * with several threads, a corrupted heap with one. The pattern is still in
 * oneDNN's master (upstream issue 6035 looks like it). Forward and backward
 * data are right. A strided 1x1 convolution therefore takes the next
 * implementation oneDNN offers for its backward weights (jit or gemm; no
 * measurable cost on ichnet). tests/sweep/test_layer_sweep.py checks every case.
 * The check is by the kernel's name, so it holds for grouped 1x1
 * convolutions too (oneDNN 2.6.3 gave them jit or gemm kernels, not jit_1x1,
 * on AVX-512 and AVX2; the sweep's gconv_k1_s2 cases check them). */
static int faulty_backward_weights(const ich_layer *layer, const_dnnl_primitive_desc_t pd)
{
    const ich_layer_args *a = &layer->args;
    if (a->kernel[0] != 1 || a->kernel[1] != 1 || (a->stride[0] == 1 && a->stride[1] == 1))
        return 0;
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        return 0;
    return strncmp(impl, "jit_1x1", 7) == 0;
}

/* The first backward-weights implementation, in oneDNN's order of
 * preference, that is not one of the faulty kernels above. */
static dnnl_status_t backward_weights_pd(const ich_layer *layer,
                                         const dnnl_convolution_desc_t *desc,
                                         const_dnnl_primitive_attr_t attr,
                                         const_dnnl_primitive_desc_t hint,
                                         dnnl_primitive_desc_t *out)
{
    dnnl_primitive_desc_iterator_t it;
    dnnl_status_t st =
        dnnl_primitive_desc_iterator_create(&it, desc, attr, ich_cpu_engine(), hint);
    if (st != dnnl_success)
        return st;
    *out = NULL;
    do {
        dnnl_primitive_desc_t pd = dnnl_primitive_desc_iterator_fetch(it);
        if (pd && !faulty_backward_weights(layer, pd)) {
            *out = pd;
            break;
        }
        if (pd)
            dnnl_primitive_desc_destroy(pd);
    } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
    return *out ? dnnl_success : dnnl_unimplemented;
}

/* Whether the backward data runs as a forward convolution: where
 * choose_blocked() would run it blocked (AVX2 without AVX-512, kernels of
 * 4x4 or more, at least 8 input channels) under ICH_CPU_LAYOUT auto (nhwc
 * and blocked ask for oneDNN's backward-data kernels on that layout), in
 * FP32, with stride 1, no dilation and padding within the kernel (the
 * flipped padding K-1-p must not be negative). The gradient of the input
 * of y = x * W is dx = dy * W', W' the weights with their channel axes
 * swapped and their taps reversed, padded by K-1-p: oneDNN's NHWC forward
 * kernels run it near the FMA peak, where its backward-data kernels do not
 * (the tutorial's conv2 on AVX2: forward 87-91% of the peak, backward data
 * 64% on the blocked layout, 69-75% as a forward; bench/README.md). ichnet's 3x3
 * layers stay on oneDNN's NHWC backward data, faster there (72-100% of the
 * peak against 56-80% as a forward). */
static int data_as_forward(const ich_layer *layer)
{
    const conv_state *s = layer->state;
    const ich_layer_args *a = &layer->args;
    if (s->layout != LAYOUT_AUTO || s->bf16 || !choose_blocked(layer, PASS_BWD_DATA))
        return 0;
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(layer, strides, dilates, pad_l, pad_r);
    for (int i = 0; i < 2; i++)
        if (strides[i] != 1 || dilates[i] != 0 || pad_l[i] < 0 || pad_r[i] < 0 ||
            pad_l[i] > a->kernel[i] - 1 || pad_r[i] > a->kernel[i] - 1)
            return 0;
    return 1;
}

/* Whether `pd` runs one of oneDNN's direct kernels, not im2col and gemm
 * (slower than its backward-data kernels). */
static int direct_kernel(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
           impl && !strstr(impl, "gemm") && !strstr(impl, "ref");
}

/* The forward of the backward data over `images` images of the output's
 * gradient with `cols` zero columns added on the left (oneDNN pads the
 * rest): its pd in s->dfwd_pd when oneDNN runs it on a direct kernel, else
 * none (also when oneDNN offers none at all). oneDNN 2.6's jit:avx2 forward takes a left padding of at most 3
 * (the tutorial's 5x5 convolutions want 4), so pad_cols moves it into a
 * copy. */
static ich_status data_forward_pd(ich_layer *layer, const_dnnl_primitive_attr_t attr,
                                  int32_t images, int32_t cols)
{
    conv_state *s = layer->state;
    const ich_shape *in = &layer->in[0], *out = &layer->out;
    const ich_layer_args *a = &layer->args;
    dnnl_dims_t dy_dims = {images, out->c, out->h, out->w + cols};
    dnnl_dims_t dx_dims = {images, in->c, in->h, in->w};
    dnnl_dims_t f_dims = {in->c, out->c, a->kernel[0], a->kernel[1]};
    dnnl_memory_desc_t f_any;
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->dy_md, 4, dy_dims, dnnl_f32, dnnl_nhwc), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->dx_md, 4, dx_dims, dnnl_f32, dnnl_nhwc), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&f_any, 4, f_dims, dnnl_f32, dnnl_format_tag_any),
               "md");
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(layer, strides, dilates, pad_l, pad_r);
    for (int i = 0; i < 2; i++) {
        pad_l[i] = a->kernel[i] - 1 - pad_l[i] - (i == 1 ? cols : 0);
        pad_r[i] = a->kernel[i] - 1 - pad_r[i];
    }
    /* an optional path: where oneDNN offers no such forward, its own
     * backward-data kernel runs instead of the layer failing */
    dnnl_convolution_desc_t desc;
    s->dfwd_pd = NULL;
    if (dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                   dnnl_convolution_direct, &s->dy_md, &f_any,
                                                   NULL, &s->dx_md, strides, dilates, pad_l,
                                                   pad_r) != dnnl_success ||
        dnnl_primitive_desc_create(&s->dfwd_pd, &desc, attr, ich_cpu_engine(), NULL) !=
            dnnl_success) {
        s->dfwd_pd = NULL;
        return ICH_OK;
    }
    if (!direct_kernel(s->dfwd_pd)) {
        dnnl_primitive_desc_destroy(s->dfwd_pd);
        s->dfwd_pd = NULL;
    }
    return ICH_OK;
}

/* The padded copy's view of the gradient's own columns, the reorder that
 * fills it, and room for the copy in copy[1]. */
static ich_status build_pad_copy(ich_layer *layer, int32_t images)
{
    conv_state *s = layer->state;
    const ich_shape *out = &layer->out;
    int64_t c = out->c, row = (int64_t)(out->w + s->pad_cols) * c;
    dnnl_dims_t dims = {images, out->c, out->h, out->w};
    dnnl_dims_t strides = {row * out->h, 1, row, c};
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->dy_nhwc_md, 4, dims, dnnl_f32, dnnl_nhwc), "md");
    CHECK_DNNL(dnnl_memory_desc_init_by_strides(&s->dy_in_md, 4, dims, dnnl_f32, strides), "md");
    dnnl_primitive_desc_t rpd;
    dnnl_engine_t engine = ich_cpu_engine();
    CHECK_DNNL(dnnl_reorder_primitive_desc_create(&rpd, &s->dy_nhwc_md, engine, &s->dy_in_md,
                                                  engine, NULL),
               "activation reorder");
    dnnl_status_t st = dnnl_primitive_create(&s->pad_reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    CHECK_DNNL(st, "activation reorder");
    act_copy *copy = &s->copy[1];
    void *before = copy->data;
    ich_status status =
        ich_cpu_grow(layer, &copy->data, &copy->size, dnnl_memory_desc_get_size(&s->dy_md));
    if (copy->data != before)
        copy->holds = NULL;
    return status;
}

static int force_data_copy;

void ich_cpu_conv_force_data_copy(int on)
{
    __atomic_store_n(&force_data_copy, on, __ATOMIC_RELAXED);
}

int ich_cpu_conv_data_mode(const ich_layer *layer)
{
    const conv_state *s = layer->state;
    return !s->data_fwd ? 0 : s->pad_cols ? 2 : 1;
}

/* The backward data as a forward convolution from the output's gradient
 * (OUT channels) to the input's (IN channels), on NHWC: over the batch
 * with oneDNN padding, or else in chunks through a copy with the left
 * padding added. Sets s->data_fwd when one runs on a direct kernel. */
static ich_status build_data_as_forward(ich_layer *layer, const_dnnl_primitive_attr_t attr)
{
    conv_state *s = layer->state;
    const ich_layer_args *a = &layer->args;
    int32_t images = layer->in[0].n;
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(layer, strides, dilates, pad_l, pad_r);
    int32_t cols = (int32_t)(a->kernel[1] - 1 - pad_l[1]);
    s->pad_cols = 0;
    ich_status status = ICH_OK;
    int copy = cols > 0 && __atomic_load_n(&force_data_copy, __ATOMIC_RELAXED);
    if (!copy)
        status = data_forward_pd(layer, attr, images, 0);
    if (status == ICH_OK && !s->dfwd_pd && cols > 0) {
        images = blocked_chunk(layer);
        s->pad_cols = cols;
        status = data_forward_pd(layer, attr, images, cols);
    }
    if (status != ICH_OK || !s->dfwd_pd)
        return status;
    CHECK_DNNL(dnnl_primitive_create(&s->dfwd, s->dfwd_pd), "backward data as forward");
    ich_cpu_log_impl(layer, "backward data (as a forward)", s->dfwd_pd);
    dnnl_dims_t f_dims = {layer->in[0].c, layer->out.c, a->kernel[0], a->kernel[1]};
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&s->flip_md, 4, f_dims, dnnl_f32, dnnl_oihw), "md");
    s->flip = ich_cpu_alloc((size_t)ich_param_count(&layer->params[0]) * sizeof(float));
    if (!s->flip)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for the weights", layer->name);
    s->flip_valid = 0;
    s->data_fwd = 1;
    s->pass[PASS_BWD_DATA].images = images;
    if ((status = scratch_reserve(layer, s, s->dfwd_pd)) != ICH_OK ||
        (s->pad_cols && (status = build_pad_copy(layer, images)) != ICH_OK))
        return status;
    return weight_cache_init(layer, &s->w_dfwd, &s->flip_md,
                             dnnl_primitive_desc_query_md(s->dfwd_pd, dnnl_query_weights_md, 0));
}

/* oneDNN's backward data, on the layout pass_mds() chose. */
static ich_status build_backward_data(ich_layer *layer, const dnnl_memory_desc_t *w_any,
                                      const_dnnl_primitive_attr_t attr)
{
    conv_state *s = layer->state;
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(layer, strides, dilates, pad_l, pad_r);
    dnnl_memory_desc_t d_src, d_dst;
    ich_status status = pass_mds(layer, PASS_BWD_DATA, &d_src, &d_dst);
    if (status != ICH_OK)
        return status;
    dnnl_convolution_desc_t desc;
    CHECK_DNNL(dnnl_dilated_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct,
                                                                &d_src, w_any, &d_dst, strides,
                                                                dilates, pad_l, pad_r),
               "convolution backward data desc");
    CHECK_DNNL(
        dnnl_primitive_desc_create(&s->bwd_data_pd, &desc, attr, ich_cpu_engine(), s->fwd_pd),
        "convolution backward data");
    CHECK_DNNL(dnnl_primitive_create(&s->bwd_data, s->bwd_data_pd), "convolution backward data");
    ich_cpu_log_impl(layer, "backward data", s->bwd_data_pd);
    if ((status = scratch_reserve(layer, s, s->bwd_data_pd)) != ICH_OK ||
        (status = pass_layout_init(layer, PASS_BWD_DATA, s->bwd_data_pd)) != ICH_OK)
        return status;
    return weight_cache_init(layer, &s->w_bwd, &s->w_user_md,
                             dnnl_primitive_desc_query_md(s->bwd_data_pd, dnnl_query_weights_md, 0));
}

/* The reorder that adds the kernel's weight gradient (layout dw_md) into
 * the OIHW gradient: a sum post-op, no temporary. */
static ich_status build_dw_add(ich_layer *layer, const dnnl_memory_desc_t *dw_md)
{
    conv_state *s = layer->state;
    dnnl_primitive_attr_t sum_attr;
    dnnl_post_ops_t ops;
    CHECK_DNNL(dnnl_primitive_attr_create(&sum_attr), "attr_create");
    dnnl_status_t st = dnnl_post_ops_create(&ops);
    if (st == dnnl_success) {
        st = dnnl_post_ops_append_sum(ops, 1.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(sum_attr, ops);
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd = NULL;
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&pd, dw_md, ich_cpu_engine(), &s->w_user_md,
                                                ich_cpu_engine(), sum_attr);
    dnnl_primitive_attr_destroy(sum_attr);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&s->dw_add, pd);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    CHECK_DNNL(st, "weight gradient reorder");
    return ICH_OK;
}

/* Room for the weight gradient of one call (`bytes`, in the kernel's
 * layout) and the bias gradient. */
static ich_status alloc_gradients(ich_layer *layer, size_t bytes)
{
    conv_state *s = layer->state;
    s->dw = ich_cpu_alloc(bytes);
    s->db = ich_cpu_alloc((size_t)layer->out.c * sizeof(float));
    if (!s->dw || !s->db)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory for the weight gradient",
                        layer->name);
    return ICH_OK;
}

/* oneDNN's backward weights, on the layout pass_mds() chose. */
static ich_status build_backward_weights(ich_layer *layer, const_dnnl_primitive_attr_t attr)
{
    conv_state *s = layer->state;
    dnnl_memory_desc_t dw_any, w_src, w_dst;
    dnnl_dims_t w_dims;
    int w_ndims = weight_dims(layer, w_dims);
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&dw_any, w_ndims, w_dims, dnnl_f32,
                                            dnnl_format_tag_any),
               "md");
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(layer, strides, dilates, pad_l, pad_r);
    ich_status status = pass_mds(layer, PASS_BWD_W, &w_src, &w_dst);
    if (status != ICH_OK)
        return status;
    dnnl_convolution_desc_t desc;
    dnnl_status_t st = dnnl_dilated_convolution_backward_weights_desc_init(
        &desc, dnnl_convolution_direct, &w_src, &dw_any, layer->args.bias ? &s->b_md : NULL,
        &w_dst, strides, dilates, pad_l, pad_r);
    if (st == dnnl_success)
        st = backward_weights_pd(layer, &desc, attr, s->fwd_pd, &s->bwd_w_pd);
    CHECK_DNNL(st, "convolution backward weights desc");
    CHECK_DNNL(dnnl_primitive_create(&s->bwd_w, s->bwd_w_pd), "convolution backward weights");
    ich_cpu_log_impl(layer, "backward weights", s->bwd_w_pd);
    if ((status = scratch_reserve(layer, s, s->bwd_w_pd)) != ICH_OK ||
        (status = pass_layout_init(layer, PASS_BWD_W, s->bwd_w_pd)) != ICH_OK)
        return status;
    /* diff weights: the kernel's layout, added into the OIHW gradient */
    const dnnl_memory_desc_t *dw_md =
        dnnl_primitive_desc_query_md(s->bwd_w_pd, dnnl_query_diff_weights_md, 0);
    if ((status = alloc_gradients(layer, dnnl_memory_desc_get_size(dw_md))) != ICH_OK)
        return status;
    s->dw_direct = dnnl_memory_desc_equal(dw_md, &s->w_user_md);
    return s->dw_direct ? ICH_OK : build_dw_add(layer, dw_md);
}

static int force_im2col;

void ich_cpu_conv_force_im2col(int on)
{
    __atomic_store_n(&force_im2col, on, __ATOMIC_RELAXED);
}

int ich_cpu_conv_im2col_runs(const ich_layer *layer)
{
    const conv_state *s = layer->state;
    return (int)s->im2col.runs;
}

/* Whether the weight gradient goes through im2col.c: where it pays (one
 * input channel), in FP32 under ICH_CPU_LAYOUT auto (nhwc and blocked ask
 * for oneDNN's kernels); the tests force it wherever it fits. */
static int use_im2col(const ich_layer *layer)
{
    const conv_state *s = layer->state;
    if (s->layout != LAYOUT_AUTO || s->bf16)
        return 0;
    if (__atomic_load_n(&force_im2col, __ATOMIC_RELAXED))
        return ich_cpu_im2col_fits(layer);
    return ich_cpu_im2col_pays(layer);
}

/* The weight gradient by im2col.c: the whole batch in one call, OIHW. */
static ich_status build_im2col_weights(ich_layer *layer)
{
    conv_state *s = layer->state;
    s->use_im2col = 1;
    s->dw_direct = 1;
    s->pass[PASS_BWD_W].images = layer->in[0].n;
    ich_log(ICH_LOG_DEBUG, "%s: backward weights uses im2col and OpenBLAS", layer->name);
    return alloc_gradients(layer, (size_t)ich_param_count(&layer->params[0]) * sizeof(float));
}

static ich_status build_backward(ich_layer *layer)
{
    conv_state *s = layer->state;
    dnnl_memory_desc_t w_any; /* the weights (bf16 copies too) */
    dnnl_dims_t w_dims;
    int w_ndims = weight_dims(layer, w_dims);
    CHECK_DNNL(dnnl_memory_desc_init_by_tag(&w_any, w_ndims, w_dims,
                                            s->bf16 ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any),
               "md");
    dnnl_primitive_attr_t attr;
    ich_status status = make_attr(layer, 0, &attr);
    if (status != ICH_OK)
        return status;
    if (data_as_forward(layer))
        status = build_data_as_forward(layer, attr);
    if (status == ICH_OK && !s->data_fwd)
        status = build_backward_data(layer, &w_any, attr);
    if (status == ICH_OK)
        status = use_im2col(layer) ? build_im2col_weights(layer)
                                   : build_backward_weights(layer, attr);
    dnnl_primitive_attr_destroy(attr);
    s->backward_built = status == ICH_OK;
    return status;
}

static void conv_destroy(ich_layer *layer)
{
    conv_state *s = layer->state;
    if (s) {
        primitives_free(s);
        ich_cpu_free(s->scratch);
        ich_cpu_free(s->copy[0].data);
        ich_cpu_free(s->copy[1].data);
        ich_relu_mask_free(&s->mask);
        ich_cpu_winograd_free(&s->wino);
        ich_cpu_im2col_free(&s->im2col);
        free(s);
        layer->state = NULL;
    }
    ich_cpu_params_free(layer);
}

static ich_status conv_create(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    if (!ich_cpu_engine())
        return ICH_ERR_INTERNAL;
    layer->state = calloc(1, sizeof(conv_state));
    if (!layer->state)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", layer->name);
    if ((status = read_settings(layer)) != ICH_OK) {
        conv_destroy(layer);
        return status;
    }
    /* PyTorch's [OUT, IN/G, KH, KW] (ich_cpu_shape checked G divides both) */
    int64_t w_dims[4] = {out->c, in->c / layer->args.groups, layer->args.kernel[0],
                         layer->args.kernel[1]};
    int64_t b_dims[1] = {out->c};
    if ((status = ich_cpu_params_alloc(layer, layer->args.bias ? 2 : 1)) != ICH_OK ||
        (status = ich_cpu_param_init(&layer->params[0], "weight", ICH_DTYPE_F32, 4, w_dims, 1)) !=
            ICH_OK ||
        (layer->args.bias && (status = ich_cpu_param_init(&layer->params[1], "bias", ICH_DTYPE_F32,
                                                          1, b_dims, 1)) != ICH_OK) ||
        (status = build_forward(layer)) != ICH_OK) {
        conv_destroy(layer);
        return status;
    }
    return ICH_OK;
}

static ich_status conv_resize(ich_layer *layer, const ich_shape *in, ich_shape *out)
{
    conv_state *s = layer->state;
    ich_status status = ich_cpu_shape(layer, in, out);
    if (status != ICH_OK)
        return status;
    primitives_free(s);
    s->mask_valid = 0;
    if ((status = read_settings(layer)) != ICH_OK)
        return status;
    return build_forward(layer);
}

/* One forward call: `images` of the pass's images from x into y (NHWC). */
static ich_status forward_images(ich_layer *layer, const void *weights, const float *x, float *y)
{
    conv_state *s = layer->state;
    pass_layout *lay = &s->pass[PASS_FWD];
    const void *src;
    ich_status status = to_kernel(layer, PASS_FWD, 0, x, &src);
    if (status != ICH_OK)
        return status;
    ich_dnnl_arg args[] = {
        {DNNL_ARG_SRC, &lay->md[0], src},
        {DNNL_ARG_WEIGHTS, &s->w_fwd.md, weights},
        {DNNL_ARG_DST, &lay->md[1], result_place(layer, PASS_FWD, 1, y)},
        {DNNL_ARG_BIAS, &s->b_md, layer->args.bias ? layer->params[1].data : NULL},
    };
    if ((status = ich_cpu_execute(layer, s->fwd, s->fwd_pd, args, layer->args.bias ? 4 : 3,
                                  s->scratch, "conv forward")) != ICH_OK)
        return status;
    return from_kernel(layer, PASS_FWD, 1, y);
}

static ich_status conv_forward(ich_layer *layer, const float *const *in, float *out, int training)
{
    conv_state *s = layer->state;
    void *weights;
    s->copy[0].holds = NULL; /* in[0] has new values, whatever its address */
    if (!training && use_winograd(layer)) {
        s->mask_valid = 0;
        return ich_cpu_winograd_forward(layer, &s->wino, in[0], out);
    }
    ich_status status = weight_cache_get(layer, &s->w_fwd, layer->params[0].data, &weights);
    int32_t step = s->pass[PASS_FWD].images;
    for (int32_t n = 0; n < layer->in[0].n && status == ICH_OK; n += step)
        status = forward_images(layer, weights, in[0] + n * image_size(layer, 0),
                                out + n * image_size(layer, 1));
    if (status != ICH_OK)
        return status;
    /* the input's blocked copy (of the last call) serves the backward
     * weights of a training step */
    if (!training)
        s->copy[0].holds = NULL;
    s->mask_valid = 0;
    if (training && layer->args.fuse_relu) {
        status = ich_relu_mask_record(&s->mask, out, ich_shape_count(layer->out));
        s->mask_valid = status == ICH_OK;
    }
    return status;
}

/* The weights of the backward data as a forward (data_as_forward()):
 * F[i][o][KH-1-y][KW-1-x] = W[o][i][y][x], remade when the weights change. */
static void *flipped_weights(ich_layer *layer)
{
    conv_state *s = layer->state;
    const ich_param *w = &layer->params[0];
    if (s->flip_valid && s->flip_version == w->version)
        return s->flip;
    const float *src = w->data;
    int32_t outs = layer->out.c, ins = layer->in[0].c;
    int32_t kh = layer->args.kernel[0], kw = layer->args.kernel[1];
    for (int32_t o = 0; o < outs; o++)
        for (int32_t i = 0; i < ins; i++)
            for (int32_t y = 0; y < kh; y++)
                for (int32_t x = 0; x < kw; x++)
                    s->flip[(((int64_t)i * outs + o) * kh + (kh - 1 - y)) * kw + (kw - 1 - x)] =
                        src[(((int64_t)o * ins + i) * kh + y) * kw + x];
    s->flip_valid = 1;
    s->flip_version = w->version;
    return s->flip;
}

/* The backward data's weights, in its kernel's layout. */
static ich_status backward_data_weights(ich_layer *layer, void **weights)
{
    conv_state *s = layer->state;
    if (s->data_fwd)
        return weight_cache_get(layer, &s->w_dfwd, flipped_weights(layer), weights);
    return weight_cache_get(layer, &s->w_bwd, layer->params[0].data, weights);
}

/* The call's output gradient dy into copy[1] after pad_cols zero columns
 * per row (written each time: the weights' pass uses the buffer too). */
static ich_status pad_gradient(ich_layer *layer, const float *dy)
{
    conv_state *s = layer->state;
    const ich_shape *out = &layer->out;
    int64_t rows = (int64_t)s->pass[PASS_BWD_DATA].images * out->h;
    int64_t zeros = (int64_t)s->pad_cols * out->c, row = zeros + (int64_t)out->w * out->c;
    float *copy = s->copy[1].data;
    s->copy[1].holds = NULL;
    for (int64_t r = 0; r < rows; r++)
        memset(copy + r * row, 0, (size_t)zeros * sizeof(float));
    ich_dnnl_arg args[] = {{DNNL_ARG_FROM, &s->dy_nhwc_md, dy},
                           {DNNL_ARG_TO, &s->dy_in_md, copy + zeros}};
    return ich_cpu_execute(layer, s->pad_reorder, NULL, args, 2, NULL, "activation reorder");
}

/* One input-gradient call: diff_dst dy and the weights in, diff_src dx out. */
static ich_status backward_data_images(ich_layer *layer, const void *weights, const float *dy,
                                       float *dx)
{
    conv_state *s = layer->state;
    pass_layout *lay = &s->pass[PASS_BWD_DATA];
    ich_status status;
    if (s->data_fwd) {
        const void *src = dy;
        if (s->pad_cols && (status = pad_gradient(layer, dy)) != ICH_OK)
            return status;
        if (s->pad_cols)
            src = s->copy[1].data;
        ich_dnnl_arg args[] = {
            {DNNL_ARG_SRC, &s->dy_md, src},
            {DNNL_ARG_WEIGHTS, &s->w_dfwd.md, weights},
            {DNNL_ARG_DST, &s->dx_md, dx},
        };
        return ich_cpu_execute(layer, s->dfwd, s->dfwd_pd, args, 3, s->scratch,
                               "conv backward data (as a forward)");
    }
    const void *diff_dst;
    if ((status = to_kernel(layer, PASS_BWD_DATA, 1, dy, &diff_dst)) != ICH_OK)
        return status;
    ich_dnnl_arg args[] = {
        {DNNL_ARG_DIFF_DST, &lay->md[1], diff_dst},
        {DNNL_ARG_WEIGHTS, &s->w_bwd.md, weights},
        {DNNL_ARG_DIFF_SRC, &lay->md[0], result_place(layer, PASS_BWD_DATA, 0, dx)},
    };
    if ((status = ich_cpu_execute(layer, s->bwd_data, s->bwd_data_pd, args, 3, s->scratch,
                                  "conv backward data")) != ICH_OK)
        return status;
    return from_kernel(layer, PASS_BWD_DATA, 0, dx);
}

/* The call's weight and bias gradients (s->dw in the kernel's layout,
 * s->db) added into the parameters' gradients. */
static ich_status add_gradients(ich_layer *layer)
{
    conv_state *s = layer->state;
    ich_param *w = &layer->params[0];
    ich_param *b = layer->args.bias ? &layer->params[1] : NULL;
    if (!w->frozen) {
        if (s->dw_direct) {
            int64_t count = ich_param_count(w);
            const float *dw = s->dw;
            for (int64_t i = 0; i < count; i++)
                w->grad[i] += dw[i];
        } else {
            const dnnl_memory_desc_t *dw_md =
                dnnl_primitive_desc_query_md(s->bwd_w_pd, dnnl_query_diff_weights_md, 0);
            ich_dnnl_arg add[] = {{DNNL_ARG_FROM, dw_md, s->dw},
                                  {DNNL_ARG_TO, &s->w_user_md, w->grad}};
            ich_status status =
                ich_cpu_execute_serial(layer, s->dw_add, add, 2, "weight gradient reorder");
            if (status != ICH_OK)
                return status;
        }
    }
    if (b && !b->frozen)
        for (int32_t o = 0; o < layer->out.c; o++)
            b->grad[o] += s->db[o];
    return ICH_OK;
}

/* One weight-gradient call: the weight and bias gradients of the call's
 * images (input x, diff_dst dy) added into the parameters' gradients. */
static ich_status backward_weights_images(ich_layer *layer, const float *x, const float *dy)
{
    conv_state *s = layer->state;
    pass_layout *lay = &s->pass[PASS_BWD_W];
    ich_param *b = layer->args.bias ? &layer->params[1] : NULL;
    const void *src, *diff_dst;
    ich_status status;
    if (s->use_im2col) {
        double start = ich_profile_sink_now() ? ich_profile_clock() : 0;
        status = ich_cpu_im2col_weights(layer, &s->im2col, x, dy, s->dw, b ? s->db : NULL);
        if (ich_profile_sink_now())
            ich_profile_record("conv backward weights (im2col)", ich_profile_clock() - start);
        return status == ICH_OK ? add_gradients(layer) : status;
    }
    if ((status = to_kernel(layer, PASS_BWD_W, 0, x, &src)) != ICH_OK ||
        (status = to_kernel(layer, PASS_BWD_W, 1, dy, &diff_dst)) != ICH_OK)
        return status;
    const dnnl_memory_desc_t *dw_md =
        dnnl_primitive_desc_query_md(s->bwd_w_pd, dnnl_query_diff_weights_md, 0);
    ich_dnnl_arg args[] = {
        {DNNL_ARG_SRC, &lay->md[0], src},
        {DNNL_ARG_DIFF_DST, &lay->md[1], diff_dst},
        {DNNL_ARG_DIFF_WEIGHTS, dw_md, s->dw},
        {DNNL_ARG_DIFF_BIAS, &s->b_md, s->db},
    };
    if ((status = ich_cpu_execute(layer, s->bwd_w, s->bwd_w_pd, args, b ? 4 : 3, s->scratch,
                                  "conv backward weights")) != ICH_OK)
        return status;
    return add_gradients(layer);
}

/* Whether the weight gradient is wanted (some parameter not frozen). */
static int wants_weights(const ich_layer *layer)
{
    const ich_param *b = layer->args.bias ? &layer->params[1] : NULL;
    return !layer->params[0].frozen || (b && !b->frozen);
}

/* Both gradients over the batch, call by call: chunk by chunk, the weights'
 * pass then the data's on the same images when both take the same chunks
 * (the data pass then finds diff_dst's copy the weights' pass made: one
 * reorder of diff_dst per chunk instead of two), else all the weights'
 * calls and then all the data's. The weights' pass runs first on a chunk
 * because it reads the input's copy, which the data pass writes over. */
static ich_status backward_passes(ich_layer *layer, const float *in, const float *grad_out,
                                  float *grad_in)
{
    conv_state *s = layer->state;
    int32_t batch = layer->in[0].n;
    int32_t w_step = s->pass[PASS_BWD_W].images, d_step = s->pass[PASS_BWD_DATA].images;
    int weights = wants_weights(layer), data = grad_in != NULL;
    int together = weights && data && w_step == d_step;
    void *w_data = NULL;
    ich_status status = data ? backward_data_weights(layer, &w_data) : ICH_OK;
    for (int32_t n = 0; weights && n < batch && status == ICH_OK; n += w_step) {
        const float *dy = grad_out + n * image_size(layer, 1);
        status = backward_weights_images(layer, in + n * image_size(layer, 0), dy);
        if (together && status == ICH_OK)
            status = backward_data_images(layer, w_data, dy, grad_in + n * image_size(layer, 0));
    }
    for (int32_t n = 0; data && !together && n < batch && status == ICH_OK; n += d_step)
        status = backward_data_images(layer, w_data, grad_out + n * image_size(layer, 1),
                                      grad_in + n * image_size(layer, 0));
    return status;
}

static ich_status conv_backward(ich_layer *layer, const float *const *in, const float *out,
                                const float *grad_out, float *const *grad_in)
{
    conv_state *s = layer->state;
    ich_status status;
    if (!s->backward_built && (status = build_backward(layer)) != ICH_OK)
        return status;
    if (layer->args.fuse_relu) {
        if (!s->mask_valid)
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "%s: backward without a training forward pass", layer->name);
        /* The model does not read grad_out after backward (layer.h). */
        ich_relu_mask_apply(&s->mask, (float *)grad_out, ich_shape_count(layer->out));
    }
    /* grad_out's values are new (the mask, or a new step) even where the
     * buffer is the same */
    s->copy[1].holds = NULL;
    return backward_passes(layer, in[0], grad_out, grad_in ? grad_in[0] : NULL);
}

const ich_layer_ops ich_cpu_conv_ops = {
    .size = sizeof(ich_layer_ops),
    .kind = "conv",
    .inputs = 1,
    .needs_input = 1,
    .needs_output = 0,
    .in_place = 0,
    .create = conv_create,
    .resize = conv_resize,
    .forward = conv_forward,
    .backward = conv_backward,
    .destroy = conv_destroy,
};
