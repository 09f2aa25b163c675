"""Data-parallel training under mpirun (issue 17): ich-train on 2 ranks of
1 thread each against one process with the same global batch and seed, a
resumed run on another number of ranks, and a rank killed mid-run.

The network has no batch norm and no dropout, so the statement "the same
weights as one process" holds exactly in arithmetic (each rank's gradient of
the mean over its share, scaled by share / batch and summed, is the global
batch's mean gradient); floating-point sums in another order leave
differences of a few units in the last place, hence 1e-5 relative. The
batch size (7, over 24 images) makes the shares uneven (4 + 3) and the last
batch short (3: 2 + 1). Skipped with a message when mpirun or the MPI
plugin is missing (CI installs openmpi-bin and libopenmpi-dev:
scripts/deps.sh)."""
import csv
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

BUILD = Path(os.environ.get("ICH_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
PHANTOM = BUILD / "examples" / "ich-phantom"
TRAIN = BUILD / "examples" / "ich-train"
PLUGIN = BUILD / "libich" / "libich-mpi.so"
MPIRUN = shutil.which("mpirun")

pytestmark = [
    pytest.mark.skipif(not TRAIN.exists(), reason="examples not built"),
    pytest.mark.skipif(not MPIRUN, reason="mpirun not installed (Debian: openmpi-bin)"),
    pytest.mark.skipif(not PLUGIN.exists(),
                       reason="libich-mpi.so not built (Debian: libopenmpi-dev)"),
]

SPEC = ("input 3x32x32, conv 8 3 pad 1, relu, maxpool 2, conv 16 3 pad 1, relu, "
        "maxpool 16, flatten, linear 12, relu, linear 6")
LAUNCHER = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMIX_RANK",
            "SLURM_STEP_NUM_TASKS", "ICH_DIST", "ICH_DIST_TIMEOUT")


def env():
    e = {k: v for k, v in os.environ.items() if k not in LAUNCHER}
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return e


def mpirun(ranks):
    return [MPIRUN, "-np", str(ranks), "--oversubscribe", "--bind-to", "none"]


def run(command, timeout=300, extra_env=None):
    e = env()
    e.update(extra_env or {})
    return subprocess.run([str(a) for a in command], capture_output=True, text=True, env=e,
                          timeout=timeout)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    result = run([PHANTOM, folder, "--patients", 3, "--slices", 8, "--size", 32, "--seed", 2,
                  "--prevalence", 1, "--threads", 2, "--quiet"])
    assert result.returncode == 0, result.stderr
    return folder


def train_args(phantom, out, *extra):
    return [TRAIN, phantom / "labels.csv", phantom / "images", "--val", phantom / "labels.csv",
            "--model", SPEC, "--batch-size", 7, "--threads", 1, "--workers", 1, "--seed", 5,
            "--patience", 0, "--out", out, *extra]


def tensors(path):
    """name -> numpy array of a safetensors file."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = {"F32": np.float32, "I64": np.int64}[info["dtype"]]
        out[name] = np.frombuffer(data[8 + length + begin:8 + length + end], dtype=dtype)
    return out


def history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_weights(dist, single):
    a, b = tensors(dist), tensors(single)
    assert a.keys() == b.keys()
    for name in b:
        scale = max(float(np.abs(b[name]).max()), 1e-30)
        worst = float(np.abs(a[name].astype(np.float64) - b[name]).max())
        assert worst <= 1e-5 * scale, "%s: differs by %g (max |w| %g)" % (name, worst, scale)


def assert_same_history(dist, single):
    rows, expected = history(dist), history(single)
    assert len(rows) == len(expected)
    for r, e in zip(rows, expected):
        for column in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"):
            assert float(r[column]) == pytest.approx(float(e[column]), rel=1e-5, abs=1e-7), column


@pytest.mark.parametrize("optimizer", [["--optimizer", "adam", "--lr", "0.003"],
                                       ["--optimizer", "sgd", "--lr", "0.05"]])
def test_two_ranks_train_the_weights_of_one_process(phantom, tmp_path, optimizer):
    single = run(train_args(phantom, tmp_path / "single", "--epochs", 3, *optimizer))
    assert single.returncode == 0, single.stderr
    dist = run(mpirun(2) + train_args(phantom, tmp_path / "dist", "--epochs", 3, *optimizer))
    assert dist.returncode == 0, dist.stdout + dist.stderr
    assert_same_weights(tmp_path / "dist" / "last.safetensors",
                        tmp_path / "single" / "last.safetensors")
    # not trivially equal: the runs learned (the loss fell)
    rows = history(tmp_path / "single" / "history.csv")
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]) - 1e-3
    # the losses and accuracies are over the union of the ranks' shares
    assert_same_history(tmp_path / "dist" / "history.csv", tmp_path / "single" / "history.csv")
    # rank 0 alone prints: one summary line per epoch
    assert [l.split()[1] for l in dist.stdout.splitlines() if l.startswith("epoch ")] == \
        ["1/3", "2/3", "3/3"]


EMULATED_CUDA = BUILD / "tests" / "cuda_emu" / "libich-cuda.so"


@pytest.mark.skipif(not EMULATED_CUDA.exists(), reason="the CUDA emulation is not built")
@pytest.mark.parametrize("nccl", [True, False])
def test_two_emulated_gpu_ranks_train_the_weights_of_one(phantom, tmp_path, nccl):
    """On the CUDA backend the step's gradients go through the plugin's
    collective (emulated NCCL: tests/cuda_emu/emu_nccl.cpp), or through the
    host with a warning when the ranks have no NCCL (ICH_EMU_NO_NCCL=1);
    either way the weights equal one emulated GPU's."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for f in (BUILD / "libich" / "libich.so.0", BUILD / "libich" / "libich-mpi.so",
              EMULATED_CUDA):
        shutil.copy(f, lib)
    gpu = ["--backend", "cuda", "--optimizer", "adam", "--lr", "0.003", "--epochs", 2]
    extra_env = {"LD_LIBRARY_PATH": str(lib), "ICH_EMU_NO_NCCL": "0" if nccl else "1"}
    single = run(train_args(phantom, tmp_path / "single", *gpu), extra_env=extra_env)
    assert single.returncode == 0, single.stderr
    dist = run(mpirun(2) + ["-x", "LD_LIBRARY_PATH", "-x", "ICH_EMU_NO_NCCL"] +
               train_args(phantom, tmp_path / "dist", *gpu), extra_env=extra_env)
    assert dist.returncode == 0, dist.stdout + dist.stderr
    through_host = "gradients are summed through the host" in dist.stderr
    assert through_host != nccl, dist.stderr
    assert_same_weights(tmp_path / "dist" / "last.safetensors",
                        tmp_path / "single" / "last.safetensors")


def test_four_ranks_with_an_empty_share(phantom, tmp_path):
    """4 ranks: batches of 7 split 2 + 2 + 2 + 1, the last batch of 3 as
    1 + 1 + 1 + 0 (rank 3 has nothing and still joins the step)."""
    sgd = ["--optimizer", "sgd", "--lr", "0.05", "--epochs", 2]
    single = run(train_args(phantom, tmp_path / "single", *sgd))
    assert single.returncode == 0, single.stderr
    dist = run(mpirun(4) + train_args(phantom, tmp_path / "dist", *sgd))
    assert dist.returncode == 0, dist.stdout + dist.stderr
    assert_same_weights(tmp_path / "dist" / "last.safetensors",
                        tmp_path / "single" / "last.safetensors")
    assert_same_history(tmp_path / "dist" / "history.csv", tmp_path / "single" / "history.csv")


def test_resume_with_another_number_of_ranks(phantom, tmp_path):
    """1 epoch on 2 ranks, then epochs 2-3 in one process, then epoch 4 on
    2 ranks again: the weights of an uninterrupted single-process run."""
    adam = ["--optimizer", "adam", "--lr", "0.003"]
    single = run(train_args(phantom, tmp_path / "single", "--epochs", 4, *adam))
    assert single.returncode == 0, single.stderr
    out = tmp_path / "run"
    last = out / "last.safetensors"
    steps = [mpirun(2) + train_args(phantom, out, "--epochs", 1, *adam),
             train_args(phantom, out, "--epochs", 3, "--resume", last, *adam),
             mpirun(2) + train_args(phantom, out, "--epochs", 4, "--resume", last, *adam)]
    for command in steps:
        result = run(command)
        assert result.returncode == 0, result.stdout + result.stderr
    assert_same_weights(last, tmp_path / "single" / "last.safetensors")
    assert_same_history(out / "history.csv", tmp_path / "single" / "history.csv")


def rank_pids(parent):
    """{rank: pid} of mpirun's ich-train children (/proc)."""
    ranks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            environ = Path("/proc", entry, "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid != parent or b"ich-train" not in Path("/proc", entry, "cmdline").read_bytes():
            continue
        for item in environ:
            if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(item.split(b"=")[1])] = int(entry)
    return ranks


def signal_rank_one_after_first_checkpoint(phantom, out, sig, extra_env=None):
    """Start a 2-rank training run, wait for its first checkpoint, send
    `sig` to rank 1 and return (returncode, output) of the whole run."""
    command = mpirun(2) + train_args(phantom, out, "--epochs", 100000, "--quiet")
    job = subprocess.Popen([str(a) for a in command], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           env=dict(env(), **(extra_env or {})))
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.safetensors").exists() and time.monotonic() < deadline:
            assert job.poll() is None, job.stdout.read()
            time.sleep(0.2)
        assert (out / "last.safetensors").exists(), "no checkpoint within 120 s"
        ranks = rank_pids(job.pid)
        assert sorted(ranks) == [0, 1], ranks
        os.kill(ranks[1], sig)
        output, _ = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    return job.returncode, output


def test_killing_one_rank_ends_the_run(phantom, tmp_path):
    """Rank 1 killed after the first checkpoint: every rank ends within the
    test's bound (not the 300 s watchdog: the launcher sees the death), with
    a message, and the last checkpoint stays whole."""
    out = tmp_path / "run"
    returncode, output = signal_rank_one_after_first_checkpoint(phantom, out, signal.SIGKILL)
    assert returncode != 0
    assert "rank 1" in output and ("signal 9" in output or "Killed" in output), output
    assert (tensors(out / "last.safetensors"))  # whole: every tensor within the file
    with open(out / "history.csv") as f:
        assert f.readline().startswith("epoch,")


def test_a_hanging_rank_ends_the_run_after_the_timeout(phantom, tmp_path):
    """Rank 1 stopped (SIGSTOP) mid-run: rank 0 waits ICH_DIST_TIMEOUT (3 s)
    in the step's allreduce, then ends every rank with a message naming
    itself and the step."""
    out = tmp_path / "run"
    returncode, output = signal_rank_one_after_first_checkpoint(
        phantom, out, signal.SIGSTOP, {"ICH_DIST_TIMEOUT": "3"})
    assert returncode != 0
    # the step's allreduce, mostly; the validation sums or the checksums
    # when rank 1 stopped at the end of an epoch
    assert re.search(r"libich: rank 0 of 2 waited more than 3 s in (allreduce|allgather) "
                     r"\((gradients of epoch \d+, batch \d+|validation sums|the weights' "
                     r"checksums)\)", output), output
    assert tensors(out / "last.safetensors")
