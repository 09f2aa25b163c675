"""Smoke tests of the GPU benchmark (bench/run_cuda.sh, bench/cuda_bench.py)
on a machine without a GPU: the script says there is nothing to measure and
exits 0, and the libich side runs its loop on the stand-in device plugin
(tests/plugins/fake_plugin.c: CPU layers behind device memory), so the
script keeps working as libich changes. Figures are not checked.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
LIB = BUILD / "libich" / "libich.so.0"
STAND_IN = BUILD / "tests" / "plugins" / "device" / "libich-cuda.so"

pytestmark = pytest.mark.skipif(not LIB.exists(), reason="libich not built")


def test_run_cuda_without_a_gpu_exits_cleanly():
    env = dict(os.environ, ICH_BUILD_DIR=str(BUILD), BENCH_BATCHES="2", BENCH_MODELS="ichnet")
    done = subprocess.run(["bash", str(ROOT / "bench" / "run_cuda.sh"), "--quick"], env=env,
                          capture_output=True, text=True, timeout=600)
    if "no GPU here" not in done.stdout + done.stderr:
        pytest.skip("a GPU is present: the benchmark ran for real")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "libich:" in done.stdout and "PyTorch" in done.stdout


def test_libich_side_on_the_stand_in_device(tmp_path):
    if not STAND_IN.exists():
        pytest.skip("stand-in plugins not built")
    shutil.copy(LIB, tmp_path / LIB.name)
    shutil.copy(STAND_IN, tmp_path / "libich-cuda.so")
    env = dict(os.environ, ICH_LIBRARY=str(tmp_path / LIB.name))
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "cuda_bench.py"), "run", "libich",
                           "--model", "ichnet", "--batch", "2", "--warmup", "1",
                           "--train-steps", "2", "--infer-steps", "1"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    results = re.findall(r"^RESULT side=libich model=ichnet batch=2 mode=(\w+) .*"
                         r"images_per_s=([0-9.]+)", done.stdout, re.M)
    assert sorted(mode for mode, _ in results) == ["infer", "train"], done.stdout
    assert all(float(rate) > 0 for _, rate in results)
