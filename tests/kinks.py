"""Comparing the gradients of ReLU networks computed two ways (libich's
float32 against PyTorch's float64, the CUDA backend against the CPU),
without depending on which side of a kink a rounding error lands.

A ReLU (fused or alone) passes its gradient on one side of its kink and not
on the other, and a max pool passes it to one element of a tie. An
activation within a rounding error of 0 (seen in ichnet's batch norm:
+5e-7 in float64, -1e-7 with oneDNN's AVX2 kernels, +3e-8 on the emulated
GPU) lands on either side depending on the order of the sums, so its whole
gradient flips between the two computations: measured on ichnet, 4.9e-4 in
one element of conv1.weight (1e-2 of its largest), 4.7e-3 of the tensor's
norm, 8e-4 of all the gradients' norm. A bug (a wrong kernel, a stale
buffer, a missed wait) moves them by O(1).

So gradients agree element by element (max|got - want| <= rtol * scale),
or else in norm, as kink flips allow: each tensor within KINK_TENSOR of its
norm (floored at 1e-3 of the global norm, so that a bias whose gradient is
0 up to rounding does not count) and all of them within KINK_GLOBAL.
"""

import numpy as np

KINK_TENSOR = 2e-2
KINK_GLOBAL = 5e-3

# After a flip the two computations train on slightly different gradients,
# so their weights and logits part: by 2e-4 of the largest after three SGD
# steps of ichnet (measured), while each step moves the logits by 3e-2 to
# 0.6. Comparisons after the flip allow KINK_DRIFT, still far below a step.
KINK_DRIFT = 2e-3


def elementwise(got, want, rtol, floor=1.0):
    """None when max|got - want| <= rtol * max(floor, max|want|), else a
    description of the worst element."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        return "shape %s against %s" % (got.shape, want.shape)
    if want.size == 0:
        return None
    if not np.isfinite(got).all():
        return "non-finite values"
    scale = max(floor, float(np.abs(want).max()))
    diff = np.abs(got - want)
    worst = int(np.argmax(diff))
    if diff.flat[worst] <= rtol * scale:
        return None
    return "max|difference| = %.3g > %.3g (= %g * max(%g, max|reference| = %.3g)); worst at " \
        "flat index %d: %.9g against %.9g" % (diff.flat[worst], rtol * scale, rtol, floor,
                                              float(np.abs(want).max()), worst,
                                              got.flat[worst], want.flat[worst])


def _norm(a):
    return float(np.sqrt((np.asarray(a, np.float64) ** 2).sum()))


def gradient_failures(got, want, rtol, floor=1.0):
    """Compare two {name: array} gradient dicts as the module says.
    Returns (failures, exact): a list of messages (empty when they agree)
    and whether they agreed element by element."""
    if sorted(got) != sorted(want):
        return ["names differ: %s against %s" % (sorted(got), sorted(want))], False
    errors = [(k, elementwise(got[k], want[k], rtol, floor)) for k in want]
    errors = ["%s: %s" % (k, e) for k, e in errors if e]
    if not errors:
        return [], True
    if any(np.shape(got[k]) != np.shape(want[k]) or not np.isfinite(got[k]).all()
           for k in want):
        return errors, False
    total = np.sqrt(sum(_norm(w) ** 2 for w in want.values()))
    diff = np.sqrt(sum(_norm(np.asarray(got[k], np.float64) - want[k]) ** 2 for k in want))
    failures = []
    if diff > KINK_GLOBAL * total:
        failures.append("all gradients: ||difference|| = %.3g of their norm" % (diff / total))
    for k in want:
        rel = _norm(np.asarray(got[k], np.float64) - want[k]) / (_norm(want[k]) + 1e-3 * total)
        if rel > KINK_TENSOR:
            failures.append("%s: ||difference|| = %.3g of its norm" % (k, rel))
    if failures:
        failures = ["%s (more than ReLU kink flips explain; element-wise: %s)"
                    % (f, "; ".join(errors)) for f in failures]
    return failures, False
