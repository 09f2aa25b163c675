#!/usr/bin/env python3
"""One side of the GPU benchmark, for bench/run_cuda.sh: libich's CUDA
backend or PyTorch, training and inference of a preset network on the GPU.

    cuda_bench.py probe libich|pytorch [--fp32] [--tf32] [--bf16] [--benchmark]
    cuda_bench.py run libich|pytorch --model tutorial|ichnet --batch N
                  [--warmup 3] [--train-steps 10] [--infer-steps 10] [--fp32] [--tf32] [--bf16] [--benchmark]

probe: can this side use the GPU? Prints a line describing it
       (libich: ich.backend_info("cuda"); PyTorch: version, device, TF32
       settings) and a RESULT line; exits 0 when it can, 3 when there is no
       GPU (the first line then says why), 4 when PyTorch is not installed.
run:   one fixed random batch (uniform [0, 1) pixels, six random 0/1
       targets per image); inference first (evaluation mode, forward passes;
       PyTorch under torch.no_grad()), then training (forward,
       BCE-with-logits (mean), backward, Adam step with lr 1e-3, zero the
       gradients). Both sides copy the batch from host memory to the GPU
       every step and bring the output back, as a training loop fed from a
       data loader does: libich's calls take and return host arrays and
       return when the GPU is done; PyTorch's steps are timed between
       torch.cuda.synchronize() calls. --warmup untimed steps (cuDNN set-up,
       memory caches) before the timed ones of each mode. Prints a readable
       line per mode and
           RESULT side=S model=M batch=N mode=infer|train steps=K seconds=...
                  images_per_s=... best_images_per_s=... first=... last=...
       (best_images_per_s: the fastest single step; first/last: the loss, or
       the mean |logit| in inference), or "oom=1" in place of the figures when
       the GPU's memory is too small for that batch.

--fp32: PyTorch without TensorFloat-32 (torch.backends.cudnn.allow_tf32 and
        torch.backends.cuda.matmul.allow_tf32 False), as libich's default.
--tf32: libich with ICH_CUDA_MATH=tf32 (TF32 convolutions and matrix products).
--benchmark: both sides time cuDNN's algorithms at the first steps and keep
        the fastest (ICH_CUDA_BENCHMARK=1; torch.backends.cudnn.benchmark).
--bf16: mixed precision on both sides: libich with ICH_CUDA_MATH=bf16
        (bfloat16 convolutions, TF32 matrix products, FP32 elsewhere),
        PyTorch under torch.autocast("cuda", dtype=torch.bfloat16).

The libich side never imports torch, and each run is its own process (so
one side's cached GPU memory does not crowd the other's). The PyTorch
networks are twins of libich's presets, with the same state_dict names:
the tutorial's ConvNet from bench/cnn_reference.py and ichnet from
bindings/python/tests/test_model.py.
"""

import argparse
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NO_GPU = 3
NO_TORCH = 4

PRESETS = {"tutorial": (1, 512, 512), "ichnet": (3, 256, 256)}
OUTPUTS = 6


# ---- libich ----------------------------------------------------------------------

def import_ich(args):
    # read when the plugin starts
    if args.benchmark:
        os.environ["ICH_CUDA_BENCHMARK"] = "1"
    if args.bf16:
        os.environ["ICH_CUDA_MATH"] = "bf16"
    elif args.tf32:
        os.environ["ICH_CUDA_MATH"] = "tf32"
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    import ich
    return ich


def probe_libich(args):
    ich = import_ich(args)
    try:
        info = ich.backend_info("cuda")
    except ich.IchError as e:
        print(str(e))
        print("RESULT side=libich gpu=0")
        return NO_GPU
    print(info)
    print("RESULT side=libich gpu=1 tf32=%d" % (1 if "TF32 math" in info else 0))
    return 0


def run_libich(args):
    import numpy as np
    ich = import_ich(args)
    ich.use_backend("cuda")  # raises, saying why, when the GPU cannot be used
    model = ich.Model.preset(args.model)
    assert model.backend == "cuda"
    model.init_weights(0)
    rng = np.random.default_rng(1)
    x = rng.random((args.batch,) + PRESETS[args.model], dtype=np.float32)
    y = (rng.random((args.batch, OUTPUTS)) < 0.3).astype(np.float32)

    def infer():
        return float(np.abs(model.forward(x)).mean())

    optimizer = None

    def train():
        logits = model.forward(x)
        loss, grad = ich.bce_with_logits(logits, y)
        model.backward(grad)
        optimizer.step()
        model.zero_grad()
        return loss

    try:
        model.eval()
        measure(args, "libich", "infer", infer)
        model.train()
        optimizer = ich.Optimizer(model, "adam", lr=1e-3)
        model.zero_grad()
        measure(args, "libich", "train", train)
    except ich.NoMemoryError as e:
        return out_of_memory(args, "libich", e)
    return 0


# ---- PyTorch -------------------------------------------------------------------------

def import_torch():
    try:
        import torch
    except ImportError as e:
        print("PyTorch not installed for %s (%s)" % (sys.executable, e))
        print("RESULT side=pytorch gpu=0 torch=0")
        sys.exit(NO_TORCH)
    return torch


def set_torch_math(torch, fp32, benchmark=False):
    torch.backends.cudnn.benchmark = benchmark
    if fp32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def torch_description(torch):
    on = {True: "on", False: "off"}
    return ("PyTorch %s (CUDA %s, cuDNN %s) on %s; TF32: convolutions %s "
            "(cudnn.allow_tf32), matrix products %s (cuda.matmul.allow_tf32); "
            "cudnn.benchmark %s" % (torch.__version__, torch.version.cuda,
                                    torch.backends.cudnn.version(),
                                    torch.cuda.get_device_name(),
                                    on[bool(torch.backends.cudnn.allow_tf32)],
                                    on[bool(torch.backends.cuda.matmul.allow_tf32)],
                                    on[bool(torch.backends.cudnn.benchmark)]))


def probe_pytorch(args):
    torch = import_torch()
    if not torch.cuda.is_available():
        print("PyTorch %s sees no GPU (torch.cuda.is_available() is False; built with CUDA %s)"
              % (torch.__version__, torch.version.cuda))
        print("RESULT side=pytorch gpu=0 torch=1")
        return NO_GPU
    set_torch_math(torch, args.fp32, args.benchmark)
    print(torch_description(torch))
    print("RESULT side=pytorch gpu=1 torch=1 version=%s conv_tf32=%d matmul_tf32=%d"
          % (torch.__version__, int(bool(torch.backends.cudnn.allow_tf32)),
             int(bool(torch.backends.cuda.matmul.allow_tf32))))
    return 0


def twins(torch):
    """The PyTorch twins of libich's presets (bench/torch_twins.py), imported
    only once torch is known to be there."""
    import torch_twins

    return torch_twins.TWINS


def is_torch_oom(torch, error):
    oom = getattr(torch.cuda, "OutOfMemoryError", None)  # PyTorch >= 1.13
    return (oom is not None and isinstance(error, oom)) or "out of memory" in str(error)


def run_pytorch(args):
    torch = import_torch()
    if not torch.cuda.is_available():
        print("PyTorch sees no GPU", file=sys.stderr)
        return NO_GPU
    set_torch_math(torch, args.fp32, args.benchmark)
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = twins(torch)[args.model]().to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand((args.batch,) + PRESETS[args.model], generator=gen)  # host memory
    y = (torch.rand(args.batch, OUTPUTS, generator=gen) < 0.3).float()
    optimizer = None
    loss_fn = torch.nn.BCEWithLogitsLoss()

    # --bf16: automatic mixed precision (bfloat16 compute, FP32 weights)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.bf16)

    def infer():
        with torch.no_grad(), autocast:
            logits = model(x.to(device)).float().cpu()
        return float(logits.abs().mean())

    def train():
        optimizer.zero_grad()
        with autocast:
            loss = loss_fn(model(x.to(device)).float(), y.to(device))
        loss.backward()
        optimizer.step()
        return loss.item()

    try:
        model.eval()
        measure(args, "pytorch", "infer", infer, torch.cuda.synchronize)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        measure(args, "pytorch", "train", train, torch.cuda.synchronize)
    except RuntimeError as e:
        if not is_torch_oom(torch, e):
            raise
        return out_of_memory(args, "pytorch", e)
    return 0


# ---- timing ------------------------------------------------------------------------

def measure(args, side, mode, step, sync=lambda: None):
    steps = args.infer_steps if mode == "infer" else args.train_steps
    values = []
    for _ in range(args.warmup):
        values.append(step())
    sync()
    seconds_each = []
    t0 = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        values.append(step())
        sync()
        seconds_each.append(time.perf_counter() - t)
    seconds = time.perf_counter() - t0
    if not all(math.isfinite(v) for v in values):
        raise SystemExit("cuda_bench.py: %s %s: non-finite loss/output %s" % (side, mode, values))
    rate = args.batch * steps / seconds
    what = "loss" if mode == "train" else "mean |logit|"
    print("%s %s %s: batch %d, %d steps in %.3f s = %.1f images/s (steps: %s s); %s %.4f -> %.4f"
          % (side, args.model, mode, args.batch, steps, seconds, rate,
             " ".join("%.4f" % t for t in seconds_each), what, values[0], values[-1]))
    print("RESULT side=%s model=%s batch=%d mode=%s steps=%d seconds=%.6f images_per_s=%.4f "
          "best_images_per_s=%.4f first=%.6g last=%.6g"
          % (side, args.model, args.batch, mode, steps, seconds, rate,
             args.batch / min(seconds_each), values[0], values[-1]))
    sys.stdout.flush()


def out_of_memory(args, side, error):
    print("%s %s batch %d: out of GPU memory (%s)" % (side, args.model, args.batch,
                                                      str(error).splitlines()[0]))
    for mode in ("infer", "train"):
        print("RESULT side=%s model=%s batch=%d mode=%s oom=1" % (side, args.model, args.batch,
                                                                   mode))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["probe", "run"])
    parser.add_argument("side", choices=["libich", "pytorch"])
    parser.add_argument("--model", choices=sorted(PRESETS), default="tutorial")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--infer-steps", type=int, default=10)
    parser.add_argument("--fp32", action="store_true",
                        help="PyTorch without TF32 (libich's default math)")
    parser.add_argument("--tf32", action="store_true", help="libich with ICH_CUDA_MATH=tf32")
    parser.add_argument("--benchmark", action="store_true",
                        help="both sides time cuDNN's algorithms and keep the fastest "
                             "(ICH_CUDA_BENCHMARK=1, torch.backends.cudnn.benchmark)")
    parser.add_argument("--bf16", action="store_true",
                        help="mixed precision: libich with ICH_CUDA_MATH=bf16, PyTorch under "
                             "torch.autocast(dtype=torch.bfloat16)")
    args = parser.parse_args()
    if args.batch < 1 or args.warmup < 0 or args.train_steps < 1 or args.infer_steps < 1:
        parser.error("--batch, --train-steps and --infer-steps must be >= 1, --warmup >= 0")
    if args.command == "probe":
        return probe_libich(args) if args.side == "libich" else probe_pytorch(args)
    return run_libich(args) if args.side == "libich" else run_pytorch(args)


if __name__ == "__main__":
    sys.exit(main())
