"""bindings/python/examples/finetune_pretrained.py (issue 14 item 6) on a
small demo chain (phantom, preprocess to PNG, split): a torchvision
resnet18 saved as .pth with random weights ("random") is converted, loaded
under a fresh head, warmed up with the backbone frozen, fine-tuned at a
tenth of the learning rate, and the report is written."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
BIN = BUILD / "examples"
EXAMPLE = ROOT / "bindings/python/examples/finetune_pretrained.py"


def run(*args, **kw):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=600, **kw)
    assert result.returncode == 0, "%s\n%s\n%s" % (args, result.stdout, result.stderr)
    return result.stdout


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.skipif(not (BIN / "ich-preprocess").exists(), reason="examples not built")
def test_finetune_example(tmp_path):
    pytest.importorskip("torchvision")
    out = tmp_path
    run(BIN / "ich-phantom", out / "phantom", "--patients", 8, "--slices", 4, "--size", 64,
        "--prevalence", 0.6, "--seed", 4, "--quiet")
    run(BIN / "ich-labels", "pivot", out / "phantom/labels.csv", out / "labels.csv", "--quiet")
    run(BIN / "ich-split", out / "labels.csv", out / "split", "--groups-from-dicom",
        out / "phantom/images", "--seed", 4, "--ratios", "0.5,0.25,0.25", "--quiet")
    run(BIN / "ich-preprocess", out / "phantom/images", out / "png", "--size", 64, "--quiet")
    env = dict(os.environ, ICH_BUILD_DIR=str(BUILD))
    text = run(sys.executable, EXAMPLE, "random", out / "split/train.csv",
               out / "split/val.csv", out / "split/test.csv", out / "png",
               out / "phantom/images", out / "run", "--model", "resnet18", "--epochs", 2,
               "--batch-size", 8, env=env)
    assert "random: 120 tensors loaded, 2 skipped (fc.weight, fc.bias), 2 new" in text, text
    history = rows(out / "run/warmup/history.csv") + rows(out / "run/history.csv")
    assert [float(r["lr"]) for r in history] == pytest.approx([1e-3, 1e-4])
    metrics = json.loads((out / "run/report/metrics.json").read_text())
    assert metrics["samples"] == len(rows(out / "split/test.csv"))
    # the checkpoint records ImageNet's normalisation in its recipe
    raw = (out / "run/best.safetensors").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    recipe = header["__metadata__"]["ich.recipe"]
    assert "mean=0.485,0.456,0.406" in recipe and "std=0.229,0.224,0.225" in recipe, recipe
