/* The weight gradient of convolutions with few input values per output
 * (see im2col.h).
 *
 * Each compute thread takes a contiguous run of output rows (image, row)
 * and, block by block, unfolds them into col[position][tap] (plus a column
 * of ones for the bias), then adds col^T * dy into its own sums with
 * OpenBLAS; the threads' sums are added at the end. Every product stays
 * under OpenBLAS's threading threshold (M*N*K = 65536 * 4 in 0.3), so that
 * OpenBLAS does not start its own threads inside ours: measured on the
 * tutorial's conv1 (1 x 512 x 512 -> 50 x 508 x 508, 5x5, batch 16, 2
 * threads), nested threading made it 2.8x slower.
 *
 * Why: oneDNN 2.6's backward-weights kernels parallelise over channel
 * blocks, and one input channel leaves them almost nothing to split; the
 * tutorial's conv1 took 465-630 ms a step on AVX2 (8-10% of the FMA
 * peak), 222-281 ms on AVX-512, against 140-170 ms this way (issue 16,
 * bench/README.md). */
#include "backend/cpu/im2col.h"

#include <string.h>

#include <cblas.h>

#include "backend/cpu/cpu.h"
#include "core/error.h"
#include "core/threads.h"

/* OpenBLAS 0.3 threads a product only above M*N*K = 65536 * 4. */
#define GEMM_SERIAL_LIMIT 262144
/* The fewest positions per product worth a call. */
#define MIN_DEPTH 64
/* Positions unfolded per block: about 1 MiB of col per thread. */
#define BLOCK_FLOATS (1 << 18)

typedef struct job {
    const ich_layer *layer;
    const float *x, *dy;
    float *work;
    int64_t per_thread;         /* floats of work per thread */
    int64_t taps, cols;         /* taps = IN*KH*KW; cols = taps + 1 (ones for the bias) */
    int64_t rows, block_rows;   /* output rows (images x height) and per block */
    int64_t depth;              /* positions per product */
    int threads;
} job;

static int64_t taps_of(const ich_layer *layer)
{
    return (int64_t)layer->in[0].c * layer->args.kernel[0] * layer->args.kernel[1];
}

int ich_cpu_im2col_fits(const ich_layer *layer)
{
    int64_t cols = taps_of(layer) + 1;
    return layer->args.groups <= 1 && cols * layer->out.c * MIN_DEPTH <= GEMM_SERIAL_LIMIT;
}

int ich_cpu_im2col_pays(const ich_layer *layer)
{
    return layer->in[0].c == 1 && ich_cpu_im2col_fits(layer);
}

/* Output row r (image r / OH, row r % OH) unfolded: col[ow][t], t over
 * (c, kh, kw) as in OIHW, then a 1. */
static void unfold_row(const job *j, int64_t r, float *col)
{
    const ich_layer *layer = j->layer;
    const ich_shape *in = &layer->in[0], *out = &layer->out;
    const ich_layer_args *a = &layer->args;
    int64_t n = r / out->h, oh = r % out->h;
    const float *image = j->x + n * in->h * in->w * in->c;
    for (int64_t ow = 0; ow < out->w; ow++) {
        float *c = col + ow * j->cols;
        int64_t t = 0;
        for (int32_t ch = 0; ch < in->c; ch++)
            for (int32_t kh = 0; kh < a->kernel[0]; kh++) {
                int64_t ih = oh * a->stride[0] - a->padding[0] + (int64_t)kh * a->dilation[0];
                for (int32_t kw = 0; kw < a->kernel[1]; kw++, t++) {
                    int64_t iw = ow * a->stride[1] - a->padding[1] + (int64_t)kw * a->dilation[1];
                    int inside = ih >= 0 && ih < in->h && iw >= 0 && iw < in->w;
                    c[t] = inside ? image[(ih * in->w + iw) * in->c + ch] : 0.0f;
                }
            }
        c[t] = 1.0f;
    }
}

/* Threads [begin, end): each its share of the rows, block by block, into
 * its own sums (the first cols * OUT floats of its work). */
static void run_threads(void *context, int64_t begin, int64_t end)
{
    const job *j = context;
    int64_t outs = j->layer->out.c, width = j->layer->out.w;
    for (int64_t i = begin; i < end; i++) {
        float *sums = j->work + i * j->per_thread, *col = sums + j->cols * outs;
        memset(sums, 0, (size_t)(j->cols * outs) * sizeof(float));
        int64_t first = j->rows * i / j->threads, last = j->rows * (i + 1) / j->threads;
        for (int64_t r0 = first; r0 < last; r0 += j->block_rows) {
            int64_t count = last - r0 < j->block_rows ? last - r0 : j->block_rows;
            for (int64_t r = 0; r < count; r++)
                unfold_row(j, r0 + r, col + r * width * j->cols);
            int64_t positions = count * width;
            const float *dy = j->dy + r0 * width * outs;
            for (int64_t p = 0; p < positions; p += j->depth) {
                int64_t k = positions - p < j->depth ? positions - p : j->depth;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)j->cols, (int)outs,
                            (int)k, 1.0f, col + p * j->cols, (int)j->cols, dy + p * outs,
                            (int)outs, 1.0f, sums, (int)outs);
            }
        }
    }
}

ich_status ich_cpu_im2col_weights(ich_layer *layer, ich_cpu_im2col *state, const float *x,
                                  const float *dy, float *dw, float *db)
{
    const ich_shape *out = &layer->out;
    job j = {.layer = layer, .x = x, .dy = dy, .taps = taps_of(layer)};
    j.cols = j.taps + 1;
    j.rows = (int64_t)out->n * out->h;
    j.block_rows = BLOCK_FLOATS / (out->w * j.cols);
    j.block_rows = j.block_rows < 1 ? 1 : j.block_rows;
    j.depth = GEMM_SERIAL_LIMIT / (j.cols * out->c);
    j.threads = ich_compute_threads();
    j.per_thread = j.cols * out->c + j.block_rows * out->w * j.cols;
    j.per_thread = (j.per_thread + 15) / 16 * 16;
    ich_status status = ich_cpu_grow(layer, (void **)&state->work, &state->work_size,
                                     (size_t)(j.threads * j.per_thread) * sizeof(float));
    if (status != ICH_OK)
        return status;
    j.work = state->work;
    ich_parallel_split(j.threads, run_threads, &j);
    /* sums[t][o] of every thread into dw[o][t] and db[o] */
    for (int64_t o = 0; o < out->c; o++) {
        for (int64_t t = 0; t <= j.taps; t++) {
            float total = 0.0f;
            for (int i = 0; i < j.threads; i++)
                total += j.work[i * j.per_thread + t * out->c + o];
            if (t < j.taps)
                dw[o * j.taps + t] = total;
            else if (db)
                db[o] = total;
        }
    }
    state->runs++;
    return ICH_OK;
}

void ich_cpu_im2col_free(ich_cpu_im2col *state)
{
    ich_cpu_free(state->work);
    memset(state, 0, sizeof *state);
}
