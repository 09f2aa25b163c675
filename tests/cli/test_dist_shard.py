"""ich-preprocess, ich-predict and ich-evaluate under mpirun (issue 17, item
3): 2 ranks of 1 thread share the files of a small ich-phantom folder and
write one output, which must be the single process's.

The reference is the same program run as one process with 1 thread; the
outputs are compared byte for byte: each rank predicts whole batches of the
single process (the shards are cut between batches), so every forward pass
has the same images, batch size and thread count. A folder with one
truncated DICOM must give the same error report (the warning once, by the
rank that owns the file, and the same counts and exit status); a rank that
fails alone (rank 0 cannot write the shared output) ends every rank with its
message, quickly, and leaves no output.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
EXAMPLES = BUILD / "examples"
PLUGIN = BUILD / "libich" / "libich-mpi.so"
SPEC = "input 3x64x64, conv 4 5 stride 4, relu, maxpool 2, flatten, linear 6"
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK",
                      "PMIX_RANK", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "ICH_DIST")
BAD = "ID_bad"  # the truncated file's stem

pytestmark = pytest.mark.skipif(not (EXAMPLES / "ich-predict").exists(),
                                reason="examples not built")


def env():
    clean = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    clean.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                 ICH_DIST_TIMEOUT="60")
    return clean


def mpirun():
    path = shutil.which("mpirun")
    if not path:
        pytest.skip("mpirun not installed (Debian: openmpi-bin)")
    if not PLUGIN.exists():
        pytest.skip("libich built without libich-mpi.so (Debian: libopenmpi-dev)")
    return [path, "-np", "2", "--oversubscribe", "--bind-to", "none"]


def run(program, *args, ranks=1, timeout=120):
    command = [str(EXAMPLES / program)] + [str(a) for a in args]
    if ranks == 2:
        command = mpirun() + command
    return subprocess.run(command, capture_output=True, text=True, env=env(), timeout=timeout)


@pytest.fixture(scope="module")
def ich():
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    os.environ.setdefault("ICH_BUILD_DIR", str(BUILD))
    return pytest.importorskip("ich")


@pytest.fixture(scope="module")
def data(ich, tmp_path_factory):
    """12 phantom slices (3 batches of 4: rank 0 takes one, rank 1 two), the
    same with a truncated DICOM among them, and a small model whose
    checkpoint holds its recipe."""
    folder = tmp_path_factory.mktemp("shard")
    done = subprocess.run([str(EXAMPLES / "ich-phantom"), folder / "good", "--patients", "3",
                           "--slices", "4", "--size", "96", "--seed", "4", "--threads", "1",
                           "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list((folder / "good" / "images").glob("*.dcm"))) == 12
    shutil.copytree(folder / "good", folder / "bad")
    first = sorted((folder / "good" / "images").glob("*.dcm"))[0].read_bytes()
    (folder / "bad" / "images" / (BAD + ".dcm")).write_bytes(first[:3000])
    with open(folder / "bad" / "labels.csv", "a") as f:
        for label in ("any", "epidural", "intraparenchymal", "intraventricular",
                      "subarachnoid", "subdural"):
            f.write("%s_%s,0\n" % (BAD, label))
    model = ich.Model(SPEC)
    model.init_weights(11)
    model.metadata["ich.windows"] = "blood,brain,bone"
    model.metadata["ich.size"] = "64"
    model.metadata["ich.mean"] = "0.1,0.2,0.3"
    model.metadata["ich.std"] = "0.5,0.6,0.7"
    model.save(folder / "model.safetensors")
    return folder


def tree(folder):
    """Every file under `folder`: relative path -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def warnings(stderr, text):
    return [line for line in stderr.splitlines() if text in line]


@pytest.mark.parametrize("fmt", ["csv", "rsna"])
def test_predict_two_ranks_write_the_single_process_file(data, tmp_path, fmt):
    mpirun()
    outs = {}
    for ranks in (1, 2):
        out = tmp_path / ("p%d.csv" % ranks)
        done = run("ich-predict", data / "model.safetensors", data / "good" / "images",
                   "--out", out, "--format", fmt, "--batch-size", 4, "--threads", 1,
                   ranks=ranks)
        assert done.returncode == 0, done.stdout + done.stderr
        # rank 0 alone prints the summary, with every rank's counts
        assert done.stdout.count("12 predicted, 0 failed") == 1, done.stdout
        outs[ranks] = out.read_bytes()
    assert outs[1].count(b"\n") == 1 + 12 * (6 if fmt == "rsna" else 1)
    assert outs[2] == outs[1]


def test_predict_a_corrupt_file_is_reported_once(data, tmp_path):
    mpirun()
    results = {}
    for ranks in (1, 2):
        out = tmp_path / ("p%d.csv" % ranks)
        done = run("ich-predict", data / "model.safetensors", data / "bad" / "images",
                   "--out", out, "--batch-size", 4, "--threads", 1, ranks=ranks)
        assert done.returncode != 0  # a file failed: exit status 1
        skipped = warnings(done.stderr, "skipped")
        assert len(skipped) == 1 and BAD + ".dcm" in skipped[0], done.stderr
        assert done.stdout.count("12 predicted, 1 failed") == 1, done.stdout
        results[ranks] = (out.read_bytes(), skipped)
    assert results[2] == results[1]
    assert BAD.encode() not in results[1][0]


def test_preprocess_two_ranks_write_the_single_process_tree(data, tmp_path):
    mpirun()
    trees, lines = {}, {}
    for ranks in (1, 2):
        out = tmp_path / ("png%d" % ranks)
        done = run("ich-preprocess", data / "bad" / "images", out, "--size", 64, "--threads", 1,
                   ranks=ranks)
        assert done.returncode == 1, done.stdout + done.stderr  # the corrupt file
        skipped = warnings(done.stderr, "skipped")
        assert len(skipped) == 1 and BAD + ".dcm" in skipped[0], done.stderr
        summary = [l for l in done.stdout.splitlines() if l.startswith("ich-preprocess:")]
        assert len(summary) == 1, done.stdout
        lines[ranks] = summary[0].split(" in ")[0]  # the counts, without the time
        trees[ranks] = tree(out)
    assert lines[1] == ("ich-preprocess: 12 converted, 0 already there, 1 failed, of 13 "
                        "DICOM files")
    assert lines[2] == lines[1]
    assert len(trees[1]) == 13 and "recipe.txt" in trees[1]  # 12 PNGs and the recipe
    assert trees[2] == trees[1]


def test_evaluate_two_ranks_write_the_single_process_report(data, tmp_path):
    mpirun()
    reports = {}
    for ranks in (1, 2):
        out = tmp_path / ("report%d" % ranks)
        done = run("ich-evaluate", data / "model.safetensors", data / "bad" / "labels.csv",
                   data / "bad" / "images", out, "--batch-size", 4, "--threads", 1,
                   ranks=ranks)
        assert done.returncode == 1, done.stdout + done.stderr  # a row left out
        left = warnings(done.stderr, "left out:")
        assert len(left) == 1 and BAD + ".dcm" in left[0], done.stderr
        assert len(warnings(done.stderr, "1 of 13 label rows left out")) == 1, done.stderr
        reports[ranks] = tree(out)
    assert {"report.html", "metrics.csv", "metrics.json", "predictions.csv"} <= set(reports[1])
    assert reports[1]["predictions.csv"].count(b"\n") == 13  # header and 12 images
    assert reports[2] == reports[1]


def test_a_rank_that_fails_alone_ends_every_rank(data, tmp_path):
    """Rank 0 cannot write the predictions file; rank 1 could: both end at
    once (not after ICH_DIST_TIMEOUT) with rank 0's message."""
    mpirun()
    out = tmp_path / "missing" / "p.csv"
    done = run("ich-predict", data / "model.safetensors", data / "good" / "images",
               "--out", out, "--batch-size", 4, "--threads", 1, "--quiet", ranks=2, timeout=50)
    assert done.returncode != 0
    assert "libich: rank 0 of 2: predict: writing the predictions: %s" % out in done.stderr
    assert "aborting every rank" in done.stderr
    assert not out.parent.exists()


def test_every_rank_failing_alike_is_an_ordinary_error(data, tmp_path):
    """A wrong input path fails on every rank: each returns the error, as a
    single process does, and nothing is written."""
    mpirun()
    out = tmp_path / "png"
    done = run("ich-preprocess", data / "nowhere", out, "--threads", 1, ranks=2)
    assert done.returncode == 1
    assert "aborting every rank" not in done.stderr
    assert str(data / "nowhere") in done.stderr
    assert not out.exists()
