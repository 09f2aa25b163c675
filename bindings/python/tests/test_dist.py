"""ich.dist: the communicator of distributed runs (ich/dist.h).

A single process is size 1 and maps nothing of MPI; a process that looks
launched as one of several ranks but cannot load libich-mpi.so refuses to
run alone; under mpirun (when it and the plugin are there) every rank sees
its rank and the run's size. Each case runs in a fresh Python process: the
communicator keeps its first answer for the life of a process.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import ich

HERE = os.path.dirname(os.path.abspath(__file__))
BINDINGS = os.path.dirname(HERE)
LIBRARY = os.path.realpath(ich.library_path())
PLUGIN = os.path.join(os.path.dirname(LIBRARY), "libich-mpi.so")
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK",
                      "PMIX_RANK", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "ICH_DIST",
                      "ICH_DIST_TIMEOUT", "ICH_PLUGIN_PATH")

PROBE = """
def attempt(call):
    try:
        return ["ok", call()]
    except ich.IchError as e:
        return [type(e).__name__, str(e)]
out = {"describe": attempt(ich.dist.describe), "rank": attempt(ich.dist.rank),
       "size": attempt(ich.dist.size)}
maps = open("/proc/self/maps").read()
out["mpi_mapped"] = "libmpi" in maps or "libich-mpi" in maps or "libopen-pal" in maps
print(json.dumps(out))
"""


def clean_env(library=LIBRARY, **extra):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update(ICH_LIBRARY=library, PYTHONPATH=BINDINGS, **extra)
    return env


def probe(library=LIBRARY, **extra):
    program = "import json, ich\n" + textwrap.dedent(PROBE)
    done = subprocess.run([sys.executable, "-c", program], env=clean_env(library, **extra),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_single_process_is_rank_0_of_1_without_mpi():
    out = probe()
    assert out["describe"] == ["ok", "single process (no MPI launcher seen)"], out
    assert out["rank"] == ["ok", 0] and out["size"] == ["ok", 1]
    assert not out["mpi_mapped"], "a single process mapped MPI"


def test_off_runs_alone_even_when_launched():
    out = probe(OMPI_COMM_WORLD_SIZE="4", OMPI_COMM_WORLD_RANK="2", ICH_DIST="off")
    assert out["describe"] == ["ok", "single process (ICH_DIST=off)"], out
    assert out["size"] == ["ok", 1] and not out["mpi_mapped"]


def test_launched_without_the_plugin_refuses_to_run_alone(tmp_path):
    """A copy of libich with no libich-mpi.so beside it, in a process whose
    environment says it is rank 1 of 2: every call fails with the reason,
    instead of a second, independent training writing the same files."""
    copy = str(tmp_path / os.path.basename(LIBRARY))
    shutil.copy(LIBRARY, copy)
    out = probe(copy, OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="1",
                LD_LIBRARY_PATH=str(tmp_path))
    kind, message = out["describe"]
    assert kind == "NotFoundError", out
    assert "launched as one of several ranks (OMPI_COMM_WORLD_SIZE=2)" in message
    assert "libich-mpi.so not found beside libich (%s)" % tmp_path in message
    assert "ICH_DIST=off" in message
    assert out["rank"][0] == "NotFoundError" and out["size"][0] == "NotFoundError"
    assert not out["mpi_mapped"]


def test_bad_settings_are_named():
    out = probe(ICH_DIST="nccl")
    assert out["describe"][0] == "InvalidArgumentError"
    assert "ICH_DIST=nccl: unknown (auto, mpi or off)" in out["describe"][1]
    out = probe(ICH_DIST_TIMEOUT="soon")
    assert out["describe"][0] == "InvalidArgumentError"
    assert "ICH_DIST_TIMEOUT=soon" in out["describe"][1]


def mpirun():
    path = shutil.which("mpirun")
    if not path:
        pytest.skip("mpirun not installed (Debian: openmpi-bin)")
    if not os.path.exists(PLUGIN):
        pytest.skip("libich built without libich-mpi.so (Debian: libopenmpi-dev)")
    return [path, "-np", "2", "--oversubscribe", "--bind-to", "none"]


def test_forced_mpi_runs_one_rank_without_a_launcher():
    """ICH_DIST=mpi starts MPI in a process no launcher started (Open MPI's
    singleton): rank 0 of 1, the plugin loaded."""
    if not os.path.exists(PLUGIN):
        pytest.skip("libich built without libich-mpi.so (Debian: libopenmpi-dev)")
    out = probe(ICH_DIST="mpi", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    assert out["describe"][0] == "ok", out
    assert out["describe"][1].startswith("mpi: rank 0 of 1, ") and PLUGIN in out["describe"][1]
    assert out["size"] == ["ok", 1] and out["mpi_mapped"]


def test_two_ranks_under_mpirun(tmp_path):
    # each rank's answer in a file of its own (the ranks' stdout lines may mix)
    program = ("import json, ich\n" + textwrap.dedent(PROBE).replace(
        "print(json.dumps(out))",
        "open(%r + '/rank%%d.json' %% ich.dist.rank(), 'w').write(json.dumps(out))"
        % str(tmp_path)))
    env = clean_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = subprocess.run(mpirun() + [sys.executable, "-c", program], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    outs = [json.loads((tmp_path / ("rank%d.json" % r)).read_text()) for r in (0, 1)]
    assert [o["rank"][1] for o in outs] == [0, 1], outs
    for out in outs:
        assert out["size"] == ["ok", 2]
        assert out["describe"][1].startswith("mpi: rank %d of 2, " % out["rank"][1])
        assert out["describe"][1].endswith(PLUGIN) and out["mpi_mapped"]


EXAMPLE = os.path.join(BINDINGS, "examples", "train_distributed.py")


def safetensors(path):
    """name -> float64 numpy array of a safetensors file's float tensors."""
    import struct
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    return {name: np.frombuffer(data[8 + length + info["data_offsets"][0]:
                                     8 + length + info["data_offsets"][1]],
                                dtype=np.float32).astype(np.float64)
            for name, info in header.items() if name != "__metadata__" and info["dtype"] == "F32"}


def test_example_trains_the_same_weights_on_two_ranks(tmp_path):
    """bindings/python/examples/train_distributed.py: ich.train on 2 ranks
    (4 images of each batch of 8 per rank) gives one process's weights."""
    env = clean_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    two = subprocess.run(mpirun() + [sys.executable, EXAMPLE, str(tmp_path / "two")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    assert "2 rank(s): mpi: rank 0 of 2" in two.stdout
    assert two.stdout.count("epoch 3 ") == 1  # rank 0 alone prints
    one = subprocess.run([sys.executable, EXAMPLE, str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stdout + one.stderr
    a = safetensors(str(tmp_path / "two" / "run" / "last.safetensors"))
    b = safetensors(str(tmp_path / "one" / "run" / "last.safetensors"))
    assert a.keys() == b.keys() and "conv1.weight" in b
    for name in b:
        scale = max(abs(b[name]).max(), 1e-30)
        assert abs(a[name] - b[name]).max() <= 1e-5 * scale, name


def test_an_exception_on_one_rank_ends_every_rank(tmp_path):
    """Rank 1 raises before training while rank 0 waits for it in ich.train:
    ich's excepthook marks the run failed, so rank 1's exit ends rank 0
    too, long before the 300 s watchdog (the test's bound is 100 s)."""
    script = textwrap.dedent("""
        import ich
        if ich.dist.rank() == 0:
            ich.write_phantom(%r, patients=1, slices=4, size=32)
        ich.dist.barrier()
        if ich.dist.rank() == 1:
            raise RuntimeError("rank 1 gives up")
        ds = ich.Dataset(ich.Labels.read(%r), %r, size=32, batch_size=2)
        model = ich.Model("input 3x32x32, flatten, linear 6")
        ich.train(model, ich.Optimizer(model, "sgd", lr=0.1), ds, epochs=1)
        print("rank 0 finished")
        """ % (str(tmp_path), str(tmp_path / "labels.csv"), str(tmp_path / "images")))
    env = clean_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = subprocess.run(mpirun() + [sys.executable, "-c", script], env=env,
                          capture_output=True, text=True, timeout=100)
    assert done.returncode != 0
    assert "rank 1 gives up" in done.stderr and "rank 0 finished" not in done.stdout
