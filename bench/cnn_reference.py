#!/usr/bin/env python3
"""The tutorial's ConvNet (or a torchvision network) in PyTorch, for
bench/run_cnn.sh: the same work as bench/bench_cnn.c does with libich,
written the usual PyTorch way.

    cnn_reference.py train|infer [--model tutorial] [--threads 2] [--batch 16]
                     [--warmup 1] [--steps 2]
    cnn_reference.py flops [--model tutorial]

--model: tutorial (1 x 512 x 512 input, libich's "tutorial" preset),
       ichnet (3 x 256 x 256, libich's "ichnet" preset, torch_twins.IchNet) or
       efficientnet_v2_s, convnext_tiny (torchvision 0.14's models with
       num_classes=6, 3 x 256 x 256 input: libich's presets of those names).
train: the usual loop (zero_grad, forward, BCEWithLogitsLoss, backward,
       Adam step) on one fixed random batch of images (uniform [0, 1)), 6
       random 0/1 targets per image. --warmup steps are not timed, then
       --steps are.
infer: eval mode under torch.no_grad(), forward passes of the same batch.
flops: the forward FLOPs per image (2 x multiply-adds of each convolution
       and linear layer), counted from the layers' actual output shapes.

torch.set_num_threads(--threads) sets the threads. Peak memory is
VmHWM from /proc/self/status: the raw figure and the figure minus the
process's baseline after importing torch (before the model and the data
exist). Run one measurement per process, as the script does, so that one
does not inherit the other's peak. Prints a readable line and a line
    RESULT side=pytorch mode=train batch=B threads=T steps=S seconds=...
           images_per_s=... best_images_per_s=... maxrss_kib=... base_kib=...
           loss_first=... loss_last=... cpu_seconds=...
(cpu_seconds: the process's CPU time over the timed steps, all threads;
best_images_per_s: the fastest single step, the figure least disturbed by
other work on a shared machine.)
"""

import argparse
import math
import sys
import time

import torch
import torch.nn as nn

from torch_twins import IchNet, Tutorial


# The tutorial's network (libich's "tutorial" preset, same state_dict
# names): four conv + ReLU + 2x2 max pool stages, then two linear layers.
ConvNet = Tutorial

MODELS = ("tutorial", "ichnet", "efficientnet_v2_s", "convnext_tiny")


def make_model(name):
    """The network and its input shape (C, H, W)."""
    if name == "tutorial":
        return ConvNet(), (1, 512, 512)
    if name == "ichnet":
        return IchNet(), (3, 256, 256)
    import torchvision
    return getattr(torchvision.models, name)(num_classes=6), (3, 256, 256)


def maxrss_kib():
    """Peak resident memory of this process image in KiB (VmHWM; not
    ru_maxrss, which Linux carries over exec from the parent)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def batch(n, shape):
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(n, *shape, generator=gen)
    targets = (torch.rand(n, 6, generator=gen) < 0.3).float()
    return images, targets


def count_flops(name):
    """Forward FLOPs per image, per layer, from the real output shapes
    (2 x multiply-adds of each convolution, grouped ones included, and
    linear layer; a linear layer on each position counts every position)."""
    model, shape = make_model(name)
    model.eval()
    layers = []

    def hook(name):
        def record(module, inputs, output):
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                macs = output[0].numel() * (module.in_channels // module.groups) * kh * kw
            else:
                macs = output[0].numel() * module.in_features
            layers.append((name, tuple(output.shape[1:]), macs))
        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(hook(name))
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    return layers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["train", "infer", "flops"])
    parser.add_argument("--model", choices=MODELS, default="tutorial")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    if args.threads < 1 or args.batch < 1 or args.warmup < 0 or args.steps < 1:
        parser.error("--threads, --batch and --steps must be >= 1, --warmup >= 0")

    if args.mode == "flops":
        layers = count_flops(args.model)
        for name, shape, macs in layers if args.model == "tutorial" else []:
            print(f"{name:6s} out {'x'.join(map(str, shape)):12s} {2 * macs / 1e9:8.3f} GFLOP")
        total = sum(2 * macs for _, _, macs in layers)
        print(f"RESULT side=pytorch mode=flops forward_flops={total}")
        return 0

    torch.set_num_threads(args.threads)
    base = maxrss_kib()
    torch.manual_seed(0)
    model, shape = make_model(args.model)
    images, targets = batch(args.batch, shape)
    losses = []

    if args.mode == "train":
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.BCEWithLogitsLoss()

        def step():
            optimizer.zero_grad()
            loss = loss_fn(model(images), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    else:
        model.eval()

        def step():
            with torch.no_grad():
                logits = model(images)
            losses.append(float(logits.abs().mean()))  # uses the output

    for _ in range(args.warmup):
        step()
    step_seconds = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        step_seconds.append(time.perf_counter() - t)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - cpu0
    peak = maxrss_kib()
    if not all(math.isfinite(v) for v in losses):
        print(f"cnn_reference.py: non-finite loss/output {losses}", file=sys.stderr)
        return 1
    rate = args.batch * args.steps / seconds
    what = "loss" if args.mode == "train" else "mean |logit|"
    print(f"pytorch {args.model} {args.mode}: batch {args.batch}, {args.threads} threads, {args.steps} steps "
          f"in {seconds:.2f} s = {rate:.3f} images/s (steps: "
          f"{' '.join(f'{t:.2f}' for t in step_seconds)} s); peak memory {(peak - base) / 1024:.0f} MiB "
          f"above baseline {base / 1024:.0f} MiB; {what} {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(f"RESULT side=pytorch model={args.model} mode={args.mode} batch={args.batch} threads={args.threads} "
          f"steps={args.steps} seconds={seconds:.4f} images_per_s={rate:.4f} "
          f"best_images_per_s={args.batch / min(step_seconds):.4f} "
          f"maxrss_kib={peak} base_kib={base} loss_first={losses[0]:.6g} "
          f"loss_last={losses[-1]:.6g} cpu_seconds={cpu_seconds:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
