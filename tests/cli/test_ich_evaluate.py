"""End-to-end tests of the ich-evaluate example program on phantom slices
and a small untrained model whose checkpoint holds an input recipe (with
normalisation) and a two-epoch training history.

The report's predictions are compared with an independent path in Python:
ich.predict_files on the same DICOM files (it applies the recipe itself),
and its metrics.json with ich.Metrics on those probabilities.
"""
import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
EVALUATE = BUILD / "examples" / "ich-evaluate"
LABELS = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]
SPEC = "input 3x48x48, conv 4 5 stride 4, relu, maxpool 2, flatten, linear 6"
HISTORY = ("epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n"
           "0,0.7,0.55,0.69,0.6,0.001,1.5\n1,0.5,0.7,0.6,0.65,0.001,1.4\n")

pytestmark = pytest.mark.skipif(not EVALUATE.exists(), reason="examples not built")


@pytest.fixture(scope="module")
def ich():
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    os.environ.setdefault("ICH_BUILD_DIR", str(BUILD))
    return pytest.importorskip("ich")


def run(*args, check=True):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def data(ich, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    ich.write_phantom(folder, patients=3, slices=4, size=64, seed=6, prevalence=0.7)
    model = ich.Model(SPEC)
    model.init_weights(3)
    model.metadata["ich.windows"] = "blood,brain,bone"
    model.metadata["ich.size"] = "48"
    model.metadata["ich.mean"] = "0.1,0.2,0.3"
    model.metadata["ich.std"] = "0.5,0.6,0.7"
    model.metadata["ich.history"] = HISTORY
    model.save(folder / "model.safetensors")
    return folder, model


def test_report(ich, data, tmp_path):
    folder, model = data
    out = tmp_path / "report"
    result = run(EVALUATE, folder / "model.safetensors", folder / "labels.csv",
                 folder / "images", out, "--batch-size", 5, "--threads", 1)
    assert "evaluating" in result.stderr and "report.html" in result.stderr
    for name in ["report.html", "roc.svg", "loss.svg", "accuracy.svg", "metrics.csv",
                 "metrics.json", "predictions.csv"] + [f"confusion_{n}.svg" for n in LABELS]:
        assert (out / name).is_file(), name
    for svg in out.glob("*.svg"):
        ET.parse(svg)
    loss = ET.parse(out / "loss.svg").getroot()
    assert "validation" in "".join(loss.itertext())

    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ID"] + LABELS and len(rows) == 13
    got = {r[0]: np.array([float(x) for x in r[1:]], np.float32) for r in rows[1:]}
    ids, probs = ich.predict_files(model, folder / "images")
    assert sorted(ids) == sorted(got)
    for i, image in enumerate(ids):
        np.testing.assert_allclose(got[image], probs[i], rtol=0, atol=1e-6)

    truth = {}
    with open(folder / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            image, _, label = row["ID"].rpartition("_")
            truth.setdefault(image, {})[label] = float(row["Label"])
    order = [r[0] for r in rows[1:]]
    m = ich.Metrics(bootstrap=1000, seed=0)
    m.update(np.array([got[i] for i in order]),
             np.array([[truth[i][n] for n in LABELS] for i in order], np.float32))
    r = m.compute()
    doc = json.loads((out / "metrics.json").read_text())
    assert [c["auc"] for c in doc["classes"]] == r["auc"]
    assert doc["overall"]["rsna_log_loss"] == r["rsna_log_loss"]
    assert doc["rows_left_out"] == 0 and doc["samples"] == 12


def test_quiet_and_errors(data, tmp_path):
    folder, _ = data
    result = run(EVALUATE, folder / "model.safetensors", folder / "labels.csv",
                 folder / "images", tmp_path / "q", "--quiet")
    assert result.stderr == ""
    assert (tmp_path / "q" / "report.html").is_file()
    missing = run(EVALUATE, tmp_path / "none.safetensors", folder / "labels.csv",
                  folder / "images", tmp_path / "x", "--quiet", check=False)
    assert missing.returncode == 1 and "ICH_ERR_IO" in missing.stderr
    assert run(EVALUATE, "a", "b", check=False).returncode == 2
    assert run(EVALUATE, "a", "b", "c", "d", "--batch-size", "0", check=False).returncode == 2
    assert run(EVALUATE, "--help").stdout.startswith("usage: ich-evaluate")


def test_checkpoint_without_recipe(ich, data, tmp_path):
    """Refused with a message instead of a guessed window; accepted with
    --recipe, and then the same predictions as Python with that recipe."""
    folder, model = data
    bare = ich.Model(SPEC)
    bare.load_state_dict(model.state_dict())
    bare.save(tmp_path / "bare.safetensors")
    result = run(EVALUATE, tmp_path / "bare.safetensors", folder / "labels.csv",
                 folder / "images", tmp_path / "r1", "--quiet", check=False)
    assert result.returncode == 1 and "no input recipe" in result.stderr
    assert not (tmp_path / "r1" / "predictions.csv").exists()
    recipe = ("windows=75/215,40/80,600/2800;mode=linear;size=48x48;resize=bilinear;"
              "quantize=0;mean=0.1,0.2,0.3;std=0.5,0.6,0.7;neighbors=0")
    run(EVALUATE, tmp_path / "bare.safetensors", folder / "labels.csv", folder / "images",
        tmp_path / "r2", "--quiet", "--recipe", recipe)
    with open(tmp_path / "r2" / "predictions.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    ids, probs = ich.predict_files(bare, folder / "images", window=recipe)
    want = dict(zip(ids, probs))
    for r in rows:
        np.testing.assert_allclose(np.array(r[1:], np.float32), want[r[0]], atol=1e-6)
    # a recipe that does not fit the model is bad usage
    result = run(EVALUATE, tmp_path / "bare.safetensors", folder / "labels.csv",
                 folder / "images", tmp_path / "r3", "--quiet", "--windows", "brain",
                 check=False)
    assert result.returncode == 2 and "1 per slice" in result.stderr
# The tutorial's label column order, spelled as a user might.
TUTORIAL = ["Any", "intraparenchymal", "intraventricular", "subdural", "subarachnoid",
            "Epidural"]


def write_wide(ich, folder, path, columns):
    """The phantom's labels as a wide CSV with `columns` in that order."""
    labels = ich.Labels.read(folder / "labels.csv")
    values = labels.values
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID"] + columns)
        for i, image in enumerate(labels.ids):
            w.writerow([image] + [int(values[i, labels.find_column(c)]) for c in columns])


def test_label_columns_matched_by_name(ich, data, tmp_path):
    """A CSV in the tutorial's column order gives the standard CSV's report:
    the classes in the model's order, the same predictions and AUCs (by
    position it gave other AUCs, exit 0, no warning)."""
    folder, _ = data
    write_wide(ich, folder, tmp_path / "tutorial.csv", TUTORIAL)
    reports = {}
    for name, csv_path in [("standard", folder / "labels.csv"),
                           ("tutorial", tmp_path / "tutorial.csv")]:
        run(EVALUATE, folder / "model.safetensors", csv_path, folder / "images",
            tmp_path / name, "--quiet", "--threads", 1)
        reports[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    for doc in reports.values():
        assert [c["name"] for c in doc["classes"]] == LABELS
    aucs = {n: [c["auc"] for c in reports[n]["classes"]] for n in reports}
    assert aucs["tutorial"] == aucs["standard"]
    assert len(set(aucs["standard"])) > 1  # the classes differ, so an order mix-up shows
    assert ((tmp_path / "tutorial" / "predictions.csv").read_text()
            == (tmp_path / "standard" / "predictions.csv").read_text())


def test_label_columns_refused(ich, data, tmp_path):
    folder, _ = data
    columns = ["any", "intraparenchymal", "intraventricular", "subdural", "subarachnoid",
               "bleed"]
    labels = ich.Labels.read(folder / "labels.csv")
    with open(tmp_path / "odd.csv", "w") as f:
        f.write("ID," + ",".join(columns) + "\n")
        for image in labels.ids:
            f.write(image + ",0,0,0,0,0,1\n")
    result = run(EVALUATE, folder / "model.safetensors", tmp_path / "odd.csv", folder / "images",
                 tmp_path / "r", "--quiet", check=False)
    assert result.returncode == 1
    assert str(tmp_path / "odd.csv") in result.stderr
    assert "model.safetensors" in result.stderr
    # "bleed" is not an RSNA label, so the reader leaves it out (labels.h)
    assert "(any, intraparenchymal, intraventricular, subdural, subarachnoid)" in result.stderr
    assert ("(any, epidural, intraparenchymal, intraventricular, subarachnoid, subdural"
            in result.stderr)
    assert "missing: epidural" in result.stderr
    assert not (tmp_path / "r" / "report.html").exists()


def test_hostile_ids_are_refused(data, tmp_path):
    """IDs that climb out of the image folder to a real slice are left out
    by name and row, never read: the report covers the folder's images
    only; with nothing else, ich-evaluate fails saying so."""
    import shutil
    folder, _ = data
    outside = tmp_path / "outside"
    outside.mkdir()
    images = tmp_path / "images"
    shutil.copytree(folder / "images", images)
    (images / "a").mkdir()  # so that "a/../../outside/victim" would resolve
    slices = sorted(images.glob("*.dcm"))
    shutil.copy(slices[0], outside / "victim.dcm")
    hostile = ["../outside/victim", str(outside / "victim"), "a/../../outside/victim"]
    header = "ID," + ",".join(LABELS)
    good = [f"{p.stem},1,0,1,0,0,0" for p in slices]
    (tmp_path / "mixed.csv").write_text(
        "\n".join([header] + good + [f"{h},1,1,0,0,0,0" for h in hostile]) + "\n")
    result = run(EVALUATE, folder / "model.safetensors", tmp_path / "mixed.csv", images,
                 tmp_path / "report", check=False)
    for row, name in enumerate(hostile, start=len(good) + 1):
        assert f'row {row}: ID "{name}" cannot name a file inside' in result.stderr
    # the report covers the rest and says so; the exit status says rows were left out
    assert result.returncode == 1
    assert f"3 of {len(good) + 3} label rows left out" in result.stderr
    with open(tmp_path / "report" / "predictions.csv", newline="") as f:
        ids = [r[0] for r in csv.reader(f)][1:]
    assert sorted(ids) == sorted(p.stem for p in slices)
    doc = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert doc["samples"] == len(good) and doc["rows_left_out"] == 3
    assert "3 rows of the label table were left out" in \
        (tmp_path / "report" / "report.html").read_text()

    (tmp_path / "only.csv").write_text(
        "\n".join([header] + [f"{h},1,1,0,0,0,0" for h in hostile]) + "\n")
    result = run(EVALUATE, folder / "model.safetensors", tmp_path / "only.csv", images,
                 tmp_path / "report2", "--quiet", check=False)
    assert result.returncode == 1 and "3 IDs refused" in result.stderr
