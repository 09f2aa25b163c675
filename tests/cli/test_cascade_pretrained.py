"""The pipeline's cascade end to end (issue 14, "Done when"): torchvision's
efficientnet_v2_m and convnext_tiny (ImageNet-shaped, 1000 classes, random
weights: nothing can be downloaded here) saved as .pth, converted with
ich.pretrained, loaded as the two stages of the default cascade preset by
ich-train --pretrained, trained stage by stage on phantom data, then
ich-evaluate writes its report.

Small input (64 x 64) and a handful of slices keep it to seconds; the
networks are the full-depth defaults."""
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
EXAMPLES = BUILD / "examples"

pytestmark = pytest.mark.skipif(not (EXAMPLES / "ich-train").exists(),
                                reason="examples not built")


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


def tensors(path):
    """{name: array} of a safetensors file's F32 tensors (read here, not by libich)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                             "<f4").reshape(v["shape"])
            for k, v in header.items() if v["dtype"] == "F32"}


def test_cascade_from_converted_torchvision_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    os.environ.setdefault("ICH_BUILD_DIR", str(BUILD))
    from ich.pretrained import convert_pytorch_checkpoint

    data = tmp_path / "phantom"
    result = run(EXAMPLES / "ich-phantom", data, "--patients", 4, "--slices", 6, "--size", 64,
                 "--seed", 3, "--prevalence", 0.5, "--threads", 2, "--quiet")
    assert result.returncode == 0, result.stderr

    torch.manual_seed(0)
    stages = {"any": ("efficientnet_v2_m", "classifier.1"),
              "subtype": ("convnext_tiny", "classifier.2")}
    converted = {}
    for stage, (name, _) in stages.items():
        pth = tmp_path / ("%s.pth" % name)
        torch.save(getattr(torchvision.models, name)(num_classes=1000).state_dict(), str(pth))
        converted[stage] = tmp_path / ("%s.safetensors" % name)
        convert_pytorch_checkpoint(pth, converted[stage])

    out = tmp_path / "model"
    # one epoch per stage, all of it warm-up: only the heads learn, so the
    # trained backbones must still hold the converted weights exactly
    result = run(EXAMPLES / "ich-train", data / "labels.csv", data / "images",
                 "--model", "cascade input 3x64x64", "--stage-epochs", "1,1",
                 "--warmup-epochs", 1, "--batch-size", 8, "--threads", 2, "--out", out,
                 "--pretrained", "any=%s" % converted["any"],
                 "--pretrained", "subtype=%s" % converted["subtype"])
    assert result.returncode == 0, result.stderr
    for stage, (_, head) in stages.items():
        line = [l for l in result.stdout.splitlines()
                if l.startswith("pretrained %s into %s:" % (converted[stage], stage))]
        assert len(line) == 1, result.stdout
        assert ("2 skipped (%s.weight, %s.bias), 2 new (%s.%s.weight, %s.%s.bias)"
                % (head, head, stage, head, stage, head)) in line[0]
    assert "stage 1/2 (any)" in result.stdout and "stage 2/2 (subtypes)" in result.stdout

    trained = tensors(out / "last.safetensors")
    for stage, (_, head) in stages.items():
        source = tensors(converted[stage])
        weights = [k for k in source if not k.startswith(head) and
                   not k.endswith(("running_mean", "running_var"))]
        assert len(weights) > 100
        for k in weights:
            np.testing.assert_array_equal(trained["%s.%s" % (stage, k)], source[k], err_msg=k)
    assert trained["any.classifier.1.weight"].shape == (1, 1280)
    assert trained["subtype.classifier.2.weight"].shape == (5, 768)

    report = tmp_path / "report"
    result = run(EXAMPLES / "ich-evaluate", out / "best.safetensors", data / "labels.csv",
                 data / "images", report, "--threads", 2)
    assert result.returncode == 0, result.stderr
    for name in ["report.html", "metrics.json", "metrics.csv", "predictions.csv", "roc.svg"]:
        assert (report / name).is_file(), name
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["samples"] == 24 and metrics["rows_left_out"] == 0
    # a model whose heads trained one epoch stays near log(2) per label
    # (the report's losses come from ungated probabilities)
    assert 0.3 < metrics["overall"]["bce"] < 1.0
