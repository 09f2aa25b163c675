"""End-to-end tests of the ich-train example program on a tiny phantom
(32 x 32 slices made by ich-phantom) and a small model spec."""
import csv
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

BUILD = Path(os.environ.get("ICH_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
PHANTOM = BUILD / "examples" / "ich-phantom"
TRAIN = BUILD / "examples" / "ich-train"

pytestmark = pytest.mark.skipif(not TRAIN.exists(), reason="examples not built")

SPEC = ("input 3x32x32, conv 8 3 pad 1, batchnorm, relu, maxpool 2, conv 16 3 pad 1, relu, "
        "maxpool 16, flatten, linear 6")
COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    result = run(PHANTOM, folder, "--patients", 3, "--slices", 8, "--size", 32, "--seed", 2,
                 "--prevalence", 1, "--threads", 2, "--quiet")
    assert result.returncode == 0, result.stderr
    return folder


def metadata(path):
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length])["__metadata__"]


def history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def train(phantom, out, *extra):
    return run(TRAIN, phantom / "labels.csv", phantom / "images", "--val", phantom / "labels.csv",
               "--model", SPEC, "--batch-size", 8, "--lr", 0.003, "--threads", 1,
               "--out", out, *extra)


def test_trains_and_writes_checkpoints_and_history(phantom, tmp_path):
    out = tmp_path / "run"
    result = train(phantom, out, "--epochs", 3, "--balanced", "--warmup-epochs", 1)
    assert result.returncode == 0, result.stderr
    # a progress bar with loss, accuracy and ETA; a summary line per epoch
    assert "ETA" in result.stderr and "loss" in result.stderr and "acc" in result.stderr
    lines = [l for l in result.stdout.splitlines() if l.startswith("epoch ")]
    assert [l.split()[1] for l in lines] == ["1/3", "2/3", "3/3"]
    assert all("val loss" in l for l in lines)
    rows = history(out / "history.csv")
    assert list(rows[0].keys()) == COLUMNS
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for r in rows:
        assert 0 <= float(r["train_accuracy"]) <= 1 and 0 <= float(r["val_accuracy"]) <= 1
        assert float(r["train_loss"]) > 0 and float(r["lr"]) == pytest.approx(0.003)
    meta = metadata(out / "last.safetensors")
    assert meta["ich.labels"] == ("any,epidural,intraparenchymal,intraventricular,"
                                  "subarachnoid,subdural")
    # the whole recipe, as one line (the older keys are gone)
    assert meta["ich.recipe"] == ("windows=75/215,40/80,600/2800;mode=linear;size=32x32;"
                                  "resize=bilinear;quantize=0;mean=none;std=none;neighbors=0")
    assert not {"ich.windows", "ich.size", "ich.mean", "ich.std"} & set(meta)
    assert meta["ich.epoch"] == "3"
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert metadata(out / "best.safetensors")["ich.epoch"] == str(int(best["epoch"]) + 1)


def test_resume_continues_the_run(phantom, tmp_path):
    out = tmp_path / "run"
    assert train(phantom, out, "--epochs", 1).returncode == 0
    result = run(TRAIN, phantom / "labels.csv", phantom / "images", "--val",
                 phantom / "labels.csv", "--resume", out / "last.safetensors", "--epochs", 2,
                 "--batch-size", 8, "--lr", 0.003, "--threads", 1, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert [int(r["epoch"]) for r in history(out / "history.csv")] == [0, 1]
    assert metadata(out / "last.safetensors")["ich.epoch"] == "2"


def test_errors(phantom, tmp_path):
    out = tmp_path / "run"
    # a model whose input does not fit the data: exit 2 with both shapes
    result = run(TRAIN, phantom / "labels.csv", phantom / "images", "--model",
                 "input 1x32x32, conv 4 3, relu, gap, linear 6", "--windows",
                 "blood,brain,bone", "--out", out, "--quiet")
    assert result.returncode == 2
    assert "1x32x32" in result.stderr and "3x32x32" in result.stderr
    result = run(TRAIN, phantom / "labels.csv", phantom / "images", "--model", SPEC,
                 "--size", 64, "--out", out, "--quiet")
    assert result.returncode == 2 and "--size" in result.stderr
    # missing files: exit 1 naming them
    result = run(TRAIN, tmp_path / "missing.csv", phantom / "images", "--model", SPEC,
                 "--out", out, "--quiet")
    assert result.returncode == 1 and "missing.csv" in result.stderr
    result = train(phantom, out, "--resume", tmp_path / "nope.safetensors", "--quiet")
    assert result.returncode == 1 and "nope.safetensors" in result.stderr
    # bad usage
    assert run(TRAIN).returncode == 2
    assert train(phantom, out, "--optimizer", "rmsprop").returncode == 2
    assert train(phantom, out, "--epochs", "x").returncode == 2
    assert run(TRAIN, "--help").returncode == 0


def test_math_option(phantom, tmp_path):
    """--math sets the GPU's arithmetic (ICH_CUDA_MATH): on the CPU it
    changes nothing; a value that is not fp32, tf32 or bf16 is a usage
    error naming it."""
    result = train(phantom, tmp_path / "cpu", "--epochs", 1, "--backend", "cpu",
                   "--math", "bf16", "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cpu" / "last.safetensors").exists()
    bad = train(phantom, tmp_path / "bad", "--epochs", 1, "--math", "fp8")
    assert bad.returncode == 2
    assert '--math must be fp32, tf32 or bf16, not "fp8"' in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_png_folder_recipe_is_recorded(phantom, tmp_path):
    """PNGs from ich-preprocess come with recipe.txt; training on them
    records that recipe (normalisation included), not a default one, and
    the options still change it."""
    preprocess = BUILD / "examples" / "ich-preprocess"
    png = tmp_path / "png"
    result = run(preprocess, phantom / "images", png, "--size", 32, "--normalize",
                 "0.5/0.25", "--quiet")
    assert result.returncode == 0, result.stderr
    recipe = (png / "recipe.txt").read_text().strip()
    assert recipe == ("windows=75/215,40/80,600/2800;mode=linear;size=32x32;resize=bilinear;"
                      "quantize=0;mean=0.5;std=0.25;neighbors=0")
    out = tmp_path / "run"
    result = run(TRAIN, phantom / "labels.csv", png, "--model", SPEC, "--epochs", 1,
                 "--batch-size", 8, "--threads", 1, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "recipe.txt" in result.stderr
    assert metadata(out / "last.safetensors")["ich.recipe"] == recipe
    result = run(TRAIN, phantom / "labels.csv", png, "--model", SPEC, "--epochs", 1,
                 "--batch-size", 8, "--threads", 1, "--out", out, "--normalize", "0.4/0.2",
                 "--quiet")
    assert result.returncode == 0, result.stderr
    assert metadata(out / "last.safetensors")["ich.recipe"] == recipe.replace(
        "mean=0.5;std=0.25", "mean=0.4;std=0.2")
def write_tutorial_order(phantom, path):
    """The phantom's labels as a wide CSV in the tutorial's column order."""
    columns = ["any", "intraparenchymal", "intraventricular", "subdural", "subarachnoid",
               "epidural"]
    images = {}
    with open(phantom / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            image, _, label = row["ID"].rpartition("_")
            images.setdefault(image, {})[label] = row["Label"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID"] + columns)
        for image, labels in images.items():
            w.writerow([image] + [labels[c] for c in columns])


def test_resume_and_fine_tune_match_labels_by_name(phantom, tmp_path):
    """Resuming or fine-tuning a checkpoint with a CSV in another column
    order matches the columns to the checkpoint's "ich.labels" by name: the
    same losses as with the standard CSV, the checkpoint's label order
    kept; a CSV without one of its labels is refused."""
    start = tmp_path / "start"
    assert train(phantom, start, "--epochs", 1, "--quiet").returncode == 0
    tutorial = tmp_path / "tutorial.csv"
    write_tutorial_order(phantom, tutorial)
    losses = {}
    for name, labels in [("standard", phantom / "labels.csv"), ("tutorial", tutorial)]:
        for how in ["--resume", "--model"]:
            out = tmp_path / (name + how)
            result = run(TRAIN, labels, phantom / "images", "--val", labels, how,
                         start / "last.safetensors", "--epochs", 2, "--batch-size", 8,
                         "--lr", 0.003, "--threads", 1, "--balanced", "--out", out, "--quiet")
            assert result.returncode == 0, result.stderr
            rows = history(out / "history.csv")
            losses[name, how] = [(r["train_loss"], r["val_loss"], r["val_accuracy"])
                                 for r in rows]
            assert metadata(out / "last.safetensors")["ich.labels"] == (
                "any,epidural,intraparenchymal,intraventricular,subarachnoid,subdural")
    assert losses["tutorial", "--resume"] == losses["standard", "--resume"]
    assert losses["tutorial", "--model"] == losses["standard", "--model"]
    with open(tmp_path / "five.csv", "w") as f:
        f.write(tutorial.read_text().replace(",epidural", ",bleed"))
    result = run(TRAIN, tmp_path / "five.csv", phantom / "images", "--model",
                 start / "last.safetensors", "--epochs", 1, "--out", tmp_path / "x", "--quiet")
    assert result.returncode != 0
    assert "five.csv" in result.stderr and "missing: epidural" in result.stderr



def hostile_csv(phantom, tmp_path, keep_good):
    """A wide CSV of the phantom's slices (or none of them) plus three rows
    whose IDs climb out of the image folder to a copy of a real slice."""
    import shutil
    tmp_path.mkdir(exist_ok=True)
    outside = phantom.parent / f"outside-{tmp_path.name}"
    outside.mkdir()
    slices = sorted((phantom / "images").glob("*.dcm"))
    shutil.copy(slices[0], outside / "victim.dcm")
    (phantom / "images" / "a").mkdir(exist_ok=True)  # "a/../../x" would resolve
    good = [p.stem for p in slices] if keep_good else []
    hostile = [f"../{outside.name}/victim", str(outside / "victim"),
               f"a/../../{outside.name}/victim"]
    path = tmp_path / "hostile.csv"
    rows = [f"{i},{k % 2},{k % 2},0,0,0,0" for k, i in enumerate(good + hostile)]
    path.write_text("\n".join(["ID,any,epidural,intraparenchymal,intraventricular,"
                                "subarachnoid,subdural"] + rows) + "\n")
    return path, hostile, len(good)


def test_hostile_ids_are_refused(phantom, tmp_path):
    """IDs that leave the image folder are left out by name and row, never
    read: ich-train trains on the rest and exits 1 (rows were left out);
    with nothing else to train on, it fails saying so."""
    path, hostile, good = hostile_csv(phantom, tmp_path / "mixed", keep_good=True)
    result = run(TRAIN, path, phantom / "images", "--model", SPEC, "--epochs", 1,
                 "--batch-size", 8, "--threads", 1, "--out", tmp_path / "run")
    assert result.returncode == 1, result.stderr
    assert "%d images were left out" % len(hostile) in result.stderr
    assert (tmp_path / "run" / "last.safetensors").exists()
    for row, name in enumerate(hostile, start=good + 1):
        assert f'row {row}: ID "{name}" cannot name a file inside' in result.stderr

    only, _, _ = hostile_csv(phantom, tmp_path / "only", keep_good=False)
    result = run(TRAIN, only, phantom / "images", "--model", SPEC, "--epochs", 1,
                 "--threads", 1, "--out", tmp_path / "run2", "--quiet")
    assert result.returncode == 1
    assert "3 IDs refused" in result.stderr
    assert not (tmp_path / "run2" / "last.safetensors").exists()


def test_preset_with_options(phantom, tmp_path):
    """A torchvision-structured preset with its options as --model."""
    out = tmp_path / "run"
    result = run(TRAIN, phantom / "labels.csv", phantom / "images", "--model",
                 "resnet18 input 3x32x32", "--batch-size", 8, "--epochs", 1, "--threads", 1,
                 "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "layer4.1 = residual" in metadata(out / "last.safetensors")["ich.spec"]
    result = run(TRAIN, phantom / "labels.csv", phantom / "images", "--model",
                 "resnet18 input 3x32", "--out", out, "--quiet")
    assert result.returncode != 0 and "option" in result.stderr


CASCADE = "cascade any small subtype small input 3x32x32"


def test_cascade_trains_in_stages_then_evaluates(phantom, tmp_path):
    """--model cascade trains stage one ("any"), then stage two (subtypes)
    with a warm-up epoch each and fine-tuning at 0.1 x --lr; the lines say
    the stage; the checkpoints hold both stages and resume in stage two;
    ich-evaluate writes a report from the result; --joint trains as before."""
    out = tmp_path / "run"
    result = train(phantom, out, "--model", CASCADE, "--epochs", 2, "--balanced")
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stdout.splitlines() if l.startswith("stage ")]
    assert [" ".join(l.split()[:4]) for l in lines] == [
        "stage 1/2 (any) epoch", "stage 1/2 (any) epoch", "stage 2/2 (subtypes) epoch",
        "stage 2/2 (subtypes) epoch"]
    assert "stage 2/2 (subtypes) epoch" in result.stderr  # the progress bar
    assert "of stage 2 (subtypes)" in result.stdout       # the summary
    rows = history(out / "history.csv")
    assert list(rows[0].keys()) == COLUMNS + ["stage"]
    assert [r["stage"] for r in rows] == ["0", "0", "1", "1"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.003, 0.0003, 0.003, 0.0003])
    meta = metadata(out / "last.safetensors")
    assert meta["ich.epoch"] == "4" and meta["ich.stage"].startswith("stage=1 start=2 ")
    assert "cascade(any:" in meta["ich.spec"]

    # resume in stage two: 1 more epoch of it
    result = run(TRAIN, phantom / "labels.csv", phantom / "images", "--val",
                 phantom / "labels.csv", "--resume", out / "last.safetensors",
                 "--stage-epochs", "2,3", "--batch-size", 8, "--lr", 0.003, "--threads", 1,
                 "--out", out, "--quiet", "--balanced")
    assert result.returncode == 0, result.stderr
    rows = history(out / "history.csv")
    assert [r["stage"] for r in rows] == ["0", "0", "1", "1", "1"]

    report = tmp_path / "report"
    evaluate = BUILD / "examples" / "ich-evaluate"
    result = run(evaluate, out / "best.safetensors", phantom / "labels.csv", phantom / "images",
                 report, "--threads", 1)
    assert result.returncode == 0, result.stderr
    for name in ["report.html", "metrics.json", "predictions.csv", "loss.svg"]:
        assert (report / name).is_file(), name

    joint = tmp_path / "joint"
    result = train(phantom, joint, "--model", CASCADE, "--epochs", 1, "--joint", "--quiet")
    assert result.returncode == 0, result.stderr
    assert list(history(joint / "history.csv")[0].keys()) == COLUMNS
    assert "ich.stage" not in metadata(joint / "last.safetensors")
    # a staged checkpoint does not resume joint
    result = train(phantom, joint, "--resume", out / "last.safetensors", "--joint", "--quiet",
                   "--model", CASCADE)
    assert result.returncode == 1 and "staged" in result.stderr
    # bad usage
    assert train(phantom, joint, "--stage-epochs", "2").returncode == 2
    assert train(phantom, joint, "--stage-epochs", "a,2").returncode == 2
    assert train(phantom, joint, "--finetune-lr-factor", "0").returncode == 2
