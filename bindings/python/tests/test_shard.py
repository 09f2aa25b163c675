"""ich.preprocess_folder, ich.predict_folder and ich.evaluate_report under
mpirun: the same script run as 2 ranks of 1 thread writes the files one
process writes (byte for byte: each rank predicts whole batches of the
single process's), and every rank gets the summary of all of them.

The script runs in fresh processes (the communicator keeps its first
answer for the life of a process); it is skipped without mpirun or the MPI
plugin.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ich

HERE = os.path.dirname(os.path.abspath(__file__))
BINDINGS = os.path.dirname(HERE)
LIBRARY = os.path.realpath(ich.library_path())
PLUGIN = os.path.join(os.path.dirname(LIBRARY), "libich-mpi.so")
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK",
                      "PMIX_RANK", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "ICH_DIST")

SCRIPT = """
import json, sys, ich
data, out, summaries = sys.argv[1], sys.argv[2], sys.argv[3]
ich.set_threads(1)
pre = ich.preprocess_folder(data + "/images", out + "/png", ich.Window("blood,brain,bone", size=32),
                            threads=1)
model = ich.Model.load(data + "/model.safetensors")
pred = ich.predict_folder(model, data + "/images", out + "/p.csv", batch_size=4, threads=1)
rep = ich.evaluate_report(data + "/model.safetensors", data + "/labels.csv", data + "/images",
                          out + "/report", batch_size=4, bootstrap=50)
with open("%s/rank%d.json" % (summaries, ich.dist.rank()), "w") as f:
    json.dump({"rank": ich.dist.rank(), "size": ich.dist.size(),
               "preprocess": [pre.files, pre.converted, pre.failed],
               "predict": [pred.files, pred.predicted, pred.failed],
               "evaluate": [rep.evaluated, rep.left_out]}, f)
"""


def mpirun():
    path = shutil.which("mpirun")
    if not path:
        pytest.skip("mpirun not installed (Debian: openmpi-bin)")
    if not os.path.exists(PLUGIN):
        pytest.skip("libich built without libich-mpi.so (Debian: libopenmpi-dev)")
    return [path, "-np", "2", "--oversubscribe", "--bind-to", "none"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shard")
    ich.write_phantom(str(folder), patients=2, slices=5, size=64, seed=8)
    model = ich.Model("input 3x32x32, conv 4 3 stride 2, relu, maxpool 2, flatten, linear 6")
    model.init_weights(5)
    model.metadata["ich.windows"] = "blood,brain,bone"
    model.metadata["ich.size"] = "32"
    model.save(str(folder / "model.safetensors"))
    return folder


def run_script(launcher, data, out):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update(ICH_LIBRARY=LIBRARY, PYTHONPATH=BINDINGS, OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", ICH_DIST_TIMEOUT="60")
    summaries = Path(str(out) + "-summaries")
    summaries.mkdir()
    done = subprocess.run(launcher + [sys.executable, "-c", textwrap.dedent(SCRIPT), str(data),
                                      str(out), str(summaries)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(p.read_text()) for p in sorted(summaries.glob("rank*.json"))]


def tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_two_ranks_write_what_one_process_writes(data, tmp_path):
    launcher = mpirun()
    one = run_script([], data, tmp_path / "one")
    two = run_script(launcher, data, tmp_path / "two")
    assert [o["size"] for o in one] == [1]
    assert sorted(o["rank"] for o in two) == [0, 1] and all(o["size"] == 2 for o in two)
    # every rank's summary counts every rank's files
    for o in two:
        for key in ("preprocess", "predict", "evaluate"):
            assert o[key] == one[0][key], (key, o, one)
    assert one[0]["predict"] == [10, 10, 0]
    a, b = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert len([k for k in a if k.endswith(".png")]) == 10
    assert {"p.csv", "png/recipe.txt", "report/metrics.json"} <= set(a)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name
