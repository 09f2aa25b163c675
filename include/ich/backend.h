/* libich — choosing where the network runs: the CPU or a GPU.
 *
 * libich runs models on a backend. The CPU backend (oneDNN and OpenBLAS)
 * is built in. The CUDA backend is a plugin, libich-cuda.so, built beside
 * libich.so when the CUDA toolkit is found and loaded at run time, so
 * libich.so itself never needs CUDA: a machine without a GPU, a driver or
 * the plugin runs everything on the CPU.
 *
 * A model runs on the backend that was chosen when it was created (or
 * loaded); choosing another backend later changes where new models run,
 * not existing ones. Checkpoints do not depend on the backend: a model
 * trained on the GPU loads and runs on the CPU and back.
 *
 * The choice, in order: the last ich_backend_select(); else the
 * ICH_BACKEND environment variable; else "auto".
 *   auto  the GPU when the plugin loads and finds a device, else the CPU
 *   cpu   the CPU
 *   cuda  the GPU; creating a model fails with the reason (plugin not
 *         found, no device, no driver, a plugin built for another libich)
 *         when it cannot start
 * The plugin is looked for beside libich.so, then in the folders of
 * ICH_PLUGIN_PATH (colon-separated), then on the system's library path.
 * Before a plugin linked against NVIDIA's libraries is loaded, the driver
 * (libcuda.so.1) is asked whether it has a device; without one, neither
 * the plugin nor cuBLAS/cuDNN is loaded (about 150 MiB of memory saved),
 * and the plugin is then not looked for on the system's library path.
 * The CUDA backend also reads, when it starts, ICH_CUDA_DEVICE (device
 * number; default 0, and in a distributed run (ich/dist.h) the process's
 * local rank on its machine modulo the devices: one GPU per rank, as NCCL
 * needs), ICH_NCCL (0: a distributed run sums gradients through the host
 * instead of with NCCL, which is loaded at run time, libnccl.so.2, and
 * used when every rank can), ICH_CUDA_WORKSPACE_MB (cuDNN workspace limit, default
 * 1024) and ICH_CUDA_MATH, the arithmetic of convolutions and matrix
 * products (ich_backend_describe names it):
 *   fp32  full single precision, as the CPU (the default)
 *   tf32  TensorFloat-32 tensor cores: faster, about 1e-3 relative error
 *         (PyTorch's default for convolutions; ICH_CUDA_TF32=1 says the same)
 *   bf16  mixed precision: convolutions on bfloat16 copies of their inputs,
 *         weights and gradients with FP32 sums (about 1e-2 relative, as
 *         PyTorch's autocast), matrix products in TF32; the weights, the
 *         optimizer and every other layer stay FP32
 * Another value makes the CUDA backend fail to start, saying so.
 * ICH_CUDA_BENCHMARK=1 makes cuDNN time every convolution algorithm at the
 * first pass of each batch size and keep the fastest (PyTorch's
 * cudnn.benchmark = True: a slower first step); otherwise cuDNN's
 * heuristics choose (PyTorch's default).
 * The CPU backend reads ICH_CPU_LAYOUT when a convolution is created or
 * its batch size changes: the activation layout of each convolution pass
 * (forward, input gradient, weight gradient), any case:
 *   auto     the default: by a rule measured on oneDNN 2.6's kernels, the
 *            backward passes of convolutions with kernels of 4x4 or more
 *            (and 8 or more input channels, ungrouped) on the blocked
 *            layout on AVX2 CPUs without AVX-512 (where oneDNN's NHWC
 *            backward kernels are up to 3x slower), except that the input
 *            gradient of such a convolution with stride 1 runs as a
 *            forward convolution with the flipped weights on NHWC (faster
 *            still); the weight gradient of convolutions with one input
 *            channel by im2col and OpenBLAS (3-4x faster than oneDNN's
 *            kernels there); everything else on NHWC
 *   nhwc     every pass on the model's NHWC activations, oneDNN's kernels
 *   blocked  every pass on oneDNN's blocked layout (nChw8c or nChw16c),
 *            with reorders in and out (tests use it to check those kernels)
 * Results agree within float32 rounding whatever the layout; a blocked
 * pass runs over the batch in chunks whose copies take at most 64 MiB
 * per layer. Another value makes creating a model with a convolution fail
 * with ICH_ERR_INVALID_ARGUMENT, saying so.
 * ICH_CPU_MATH, read at the same moments, is the CPU convolutions'
 * arithmetic, as ICH_CUDA_MATH is the GPU's:
 *   fp32  full single precision (the default)
 *   bf16  mixed precision on CPUs with AVX512-BF16 or AMX: convolutions on
 *         bfloat16 copies of their inputs and weights with FP32 sums and
 *         FP32 results (about 1e-2 relative, as PyTorch's autocast); the
 *         weights, their gradients, the optimizer, every other layer and
 *         convolutions with fewer than 8 input channels (whose channels
 *         the bf16 kernels would pad to 16) stay FP32. On a CPU without those instructions (or under
 *         ONEDNN_MAX_CPU_ISA below them) a warning is logged once and the
 *         convolutions stay FP32.
 * Another value makes creating a model with a convolution fail with
 * ICH_ERR_INVALID_ARGUMENT.
 * ICH_CPU_WINOGRAD, read at the same moments, chooses the algorithm of
 * the CPU convolutions' inference forwards (ich_model_predict(), and
 * ich_model_forward() in evaluation mode: ich_model_set_training()); the
 * forwards of training mode and every backward pass are always direct:
 *   auto  the default: Winograd F(4x4,5x5) for ungrouped, stride-1,
 *         undilated 5x5 convolutions with at least 16 input and 16 output
 *         channels and at most 16384 (input x output) channel pairs, in
 *         FP32 (not under ICH_CPU_MATH=bf16); oneDNN's direct kernels for
 *         every other convolution. Winograd does 6.25x fewer
 *         multiplications (2-3x less time than oneDNN 2.6's direct
 *         kernels on the tutorial's 5x5 layers, bench/README.md) and
 *         agrees with the direct result within about 1e-5 relative
 *   1     Winograd for every 5x5, stride-1, undilated, ungrouped
 *         convolution, whatever its channels
 *   0     never Winograd
 * Another value makes creating a model with a convolution fail with
 * ICH_ERR_INVALID_ARGUMENT, saying so.
 * ICH_INFER_MEMORY, read by every evaluation-mode forward (ich_model_forward()
 * with training off, ich_model_predict() and what calls them), on every
 * backend: the MiB of activations such a pass may hold at once, a whole
 * number, 0 for no limit. When the batch's activations (the most the
 * layers hold at once, from the network's shapes) would exceed it, the
 * batch runs in equal slices that fit, at least one image each, with the
 * same results (every image is computed alone in evaluation: bit for bit
 * on the CPU's direct kernels, AVX2 and newer; within rounding where
 * oneDNN falls back to its gemm-based kernels, on older CPUs, and where
 * cuDNN picks another algorithm for another batch size); when the
 * batch is not a multiple of the slice, the last slice overlaps the one
 * before (a few images computed twice). Unset, on the CPU backend: 8 MiB,
 * but at least 4 images a pass (ichnet's 256 x 256 network holds 2 MiB per
 * image, so a batch of 16 runs as 4 x 4 images and peaks at 34 MiB above
 * the process's start instead of 66; the tutorial's 512 x 512 one, 62 MiB
 * per image, 4 x 4 at 318 MiB instead of 1056; fewer images a pass cost
 * speed, and on a busy machine more passes do), no limit on other
 * backends (a GPU wants large batches). The
 * layers' scratch memory shrinks with the slice; the weights do not.
 * Training is never sliced. Another value makes the pass fail with
 * ICH_ERR_INVALID_ARGUMENT, saying so.
 */
#ifndef ICH_BACKEND_H
#define ICH_BACKEND_H

#include <stddef.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Choose the backend new models use: "auto", "cpu" or "cuda" (NULL or ""
 *  re-reads ICH_BACKEND). "cuda" fails with ICH_ERR_NOT_FOUND when the
 *  plugin is not found and ICH_ERR_UNSUPPORTED when it cannot start (no
 *  device, no driver, another interface version), the message saying which
 *  file and why; the previous choice then stays. "auto" never fails. */
ICH_API ich_status ich_backend_select(const char *name);

/** Name of the backend new models use ("cpu" or "cuda"), deciding it from
 *  ICH_BACKEND on first use. NULL when ICH_BACKEND names a backend that
 *  cannot start (ich_last_error() says why). The string is static. */
ICH_API const char *ich_backend_name(void);

/** One line on a backend ("cuda: device 0 NVIDIA H100 ..., cuDNN 9.x, FP32
 *  math"; "cpu: 2 threads, oneDNN 2.6.3 ..."), starting it if needed but
 *  without choosing it: name "auto", "cpu" or "cuda", or NULL / "" for the
 *  backend new models use. Fails as ich_backend_select would, so it tells
 *  whether (and why not) a backend can run here. ICH_ERR_SHAPE when `text`
 *  (size bytes) is too small. */
ICH_API ich_status ich_backend_describe(const char *name, char *text, size_t size);

#ifdef __cplusplus
}
#endif

#endif
