"""Checkpoints: libich's safetensors files against an independent reader and
writer (struct + json + numpy, written here from the format's description)
and against PyTorch: the tutorial ConvNet's weights move both ways and give
the same outputs."""

import ctypes
import json
import os
import struct
import sys

import numpy as np
import pytest

import ich
from ich._lib import lib

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

# ---- the format, independently ----------------------------------------------

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
          "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?", "U16": "<u2",
          "U32": "<u4", "U64": "<u8", "F8_E4M3": "u1", "F8_E5M2": "u1"}
NAMES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64",
         np.dtype("<f2"): "F16", np.dtype("<i4"): "I32", np.dtype("u1"): "U8"}


def read_safetensors(path):
    """(tensors {name: array}, metadata, header length, header dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw)
    header_bytes = raw[8:8 + n]
    assert header_bytes[:1] == b"{"
    header = json.loads(header_bytes.decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    assert all(isinstance(v, str) for v in metadata.values())
    data = raw[8 + n:]
    spans = sorted(tuple(e["data_offsets"]) for e in header.values())
    end = 0
    for begin, stop in spans:  # tiled: no hole, no overlap
        assert begin == end, (begin, end)
        end = stop
    assert end == len(data)
    tensors = {}
    for name, entry in header.items():
        assert set(entry) == {"dtype", "shape", "data_offsets"}
        begin, stop = entry["data_offsets"]
        dtype = np.dtype(DTYPES[entry["dtype"]])
        count = int(np.prod(entry["shape"], dtype=np.int64))
        assert stop - begin == count * dtype.itemsize
        tensors[name] = np.frombuffer(data[begin:stop], dtype=dtype).reshape(entry["shape"])
    return tensors, metadata, n, header


def write_safetensors(path, tensors, metadata=None, order=None):
    """Tensors in name order (as PyTorch's safetensors sorts them within a
    dtype), header padded with spaces to a multiple of 8."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in order or sorted(tensors):
        a = np.array(tensors[name], order="C")  # keeps 0-d scalars 0-d
        a = a.astype(a.dtype.newbyteorder("<"))
        blob = a.tobytes()
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ---- the tutorial's ConvNet in PyTorch --------------------------------------

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "bench"))
from torch_twins import Tutorial as ConvNet  # noqa: E402


def torch_forward(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).standard_normal((1, 1, 512, 512)).astype(np.float32)


def assert_close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(b).max()))


# ---- tests --------------------------------------------------------------------

def test_saved_file_reads_independently(tmp_path):
    model = ich.Model.preset("tutorial")
    labels = 'any,"epi"\\dural,\u00e9\U0001F600\n\x01'
    model.metadata["ich.labels"] = labels
    path = tmp_path / "tutorial.safetensors"
    model.save(path)
    tensors, metadata, n, header = read_safetensors(path)
    assert n % 8 == 0
    assert metadata["format"] == "pt"
    assert metadata["ich.spec"] == model.spec
    assert metadata["ich.labels"] == labels
    expected = ConvNet().state_dict()
    assert list(tensors) == list(expected)  # state_dict order
    state = model.state_dict()
    for name, array in tensors.items():
        assert tuple(array.shape) == tuple(expected[name].shape), name
        assert array.dtype == np.float32
        np.testing.assert_array_equal(array, state[name])


def test_libich_weights_run_in_torch(tmp_path, image):
    model = ich.Model.preset("tutorial")
    model.init_weights(17)
    path = tmp_path / "to_torch.safetensors"
    model.save(path)
    tensors, _, _, _ = read_safetensors(path)
    net = ConvNet().eval()
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    assert_close(model.forward(image), torch_forward(net, image))


def test_torch_weights_load_in_libich(tmp_path, image):
    torch.manual_seed(5)
    net = ConvNet().eval()
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    path = tmp_path / "from_torch.safetensors"
    write_safetensors(path, state, {"ich.spec": ich.Model.preset("tutorial").spec,
                                    "format": "pt", "ich.epoch": "4"})
    model = ich.Model.load(path)
    assert model.metadata["ich.epoch"] == "4"
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(array, state[name])
    assert_close(model.forward(image), torch_forward(net, image))


SMALL = "input 1x8x8, conv 2 3, batchnorm, relu, flatten, linear 3"


def small_file(tmp_path, name="small.safetensors", **changes):
    """A valid small model file from the independent writer, with `changes`
    ({name: array or None to drop})."""
    model = ich.Model(SMALL)
    state = model.state_dict()
    state.update(changes)
    state = {k: v for k, v in state.items() if v is not None}
    path = tmp_path / name
    write_safetensors(path, state, {"ich.spec": model.spec})
    return path


def load_weights(model, path, strict):
    lib.ich_model_load_weights.restype = ctypes.c_int
    lib.ich_model_load_weights.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    return lib.ich_model_load_weights(model._handle, os.fsencode(path), strict)


@pytest.mark.parametrize("mangle, error", [
    (lambda b: b[:5], ich.FormatError),                           # too short
    (lambda b: b[:len(b) // 2], ich.FormatError),                 # truncated
    (lambda b: struct.pack("<Q", 10 ** 9) + b[8:], ich.FormatError),  # header beyond the file
    (lambda b: b[:8] + b"[" + b[9:], ich.FormatError),            # not a JSON object
    (lambda b: b + b"\0\0\0\0", ich.FormatError),                 # bytes nobody owns
    (lambda b: b.replace(b'"F32"', b'"F31"', 1), ich.FormatError),  # unknown dtype
])
def test_corrupt_files(tmp_path, mangle, error):
    path = small_file(tmp_path)
    path.write_bytes(mangle(path.read_bytes()))
    with pytest.raises(error) as info:
        ich.Model.load(path)
    assert str(path) in str(info.value)


def test_mismatched_files(tmp_path):
    model = ich.Model(SMALL)
    bad = small_file(tmp_path, "shape.safetensors",
                     **{"conv1.weight": np.zeros((2, 1, 9), np.float32)})
    with pytest.raises(ich.ShapeError, match="conv1.weight"):
        ich.Model.load(bad)
    bad = small_file(tmp_path, "dtype.safetensors", **{"fc1.bias": np.zeros(3, np.float64)})
    with pytest.raises(ich.ShapeError, match="F64"):
        ich.Model.load(bad)
    bad = small_file(tmp_path, "missing.safetensors", **{"fc1.bias": None})
    with pytest.raises(ich.NotFoundError, match="fc1.bias"):
        ich.Model.load(bad)
    extra = small_file(tmp_path, "extra.safetensors", **{"zz": np.ones(2, np.float32)})
    with pytest.raises(ich.ShapeError, match="zz"):
        ich.Model.load(extra)
    before = model.state_dict()
    assert load_weights(model, extra, 1) == ich.ERR_SHAPE
    for name, array in model.state_dict().items():  # nothing half-loaded
        np.testing.assert_array_equal(array, before[name])
    assert load_weights(model, extra, 0) == ich.OK
    # no spec: only load_weights can read it
    nospec = tmp_path / "nospec.safetensors"
    write_safetensors(nospec, model.state_dict(), {"format": "pt"})
    with pytest.raises(ich.FormatError, match="ich.spec"):
        ich.Model.load(nospec)
    assert load_weights(model, nospec, 1) == ich.OK


def test_failed_save_keeps_the_old_file(tmp_path):
    model = ich.Model(SMALL)
    target = tmp_path / "keep.safetensors"
    target.write_bytes(b"old")
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ich.IchIOError) as info:
        model.save(folder)
    assert str(folder) in str(info.value)
    with pytest.raises(ich.IchIOError):
        model.save(tmp_path / "missing" / "x.safetensors")
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["folder", "keep.safetensors"]


def test_python_checkpoint_round_trip_continues_the_run(tmp_path):
    """ich.checkpoint_save / checkpoint_load: one Adam step after loading
    equals the step the original would have taken."""
    spec = "input 1x4x4, flatten, linear 3"
    x = np.random.default_rng(1).standard_normal((2, 1, 4, 4)).astype(np.float32)

    def step(model, opt):
        model.train()
        model.zero_grad()
        logits = model.forward(x)
        model.backward(np.ones_like(logits) / logits.size)
        opt.step()

    a = ich.Model(spec)
    opt_a = ich.Optimizer(a, "adam", lr=0.01)
    step(a, opt_a)
    ich.checkpoint_save(tmp_path / "c.safetensors", a, opt_a, {"ich.epoch": "1"})
    b = ich.Model(spec)
    opt_b = ich.Optimizer(b, "adam", lr=0.5)
    ich.checkpoint_load(tmp_path / "c.safetensors", b, opt_b)
    assert b.metadata["ich.epoch"] == "1" and opt_b.steps == 1 and opt_b.lr == 0.01
    step(a, opt_a)
    step(b, opt_b)
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[name], value)
    c = ich.Model(spec)
    c.load_weights(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(c.state_dict()["fc1.weight"],
                                  ich.Model.load(tmp_path / "c.safetensors").state_dict()["fc1.weight"])
