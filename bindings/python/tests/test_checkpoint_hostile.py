"""Hostile checkpoints: files written by hand (struct + json, no torch) whose
spec asks for a huge network, whose header nests blocks or items without
end, or whose weights hold NaN or infinity, and those kept in
tests/fuzz/regressions/checkpoints. Each is an ich error naming the
file, never a crash, and loading them all stays far below 1 GB of memory
(the peak resident size of a child process)."""

import json
import os
import struct
import subprocess
import sys
import textwrap

import pytest

import ich

HERE = os.path.dirname(os.path.abspath(__file__))


def write_safetensors(path, tensors=(), metadata=None):
    """tensors: (name, dtype, shape, raw bytes) in data order."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


HOSTILE_SPECS = [
    # a 156-byte file of this kind took 8.6 GB: the model was built first
    "input 1x8x8, flatten, linear 1000000, linear 1000",
    # within every per-layer limit, 1 GB of tensors that the file lacks
    "input 1x8x8, flatten, linear 65536, linear 4000",
    "input 1x8x8, flatten, linear 65536, linear 65536",
    "input 4096x16384x16384, conv 8 3, gap, linear 2",
    "input 1x16384x16384, conv 64 1, conv 64 1, gap, linear 2",
    "input 1x8x8, " + "residual(" * 100000,
    "input 1x8x8" + ", relu" * 100000 + ", gap, linear 2",
]


def hostile_files(folder):
    paths = []
    for k, spec in enumerate(HOSTILE_SPECS):
        path = os.path.join(folder, "hostile-%d.safetensors" % k)
        write_safetensors(path, [("fc2.bias", "F32", [2], struct.pack("<2f", 0, 0))],
                          {"format": "pt", "ich.spec": spec})
        paths.append(path)
    return paths


REGRESSIONS = os.path.join(HERE, "..", "..", "..", "tests", "fuzz", "regressions", "checkpoints")


def test_hostile_specs_fail_with_little_memory(tmp_path):
    regressions = sorted(os.path.join(REGRESSIONS, name) for name in os.listdir(REGRESSIONS)
                         if name.endswith(".safetensors"))
    assert len(regressions) >= 4
    paths = hostile_files(str(tmp_path)) + regressions
    child = textwrap.dedent("""
        import resource, sys
        sys.path.insert(0, %r)
        import ich
        for path in sys.argv[1:]:
            try:
                ich.Model.load(path)
                print("LOADED", path)
            except ich.IchError as error:
                print(type(error).__name__, error)
        # The peak of this process's own memory: VmHWM (ru_maxrss would
        # carry over the parent's peak across fork and exec).
        peak = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")]
        print("MAXRSS_KB", peak[0] if peak else
              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """) % os.path.dirname(HERE)
    # The address space is capped (4 GiB) so that a regression fails here
    # instead of taking the machine's memory; not under AddressSanitizer,
    # which reserves terabytes of address space for its shadow memory (and
    # keeps freed blocks in quarantine: the bound is then 1 GB).
    asan = "libasan" in os.environ.get("LD_PRELOAD", "")
    limit = "" if asan else \
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
    result = subprocess.run([sys.executable, "-c", limit + child] + paths,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(paths) + 1, result.stdout
    for path, line in zip(paths, lines):
        assert line.startswith("FormatError") and path in line, line
        assert any(word in line for word in ("too large", "holds only", "too many",
                                             "too deeply", "non-finite")), line
    maxrss_mb = int(lines[-1].split()[1]) / 1024
    assert maxrss_mb < (1024 if asan else 512), maxrss_mb


def test_spec_limits_in_python():
    with pytest.raises(ich.InvalidArgumentError, match="too large"):
        ich.Model("input 1x8x8, conv 65537 1, gap, linear 2")
    with pytest.raises(ich.InvalidArgumentError, match="too large"):
        ich.Model("input 1x8x8, conv 8 3 dilation 5000, gap, linear 2")
    with pytest.raises(ich.InvalidArgumentError, match="too large"):
        ich.Model("input 1x16385x16, gap, linear 2")
    with pytest.raises(ich.InvalidArgumentError, match="nested too deeply"):
        ich.Model("input 1x8x8, " + "residual(" * 17 + "relu" + ")" * 17 + ", gap, linear 2")


def test_model_limits_match_the_library():
    """ich.MODEL_LIMITS: each limit is accepted, one more is refused."""
    lim = ich.MODEL_LIMITS
    cases = [
        ("input %dx2x2, gap, linear 2", lim["input_channels"]),
        ("input 1x%dx2, gap, linear 2", lim["input_side"]),
        ("input 1x2x2, gap, linear %d", lim["channels"]),
        ("input 1x2x2, conv 1 1 pad %d, gap, linear 2", lim["kernel"]),
    ]
    for text, value in cases:
        ich.Model(text % value)
        with pytest.raises(ich.InvalidArgumentError, match="too large"):
            ich.Model(text % (value + 1))
    items = lim["layers"] - 3  # input, gap and linear are items too
    ich.Model("input 1x2x2" + ", relu" * items + ", gap, linear 2")
    with pytest.raises(ich.InvalidArgumentError, match="too many items"):
        ich.Model("input 1x2x2" + ", relu" * (items + 1) + ", gap, linear 2")
    def nested(depth):  # short branch names keep the layer names short
        return "concat(a: relu | b: " * depth + "relu" + ")" * depth

    ich.Model("input 1x2x2, %s, gap, linear 2" % nested(lim["depth"]))
    with pytest.raises(ich.InvalidArgumentError, match="nested too deeply"):
        ich.Model("input 1x2x2, %s, gap, linear 2" % nested(lim["depth"] + 1))
    # 16384 + 16384 * 16384 floats: 64 KiB above 1 GiB of parameters
    assert lim["param_bytes"] == 4 * 16384 * 16384
    with pytest.raises(ich.InvalidArgumentError, match="too large.*bytes of parameters"):
        ich.Model("input 1x1x1, flatten, linear 16384 nobias, linear 16384 nobias")


SPEC = "input 1x4x4, flatten, linear 2"


def small_model_file(path, bias):
    weight = struct.pack("<32f", *([0.1] * 32))
    write_safetensors(path, [("fc1.weight", "F32", [2, 16], weight),
                             ("fc1.bias", "F32", [2], struct.pack("<2f", *bias))],
                      {"format": "pt", "ich.spec": SPEC})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    good = str(tmp_path / "good.safetensors")
    small_model_file(good, [0.5, -0.5])
    model = ich.Model.load(good)
    path = str(tmp_path / "bad.safetensors")
    small_model_file(path, [0.5, bad])
    with pytest.raises(ich.FormatError, match="fc1.bias.*non-finite") as error:
        ich.Model.load(path)
    assert path in str(error.value)
    with pytest.raises(ich.FormatError, match="fc1.bias") as error:
        model.load_weights(path)
    assert path in str(error.value)


def test_predict_refuses_non_finite_probabilities():
    np = pytest.importorskip("numpy")
    model = ich.Model(SPEC)
    x = np.ones((3, 1, 4, 4), np.float32)
    assert np.isfinite(model.predict(x)).all()
    state = model.state_dict()
    state["fc1.bias"] = np.array([0.0, np.nan], np.float32)
    model.load_state_dict(state)
    with pytest.raises(ich.FormatError, match="image 0 of 3 .*output 1"):
        model.predict(x)
