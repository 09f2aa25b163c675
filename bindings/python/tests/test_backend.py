"""Backends: choosing one (ich.use_backend, ICH_BACKEND), loading the CUDA
plugin (found beside libich.so, in ICH_PLUGIN_PATH; refused with a message
when built for another interface, with tables smaller than this interface's
first layout, without its entry point or without a device; used when its
tables have members appended that libich does not know), falling back to
the CPU, and the model's device-memory path.

The loader keeps its first answer for the life of the process, so each
scenario runs in a fresh Python process, with libich copied into a temporary
folder beside the stand-in plugin it needs (tests/plugins/fake_plugin.c,
built as <build>/tests/plugins/<mode>/libich-cuda.so).

The real plugin, libich-cuda.so beside the build's libich.so, is checked
too: on a machine without a GPU it must load and say that no device is
usable; with ICH_EXPECT_CUDA_PLUGIN=1 (scripts/test.sh sets it when nvcc is
installed) its absence is a failure.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ich

HERE = os.path.dirname(os.path.abspath(__file__))
BINDINGS = os.path.dirname(HERE)
LIBRARY = os.path.realpath(ich.library_path())
LIBRARY_DIR = os.path.dirname(LIBRARY)
BUILD_DIR = os.path.dirname(LIBRARY_DIR)  # <build>/libich/libich.so.0
FAKES = os.path.join(BUILD_DIR, "tests", "plugins")
REAL_PLUGIN = os.path.join(LIBRARY_DIR, "libich-cuda.so")

# Every layer kind, a residual block (gradient accumulation) and a concat.
SPEC = ("input 3x16x16, conv 8 3 pad 1, batchnorm, relu, maxpool 2, "
        "residual(conv 8 3 pad 1 nobias, batchnorm, relu; shortcut: avgpool 1), "
        "concat(conv 4 1 | conv 4 3 pad 1, relu), avgpool 2, dropout 0.25, "
        "flatten, linear 12, relu, linear 6")


def fake(mode):
    path = os.path.join(FAKES, mode, "libich-cuda.so")
    if not os.path.exists(path):
        pytest.skip("stand-in plugins not built (%s)" % path)
    return path


def run(code, library=LIBRARY, **env_extra):
    """Run `code` in a new Python with libich from `library`; its last
    stdout line is JSON, returned decoded."""
    env = dict(os.environ)
    for key in ("ICH_BACKEND", "ICH_PLUGIN_PATH"):
        env.pop(key, None)
    env.update(ICH_LIBRARY=library, PYTHONPATH=BINDINGS)
    env.update(env_extra)
    program = "import json, sys, ich\n" + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def library_beside(tmp_path, plugin=None):
    """A copy of libich in tmp_path, with `plugin` beside it as
    libich-cuda.so; returns the library's path."""
    copy = str(tmp_path / os.path.basename(LIBRARY))
    shutil.copy(LIBRARY, copy)
    if plugin:
        shutil.copy(plugin, str(tmp_path / "libich-cuda.so"))
    return copy


# Tries every way of asking for CUDA; prints what happened.
PROBE = """
def attempt(call):
    try:
        return ["ok", call()]
    except ich.IchError as e:
        return [type(e).__name__, str(e)]
out = {"info": attempt(lambda: ich.backend_info("cuda")),
       "use": attempt(lambda: ich.use_backend("cuda")),
       "after": ich.backend(),
       "auto": attempt(lambda: ich.use_backend("auto")),
       "model": ich.Model("input 1x4x4, flatten, linear 2").backend}
print(json.dumps(out))
"""


def test_cpu_is_built_in_and_described():
    info = ich.backend_info("cpu")
    assert info.startswith("cpu: ") and "oneDNN" in info and "OpenBLAS" in info
    assert ich.backend() in ("cpu", "cuda")


def test_unknown_backend_is_an_invalid_argument():
    before = ich.backend()
    with pytest.raises(ich.InvalidArgumentError, match="gpu: unknown backend"):
        ich.use_backend("gpu")
    with pytest.raises(ich.InvalidArgumentError):
        ich.backend_info("tpu")
    assert ich.backend() == before


def test_model_runs_where_it_was_created():
    """Choosing another backend moves new models, not existing ones."""
    ich.use_backend("cpu")
    try:
        m = ich.Model("input 1x4x4, flatten, linear 2")
        assert m.backend == "cpu"
        ich.use_backend("auto")
        assert m.backend == "cpu"
        assert ich.Model("input 1x4x4, flatten, linear 2").backend == ich.backend()
    finally:
        ich.use_backend(None)


def test_real_plugin_is_found_and_fails_cleanly_without_a_gpu():
    if not os.path.exists(REAL_PLUGIN):
        if os.environ.get("ICH_EXPECT_CUDA_PLUGIN") == "1":
            pytest.fail("ICH_EXPECT_CUDA_PLUGIN=1 but %s was not built" % REAL_PLUGIN)
        pytest.skip("libich built without the CUDA plugin")
    out = run(PROBE)
    if out["info"][0] == "ok":
        pytest.skip("a GPU is present: %s (tests/gpu/ compares it with the CPU)" % out["info"][1])
    # Found (the message names the file) and started (it says why it cannot run).
    assert out["info"][0] == "UnsupportedError", out
    assert REAL_PLUGIN in out["info"][1] and "could not start" in out["info"][1], out
    assert "no usable GPU" in out["info"][1], out
    assert out["use"][0] == "UnsupportedError"
    assert out["after"] == "cpu" and out["auto"] == ["ok", "cpu"] and out["model"] == "cpu"


def test_real_plugin_without_a_driver_maps_no_cuda_library():
    """The driver is asked for a device before the plugin (linked against
    cuBLAS and cuDNN) is loaded: on a machine without a GPU, choosing a
    backend leaves no CUDA library mapped (they cost ~150 MiB of memory)."""
    if not os.path.exists(REAL_PLUGIN):
        pytest.skip("libich built without the CUDA plugin")
    code = """
    ich.use_backend("auto")
    try:
        ich.backend_info("cuda")
        info = "ok"
    except ich.IchError as e:
        info = str(e)
    ich.Model("input 1x4x4, flatten, linear 2")
    maps = open("/proc/self/maps").read()
    names = sorted({line.split()[-1].rsplit("/", 1)[-1] for line in maps.splitlines()
                    if "/libcu" in line or "libich-cuda" in line})
    print(json.dumps({"backend": ich.backend(), "info": info, "mapped": names}))
    """
    out = run(code)
    if out["info"] == "ok":
        pytest.skip("a GPU is present")
    assert out["backend"] == "cpu", out
    assert "no usable GPU" in out["info"] and "were not loaded" in out["info"], out
    assert out["mapped"] == [], out


def test_cuda_without_any_plugin(tmp_path):
    out = run(PROBE, library_beside(tmp_path))
    assert out["info"][0] == "NotFoundError", out
    assert "libich-cuda.so not found beside libich (%s)" % tmp_path in out["info"][1]
    assert "ICH_PLUGIN_PATH (unset)" in out["info"][1]
    assert out["after"] == "cpu" and out["auto"] == ["ok", "cpu"] and out["model"] == "cpu"


def test_environment_asks_for_cuda_without_it(tmp_path):
    code = """
    try:
        ich.Model("input 1x4x4, flatten, linear 2")
        out = ["created"]
    except ich.IchError as e:
        out = [type(e).__name__, str(e)]
    try:
        ich.backend()
    except ich.IchError as e:
        out.append(type(e).__name__)
    ich.use_backend("cpu")
    out.append(ich.Model("input 1x4x4, flatten, linear 2").backend)
    print(json.dumps(out))
    """
    out = run(code, library_beside(tmp_path), ICH_BACKEND="cuda")
    assert out[0] == "NotFoundError" and out[1].startswith("ICH_ERR_NOT_FOUND: ICH_BACKEND=cuda: ")
    assert out[2:] == ["NotFoundError", "cpu"]
    out = run("print(json.dumps(ich.backend()))", library_beside(tmp_path), ICH_BACKEND="cpu")
    assert out == "cpu"
    with pytest.raises(AssertionError, match="ICH_BACKEND=vulkan: unknown backend"):
        run("ich.Model('input 1x4x4, flatten, linear 2')", library_beside(tmp_path),
            ICH_BACKEND="vulkan")


def test_plugin_for_another_interface_is_refused(tmp_path):
    out = run(PROBE, library_beside(tmp_path, fake("version")))
    assert out["info"][0] == "UnsupportedError", out
    assert "built for backend interface 999" in out["info"][1]
    assert "use the plugin built with this libich" in out["info"][1]
    assert out["after"] == "cpu" and out["auto"] == ["ok", "cpu"]


def test_plugin_with_a_small_backend_table_is_refused(tmp_path):
    """A table shorter than libich's (built from an older header of the same
    interface version) would have its missing members read from whatever
    follows it: refused, naming the plugin and both sizes (x86-64: the
    stand-in stops before host_alloc, at 72 bytes; interface 5 has 136)."""
    library = library_beside(tmp_path, fake("small_table"))
    out = run(PROBE, library)
    assert out["info"][0] == "UnsupportedError", out
    message = out["info"][1]
    assert "%s: its backend table has 72 bytes" % (tmp_path / "libich-cuda.so") in message, message
    assert "needs at least 136 (interface 5)" in message, message
    assert out["use"][0] == "UnsupportedError"
    assert out["after"] == "cpu" and out["auto"] == ["ok", "cpu"] and out["model"] == "cpu"


def test_plugin_with_a_small_layer_table_is_refused(tmp_path):
    """Each kind's layer table is checked when the plugin loads, not when a
    model first uses the kind."""
    out = run(PROBE, library_beside(tmp_path, fake("small_layer")))
    assert out["info"][0] == "UnsupportedError", out
    message = out["info"][1]
    assert "%s: its conv layer table has 64 bytes" % (tmp_path / "libich-cuda.so") in message
    assert "needs at least 72 (interface 5)" in message, message
    assert out["after"] == "cpu" and out["auto"] == ["ok", "cpu"] and out["model"] == "cpu"


def test_plugin_with_appended_members_is_used(tmp_path):
    """A later plugin of the same interface version, whose tables end in a
    member this libich does not know (calling it aborts), loads and trains
    exactly as the CPU does."""
    library = library_beside(tmp_path, fake("newer"))
    cpu = train("cpu", library, tmp_path / "cpu.safetensors")
    newer = train("cuda", library, tmp_path / "newer.safetensors")
    assert newer["backend"] == "cuda" and newer["info"].startswith("cuda: fake device")
    assert newer["losses"] == cpu["losses"]
    assert newer["probabilities"] == cpu["probabilities"]


def test_library_without_the_entry_point_is_refused(tmp_path):
    out = run(PROBE, library_beside(tmp_path, fake("no_entry")))
    assert out["info"][0] == "FormatError", out
    assert "has no ich_backend_plugin(): not a libich backend plugin" in out["info"][1]
    assert out["auto"] == ["ok", "cpu"]


def test_plugin_without_a_device_falls_back(tmp_path):
    out = run(PROBE, library_beside(tmp_path, fake("no_device")))
    assert out["info"][0] == "UnsupportedError", out
    assert "could not start: cuda: no usable GPU: fake plugin without a device" in out["info"][1]
    assert out["use"][0] == "UnsupportedError"
    assert out["after"] == "cpu" and out["auto"] == ["ok", "cpu"] and out["model"] == "cpu"


def test_plugin_path_is_searched(tmp_path):
    lib_dir, plugin_dir = tmp_path / "lib", tmp_path / "plugins"
    lib_dir.mkdir()
    plugin_dir.mkdir()
    shutil.copy(fake("no_device"), str(plugin_dir / "libich-cuda.so"))
    library = library_beside(lib_dir)
    out = run(PROBE, library, ICH_PLUGIN_PATH="/nonexistent:%s" % plugin_dir)
    assert out["info"][0] == "UnsupportedError", out
    assert str(plugin_dir / "libich-cuda.so") in out["info"][1]
    # The library's own folder wins over ICH_PLUGIN_PATH.
    shutil.copy(fake("version"), str(lib_dir / "libich-cuda.so"))
    out = run(PROBE, library, ICH_PLUGIN_PATH=str(plugin_dir))
    assert "built for backend interface 999" in out["info"][1]


# Train a few steps on the chosen backend from fixed weights; print the
# logits, the loss, the weights after and the backend's description.
TRAIN = """
import numpy as np
ich.use_backend(BACKEND)
m = ich.Model(SPEC)
m.init_weights(7)
rng = np.random.default_rng(3)
x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
y = (rng.random((4, 6)) < 0.4).astype(np.float32)
opt = ich.Optimizer(m, "adam", lr=1e-3)
m.train()
losses = []
for step in range(3):
    m.zero_grad()
    logits = m.forward(x)
    loss, grad = ich.bce_with_logits(logits, y)
    m.backward(grad)
    opt.step()
    losses.append(loss)
m.save(CHECKPOINT)
m.eval()
probabilities = m.predict(x)
out = {"backend": m.backend, "losses": losses, "probabilities": probabilities.tolist(),
       "weights": {k: np.asarray(v, dtype=np.float64).ravel().tolist()
                   for k, v in m.state_dict().items()},
       "info": ich.backend_info()}
print(json.dumps(out))
"""


def train(backend, library, checkpoint):
    code = "BACKEND, SPEC, CHECKPOINT = %r, %r, %r\n%s" % (backend, SPEC, str(checkpoint), TRAIN)
    return run(code, library)


def test_device_path_matches_the_cpu(tmp_path):
    """A stand-in "cuda" backend whose memory is not the host's (it runs
    the CPU layers, so results must be identical): the model moves input,
    logits and gradients only through the backend's copy functions, the
    optimizer, checkpoints and state_dict see the same weights, and a
    checkpoint trained there loads and predicts the same on the CPU."""
    library = library_beside(tmp_path, fake("device"))
    cpu = train("cpu", library, tmp_path / "cpu.safetensors")
    dev = train("cuda", library, tmp_path / "dev.safetensors")
    assert cpu["backend"] == "cpu" and dev["backend"] == "cuda"
    assert dev["losses"] == cpu["losses"]
    assert dev["probabilities"] == cpu["probabilities"]
    assert dev["weights"].keys() == cpu["weights"].keys()
    for name in cpu["weights"]:
        assert dev["weights"][name] == cpu["weights"][name], name
    counts = dict(item.rsplit(" ", 1) for item in dev["info"].split(", ")[1:])
    assert int(counts["to_device"]) >= 3 + 3 + 1  # inputs and logit gradients, predict's input
    assert int(counts["to_host"]) >= 3 + 1        # logits
    assert int(counts["accumulate"]) >= 3         # the residual block's input, each step
    assert counts["foreign"] == "0"
    code = """
    import numpy as np
    ich.use_backend("cpu")
    m = ich.Model.load(%r)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    print(json.dumps({"backend": m.backend, "p": m.predict(x).tolist()}))
    """ % str(tmp_path / "dev.safetensors")
    loaded = run(code, library)
    assert loaded["backend"] == "cpu" and loaded["p"] == cpu["probabilities"]


def test_one_compute_thread_starts_no_openmp_worker():
    """ich.set_threads(1) before a model is made: its oneDNN primitives are
    made for one thread, so forward and backward start no OpenMP worker
    thread (a primitive keeps the thread count of the thread that made it;
    made with the machine's default it would run on every CPU)."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: OpenMP would start no worker anyway")
    code = """
    import os
    import numpy as np
    ich.set_threads(1)
    model = ich.Model("input 3x64x64, conv 16 3 pad 1, relu, maxpool 2, conv 16 5 pad 2, "
                      "flatten, linear 2")
    model.train()
    before = sorted(os.listdir("/proc/self/task"))
    x = np.random.default_rng(0).random((4, 3, 64, 64), dtype=np.float32)
    y = model.forward(x)
    model.backward(np.ones_like(y))
    print(json.dumps({"before": len(before), "after": len(os.listdir("/proc/self/task"))}))
    """
    out = run(code, ICH_BACKEND="cpu")
    assert out["after"] == out["before"], out


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads /proc/cpuinfo")
def test_winograd_transforms_follow_the_onednn_isa_limit():
    """The Winograd transforms run the copy compiled for oneDNN's effective
    ISA, so that ONEDNN_MAX_CPU_ISA (the test command's "older CPU" runs)
    tests and times their AVX2 and baseline code too; every copy gives the
    same logits within the float32 rounding of the transforms."""
    code = """
        import numpy as np
        messages = []
        ich.set_log_callback(lambda level, text: messages.append(text), ich.LOG_DEBUG)
        model = ich.Model("input 16x13x11, conv 24 5 pad 2, relu, conv 20 5 pad 1x0, flatten")
        if model.backend != "cpu":
            print(json.dumps(None)); sys.exit(0)
        model.eval()
        x = np.random.default_rng(3).standard_normal((2,) + tuple(model.input_shape)).astype(np.float32)
        out = model.forward(x)
        used = sorted({m.split("(")[-1] for m in messages if "uses Winograd" in m})
        print(json.dumps({"used": used, "out": out.ravel().tolist()}))
    """
    flags = cpu_flags()
    best = ("avx512" if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
            else "avx2" if {"avx2", "fma"} <= flags else "baseline")
    expect = {"": best, "AVX2": "avx2" if best != "baseline" else "baseline",
              "SSE41": "baseline"}
    outs = {}
    for limit, name in expect.items():
        result = run(code, ONEDNN_MAX_CPU_ISA=limit, ICH_CPU_WINOGRAD="1")
        if result is None:
            pytest.skip("the CPU backend's transforms")
        assert result["used"] == [name + " transforms)"], (limit, result["used"])
        outs[limit] = np.array(result["out"])
    scale = np.abs(outs[""]).max()
    for limit, out in outs.items():
        assert np.abs(out - outs[""]).max() <= 1e-5 * scale, limit
