/* Prototype (issue 16, item 4): Winograd F(2x2,5x5) against oneDNN's direct
 * convolution for the forward pass of the tutorial's 5x5 layers, NHWC in
 * and out, bias and ReLU after. Not part of libich; it measures whether a
 * FLOP-reducing algorithm is worth wiring into libich/backend/cpu/conv.c.
 *
 * Winograd F(2x2,5x5), points 0, +-1, +-2, infinity (the F(4x4,3x3)
 * points: 6x6 tiles, 2x2 outputs each): Y = AT [(G g GT) . (BT d B)] A,
 * 36 products per tile instead of 100, i.e. 2.78x fewer multiplications.
 * The 36 per-tile-element products are GEMMs through OpenBLAS
 * (tiles x C_in) x (C_in x C_out), over blocks of TILE_BLOCK tiles that
 * stay in cache; the transforms are plain C loops over channels (NHWC:
 * the channel loop is contiguous and vectorises), OpenMP over tile blocks,
 * each thread calling a one-thread OpenBLAS.
 *
 * Build and run (2 threads; layer conv2 or conv3 of the tutorial, batch):
 *   cc -O3 -march=native -fopenmp -std=c11 -D_GNU_SOURCE bench/winograd_proto.c \
 *      -I/usr/include/x86_64-linux-gnu/openblas-pthread -ldnnl -lopenblas -lm -o /tmp/wino
 *   /tmp/wino conv2 16 [reps] [tile_block]
 * It prints, per interleaved repetition, the wall and CPU (user+sys, all
 * threads) milliseconds of the direct and the Winograd forward, then the
 * medians and the error of Winograd against the direct result and both
 * against a double-precision reference on a few sampled outputs. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <dnnl.h>

void openblas_set_num_threads(int);

#define CHECK(x)                                                                            \
    do {                                                                                    \
        dnnl_status_t st_ = (x);                                                            \
        if (st_ != dnnl_success) {                                                          \
            fprintf(stderr, "%s:%d: %s failed: %d\n", __FILE__, __LINE__, #x, (int)st_);   \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

typedef struct shape {
    int n, h, w, c, k, pad; /* input N x H x W x C, K output channels, 5x5 kernel */
    int oh, ow;
} shape;

/* ---- Winograd F(2x2,5x5) ------------------------------------------------ */

enum { ALPHA = 6, M = 2, R = 5, TILE_ELEMS = ALPHA * ALPHA };

static const float AT[M][ALPHA] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}};
static const float G[ALPHA][R] = {
    {1.0f / 4, 0, 0, 0, 0},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6, 1.0f / 3, 2.0f / 3},
    {1.0f / 24, -1.0f / 12, 1.0f / 6, -1.0f / 3, 2.0f / 3},
    {0, 0, 0, 0, 1}};
static const float BT[ALPHA][ALPHA] = {
    {4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};

/* U[e][c][k] = (G g[k][c] GT)[e] */
static void weights_transform(const float *w_oihw, const shape *s, float *u)
{
    for (int k = 0; k < s->k; k++)
        for (int c = 0; c < s->c; c++) {
            const float *g = w_oihw + ((size_t)k * s->c + c) * R * R;
            float t[ALPHA][R];
            for (int i = 0; i < ALPHA; i++)
                for (int j = 0; j < R; j++) {
                    float v = 0;
                    for (int p = 0; p < R; p++)
                        v += G[i][p] * g[p * R + j];
                    t[i][j] = v;
                }
            for (int i = 0; i < ALPHA; i++)
                for (int j = 0; j < ALPHA; j++) {
                    float v = 0;
                    for (int p = 0; p < R; p++)
                        v += t[i][p] * G[j][p];
                    u[((size_t)(i * ALPHA + j) * s->c + c) * s->k + k] = v;
                }
        }
}

/* One tile's 6x6xC input patch (zero outside the image) -> V[e][t][c]. */
static void input_tile(const float *x, const shape *s, int n, int ty, int tx, float *d, float *tmp,
                       float *v, int t, int tiles)
{
    const int C = s->c;
    int y0 = ty * M - s->pad, x0 = tx * M - s->pad;
    for (int i = 0; i < ALPHA; i++)
        for (int j = 0; j < ALPHA; j++) {
            int y = y0 + i, xx = x0 + j;
            float *dst = d + (i * ALPHA + j) * C;
            if (y < 0 || y >= s->h || xx < 0 || xx >= s->w)
                memset(dst, 0, (size_t)C * sizeof *dst);
            else
                memcpy(dst, x + (((size_t)n * s->h + y) * s->w + xx) * C, (size_t)C * sizeof *dst);
        }
    /* tmp[i][j] = sum_p BT[i][p] d[p][j] */
    for (int i = 0; i < ALPHA; i++)
        for (int j = 0; j < ALPHA; j++) {
            float *o = tmp + (i * ALPHA + j) * C;
            for (int c = 0; c < C; c++) {
                float a = 0;
                for (int p = 0; p < ALPHA; p++)
                    a += BT[i][p] * d[(p * ALPHA + j) * C + c];
                o[c] = a;
            }
        }
    /* V[i][j] = sum_q tmp[i][q] BT[j][q] */
    for (int i = 0; i < ALPHA; i++)
        for (int j = 0; j < ALPHA; j++) {
            float *o = v + ((size_t)(i * ALPHA + j) * tiles + t) * C;
            for (int c = 0; c < C; c++) {
                float a = 0;
                for (int q = 0; q < ALPHA; q++)
                    a += tmp[(i * ALPHA + q) * C + c] * BT[j][q];
                o[c] = a;
            }
        }
}

/* M[e][t][k] -> the tile's 2x2xK outputs, + bias, ReLU. */
static void output_tile(const float *mm, int t, int tiles, const shape *s, const float *bias,
                        int n, int ty, int tx, float *tmp, float *y)
{
    const int K = s->k;
    /* tmp[a][j] = sum_i AT[a][i] M[i][j] */
    for (int a = 0; a < M; a++)
        for (int j = 0; j < ALPHA; j++) {
            float *o = tmp + (a * ALPHA + j) * K;
            for (int k = 0; k < K; k++) {
                float v = 0;
                for (int i = 0; i < ALPHA; i++)
                    v += AT[a][i] * mm[((size_t)(i * ALPHA + j) * tiles + t) * K + k];
                o[k] = v;
            }
        }
    for (int a = 0; a < M; a++)
        for (int b = 0; b < M; b++) {
            int oy = ty * M + a, ox = tx * M + b;
            if (oy >= s->oh || ox >= s->ow)
                continue;
            float *o = y + (((size_t)n * s->oh + oy) * s->ow + ox) * K;
            for (int k = 0; k < K; k++) {
                float v = bias[k];
                for (int j = 0; j < ALPHA; j++)
                    v += tmp[(a * ALPHA + j) * K + k] * AT[b][j];
                o[k] = v > 0 ? v : 0;
            }
        }
}

static int g_block = 64; /* tiles per block */
static int g_dnnl_gemm; /* WINO_GEMM=dnnl: oneDNN's sgemm instead of OpenBLAS */

static void winograd_forward(const float *x, const float *u, const float *bias, const shape *s,
                             float *y)
{
    int tiles_y = (s->oh + M - 1) / M, tiles_x = (s->ow + M - 1) / M;
    int64_t total = (int64_t)s->n * tiles_y * tiles_x;
    int64_t blocks = (total + g_block - 1) / g_block;
    const int C = s->c, K = s->k;
#pragma omp parallel
    {
        size_t cmax = C > K ? C : K;
        float *v = malloc((size_t)TILE_ELEMS * g_block * C * sizeof *v);
        float *mm = malloc((size_t)TILE_ELEMS * g_block * K * sizeof *mm);
        float *d = malloc(TILE_ELEMS * cmax * sizeof *d);
        float *tmp = malloc(TILE_ELEMS * cmax * sizeof *tmp);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t first = b * g_block;
            int count = (int)(total - first < g_block ? total - first : g_block);
            for (int t = 0; t < count; t++) {
                int64_t id = first + t;
                int tx = (int)(id % tiles_x), ty = (int)(id / tiles_x % tiles_y);
                int n = (int)(id / tiles_x / tiles_y);
                input_tile(x, s, n, ty, tx, d, tmp, v, t, g_block);
            }
            for (int e = 0; e < TILE_ELEMS; e++)
                if (g_dnnl_gemm) /* oneDNN's GEMM: one thread inside a parallel region */
                    dnnl_sgemm('N', 'N', count, K, C, 1.0f, v + (size_t)e * g_block * C, C,
                               u + (size_t)e * C * K, K, 0.0f, mm + (size_t)e * g_block * K, K);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, count, K, C, 1.0f,
                                v + (size_t)e * g_block * C, C, u + (size_t)e * C * K, K, 0.0f,
                                mm + (size_t)e * g_block * K, K);
            for (int t = 0; t < count; t++) {
                int64_t id = first + t;
                int tx = (int)(id % tiles_x), ty = (int)(id / tiles_x % tiles_y);
                int n = (int)(id / tiles_x / tiles_y);
                output_tile(mm, t, g_block, s, bias, n, ty, tx, tmp, y);
            }
        }
        free(v);
        free(mm);
        free(d);
        free(tmp);
    }
}

/* ---- oneDNN direct ------------------------------------------------------ */

typedef struct direct {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_primitive_t conv;
    dnnl_memory_t src, w, b, dst, scratch;
} direct;

static void direct_init(direct *dd, const shape *s, float *x, float *w_oihw, float *bias, float *y)
{
    CHECK(dnnl_engine_create(&dd->eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&dd->stream, dd->eng, dnnl_stream_default_flags));
    dnnl_memory_desc_t src, dst, w_any, w_user, b;
    dnnl_dims_t sd = {s->n, s->c, s->h, s->w}, dd_ = {s->n, s->k, s->oh, s->ow};
    dnnl_dims_t wd = {s->k, s->c, R, R}, bd = {s->k};
    CHECK(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_nhwc));
    CHECK(dnnl_memory_desc_init_by_tag(&dst, 4, dd_, dnnl_f32, dnnl_nhwc));
    CHECK(dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&w_user, 4, wd, dnnl_f32, dnnl_oihw));
    CHECK(dnnl_memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_x));
    dnnl_dims_t strides = {1, 1}, pad = {s->pad, s->pad};
    dnnl_convolution_desc_t desc;
    /* as libich's conv.c: one forward_training descriptor, direct */
    CHECK(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_convolution_direct,
                                             &src, &w_any, &b, &dst, strides, pad, pad));
    dnnl_post_ops_t ops;
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_post_ops_create(&ops));
    CHECK(dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
    CHECK(dnnl_primitive_attr_create(&attr));
    CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
    CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, dd->eng, NULL));
    const char *impl;
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    fprintf(stderr, "oneDNN forward: %s\n", impl);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *sp_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    CHECK(dnnl_memory_create(&dd->src, &src, dd->eng, x));
    CHECK(dnnl_memory_create(&dd->dst, &dst, dd->eng, y));
    CHECK(dnnl_memory_create(&dd->b, &b, dd->eng, bias));
    CHECK(dnnl_memory_create(&dd->w, w_md, dd->eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&dd->scratch, sp_md, dd->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_memory_t wu;
    CHECK(dnnl_memory_create(&wu, &w_user, dd->eng, w_oihw));
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, &w_user, dd->eng, w_md, dd->eng, NULL));
    dnnl_primitive_t reorder;
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[] = {{DNNL_ARG_FROM, wu}, {DNNL_ARG_TO, dd->w}};
    CHECK(dnnl_primitive_execute(reorder, dd->stream, 2, rargs));
    CHECK(dnnl_stream_wait(dd->stream));
    CHECK(dnnl_primitive_create(&dd->conv, pd));
}

static void direct_run(direct *dd)
{
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, dd->src},
                              {DNNL_ARG_WEIGHTS, dd->w},
                              {DNNL_ARG_BIAS, dd->b},
                              {DNNL_ARG_DST, dd->dst},
                              {DNNL_ARG_SCRATCHPAD, dd->scratch}};
    CHECK(dnnl_primitive_execute(dd->conv, dd->stream, 5, args));
    CHECK(dnnl_stream_wait(dd->stream));
}

/* ---- measurement -------------------------------------------------------- */

static double now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static float frand(uint64_t *st)
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*st >> 40) * (1.0 / 16777216.0));
}

/* double-precision reference of one output */
static double ref_out(const float *x, const float *w, const float *bias, const shape *s, int n,
                      int oy, int ox, int k)
{
    double a = bias[k];
    for (int c = 0; c < s->c; c++)
        for (int i = 0; i < R; i++)
            for (int j = 0; j < R; j++) {
                int y = oy + i - s->pad, xx = ox + j - s->pad;
                if (y < 0 || y >= s->h || xx < 0 || xx >= s->w)
                    continue;
                a += (double)x[(((size_t)n * s->h + y) * s->w + xx) * s->c + c] *
                     w[((size_t)k * s->c + c) * R * R + i * R + j];
            }
    return a > 0 ? a : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s conv2|conv3|HxWxCxKxPAD batch [reps] [tile_block]\n", argv[0]);
        return 2;
    }
    shape s = {0};
    if (!strcmp(argv[1], "conv2"))
        s = (shape){.h = 254, .w = 254, .c = 50, .k = 120};
    else if (!strcmp(argv[1], "conv3"))
        s = (shape){.h = 125, .w = 125, .c = 120, .k = 100};
    else if (sscanf(argv[1], "%dx%dx%dx%dx%d", &s.h, &s.w, &s.c, &s.k, &s.pad) != 5)
        return 2;
    s.n = atoi(argv[2]);
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (argc > 4)
        g_block = atoi(argv[4]);
    s.oh = s.h + 2 * s.pad - R + 1;
    s.ow = s.w + 2 * s.pad - R + 1;
    openblas_set_num_threads(1);
    g_dnnl_gemm = getenv("WINO_GEMM") && !strcmp(getenv("WINO_GEMM"), "dnnl");
    size_t xn = (size_t)s.n * s.h * s.w * s.c, yn = (size_t)s.n * s.oh * s.ow * s.k;
    size_t wn = (size_t)s.k * s.c * R * R;
    float *x = malloc(xn * 4), *w = malloc(wn * 4), *bias = malloc(s.k * 4);
    float *y1 = malloc(yn * 4), *y2 = malloc(yn * 4);
    float *u = malloc((size_t)TILE_ELEMS * s.c * s.k * 4);
    uint64_t st = 42;
    /* inputs as after ReLU + pool: [0, 1); PyTorch's default init bounds */
    float bound = 1.0f / sqrtf((float)s.c * R * R);
    for (size_t i = 0; i < xn; i++)
        x[i] = frand(&st);
    for (size_t i = 0; i < wn; i++)
        w[i] = (2 * frand(&st) - 1) * bound;
    for (int i = 0; i < s.k; i++)
        bias[i] = (2 * frand(&st) - 1) * bound;
    memset(y1, 0, yn * 4);
    memset(y2, 0, yn * 4);

    direct dd;
    direct_init(&dd, &s, x, w, bias, y1);
    double flops = 2.0 * s.n * s.oh * s.ow * s.k * s.c * R * R;
    printf("layer %s: N=%d %dx%dx%d -> %dx%dx%d, pad %d, %.2f GFLOP direct, threads %d, block %d\n",
           argv[1], s.n, s.h, s.w, s.c, s.oh, s.ow, s.k, s.pad, flops / 1e9, omp_get_max_threads(),
           g_block);
    /* warm-up: each once */
    direct_run(&dd);
    double t0 = now(CLOCK_MONOTONIC);
    weights_transform(w, &s, u);
    double wt_ms = (now(CLOCK_MONOTONIC) - t0) * 1e3;
    winograd_forward(x, u, bias, &s, y2);
    double *dw = malloc(reps * sizeof *dw), *dc = malloc(reps * sizeof *dc);
    double *ww = malloc(reps * sizeof *ww), *wc = malloc(reps * sizeof *wc);
    for (int r = 0; r < reps; r++) {
        for (int side = 0; side < 2; side++) {
            int which = (side + r) % 2; /* alternate who goes first */
            double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
            if (which == 0)
                direct_run(&dd);
            else
                winograd_forward(x, u, bias, &s, y2);
            double wall = (now(CLOCK_MONOTONIC) - w0) * 1e3;
            double cpu = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e3;
            if (which == 0)
                dw[r] = wall, dc[r] = cpu;
            else
                ww[r] = wall, wc[r] = cpu;
        }
        printf("  rep %d: direct %.1f ms (cpu %.1f), winograd %.1f ms (cpu %.1f)\n", r, dw[r], dc[r],
               ww[r], wc[r]);
    }
    double mdw = median(dw, reps), mdc = median(dc, reps), mww = median(ww, reps),
           mwc = median(wc, reps);
    printf("median: direct %.1f ms wall, %.1f ms cpu (%.1f GFLOP/s); winograd %.1f ms wall, %.1f ms "
           "cpu (%.1f direct-equivalent GFLOP/s); speed-up wall %.2fx cpu %.2fx; weight transform "
           "%.1f ms\n",
           mdw, mdc, flops / mdw / 1e6, mww, mwc, flops / mww / 1e6, mdw / mww, mdc / mwc, wt_ms);
    /* errors: the project's metric |a - b| / (1 + |b|), and max |a - b| / max |b| */
    double worst = 0, maxdiff = 0, maxref = 0;
    for (size_t i = 0; i < yn; i++) {
        double diff = fabs((double)y2[i] - y1[i]);
        double e = diff / (1 + fabs(y1[i]));
        worst = e > worst ? e : worst;
        maxdiff = diff > maxdiff ? diff : maxdiff;
        maxref = fabs(y1[i]) > maxref ? fabs(y1[i]) : maxref;
    }
    double wd = 0, wdir = 0;
    for (int i = 0; i < 2000; i++) {
        int n = (int)(frand(&st) * s.n), oy = (int)(frand(&st) * s.oh), ox = (int)(frand(&st) * s.ow);
        int k = (int)(frand(&st) * s.k);
        if (i < 4) /* corners */
            oy = i & 1 ? s.oh - 1 : 0, ox = i & 2 ? s.ow - 1 : 0;
        double r = ref_out(x, w, bias, &s, n, oy, ox, k);
        size_t at = (((size_t)n * s.oh + oy) * s.ow + ox) * s.k + k;
        double e1 = fabs(y2[at] - r) / (1 + fabs(r)), e2 = fabs(y1[at] - r) / (1 + fabs(r));
        wd = e1 > wd ? e1 : wd;
        wdir = e2 > wdir ? e2 : wdir;
    }
    printf("error: winograd vs direct: max |a-b|/(1+|b|) %.3g, max|a-b|/max|b| %.3g (max|b| %.3g); "
           "vs double reference (2000 samples): winograd %.3g, direct %.3g\n",
           worst, maxdiff / maxref, maxref, wd, wdir);
    return 0;
}
