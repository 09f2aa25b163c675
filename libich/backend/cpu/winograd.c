/* Winograd F(4x4,5x5) convolution forward (see winograd.h).
 *
 * Y = AT [(G g GT) . (BT d B)] A per 8x8 input tile d and 5x5 filter g,
 * with the points 0, +-1, +-2, +-1/2 and infinity (those of the common
 * F(6x6,3x3), also 8x8 tiles: the most accurate small set). The tiles are
 * cut into blocks; per block: the input transform writes V[e][tile][IN]
 * for the 64 tile elements e, OpenBLAS multiplies each V[e] by U[e] = the
 * transformed weights [IN][OUT], and the output transform turns
 * M[e][tile][OUT] into the 4x4 outputs (+ bias, ReLU). NHWC keeps the
 * channel loops contiguous, so the transforms vectorise over channels.
 * Each compute thread takes a contiguous run of blocks with its own
 * buffers and calls the one-thread GEMM (a block is small enough that
 * OpenBLAS does not thread it: winograd.h).
 *
 * F(2x2,5x5) (6x6 tiles, 2.8x fewer multiplications; bench/winograd_proto.c)
 * came first: 1.6x less CPU time than oneDNN 2.6's direct kernels over
 * the tutorial's inference; F(4x4,5x5) 2.5x, with errors as small (about
 * 5e-6 relative on the tutorial's layers; bench/README.md). */
#include "backend/cpu/winograd.h"

#include <string.h>

#include <cblas.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"
#include "core/threads.h"

enum { ALPHA = 8, TILE_OUT = 4, KSIZE = 5, ELEMS = ALPHA * ALPHA };

/* Points 0, +-1, +-2, +-1/2 and infinity (those of the common F(6x6,3x3)).
 * AT = [1 1  1 1  1   1    1   0]   BT (bt_1d spells it out, and at_1d AT)
 *      [0 1 -1 2 -2 1/2 -1/2   0]
 *      [0 1  1 4  4 1/4  1/4   0]
 *      [0 1 -1 8 -8 1/8 -1/8   1]
 * G (8x5), the filter transform, holds the interpolation's denominators. */
static const double G[ALPHA][KSIZE] = {
    {-1, 0, 0, 0, 0},
    {-2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9},
    {-2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9},
    {1.0 / 90, 1.0 / 45, 2.0 / 45, 4.0 / 45, 8.0 / 45},
    {1.0 / 90, -1.0 / 45, 2.0 / 45, -4.0 / 45, 8.0 / 45},
    {32.0 / 45, 16.0 / 45, 8.0 / 45, 4.0 / 45, 2.0 / 45},
    {32.0 / 45, -16.0 / 45, 8.0 / 45, -4.0 / 45, 2.0 / 45},
    {0, 0, 0, 0, 1}};

/* OpenBLAS 0.3 threads a product only above M*N*K = 65536 * 4. */
#define GEMM_SERIAL_LIMIT 262144
#define MIN_BLOCK 16
#define MAX_BLOCK 128

int ich_cpu_winograd_fits(const ich_layer *layer)
{
    const ich_layer_args *a = &layer->args;
    return a->kernel[0] == KSIZE && a->kernel[1] == KSIZE && a->stride[0] == 1 &&
           a->stride[1] == 1 && a->dilation[0] <= 1 && a->dilation[1] <= 1 && a->groups <= 1;
}

int ich_cpu_winograd_pays(const ich_layer *layer)
{
    int64_t in = layer->in[0].c, out = layer->out.c;
    return ich_cpu_winograd_fits(layer) && in >= 16 && out >= 16 &&
           in * out * MIN_BLOCK <= GEMM_SERIAL_LIMIT;
}

/* Tiles per block: as many as keep a product under OpenBLAS's threading
 * limit, within [MIN_BLOCK, MAX_BLOCK] (more than 128 stop fitting in the
 * cache: slower). */
static int block_tiles(const ich_layer *layer)
{
    int64_t t = GEMM_SERIAL_LIMIT / ((int64_t)layer->in[0].c * layer->out.c);
    return (int)(t < MIN_BLOCK ? MIN_BLOCK : t > MAX_BLOCK ? MAX_BLOCK : t);
}

/* U[e][c][k] = (G g[k][c] GT)[e], from the OIHW weights (in double: it
 * runs once per weight change). */
static void weights_transform(const float *w, int64_t in, int64_t out, float *u)
{
    for (int64_t k = 0; k < out; k++)
        for (int64_t c = 0; c < in; c++) {
            const float *g = w + (k * in + c) * KSIZE * KSIZE;
            double t[ALPHA][KSIZE];
            for (int i = 0; i < ALPHA; i++)
                for (int j = 0; j < KSIZE; j++) {
                    double v = 0;
                    for (int p = 0; p < KSIZE; p++)
                        v += G[i][p] * g[p * KSIZE + j];
                    t[i][j] = v;
                }
            for (int i = 0; i < ALPHA; i++)
                for (int j = 0; j < ALPHA; j++) {
                    double v = 0;
                    for (int p = 0; p < KSIZE; p++)
                        v += t[i][p] * G[j][p];
                    u[((i * ALPHA + j) * in + c) * out + k] = (float)v;
                }
        }
}

/* The transforms' loops, one copy per instruction set (see
 * winograd_kernels.inc), and the copy for oneDNN's effective ISA. */
typedef struct wino_kernels {
    const char *isa; /* for the debug log: which copy runs */
    void (*bt_1d)(const float *in, int64_t in_step, float *out, int64_t out_step, int64_t n);
    void (*at_1d)(const float *in, int64_t in_step, float *out, int64_t out_step, int64_t n);
    void (*store)(const float *r, const float *bias, float *o, int64_t n, int relu);
} wino_kernels;

/* The rows a transform reads and the rows it writes never overlap (they
 * are other buffers, or rows at least n apart): GCC gives up on loops
 * with eight output rows at run-time strides rather than check them all. */
#if defined(__GNUC__) && !defined(__clang__)
#define WINO_IVDEP _Pragma("GCC ivdep")
#else
#define WINO_IVDEP
#endif
#define WINO_NAME(f) f##_base
#define WINO_ISA_NAME "baseline"
#include "backend/cpu/winograd_kernels.inc"
#undef WINO_NAME
#undef WINO_ISA_NAME
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define WINO_ISA_COPIES 1
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define WINO_NAME(f) f##_avx2
#define WINO_ISA_NAME "avx2"
#include "backend/cpu/winograd_kernels.inc"
#undef WINO_NAME
#undef WINO_ISA_NAME
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define WINO_NAME(f) f##_avx512
#define WINO_ISA_NAME "avx512"
#include "backend/cpu/winograd_kernels.inc"
#undef WINO_NAME
#undef WINO_ISA_NAME
#pragma GCC pop_options
#endif

static const wino_kernels *kernels_for_isa(void)
{
#ifdef WINO_ISA_COPIES
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core)
        return &kernels_avx512;
    if ((isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2)
        return &kernels_avx2;
#endif
    return &kernels_base;
}

const char *ich_cpu_winograd_isa(void)
{
    return kernels_for_isa()->isa;
}

/* One forward's constants and buffers, shared by the threads. */
typedef struct job {
    const ich_layer *layer;
    const wino_kernels *k; /* the transforms for the running ISA */
    const float *x, *u, *bias;
    float *y, *work;
    int64_t tiles, blocks; /* tiles of the whole batch, blocks of `block` tiles */
    int64_t tiles_x, tiles_y;
    int64_t per_thread; /* floats of work per thread */
    int block, threads;
} job;

typedef struct tile_at {
    int64_t n, ty, tx;
} tile_at;

static tile_at tile_place(const job *j, int64_t id)
{
    tile_at t = {id / (j->tiles_x * j->tiles_y), id / j->tiles_x % j->tiles_y, id % j->tiles_x};
    return t;
}

/* The tile's transform BT d B into V[e][t][IN] (V's rows `block` apart).
 * A tile inside the image is read in place; one that reaches into the
 * padding is first copied into d with zeros there. */
static void input_tile(const job *j, tile_at at, float *d, float *tmp, float *v, int t)
{
    const ich_shape *s = &j->layer->in[0];
    const int64_t C = s->c;
    int64_t y0 = at.ty * TILE_OUT - j->layer->args.padding[0];
    int64_t x0 = at.tx * TILE_OUT - j->layer->args.padding[1];
    const float *src = d;
    int64_t row = ALPHA * C; /* from one input row of the tile to the next */
    if (y0 >= 0 && y0 + ALPHA <= s->h && x0 >= 0 && x0 + ALPHA <= s->w) {
        src = j->x + ((at.n * s->h + y0) * s->w + x0) * C;
        row = s->w * C;
    } else {
        for (int i = 0; i < ALPHA; i++)
            for (int k = 0; k < ALPHA; k++) {
                int64_t y = y0 + i, x = x0 + k;
                float *dst = d + (i * ALPHA + k) * C;
                if (y < 0 || y >= s->h || x < 0 || x >= s->w)
                    memset(dst, 0, (size_t)C * sizeof *dst);
                else
                    memcpy(dst, j->x + ((at.n * s->h + y) * s->w + x) * C,
                           (size_t)C * sizeof *dst);
            }
    }
    for (int k = 0; k < ALPHA; k++) /* tmp = BT d, column by column */
        j->k->bt_1d(src + k * C, row, tmp + k * C, ALPHA * C, C);
    for (int i = 0; i < ALPHA; i++) /* V = tmp B, row by row */
        j->k->bt_1d(tmp + i * ALPHA * C, C, v + ((int64_t)i * ALPHA * j->block + t) * C, j->block * C,
              C);
}

/* Tile t of the block's products M[e][t][OUT] -> its 4x4 outputs AT M A,
 * + bias, ReLU; the outputs past the image's edge (odd sizes) dropped. */
static void output_tile(const job *j, tile_at at, const float *m, float *tmp, int t)
{
    const ich_shape *s = &j->layer->out;
    const int64_t K = s->c;
    const int64_t e_step = j->block * K; /* from M[e] to M[e + 1] */
    float *y = tmp + TILE_OUT * ALPHA * K; /* [4][4][K] */
    for (int k = 0; k < ALPHA; k++)        /* tmp = AT M, column by column */
        j->k->at_1d(m + k * e_step + t * K, ALPHA * e_step, tmp + k * K, ALPHA * K, K);
    for (int a = 0; a < TILE_OUT; a++) /* y = tmp A, row by row */
        j->k->at_1d(tmp + a * ALPHA * K, K, y + a * TILE_OUT * K, K, K);
    int relu = j->layer->args.fuse_relu;
    for (int a = 0; a < TILE_OUT; a++)
        for (int b = 0; b < TILE_OUT; b++) {
            int64_t oy = at.ty * TILE_OUT + a, ox = at.tx * TILE_OUT + b;
            if (oy >= s->h || ox >= s->w)
                continue;
            j->k->store(y + (a * TILE_OUT + b) * K, j->bias,
                        j->y + ((at.n * s->h + oy) * s->w + ox) * K, K, relu);
        }
}

/* The thread buffers' parts, in floats (each a multiple of 16: 64-byte
 * aligned). */
static int64_t round16(int64_t n)
{
    return (n + 15) / 16 * 16;
}

static int64_t work_floats(const ich_layer *layer, int block)
{
    int64_t C = layer->in[0].c, K = layer->out.c, wide = C > K ? C : K;
    return round16(ELEMS * block * C) + round16(ELEMS * block * K) + 2 * round16(ELEMS * wide);
}

static void run_block(const job *j, int64_t b, float *work)
{
    const int64_t C = j->layer->in[0].c, K = j->layer->out.c;
    float *v = work, *m = v + round16(ELEMS * j->block * C);
    float *d = m + round16(ELEMS * j->block * K), *tmp = d + round16(ELEMS * (C > K ? C : K));
    int64_t first = b * j->block;
    int count = (int)(j->tiles - first < j->block ? j->tiles - first : j->block);
    for (int t = 0; t < count; t++)
        input_tile(j, tile_place(j, first + t), d, tmp, v, t);
    for (int e = 0; e < ELEMS; e++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, count, (int)K, (int)C, 1.0f,
                    v + (int64_t)e * j->block * C, (int)C, j->u + e * C * K, (int)K, 0.0f,
                    m + (int64_t)e * j->block * K, (int)K);
    for (int t = 0; t < count; t++)
        output_tile(j, tile_place(j, first + t), m, tmp, t);
}

/* Threads [begin, end): each its share of the blocks and its buffers. */
static void run_threads(void *context, int64_t begin, int64_t end)
{
    const job *j = context;
    for (int64_t i = begin; i < end; i++)
        for (int64_t b = j->blocks * i / j->threads; b < j->blocks * (i + 1) / j->threads; b++)
            run_block(j, b, j->work + i * j->per_thread);
}

/* Transform the weights again when they changed. */
static ich_status weights_get(ich_layer *layer, ich_cpu_winograd *w)
{
    const ich_param *p = &layer->params[0];
    int64_t in = layer->in[0].c, out = layer->out.c;
    size_t bytes = (size_t)ELEMS * in * out * sizeof(float);
    if (w->u_valid && w->u_version == p->version && w->u_size >= bytes)
        return ICH_OK;
    ich_status status = ich_cpu_grow(layer, (void **)&w->u, &w->u_size, bytes);
    if (status != ICH_OK)
        return status;
    weights_transform(p->data, in, out, w->u);
    w->u_valid = 1;
    w->u_version = p->version;
    return ICH_OK;
}

ich_status ich_cpu_winograd_forward(ich_layer *layer, ich_cpu_winograd *w, const float *x,
                                    float *y)
{
    ich_status status = weights_get(layer, w);
    if (status != ICH_OK)
        return status;
    const ich_shape *out = &layer->out;
    job j = {.layer = layer, .k = kernels_for_isa(), .x = x, .u = w->u, .y = y, .block = block_tiles(layer)};
    j.bias = layer->args.bias ? layer->params[1].data : NULL;
    j.tiles_y = (out->h + TILE_OUT - 1) / TILE_OUT;
    j.tiles_x = (out->w + TILE_OUT - 1) / TILE_OUT;
    j.tiles = out->n * j.tiles_y * j.tiles_x;
    j.blocks = (j.tiles + j.block - 1) / j.block;
    j.per_thread = work_floats(layer, j.block);
    j.threads = ich_compute_threads();
    status = ich_cpu_grow(layer, (void **)&w->work, &w->work_size,
                          (size_t)j.threads * j.per_thread * sizeof(float));
    if (status != ICH_OK)
        return status;
    j.work = w->work;
    ich_parallel_split(j.threads, run_threads, &j);
    w->runs++;
    return ICH_OK;
}

void ich_cpu_winograd_free(ich_cpu_winograd *w)
{
    ich_cpu_free(w->u);
    ich_cpu_free(w->work);
    memset(w, 0, sizeof *w);
}
