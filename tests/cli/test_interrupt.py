"""Ctrl-C (SIGINT) on the example programs: the first one stops the
library call cleanly (ICH_ERR_CANCELLED), the program says "interrupted"
and exits 130, leaving only whole files."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

BUILD = Path(os.environ.get("ICH_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
PHANTOM = BUILD / "examples" / "ich-phantom"
TRAIN = BUILD / "examples" / "ich-train"

pytestmark = pytest.mark.skipif(not TRAIN.exists(), reason="examples not built")

SPEC = "input 3x32x32, conv 8 3 pad 1, relu, maxpool 32, flatten, linear 6"


def interrupt(args, ready, limit=60):
    """Start the program, wait until ready() (at most `limit` s), send
    SIGINT; returns (exit status, stderr, seconds from SIGINT to exit)."""
    child = subprocess.Popen([str(a) for a in args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + limit
        while not ready():
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < end, "never got ready"
            time.sleep(0.05)
        assert child.poll() is None, "ended by itself"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=10)
        return child.returncode, err, time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_ctrl_c_stops_ich_phantom(tmp_path):
    out = tmp_path / "phantom"
    start = time.monotonic()
    code, err, took = interrupt([PHANTOM, out, "--patients", 100000, "--size", 64, "--quiet"],
                                lambda: time.monotonic() - start > 1.0)
    assert code == 130, err
    assert "interrupted" in err and "cancelled" in err
    assert took < 2.0
    assert not (out / "labels.csv").exists()  # the CSVs come last, for a whole dataset


def test_ctrl_c_stops_ich_train_and_keeps_the_checkpoints(tmp_path):
    data = tmp_path / "data"
    made = subprocess.run([str(PHANTOM), str(data), "--patients", "3", "--slices", "8",
                           "--size", "32", "--seed", "2", "--prevalence", "1", "--quiet"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "run"
    last = out / "last.safetensors"
    code, err, took = interrupt(
        [TRAIN, data / "labels.csv", data / "images", "--model", SPEC, "--batch-size", 8,
         "--threads", 1, "--epochs", 100000, "--out", out],
        last.exists)  # after the first epoch
    assert code == 130, err
    assert "interrupted" in err
    assert took < 2.0
    assert last.stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file
