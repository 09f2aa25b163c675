"""The CPU backend's mixed precision (ICH_CPU_MATH=bf16) against its FP32:
convolutions on bfloat16 copies of their inputs and weights with FP32 sums
and FP32 results; the parameters, their gradients and every other layer
stay FP32. The same checks as tests/gpu/test_cuda_bf16.py makes of
ICH_CUDA_MATH=bf16.

Tolerance: a bfloat16 value carries 8 significant bits (relative rounding
up to 2^-9); a small network's logits and gradients, by the norm of the
difference (||bf16 - fp32|| / ||fp32||), stay within NORM_TOLERANCE (3e-2,
the GPU test's; measured here: 1.5e-3 to 4e-3). On a CPU without
AVX512-BF16 or AMX (or with ONEDNN_MAX_CPU_ISA=AVX2, which this file uses
to check it) the setting warns and runs FP32: the same numbers as FP32."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
NORM_TOLERANCE = 3e-2

# One training step of a small network (5x5 and 3x3 convolutions, ReLU,
# a residual block, batch 4) on layer_sweep's data; prints its logits and
# gradients as JSON and oneDNN's convolution kernels.
STEP = """
import json, sys
sys.path.insert(0, %r)
import layer_sweep as L
L.ich.set_log_callback(lambda level, message: print(message, file=sys.stderr), L.ich.LOG_WARNING)
case = ("bf16", [L.Conv(16, 5, 1, 1), L.Residual([L.Conv(16, 3, 1, 1), L.Conv(16, 3, 1, 1)]),
                 L.Conv(24, 3, 2, 1)], (16, 12, 12), 4, 2)
r = L.run_libich(0, case)
print("RESULT " + json.dumps({"logits": r["logits"].tolist(),
                              "grads": {k: v.tolist() for k, v in r["grads"].items()}}))
""" % HERE


def step(**env):
    run = subprocess.run([sys.executable, "-c", STEP], capture_output=True, text=True,
                         env=dict(os.environ, ONEDNN_VERBOSE="1", **env))
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    kernels = [line for line in run.stdout.splitlines()
               if line.startswith("onednn_verbose,exec,cpu,convolution,")]
    values = [np.asarray(result["logits"])] + [np.asarray(result["grads"][k])
                                               for k in sorted(result["grads"])]
    return values, kernels, run.stderr


def has_bf16_cpu():
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() not in ("", "ALL", "AVX512_CORE_BF16",
                                                               "AVX512_CORE_AMX"):
        return False
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def relative(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.skipif(not has_bf16_cpu(), reason="needs AVX512-BF16 or AMX (unrestricted)")
def test_bf16_matches_fp32_within_bfloat16_rounding():
    fp32, kernels32, _ = step(ICH_CPU_MATH="fp32")
    bf16, kernels16, _ = step(ICH_CPU_MATH="bf16")
    assert not any("src_bf16" in k for k in kernels32)
    # every convolution pass really ran a bfloat16 kernel
    assert kernels16 and all("bf16" in k.split(",")[4] for k in kernels16), kernels16
    props = {k.split(",")[5] for k in kernels16}
    assert props == {"forward_training", "backward_data", "backward_weights"}, props
    errors = [relative(a, b) for a, b in zip(bf16, fp32)]
    assert all(a.shape == b.shape for a, b in zip(bf16, fp32))
    assert max(errors) < NORM_TOLERANCE, errors
    # bfloat16 rounding shows in the logits (the math changed); the last
    # layer's bias gradient alone is the same (no convolution behind it)
    assert errors[0] > 1e-5, errors


def test_bf16_without_the_instructions_warns_and_runs_fp32():
    limit = dict(ONEDNN_MAX_CPU_ISA="AVX2", ICH_CPU_LAYOUT="nhwc")
    fp32, _, _ = step(ICH_CPU_MATH="fp32", **limit)
    bf16, kernels, stderr = step(ICH_CPU_MATH="bf16", **limit)
    assert not any("bf16" in k for k in kernels), kernels
    assert stderr.count("ICH_CPU_MATH=bf16: this CPU") == 1, stderr  # once, not per layer
    for a, b in zip(bf16, fp32):
        np.testing.assert_array_equal(a, b)


def test_bad_math_setting_is_an_error():
    code = ("import sys; sys.path.insert(0, %r); import layer_sweep as L; "
            "L.ich.Model('input 3x8x8, conv 4 3, flatten, linear 2')" % HERE)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, ICH_CPU_MATH="fp8"))
    assert run.returncode != 0
    assert "ICH_CPU_MATH=fp8 is not one of fp32, bf16" in run.stderr, run.stderr
