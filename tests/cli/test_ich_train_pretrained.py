"""ich-train --pretrained [STAGE=]FILE (issue 14 item 3) on a tiny phantom:
the backbone's tensors are loaded, the head is new, and the program says
which."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
PHANTOM = BUILD / "examples" / "ich-phantom"
TRAIN = BUILD / "examples" / "ich-train"

pytestmark = pytest.mark.skipif(not TRAIN.exists(), reason="examples not built")

BODY = "conv 8 3 pad 1, batchnorm, relu, maxpool 2, conv 16 3 pad 1, relu, maxpool 16, flatten"
SPEC = "input 3x32x32, %s, linear 6" % BODY
CASCADE = ("input 3x32x32, cascade(any: conv 8 3, relu, gap, flatten, linear 1 | "
           "subtype: conv 8 3, relu, gap, flatten, linear 5)")


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def ich():
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    os.environ.setdefault("ICH_BUILD_DIR", str(BUILD))
    return pytest.importorskip("ich")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    result = run(PHANTOM, folder, "--patients", 3, "--slices", 8, "--size", 32, "--seed", 2,
                 "--prevalence", 1, "--threads", 2, "--quiet")
    assert result.returncode == 0, result.stderr
    return folder


def tensors(path):
    """{name: array} of a safetensors file's F32 tensors."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                             "<f4").reshape(v["shape"])
            for k, v in header.items() if v["dtype"] == "F32"}


def train(phantom, out, *extra):
    return run(TRAIN, phantom / "labels.csv", phantom / "images", "--batch-size", 8,
               "--threads", 1, "--out", out, *extra)


def test_backbone_loaded_head_new(ich, phantom, tmp_path):
    backbone = ich.Model("input 3x32x32, %s, linear 1000" % BODY)
    backbone.init_weights(5)
    backbone.save(tmp_path / "backbone.safetensors")
    # warm-up trains only the head, so the loaded convolution stays as loaded
    result = train(phantom, tmp_path / "run", "--model", SPEC, "--epochs", 1,
                   "--warmup-epochs", 1, "--pretrained", tmp_path / "backbone.safetensors")
    assert result.returncode == 0, result.stderr
    assert ("pretrained %s: 9 tensors loaded, 2 skipped (fc1.weight, fc1.bias), 2 new "
            "(fc1.weight, fc1.bias)" % (tmp_path / "backbone.safetensors")) in result.stdout
    trained = tensors(tmp_path / "run" / "last.safetensors")
    np.testing.assert_array_equal(trained["conv1.weight"],
                                  backbone.state_dict()["conv1.weight"])
    assert trained["fc1.weight"].shape == (6, 16)


def test_cascade_stages(ich, phantom, tmp_path):
    stage = ich.Model("input 3x32x32, conv 8 3, relu, gap, flatten, linear 1000")
    stage.init_weights(6)
    stage.save(tmp_path / "stage.safetensors")
    result = train(phantom, tmp_path / "run", "--model", CASCADE, "--epochs", 1,
                   "--pretrained", "any=%s" % (tmp_path / "stage.safetensors"),
                   "--pretrained", "subtype=%s" % (tmp_path / "stage.safetensors"))
    assert result.returncode == 0, result.stderr
    for name in ("any", "subtype"):
        assert ("pretrained %s into %s: 2 tensors loaded, 2 skipped (fc1.weight, fc1.bias), "
                "2 new (%s.fc1.weight, %s.fc1.bias)"
                % (tmp_path / "stage.safetensors", name, name, name)) in result.stdout


def test_torchvision_preset(ich, phantom, tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from ich.pretrained import convert_pytorch_checkpoint
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(),
               str(tmp_path / "r18.pth"))
    convert_pytorch_checkpoint(tmp_path / "r18.pth", tmp_path / "r18.safetensors")
    result = train(phantom, tmp_path / "run", "--model", "resnet18 input 3x32x32",
                   "--epochs", 1, "--pretrained", tmp_path / "r18.safetensors")
    assert result.returncode == 0, result.stderr
    assert ("120 tensors loaded, 2 skipped (fc.weight, fc.bias), 2 new (fc.weight, fc.bias)"
            in result.stdout)
    assert tensors(tmp_path / "run" / "last.safetensors")["fc.weight"].shape == (6, 512)


def test_refusals(ich, phantom, tmp_path):
    other = ich.Model("input 3x32x32, conv 4 5, relu, gap, flatten, linear 1000")
    other.save(tmp_path / "other.safetensors")
    result = train(phantom, tmp_path / "run", "--model", SPEC, "--epochs", 1,
                   "--pretrained", tmp_path / "other.safetensors")
    assert result.returncode == 1
    assert "other.safetensors" in result.stderr and "another network" in result.stderr
    result = train(phantom, tmp_path / "run", "--resume", tmp_path / "x.safetensors",
                   "--pretrained", tmp_path / "other.safetensors")
    assert result.returncode == 2 and "--resume" in result.stderr
