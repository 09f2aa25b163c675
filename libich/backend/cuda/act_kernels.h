/* Internal to the CUDA plugin: the launchers of the activation kernels
 * (act_kernels.cu: SiLU, GELU, sigmoid, and the per-channel multiply of the
 * scale block), called from act.c. Each queues on ich_cuda_stream() and
 * returns; the caller checks the launch with CHECK_LAUNCH. Formulas as
 * libich/backend/cpu/act.c. */
#ifndef ICH_INTERNAL_BACKEND_CUDA_ACT_KERNELS_H
#define ICH_INTERNAL_BACKEND_CUDA_ACT_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Which activation. */
typedef enum ich_cuda_act { ICH_CUDA_SILU = 0, ICH_CUDA_GELU = 1, ICH_CUDA_SIGMOID = 2 } ich_cuda_act;

/* y = act(x) (y may be x). */
void ich_cuda_k_act_forward(ich_cuda_act act, float *y, const float *x, int64_t count);
/* dx = g * act'(v): v is the input for SiLU and GELU, the output for
 * sigmoid (dx may be g). */
void ich_cuda_k_act_backward(ich_cuda_act act, float *dx, const float *v, const float *g,
                             int64_t count);
/* y[n][p][q] = x[n][p][q] * s[n][q] for n samples of hw positions of c
 * channels; also dx = g * s. */
void ich_cuda_k_mul_channels(float *y, const float *x, const float *s, int32_t n, int64_t hw,
                             int32_t c);
/* ds[n][q] = sum over p, in order, of g[n][p][q] * x[n][p][q] (double). */
void ich_cuda_k_mul_factor_grad(float *ds, const float *g, const float *x, int32_t n, int64_t hw,
                                int32_t c);

#ifdef __cplusplus
}
#endif

#endif
