"""Pretrained weights (issue 14 item 3): PyTorch checkpoints converted by
ich.pretrained, loaded by Model.load_pretrained (ich_model_load_pretrained).

The reference is PyTorch itself: randomly initialised torchvision networks
with ImageNet's 1000-class head, saved with torch.save as .pth files (real
pretrained files cannot be downloaded here), and timm state_dicts rebuilt
with random values from the names and shapes in tests/data/timm/ (made
once from timm; timm itself is not needed)."""
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

import ich
from ich.pretrained import convert_pytorch_checkpoint

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

HERE = os.path.dirname(os.path.abspath(__file__))
TIMM = os.path.join(HERE, "..", "..", "..", "tests", "data", "timm")
CASCADE = ("input 3x64x64, cascade(any: conv 8 3, relu, gap, flatten, linear 1 | "
           "subtype: conv 8 3, relu, gap, flatten, linear 5)")


def save_pth(path, obj):
    torch.save(obj, str(path))
    return path


def convert(tmp_path, obj, name="net", **kwargs):
    src = save_pth(tmp_path / (name + ".pth"), obj)
    dst = tmp_path / (name + ".safetensors")
    return convert_pytorch_checkpoint(src, dst, **kwargs), dst


def timm_state(name, seed=0):
    """A state_dict with timm's names and shapes for `name`, random values."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    with open(os.path.join(TIMM, name + ".txt")) as f:
        for line in f:
            if line.startswith("#"):
                continue
            key, dtype, shape = line.split()
            dims = [] if shape == "scalar" else [int(d) for d in shape.split("x")]
            if dtype == "int64":
                state[key] = torch.tensor(7, dtype=torch.int64)
            else:
                state[key] = torch.randn(dims, generator=g)
    return state


def torch_logits(net, x):
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("arch,head", [("resnet18", "fc"), ("convnext_tiny", "classifier.2")])
def test_torchvision_backbone_loads_with_a_fresh_head(tmp_path, arch, head):
    torch.manual_seed(1)
    net = getattr(torchvision.models, arch)(num_classes=1000)
    report, dst = convert(tmp_path, net.state_dict(), arch)
    assert report.source == "torchvision" and not report.renamed and not report.dropped
    model = ich.Model.preset(arch, size=64, outputs=6)
    before = model.state_dict()
    loaded = model.load_pretrained(dst)
    heads = [head + ".weight", head + ".bias"]
    # the ImageNet head is skipped, the model's 6-output head is new and kept
    assert sorted(loaded.skipped) == sorted(heads)
    assert "1000" in loaded.skipped[head + ".weight"]
    assert sorted(loaded.fresh) == sorted(heads)
    assert len(loaded.loaded) == len(before) - 2
    after = model.state_dict()
    reference = net.state_dict()
    assert after[head + ".weight"].shape == (6, reference[head + ".weight"].shape[1])
    for name in heads:
        np.testing.assert_array_equal(after[name], before[name])
    for name in loaded.loaded:
        np.testing.assert_array_equal(after[name], reference[name].numpy(), err_msg=name)
    # the features are torchvision's: with the same 6-output head, the same logits
    features = getattr(net, "fc", None) or net.classifier[2]
    replacement = torch.nn.Linear(features.in_features, 6)
    with torch.no_grad():
        replacement.weight.copy_(torch.from_numpy(after[head + ".weight"]))
        replacement.bias.copy_(torch.from_numpy(after[head + ".bias"]))
    if arch == "resnet18":
        net.fc = replacement
    else:
        net.classifier[2] = replacement
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    expected = torch_logits(net, x)
    got = model.eval().forward(x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("name,preset,head", [
    ("resnet18", "resnet18", "fc"),
    ("resnet50", "resnet50", "fc"),
    ("convnext_tiny", "convnext_tiny", "classifier.2"),
    ("convnext_small", "convnext_small", "classifier.2"),
    ("tf_efficientnetv2_s", "efficientnet_v2_s", "classifier.1"),
    ("tf_efficientnetv2_m", "efficientnet_v2_m", "classifier.1"),
])
def test_timm_checkpoints_convert_and_load_fully(tmp_path, name, preset, head):
    state = timm_state(name)
    # as timm's training scripts save them: wrapped, from DataParallel
    wrapped = {"epoch": 3, "arch": name,
               "state_dict": {"module." + k: v for k, v in state.items()}}
    report, dst = convert(tmp_path, wrapped, name, source="timm")
    assert report.source == "timm" and report.container == "state_dict"
    assert report.stripped == ["module."] and not report.dropped
    assert report.tensors == len(state)
    model = ich.Model.preset(preset, size=32, outputs=6)
    loaded = model.load_pretrained(dst)
    assert sorted(loaded.skipped) == [head + ".bias", head + ".weight"]
    assert sorted(loaded.fresh) == [head + ".bias", head + ".weight"]
    assert len(loaded.loaded) == len(model.state_dict()) - 2
    values = model.state_dict()
    # the values went where the mapping says
    for old, new in report.renamed.items() if report.renamed else [(k, k) for k in state]:
        if new in loaded.loaded:
            np.testing.assert_array_equal(values[new].ravel(), state[old].numpy().ravel(),
                                          err_msg="%s -> %s" % (old, new))
    if name.startswith("convnext"):
        assert report.renamed["stages.1.blocks.0.mlp.fc1.weight"] == "features.3.0.block.3.weight"
        assert report.renamed["stages.2.downsample.1.weight"] == "features.4.1.weight"
        assert report.renamed["stages.0.blocks.2.gamma"] == "features.1.2.layer_scale"
        assert values["features.1.2.layer_scale"].shape == (96, 1, 1)
    if name.startswith("tf_"):
        assert report.architecture == preset and any("padding" in n for n in report.notes)


def test_cascade_stage_prefix(tmp_path):
    """A backbone file fills one named stage of a cascade; the other stage
    and the stage's head are left alone."""
    g = torch.Generator().manual_seed(3)
    backbone = {"conv1.weight": torch.randn(8, 3, 3, 3, generator=g),
                "conv1.bias": torch.randn(8, generator=g),
                "fc1.weight": torch.randn(1000, 8, generator=g),
                "fc1.bias": torch.randn(1000, generator=g)}
    report, dst = convert(tmp_path, backbone, "tiny")
    assert report.source == "unknown"
    model = ich.Model(CASCADE)
    before = model.state_dict()
    loaded = model.load_pretrained(dst, prefix="any.")
    assert loaded.loaded == ["any.conv1.weight", "any.conv1.bias"]
    assert sorted(loaded.skipped) == ["fc1.bias", "fc1.weight"]
    assert list(loaded.fresh) == ["any.fc1.weight", "any.fc1.bias"]
    after = model.state_dict()
    np.testing.assert_array_equal(after["any.conv1.weight"], backbone["conv1.weight"].numpy())
    for name in before:
        if not name.startswith("any.conv1."):
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    loaded = model.load_pretrained(dst, prefix="subtype.")
    assert loaded.loaded == ["subtype.conv1.weight", "subtype.conv1.bias"]
    np.testing.assert_array_equal(model.state_dict()["subtype.conv1.bias"],
                                  backbone["conv1.bias"].numpy())
    # a prefix no model tensor has
    with pytest.raises(ich.NotFoundError, match="starts with"):
        model.load_pretrained(dst, prefix="stage3.")
    # without the prefix nothing fits: named, both sides
    with pytest.raises(ich.ShapeError) as info:
        model.load_pretrained(dst)
    assert str(dst) in str(info.value) and "conv1.weight" in str(info.value)
    assert "any.conv1.weight" in str(info.value)


def test_stem_summed_for_grayscale(tmp_path):
    torch.manual_seed(2)
    net = torchvision.models.resnet18(num_classes=1000)
    _, dst = convert(tmp_path, net.state_dict(), "r18")
    model = ich.Model.preset("resnet18", channels=1, size=64, outputs=6)
    loaded = model.load_pretrained(dst)
    assert loaded.summed == ["conv1.weight"]
    np.testing.assert_allclose(model.state_dict()["conv1.weight"],
                               net.conv1.weight.detach().sum(1, keepdim=True).numpy(),
                               rtol=1e-6, atol=1e-7)


def test_log_lines(tmp_path):
    torch.manual_seed(4)
    _, dst = convert(tmp_path, torchvision.models.resnet18(num_classes=1000).state_dict())
    lines = []
    ich.set_log_callback(lambda level, message: lines.append((level, message)), "info")
    try:
        ich.Model.preset("resnet18", size=32).load_pretrained(dst)
    finally:
        ich.set_log_callback(None)
    info = [m for level, m in lines if level == ich.LOG_INFO]
    assert any(m.endswith("loaded layer4.1.bn2.running_var") for m in info)
    assert any("skipped fc.weight (shape [1000, 512] in the file" in m for m in info)
    assert any("new fc.bias (the file's has shape [1000])" in m for m in info)
    warnings = [m for level, m in lines if level == ich.LOG_WARNING]
    assert warnings == ['pretrained %s: 120 tensors loaded, 2 skipped ("fc.weight", '
                        '"fc.bias"), 2 new ("fc.weight", "fc.bias")' % dst]


# ---- errors: all or nothing --------------------------------------------------

def test_wrong_network_is_refused(tmp_path):
    torch.manual_seed(5)
    _, dst = convert(tmp_path, torchvision.models.resnet18(num_classes=1000).state_dict())
    model = ich.Model.preset("convnext_tiny", size=32)
    before = model.state_dict()
    with pytest.raises(ich.ShapeError) as info:
        model.load_pretrained(dst)
    message = str(info.value)
    assert str(dst) in message and "another network" in message
    assert "bn1.bias" in message and "features.0.0.weight" in message
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def _write_raw_safetensors(path, entries):
    """entries: [(name, dtype, shape, bytes)]."""
    import json
    header, offset, blobs = {}, 0, []
    for name, dtype, shape, blob in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def test_corrupt_nonfinite_and_half_files_are_refused(tmp_path):
    torch.manual_seed(6)
    _, good = convert(tmp_path, torchvision.models.resnet18(num_classes=1000).state_dict())
    model = ich.Model.preset("resnet18", size=32)
    before = model.state_dict()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ich.FormatError, match="truncated"):
        model.load_pretrained(truncated)
    conv = np.ones((64, 3, 7, 7), np.float32)
    conv[0, 0, 0, 0] = np.nan
    nan = _write_raw_safetensors(tmp_path / "nan.safetensors", [
        ("bn1.weight", "F32", [64], np.ones(64, "<f4").tobytes()),
        ("conv1.weight", "F32", [64, 3, 7, 7], conv.astype("<f4").tobytes())])
    with pytest.raises(ich.FormatError, match="conv1.weight.*NaN"):
        model.load_pretrained(nan)
    half = _write_raw_safetensors(tmp_path / "half.safetensors", [
        ("bn1.weight", "F16", [64], np.ones(64, "<f2").tobytes())])
    with pytest.raises(ich.ShapeError, match="F16"):
        model.load_pretrained(half)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_converter_refuses_what_is_not_a_state_dict(tmp_path):
    with pytest.raises(ich.FormatError, match="not a tensor"):
        convert(tmp_path, {"state_dict": {"conv1.weight": torch.ones(2), "schedule": "cosine"}}, "a")
    with pytest.raises(ich.FormatError, match="not a state_dict but a list"):
        convert(tmp_path, [torch.ones(2)], "b")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(ich.FormatError, match="torch cannot read"):
        convert_pytorch_checkpoint(garbage, tmp_path / "g.safetensors")
    with pytest.raises(ich.IchIOError):
        convert_pytorch_checkpoint(tmp_path / "missing.pth", tmp_path / "m.safetensors")
    assert not list(tmp_path.glob("*.safetensors"))


class _Payload:
    """Unpickling this would create a file: weights_only must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_converter_never_runs_code_from_the_file(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": _Payload(str(marker))}, str(src))
    assert not marker.exists()
    with pytest.raises(ich.FormatError, match="torch cannot read"):
        convert_pytorch_checkpoint(src, tmp_path / "evil.safetensors")
    assert not marker.exists()
    # a plain pickle too
    src.write_bytes(pickle.dumps({"w": _Payload(str(marker))}))
    with pytest.raises(ich.FormatError):
        convert_pytorch_checkpoint(src, tmp_path / "evil.safetensors")
    assert not marker.exists()


def test_converter_dtypes_and_containers(tmp_path):
    state = {"conv.weight": torch.ones(2, 3, dtype=torch.float16),
             "bn.running_mean": torch.zeros(2, dtype=torch.float64),
             "bn.num_batches_tracked": torch.tensor(5),
             "index": torch.arange(4)}
    report, dst = convert(tmp_path, {"model_ema": state, "model": dict(state)}, "ema",
                          ema=True)
    assert report.container == "model_ema"
    assert report.converted == {"conv.weight": "float16", "bn.running_mean": "float64"}
    assert list(report.dropped) == ["index"]
    import json
    raw = dst.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert header["conv.weight"]["dtype"] == "F32"
    assert header["bn.num_batches_tracked"] == {"dtype": "I64", "shape": [],
                                                "data_offsets": header[
                                                    "bn.num_batches_tracked"]["data_offsets"]}
    assert "index" not in header and header["__metadata__"]["format"] == "pt"
    report, _ = convert(tmp_path, {"model": state}, "plain")
    assert report.container == "model"
    with pytest.raises(ich.InvalidArgumentError, match="names are timm"):
        convert(tmp_path, timm_state("convnext_tiny"), "cx", source="torchvision")


def test_command_line(tmp_path):
    torch.manual_seed(7)
    src = save_pth(tmp_path / "r.pth", torchvision.models.resnet18(num_classes=1000).state_dict())
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    result = subprocess.run([sys.executable, "-m", "ich.pretrained", str(src),
                             str(tmp_path / "r.safetensors")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "122 tensors (torchvision, resnet)" in result.stdout
    result = subprocess.run([sys.executable, "-m", "ich.pretrained", str(tmp_path / "none.pth"),
                             str(tmp_path / "x.safetensors")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "none.pth" in result.stderr
    assert "Traceback" not in result.stderr
