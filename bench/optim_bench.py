"""One optimizer step over the parameters of a preset, libich beside
PyTorch on the CPU (torch.optim with its defaults), the same threads.

    ICH_LIBRARY=build/libich/libich.so.0 PYTHONPATH=bindings/python \\
        /usr/bin/python3 bench/optim_bench.py [--threads N] [--steps N]

The parameters' master copies live on the host on every libich backend,
so on a GPU too this is host time in each training step. Prints the best
of 5 runs of --steps steps, per preset and optimizer, and the ratio."""

import argparse
import time

import numpy as np
import torch

import ich

KINDS = [("adam", {}, torch.optim.Adam, {}),
         ("sgd", {"momentum": 0.9}, torch.optim.SGD, {"momentum": 0.9})]


def best_ms(step, steps):
    step()  # the first step allocates the moments
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="0: one per CPU")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    ich.set_threads(args.threads)
    if args.threads:
        torch.set_num_threads(args.threads)
    ich.use_backend("cpu")
    print("threads: libich %s, PyTorch %d (torch %s)" % (args.threads or "all",
                                                           torch.get_num_threads(),
                                                           torch.__version__))
    print("%-9s %-5s %10s %12s %12s %8s" % ("preset", "kind", "params", "libich ms",
                                            "PyTorch ms", "ratio"))
    for preset in ("tutorial", "ichnet"):
        model = ich.Model.preset(preset)
        state = model.state_dict()
        trainable = [name for name in model.grads()]
        tensors = [torch.nn.Parameter(torch.from_numpy(state[n].copy())) for n in trainable]
        rng = np.random.default_rng(0)
        for t in tensors:
            t.grad = torch.from_numpy(rng.standard_normal(t.shape).astype(np.float32))
        count = sum(t.numel() for t in tensors)
        for kind, options, torch_kind, torch_options in KINDS:
            opt = ich.Optimizer(model, kind, lr=1e-3, **options)
            mine = best_ms(opt.step, args.steps)
            topt = torch_kind(tensors, lr=1e-3, **torch_options)
            theirs = best_ms(topt.step, args.steps)
            print("%-9s %-5s %10d %12.2f %12.2f %7.2fx" % (preset, kind, count, mine, theirs,
                                                          theirs / mine))
    print("(ratio above 1: libich is faster)")


if __name__ == "__main__":
    main()
