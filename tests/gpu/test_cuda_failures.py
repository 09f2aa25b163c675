"""The CUDA plugin's failure paths, run on the CPU emulation of CUDA
(tests/cuda_emu), whose knobs make them happen: a device too small for
the model (ICH_EMU_DEVICE_MB), no device at all (ICH_EMU_NO_DEVICE), and a
bad ICH_CUDA_MATH. Each must give an ich error that says what is wrong,
never a crash, and leave the process able to go on. Skipped on a real GPU
(the knobs are the emulator's)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import ich

try:
    CUDA_INFO = ich.backend_info("cuda")
except ich.IchError as e:
    CUDA_INFO = "not available: %s" % e

pytestmark = pytest.mark.skipif("emulator" not in CUDA_INFO,
                                reason="needs the CPU emulation of CUDA (%s)" % CUDA_INFO)

BINDINGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "bindings", "python")


@pytest.fixture(autouse=True)
def restore():
    yield
    os.environ.pop("ICH_EMU_DEVICE_MB", None)
    ich.use_backend(None)


def test_out_of_device_memory_is_an_error_and_the_process_goes_on():
    ich.use_backend("cuda")
    model = ich.Model.preset("ichnet")
    model.init_weights(0)
    x = np.random.default_rng(0).random((16,) + model.input_shape, dtype=np.float32)
    model.train()
    os.environ["ICH_EMU_DEVICE_MB"] = "8"  # the emulator reads it at each cudaMalloc
    with pytest.raises(ich.NoMemoryError) as caught:
        model.forward(x)
    assert "memory" in str(caught.value)
    del os.environ["ICH_EMU_DEVICE_MB"]
    # the same model works once the memory is there (nothing half-done kept)
    logits = model.forward(x[:2])
    model.backward(np.ones_like(logits))
    assert np.isfinite(logits).all()
    assert all(np.isfinite(g).all() for g in model.grads().values())


def run_python(code, **env):
    full = dict(os.environ, PYTHONPATH=BINDINGS, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=120)


def test_no_device_says_so_and_auto_falls_back_to_the_cpu():
    code = """
import ich
try:
    ich.backend_info("cuda")
    print("started")
except ich.UnsupportedError as e:
    print("refused:", e)
print("auto:", ich.backend())
"""
    out = run_python(code, ICH_EMU_NO_DEVICE="1", ICH_BACKEND="auto")
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "no usable GPU" in out.stdout, out.stdout
    assert "auto: cpu" in out.stdout
    asked = run_python("import ich; ich.Model('input 1x4x4, flatten, linear 2')",
                       ICH_EMU_NO_DEVICE="1", ICH_BACKEND="cuda")
    assert asked.returncode == 1 and "no usable GPU" in asked.stderr, asked.stderr


def test_a_bad_math_setting_is_refused_by_name():
    out = run_python("import ich; ich.backend_info('cuda')", ICH_CUDA_MATH="fp8")
    assert out.returncode == 1
    assert "ICH_CUDA_MATH=fp8 is not one of fp32, tf32, bf16" in out.stderr, out.stderr
