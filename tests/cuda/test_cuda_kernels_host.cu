// The CUDA plugin's per-element layer functions (the __host__ __device__
// code inside libich/backend/cuda/layers_kernels.cu that every kernel
// thread runs) evaluated on the CPU, so their index arithmetic and
// formulas are checked on machines without a GPU, against naive loops
// written here with the CPU backend's semantics:
//   dropout   the same mask as libich/core/rng.h draws on the CPU
//   flatten, concat, gap   exact
//   max pool  forward, tie-breaking (first maximum) and backward, and avg
//             pool (padding counted) over 4000+ shapes with tied inputs
//   batch norm  dx against a float64 finite difference, d weight, forward
//   the batch-norm reduction's chunking covers every row
// Built as C++ against the CPU emulation of CUDA (tests/cuda_emu) and run
// by ctest on every machine; the whole plugin runs on that emulation in
// tests/gpu, and on a real GPU there when one is present.
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include <cuda_runtime.h>
extern "C" cudaStream_t ich_cuda_stream(void) { return 0; }
#include "backend/cuda/layers_kernels.cu"
#include "core/rng.h"

static int fails = 0;
#define EXPECT(c, ...)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            if (fails++ < 20) {                                                                    \
                printf("FAIL %s:%d ", __FILE__, __LINE__);                                         \
                printf(__VA_ARGS__);                                                               \
                printf("\n");                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static float frand(ich_rng *r) { return (float)ich_rng_range(r, -2, 2); }

int main() {
    ich_rng r = ich_rng_init(1, 2, 3);
    // dropout vs rng.h
    for (int trial = 0; trial < 20; trial++) {
        uint64_t seed = ich_rng_next(&r), step = trial * 7;
        int N = 3;
        int64_t per = 37;
        double p = trial / 19.0;
        float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
        std::vector<float> x(N * per), ref(N * per);
        for (auto &v : x)
            v = frand(&r);
        for (int n = 0; n < N; n++) {
            ich_rng rng = ich_rng_init(seed, step, (uint64_t)n);
            for (int64_t i = 0; i < per; i++)
                ref[n * per + i] = ich_rng_uniform(&rng) < p ? 0.0f : x[n * per + i] * scale;
        }
        for (int64_t i = 0; i < N * per; i++) {
            float dv = dropout_value(x.data(), i, per, seed, step, p, scale);
            EXPECT(memcmp(&ref[i], &dv, 4) == 0, "dropout %lld", (long long)i);
        }
    }
    // flatten
    {
        int N = 2, H = 3, W = 5, C = 7;
        int64_t hw = H * W, ps = hw * C;
        std::vector<float> x(N * ps), y(N * ps), dx(N * ps);
        for (auto &v : x)
            v = frand(&r);
        for (int n = 0; n < N; n++)
            for (int64_t p = 0; p < hw; p++)
                for (int c = 0; c < C; c++)
                    y[n * ps + c * hw + p] = x[n * ps + p * C + c];
        for (int64_t i = 0; i < N * ps; i++)
            EXPECT(y[i] == flatten_forward_value(x.data(), i, hw, C), "flatten f %lld",
                   (long long)i);
        for (int64_t i = 0; i < N * ps; i++)
            EXPECT(x[i] == flatten_backward_value(y.data(), i, hw, C), "flatten b %lld",
                   (long long)i);
    }
    // concat
    {
        int rows = 11, c0 = 3, c1 = 5, c = 8;
        std::vector<float> a(rows * c0), b(rows * c1), y(rows * c);
        for (auto &v : a)
            v = frand(&r);
        for (auto &v : b)
            v = frand(&r);
        for (int rr = 0; rr < rows; rr++) {
            memcpy(&y[rr * c], &a[rr * c0], c0 * 4);
            memcpy(&y[rr * c + c0], &b[rr * c1], c1 * 4);
        }
        for (int64_t i = 0; i < rows * c; i++)
            EXPECT(y[i] == concat_forward_value(a.data(), b.data(), i, c0, c1), "concat f");
        for (int64_t i = 0; i < rows * c0; i++)
            EXPECT(a[i] == concat_backward_value(y.data(), i, c, 0, c0), "concat b0");
        for (int64_t i = 0; i < rows * c1; i++)
            EXPECT(b[i] == concat_backward_value(y.data(), i, c, c0, c1), "concat b1");
    }
    // pools: reference = PyTorch/oneDNN reference loops (scatter backward in output order)
    int configs = 0;
    for (int kh = 1; kh <= 4; kh++)
        for (int kw = 1; kw <= 3; kw++)
            for (int sh = 1; sh <= 3; sh++)
                for (int sw = 1; sw <= 4; sw++)
                    for (int ph = 0; 2 * ph <= kh; ph++)
                        for (int pw = 0; 2 * pw <= kw; pw++)
                            for (int H = 1; H <= 7; H += 3)
                                for (int W = 1; W <= 8; W += 2) {
                                    int N = 2, C = 3;
                                    int OH = ich_out_size(H, kh, sh, ph, 1),
                                        OW = ich_out_size(W, kw, sw, pw, 1);
                                    if (OH <= 0 || OW <= 0)
                                        continue;
                                    configs++;
                                    ich_cuda_pool_geometry g = {N,  H,  W,  C,  OH, OW,
                                                                kh, kw, sh, sw, ph, pw};
                                    std::vector<float> x(N * H * W * C), gy(N * OH * OW * C);
                                    // few distinct values to create ties
                                    for (auto &v : x)
                                        v = (float)(ich_rng_below(&r, 4)) - 1.5f;
                                    for (auto &v : gy)
                                        v = frand(&r);
                                    std::vector<float> ymax(gy.size()), yavg(gy.size()),
                                        dmax(x.size(), 0.f), davg(x.size(), 0.f);
                                    std::vector<int> amax(gy.size());
                                    for (int n = 0; n < N; n++)
                                        for (int oy = 0; oy < OH; oy++)
                                            for (int ox = 0; ox < OW; ox++)
                                                for (int c = 0; c < C; c++) {
                                                    int o = ((n * OH + oy) * OW + ox) * C + c;
                                                    float best = -FLT_MAX;
                                                    int at = -1;
                                                    float sum = 0;
                                                    for (int ky = 0; ky < kh; ky++)
                                                        for (int kx = 0; kx < kw; kx++) {
                                                            int iy = oy * sh - ph + ky,
                                                                ix = ox * sw - pw + kx;
                                                            if (iy < 0 || iy >= H || ix < 0 ||
                                                                ix >= W)
                                                                continue;
                                                            float v =
                                                                x[((n * H + iy) * W + ix) * C + c];
                                                            if (v > best) {
                                                                best = v;
                                                                at =
                                                                    ((n * H + iy) * W + ix) * C + c;
                                                            }
                                                            sum += v;
                                                        }
                                                    EXPECT(at >= 0, "empty window");
                                                    ymax[o] = best;
                                                    amax[o] = at;
                                                    yavg[o] = sum / (float)(kh * kw);
                                                }
                                    for (int n = 0; n < N; n++)
                                        for (int oy = 0; oy < OH; oy++)
                                            for (int ox = 0; ox < OW; ox++)
                                                for (int c = 0; c < C; c++) {
                                                    int o = ((n * OH + oy) * OW + ox) * C + c;
                                                    dmax[amax[o]] += gy[o];
                                                    for (int ky = 0; ky < kh; ky++)
                                                        for (int kx = 0; kx < kw; kx++) {
                                                            int iy = oy * sh - ph + ky,
                                                                ix = ox * sw - pw + kx;
                                                            if (iy < 0 || iy >= H || ix < 0 ||
                                                                ix >= W)
                                                                continue;
                                                            davg[((n * H + iy) * W + ix) * C + c] +=
                                                                gy[o] / (float)(kh * kw);
                                                        }
                                                }
                                    std::vector<int32_t> arg(gy.size());
                                    for (int64_t i = 0; i < (int64_t)gy.size(); i++) {
                                        float v = maxpool_value(x.data(), i, g, &arg[i]);
                                        EXPECT(v == ymax[i], "max f");
                                        EXPECT(avgpool_value(x.data(), i, g) == yavg[i], "avg f");
                                    }
                                    for (int64_t i = 0; i < (int64_t)x.size(); i++) {
                                        EXPECT(maxpool_backward_value(gy.data(), arg.data(), i,
                                                                      g) == dmax[i],
                                               "max b k%dx%d s%dx%d p%dx%d H%d W%d i%lld", kh, kw,
                                               sh, sw, ph, pw, H, W, (long long)i);
                                        EXPECT(avgpool_backward_value(gy.data(), i, g) == davg[i],
                                               "avg b");
                                    }
                                }
    // gap
    {
        int N = 3, H = 4, W = 5, C = 6;
        int64_t hw = H * W;
        std::vector<float> x(N * hw * C), y(N * C), g(N * C), dx(x.size());
        for (auto &v : x)
            v = frand(&r);
        for (auto &v : g)
            v = frand(&r);
        for (int n = 0; n < N; n++) {
            float *yy = &y[n * C];
            memset(yy, 0, C * 4);
            for (int64_t p = 0; p < hw; p++)
                for (int c = 0; c < C; c++)
                    yy[c] += x[(n * hw + p) * C + c];
            for (int c = 0; c < C; c++)
                yy[c] /= (float)hw;
            for (int64_t p = 0; p < hw; p++)
                for (int c = 0; c < C; c++)
                    dx[(n * hw + p) * C + c] = g[n * C + c] / (float)hw;
        }
        for (int64_t i = 0; i < N * C; i++)
            EXPECT(y[i] == gap_value(x.data(), i, hw, C), "gap f");
        for (int64_t i = 0; i < (int64_t)x.size(); i++)
            EXPECT(dx[i] == gap_backward_value(g.data(), i, hw, C), "gap b");
    }
    // batch norm: numerical gradient check of the formulas (double reference)
    {
        int rows = 50, C = 3;
        float eps = 1e-5f;
        std::vector<float> x(rows * C), dy(rows * C), w(C), b(C), mean(C), var(C);
        for (auto &v : x)
            v = frand(&r);
        for (auto &v : dy)
            v = frand(&r);
        for (int c = 0; c < C; c++) {
            w[c] = 0.5f + c;
            b[c] = 0.1f * c;
        }
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int i = 0; i < rows; i++)
                s += x[i * C + c];
            mean[c] = (float)(s / rows);
            double q = 0;
            for (int i = 0; i < rows; i++) {
                double d = (double)x[i * C + c] - mean[c];
                q += d * d;
            }
            var[c] = (float)(q / rows);
        }
        std::vector<float> dw(C), db(C);
        for (int c = 0; c < C; c++) {
            double a = 0, bb = 0;
            for (int i = 0; i < rows; i++) {
                a += dy[i * C + c];
                bb += ((double)x[i * C + c] - mean[c]) * dy[i * C + c];
            }
            db[c] = (float)a;
            dw[c] = (float)bb * (1.0f / sqrtf(var[c] + eps));
        }
        // loss L = sum(dy * y(x)); check dL/dx numerically in double
        auto loss = [&](const std::vector<double> &xd) {
            double L = 0;
            for (int c = 0; c < C; c++) {
                double m = 0;
                for (int i = 0; i < rows; i++)
                    m += xd[i * C + c];
                m /= rows;
                double v = 0;
                for (int i = 0; i < rows; i++)
                    v += (xd[i * C + c] - m) * (xd[i * C + c] - m);
                v /= rows;
                for (int i = 0; i < rows; i++)
                    L += dy[i * C + c] * (w[c] * (xd[i * C + c] - m) / sqrt(v + eps) + b[c]);
            }
            return L;
        };
        std::vector<double> xd(x.begin(), x.end());
        double maxerr = 0;
        for (int64_t i = 0; i < rows * C; i++) {
            std::vector<double> xp = xd, xm = xd;
            xp[i] += 1e-6;
            xm[i] -= 1e-6;
            double num = (loss(xp) - loss(xm)) / 2e-6;
            float got = bn_backward_value(x.data(), dy.data(), i, mean.data(), var.data(), w.data(),
                                          dw.data(), db.data(), eps, (float)rows, C, 1);
            double e = fabs(num - got);
            if (e > maxerr)
                maxerr = e;
        }
        EXPECT(maxerr < 1e-3, "bn dx err %g", maxerr);
        printf("bn dx max err %g\n", maxerr);
        // dweight numerically: dL/dw = sum dy * xhat
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int i = 0; i < rows; i++)
                s += dy[i * C + c] * ((double)x[i * C + c] - mean[c]) / sqrt((double)var[c] + eps);
            EXPECT(fabs(s - dw[c]) < 1e-4, "dw");
        }
        for (int64_t i = 0; i < rows * C; i++) {
            int c = i % C;
            double ref = w[c] * ((double)x[i] - mean[c]) / sqrt((double)var[c] + eps) + b[c];
            EXPECT(fabs(ref - bn_forward_value(x.data(), i, mean.data(), var.data(), w.data(),
                                               b.data(), eps, C)) < 1e-5,
                   "bn f");
        }
    }
    // chunk coverage of the reduction
    for (int64_t rows = 1; rows < 300000; rows = rows * 3 + 1)
        for (int c = 1; c < 2000; c = c * 5 + 3) {
            int32_t chunks = ich_cuda_bn_chunks(rows, c);
            int64_t per = (rows + chunks - 1) / chunks;
            EXPECT(chunks >= 1 && chunks <= 65535 && per * chunks >= rows, "chunks rows %lld c %d",
                   (long long)rows, c);
        }
    printf("%d pool configs, %d failures\n", configs, fails);
    return fails != 0;
}
