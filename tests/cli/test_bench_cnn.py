"""Smoke tests of the CNN benchmark's programs (bench/bench_cnn.c and
bench/peak_flops.c; bench/run_cnn.sh runs them with PyTorch beside), so that
they keep compiling and running as libich changes. Only the libich side, at
batch 1 and one step: a few seconds. The figures themselves are not checked
(the machine may be busy), only that they are there and make sense.
"""
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
LIB = BUILD / "libich" / "libich.so"
CC = os.environ.get("CC", "cc")

pytestmark = [
    pytest.mark.skipif(not LIB.exists(), reason="libich not built"),
    pytest.mark.skipif(shutil.which(CC) is None, reason=f"no C compiler '{CC}'"),
]


def compile_c(source, output, *flags):
    """Compiled as bench/run_cnn.sh compiles it."""
    cmd = [CC, "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Werror", "-pthread",
           f"-I{ROOT / 'include'}", str(ROOT / "bench" / source), *flags, "-o", str(output)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stderr}"
    return output


@pytest.fixture(scope="module")
def bench_cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_cnn")
    return compile_c("bench_cnn.c", folder / "bench_cnn", f"-L{LIB.parent}",
                     f"-Wl,-rpath,{LIB.parent}", "-lich", "-lm")


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


def result_fields(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, stdout
    return dict(item.split("=", 1) for item in lines[0].split()[1:])


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_one_step_at_batch_1(bench_cnn, mode):
    result = run(bench_cnn, mode, "--batch", 1, "--warmup", 0, "--steps", 1, "--threads", 2)
    assert result.returncode == 0, result.stderr
    r = result_fields(result.stdout)
    assert (r["side"], r["mode"], r["batch"], r["threads"], r["steps"]) == (
        "libich", mode, "1", "2", "1")
    assert float(r["images_per_s"]) > 0
    assert abs(float(r["images_per_s"]) * float(r["seconds"]) - 1) < 0.01
    assert float(r["best_images_per_s"]) == pytest.approx(float(r["images_per_s"]), rel=0.01)
    # The baseline is taken before the model exists: the peak lies above it
    # by at least the batch's first activation (50 x 508 x 508 floats).
    assert int(r["maxrss_kib"]) - int(r["base_kib"]) > 50 * 508 * 508 * 4 // 1024
    value = float(r["loss_first"])
    assert math.isfinite(value) and value == float(r["loss_last"])
    if mode == "train":
        # A freshly initialised network gives small logits: BCE near ln 2.
        assert abs(value - math.log(2)) < 0.25


@pytest.mark.parametrize("preset", ["ichnet", "efficientnet_v2_s", "convnext_tiny"])
def test_torchvision_presets_run(bench_cnn, preset):
    """run_cnn.sh --model runs bench_cnn --preset on these: one inference
    step at batch 1, and the fields the script reads are there."""
    result = run(bench_cnn, "infer", "--preset", preset, "--batch", 1, "--warmup", 0,
                 "--steps", 1, "--threads", 2)
    assert result.returncode == 0, result.stderr
    r = result_fields(result.stdout)
    assert (r["model"], r["mode"], r["batch"]) == (preset, "infer", "1")
    assert float(r["cpu_seconds"]) > 0
    assert int(r["page_faults_per_step"]) >= 0
    assert math.isfinite(float(r["loss_last"]))


def profile_rows(stdout):
    """ICH_PROFILE's table: {(layer, pass): (ms, GFLOP/s or None, %peak or None, reorders)}."""
    rows = {}
    for line in stdout.splitlines():
        f = line.split(None, 7)
        if len(f) < 7 or f[2] not in ("forward", "backward", "-"):
            continue
        if f[2] == "-":  # "- data", "- weights"
            f = line.split(None, 8)
            f[2:4] = [f[2] + " " + f[3]]
        rate = None if f[4] == "-" else float(f[4])
        pct = None if f[5] == "-" else float(f[5].rstrip("%"))
        rows[(f[0], f[2])] = (float(f[3]), rate, pct, f[7] if len(f) > 7 else "")
    return rows


def test_profile_splits_backward_and_counts_reorders(bench_cnn):
    """ICH_PROFILE=1: a convolution's backward row is followed by its input
    gradient (none for the first layer) and weight gradient parts, which lie
    inside it; the rates are the layer's FLOPs over the time and the %peak
    is of ICH_PROFILE_PEAK."""
    env = dict(os.environ, ICH_PROFILE="1", ICH_PROFILE_PEAK="100")
    result = subprocess.run([str(bench_cnn), "train", "--preset", "ichnet", "--batch", "2",
                             "--warmup", "1", "--steps", "2", "--threads", "2"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    rows = profile_rows(result.stdout)
    assert ("conv1", "- weights") in rows and ("conv1", "- data") not in rows, rows
    for layer in ("res1.conv1", "res2.conv2", "res3.shortcut.conv1"):
        fwd, bwd = rows[(layer, "forward")], rows[(layer, "backward")]
        data, weights = rows[(layer, "- data")], rows[(layer, "- weights")]
        assert data[0] + weights[0] <= bwd[0] + 0.02  # the parts lie inside the call
        # ms x GFLOP/s = MFLOP, up to the rounding of the printed figures
        # (0.005 ms, 0.05 GFLOP/s)
        def mflop(row):
            return row[0] * row[1], 0.005 * row[1] + 0.05 * row[0]

        flops, err = mflop(fwd)
        for part, times in ((data, 1), (weights, 1), (bwd, 2)):
            got, got_err = mflop(part)
            assert abs(got - times * flops) <= got_err + times * err, (layer, part, fwd)
        for row in (fwd, bwd, data, weights):
            assert row[2] == pytest.approx(row[1], rel=0.02, abs=1)  # % of 100 GFLOP/s
    # Adam changes the weights every step: oneDNN's blocked weight layouts
    # need a weight reorder in each training forward and backward.
    assert any("weight" in row[3] for key, row in rows.items() if key[1] == "forward"), rows
    assert ("bn1", "- data") not in rows  # batch norm's backward is one primitive
    assert "profile total:" in result.stdout and "of the FMA peak" in result.stdout


def test_flop_count_is_the_tutorial_network(bench_cnn):
    result = run(bench_cnn, "flops")
    assert result.returncode == 0, result.stderr
    # Independently: conv k (stride 1, no padding) then 2x2 max pool.
    size, channels, macs = 512, 1, 0
    for out, k in [(50, 5), (120, 5), (100, 5), (72, 4)]:
        conv = size - k + 1
        macs += out * conv * conv * channels * k * k
        size, channels = conv // 2, out
    assert (channels, size) == (72, 28)
    macs += 72 * 28 * 28 * 50 + 50 * 6
    assert int(result_fields(result.stdout)["forward_flops"]) == 2 * macs


@pytest.mark.parametrize("args", [[], ["fit"], ["train", "--batch", "0"],
                                  ["infer", "--steps"], ["train", "--bogus", "1"]])
def test_bad_usage_exits_2(bench_cnn, args):
    result = run(bench_cnn, *args)
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_unknown_preset_is_an_error(bench_cnn):
    result = run(bench_cnn, "infer", "--preset", "no-such-net", "--batch", 1)
    assert result.returncode == 1
    assert "no-such-net" in result.stderr


def test_peak_flops_runs(tmp_path):
    program = compile_c("peak_flops.c", tmp_path / "peak_flops")
    result = run(program, "--threads", 2, "--seconds", 0.02)
    assert result.returncode == 0, result.stderr
    r = result_fields(result.stdout)
    assert r["isa"] in ("avx512f", "avx2")
    one, two = float(r["peak1_gflops"]), float(r["peakn_gflops"])
    assert one > 1 and two > 1  # any x86-64 core with AVX2 does far more
    assert run(program, "--threads", 0).returncode == 2
