"""The demo's pipeline, end to end, on a small phantom: every example
program in the order scripts/demo.sh runs them (phantom, labels, sample,
select, split, preprocess, augment, train, evaluate, predict), checking
what each hands to the next. Small sizes keep it to a few seconds; the
real demo (scripts/demo.sh) is the same chain at full size."""

import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
BIN = BUILD / "examples"
SPEC = "input 3x64x64, conv 8 3 pad 1, batchnorm, relu, maxpool 2, conv 16 3 pad 1, relu, " \
       "maxpool 4, flatten, linear 6"


def run(*args):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, "%s\n%s\n%s" % (args, result.stdout, result.stderr)
    return result.stdout


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.skipif(not (BIN / "ich-evaluate").exists(), reason="examples not built")
def test_the_demo_chain_end_to_end(tmp_path):
    out = tmp_path
    run(BIN / "ich-phantom", out / "phantom", "--patients", 12, "--slices", 6, "--size", 64,
        "--prevalence", 0.8, "--seed", 3, "--quiet")
    run(BIN / "ich-labels", "pivot", out / "phantom/labels.csv", out / "labels.csv", "--quiet")
    assert len(rows(out / "labels.csv")) == 72
    run(BIN / "ich-labels", "sample", out / "labels.csv", out / "sampled.csv",
        "--per-label", 40, "--seed", 3, "--quiet")
    sampled = rows(out / "sampled.csv")
    run(BIN / "ich-select", out / "sampled.csv", out / "phantom/images", out / "selected",
        "--link", "--quiet")
    assert len(rows(out / "selected/labels.csv")) == len(sampled)
    run(BIN / "ich-split", out / "selected/labels.csv", out / "split", "--groups-from-dicom",
        out / "selected", "--seed", 3, "--ratios", "0.6,0.2,0.2", "--quiet")
    parts = {p: rows(out / "split" / (p + ".csv")) for p in ("train", "val", "test")}
    assert sum(len(r) for r in parts.values()) == len(sampled)
    patients = {p: {r["patient"] for r in parts[p]} for p in parts}
    assert not (patients["train"] & patients["test"]) and not (patients["val"] & patients["test"])
    run(BIN / "ich-preprocess", out / "selected", out / "png", "--size", 64, "--quiet")
    run(BIN / "ich-augment", out / "split/train.csv", out / "png", out / "png", "--seed", 3,
        "--target", 20, "--out-csv", out / "split/train_augmented.csv", "--quiet")
    run(BIN / "ich-train", out / "split/train_augmented.csv", out / "png", "--val",
        out / "split/val.csv", "--model", SPEC, "--epochs", 2, "--balanced", "--seed", 3,
        "--out", out / "model", "--quiet")
    history = rows(out / "model/history.csv")
    assert len(history) == 2
    run(BIN / "ich-evaluate", out / "model/best.safetensors", out / "split/test.csv",
        out / "selected", out / "report", "--quiet")
    metrics = json.loads((out / "report/metrics.json").read_text())
    names = [c["name"] for c in metrics["classes"]]
    assert names[0] == "any" and len(names) == 6
    for svg in (out / "report").glob("*.svg"):
        ET.parse(svg)
    predictions = rows(out / "report/predictions.csv")
    assert {r["ID"] for r in predictions} == {r["ID"] for r in parts["test"]}
    run(BIN / "ich-predict", out / "model/best.safetensors", out / "selected", "--format",
        "rsna", "--out", out / "rsna.csv", "--quiet")
    rsna = rows(out / "rsna.csv")
    assert len(rsna) == 6 * len(sampled)
    assert all(r["ID"].startswith("ID_") and not r["ID"].startswith("ID_ID_") for r in rsna)
    assert all(0.0 <= float(r["Label"]) <= 1.0 for r in rsna)
    # the tutorial's steps 10-11 in Python give the report's AUCs
    env = dict(os.environ, ICH_BUILD_DIR=str(BUILD))
    example = ROOT / "bindings/python/examples/evaluate_model.py"
    one = sorted((out / "selected").glob("*.dcm"))[0]
    text = subprocess.run([sys.executable, str(example), str(out / "model/best.safetensors"),
                           str(out / "split/test.csv"), str(out / "selected"), str(one)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert text.returncode == 0, text.stderr
    assert "RSNA weighted log loss" in text.stdout and one.stem in text.stdout
    for c in metrics["classes"]:
        line = next(l for l in text.stdout.splitlines() if l.startswith(c["name"] + " "))
        shown = line.split()[-1]
        assert shown == ("n/a" if c["auc"] is None else "%.3f" % c["auc"]), (line, c)
