"""examples/tutorial (the tutorial's steps 5-9 in C) and ich-train's
tutorial preset use the tutorial's preprocessing, their checkpoints carry
it, and ich-predict then feeds the network what the tutorial's own numpy
and PIL code makes of a slice (issue 11)."""
import csv
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
TUTORIAL = BUILD / "examples" / "tutorial" / "tutorial"
TRAIN = BUILD / "examples" / "ich-train"
PREDICT = BUILD / "examples" / "ich-predict"
PHANTOM = BUILD / "examples" / "ich-phantom"
LABELS = "any,epidural,intraparenchymal,intraventricular,subarachnoid,subdural"

pytestmark = pytest.mark.skipif(not TUTORIAL.exists(), reason="examples not built")


def run(*args, cwd=None):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd)


def metadata(path):
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length])["__metadata__"]


def tutorial_input(hu, size):
    """The tutorial's preprocessing as it writes it."""
    from PIL import Image
    img = (hu - hu.min()) / (hu.max() - hu.min() + 1e-5)
    pil = Image.fromarray((img * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    return (np.asarray(pil).astype(np.float32) / 255 - np.float32(0.38)) / np.float32(0.236)


@pytest.mark.parametrize("size", [0, 64, 67])
def test_sizes_the_convnet_cannot_take_are_refused(tmp_path, size):
    result = run(TUTORIAL, tmp_path / "data", "--size", size, "--epochs", 0)
    assert result.returncode == 2
    assert "--size must be 68..1024" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before writing anything


def test_checkpoint_carries_recipe_and_labels(tmp_path):
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    ich = pytest.importorskip("ich")
    result = run(TUTORIAL, tmp_path / "data", "--size", 68, "--epochs", 1, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    checkpoint = tmp_path / "tutorial.safetensors"
    meta = metadata(checkpoint)
    assert meta["ich.labels"] == LABELS
    assert meta["ich.recipe"] == ("windows=none;mode=minmax;size=68x68;resize=antialias;"
                                  "quantize=1;mean=0.38;std=0.236;neighbors=0")
    # ich-predict gives the network the tutorial's input for these slices
    files = sorted((tmp_path / "data" / "images").glob("*.dcm"))[:5]
    out = tmp_path / "p.csv"
    result = run(PREDICT, checkpoint, *files[:1], "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    model = ich.Model.load(checkpoint)
    for f in files[:1]:
        want = model.predict(tutorial_input(ich.read_dicom(f).hu, 68)[None, None])
        with open(out, newline="") as fh:
            got = np.array(list(csv.reader(fh))[1][1:], np.float64)
        np.testing.assert_allclose(got, want[0], atol=1e-6)


def test_ich_train_tutorial_preset_uses_the_tutorials_recipe(tmp_path):
    """--model tutorial without recipe options: raw min-max, the uint8 step,
    antialiased resize to 512, Normalize(0.380, 0.236)."""
    folder = tmp_path / "phantom"
    assert run(PHANTOM, folder, "--patients", 2, "--slices", 2, "--size", 32,
               "--quiet").returncode == 0
    result = run(TRAIN, folder / "labels.csv", folder / "images", "--model", "tutorial",
                 "--epochs", 0, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert ("input recipe windows=none;mode=minmax;size=512x512;resize=antialias;quantize=1;"
            "mean=0.38;std=0.236;neighbors=0") in result.stderr
    # a size the preset cannot take is bad usage, naming both shapes
    result = run(TRAIN, folder / "labels.csv", folder / "images", "--model", "tutorial",
                 "--size", 256, "--epochs", 0, "--out", tmp_path / "run")
    assert result.returncode == 2
    assert "1x256x256" in result.stderr and "1x512x512" in result.stderr
