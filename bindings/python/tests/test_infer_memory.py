"""Evaluation in slices of the batch through the bindings (ICH_INFER_MEMORY,
<ich/backend.h>): the same logits and probabilities as the whole batch,
a lower peak resident memory, training untouched, bad values refused. The
variable is read by every evaluation forward, so setting it in os.environ
(putenv) acts on the next call."""

import os
import subprocess
import sys

import numpy as np
import pytest

import ich

BINDINGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The first convolution's and batch norm's outputs are 1 MiB per image each
# and live at once: a budget of 5 MiB allows 2 images per pass.
SPEC = ("input 1x128x128, conv 16 3 pad 1, batchnorm, relu, maxpool 2, "
        "residual(conv 16 3 pad 1 nobias, batchnorm, relu, conv 16 3 pad 1), relu, "
        "conv 8 3 stride 2, batchnorm, relu, gap, dropout 0.5, linear 5")


def make_model(seed=0):
    model = ich.Model(SPEC)
    model.init_weights(seed)
    rng = np.random.default_rng(seed + 1)
    state = model.state_dict()
    for key in state:
        if key.endswith(".running_mean"):
            state[key] = (0.3 * rng.standard_normal(state[key].shape)).astype(np.float32)
        elif key.endswith(".running_var"):
            state[key] = (0.5 + rng.random(state[key].shape)).astype(np.float32)
    model.load_state_dict(state)
    return model


def images(n, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 1, 128, 128)).astype(np.float32)


def test_slices_give_the_whole_batch(monkeypatch):
    x = images(7)  # passes of 2: 0-1, 2-3, 4-5 and 5-6
    model = make_model().eval()
    monkeypatch.setenv("ICH_INFER_MEMORY", "0")
    whole, whole_p = model.forward(x), model.predict(x)
    monkeypatch.setenv("ICH_INFER_MEMORY", "5")
    sliced, sliced_p = model.forward(x), model.predict(x)
    assert np.all(np.isfinite(whole))
    np.testing.assert_array_equal(sliced, whole)
    np.testing.assert_array_equal(sliced_p, whole_p)
    # each image alone gives its row (no slice mixes images)
    np.testing.assert_array_equal(model.forward(x[6:7]), whole[6:7])


def test_training_is_not_sliced(monkeypatch):
    x, grad = images(7, seed=2), np.random.default_rng(3).standard_normal((7, 5)).astype(np.float32)
    runs = []
    for budget in ("0", "1"):
        monkeypatch.setenv("ICH_INFER_MEMORY", budget)
        model = make_model().train()
        logits = model.forward(x)  # batch statistics of all 7 images, dropout
        model.backward(grad)
        runs.append((logits, model.grads()))
    np.testing.assert_array_equal(runs[1][0], runs[0][0])
    for name, value in runs[0][1].items():
        np.testing.assert_array_equal(runs[1][1][name], value, err_msg=name)


@pytest.mark.parametrize("value", ["-1", "8x", "lots"])
def test_bad_budget_is_refused(monkeypatch, value):
    model = make_model().eval()
    monkeypatch.setenv("ICH_INFER_MEMORY", value)
    with pytest.raises(ich.InvalidArgumentError, match="ICH_INFER_MEMORY"):
        model.forward(images(1))


_PEAK = """
import sys
sys.path.insert(0, {bindings!r})
import numpy as np
import ich

def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

x = np.random.default_rng(1).standard_normal((48, 1, 128, 128)).astype(np.float32)
model = ich.Model({spec!r}).eval()
model.forward(x[:1])  # the library's own start-up (oneDNN, threads) before the baseline
base = hwm()
model.forward(x)
print(hwm() - base)
"""


def peak_kib(budget):
    """VmHWM growth of a fresh process over an evaluation forward of 48
    images (whole: 96 MiB of activations at once); budget None: unset."""
    env = dict(os.environ, ICH_INFER_MEMORY=budget)
    if budget is None:
        del env["ICH_INFER_MEMORY"]
    # Under AddressSanitizer (the test command's sanitizer pass) freed
    # memory waits in a quarantine instead of being reused: without it the
    # sliced passes' reuse shows as it does in a normal build.
    if "ASAN_OPTIONS" in env or "libasan" in env.get("LD_PRELOAD", ""):
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                      "quarantine_size_mb=0"]))
    out = subprocess.run([sys.executable, "-c", _PEAK.format(bindings=BINDINGS, spec=SPEC)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_slices_lower_the_peak_memory():
    whole, sliced = peak_kib("0"), peak_kib("8")  # 8 MiB: passes of 4 images
    print("peak growth: whole batch %d KiB, slices of 4 %d KiB" % (whole, sliced))
    assert whole > 80 * 1024
    assert sliced + 60 * 1024 < whole


def test_default_slices_small_images_too():
    """Unset, the CPU runs passes of at most 8 MiB of activations, of 4
    images at least: SPEC's 2 MiB per image as 12 passes of 4, the peak of
    the explicit 8 MiB budget, far below the whole batch's."""
    whole, default = peak_kib("0"), peak_kib(None)
    print("peak growth: whole batch %d KiB, default %d KiB" % (whole, default))
    assert default + 60 * 1024 < whole


def test_default_slices_give_the_whole_batch(monkeypatch):
    x = images(16, seed=4)
    model = make_model().eval()
    monkeypatch.setenv("ICH_INFER_MEMORY", "0")
    whole = model.forward(x)
    monkeypatch.delenv("ICH_INFER_MEMORY")
    np.testing.assert_allclose(model.forward(x), whole, rtol=0, atol=1e-6 * np.abs(whole).max())
