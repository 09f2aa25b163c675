"""ich.evaluate_report on a tiny phantom (4 patients x 6 slices, 32 x 32):
every file exists and parses, and the numbers in metrics.json, metrics.csv
and report.html are those ich.Metrics computes from predictions.csv and the
labels."""
import csv
import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import ich

SPEC = ("input 3x32x32, conv 8 3 pad 1, batchnorm, relu, maxpool 4, conv 8 3 pad 1, "
        "relu, maxpool 8, flatten, linear 6")
NAMES = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]


def read_long_labels(path):
    labels = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            image, _, label = row["ID"].rpartition("_")
            labels.setdefault(image, {})[label] = float(row["Label"])
    return labels


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    ich.set_threads(1)
    folder = tmp_path_factory.mktemp("phantom")
    # large bleeds: at 32 x 32 (7 mm pixels) the phantom's small ones would
    # hardly reach a label's 3 pixels, and the tests need positives
    ich.write_phantom(folder, patients=4, slices=6, size=32, seed=4, prevalence=0.5, threads=2,
                      size_range=(1.0, 1.6))
    # a wide CSV where epidural has no positives: its AUC is undefined
    labels = read_long_labels(folder / "labels.csv")
    wide = folder / "wide.csv"
    with open(wide, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID"] + NAMES)
        for image, values in sorted(labels.items()):
            values["epidural"] = 0.0
            w.writerow([image] + [int(values[n]) for n in NAMES])
    truth = {image: [values[n] for n in NAMES] for image, values in labels.items()}
    # a checkpoint with a training history (2 epochs, with validation)
    m = ich.Model(SPEC)
    m.init_weights(1)
    opt = ich.Optimizer(m, "adam", lr=0.003)
    options = dict(window="blood,brain,bone", size=32, batch_size=8, seed=3, workers=0)
    with ich.Dataset(str(wide), str(folder / "images"), **options) as train, \
            ich.Dataset(str(wide), str(folder / "images"), shuffle=False, **options) as val:
        ich.train(m, opt, train, val, epochs=2, schedule=False, checkpoint_dir=folder / "run")
    return folder, wide, truth, folder / "run" / "last.safetensors"


def read_predictions(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ID"] + NAMES
    ids = [r[0] for r in rows[1:]]
    probs = np.array([[float(x) for x in r[1:]] for r in rows[1:]], dtype=np.float32)
    return ids, probs


def none_if_inf(x):
    return None if x is None or not math.isfinite(x) else x


def test_report_files_and_numbers(data, tmp_path):
    folder, wide, truth, checkpoint = data
    calls = []
    out = tmp_path / "report"
    ich.evaluate_report(checkpoint, wide, folder / "images", out, batch_size=5,
                        progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (24, 24)
    names = ["report.html", "roc.svg", "loss.svg", "accuracy.svg", "metrics.csv",
             "metrics.json", "predictions.csv"] + ["confusion_%s.svg" % n for n in NAMES]
    for name in names:
        assert (out / name).is_file(), name
    for svg in out.glob("*.svg"):
        ET.parse(svg)  # well-formed XML
    roc = (out / "roc.svg").read_text()
    assert "any (AUC " in roc and "epidural (AUC undefined)" in roc

    # recompute from predictions.csv with ich.Metrics
    ids, probs = read_predictions(out / "predictions.csv")
    assert sorted(ids) == sorted(truth) and len(ids) == 24
    labels = np.array([truth[i] for i in ids], dtype=np.float32)
    labels[:, 1] = 0  # the wide CSV's epidural column
    m = ich.Metrics(bootstrap=1000, seed=0)
    m.update(probs, labels)
    r = m.compute()
    assert r["auc"][1] is None

    doc = json.loads((out / "metrics.json").read_text())
    assert doc["samples"] == 24
    for c, cls in enumerate(doc["classes"]):
        assert cls["name"] == NAMES[c]
        assert cls["positives"] == r["positives"][c]
        assert cls["auc"] == r["auc"][c]
        assert cls["average_precision"] == r["average_precision"][c]
        assert cls["auc_ci"] == (list(r["auc_ci"][c]) if r["auc_ci"][c] else None)
        assert cls["youden_threshold"] == none_if_inf(r["youden_threshold"][c])
        assert cls["at_0.5"]["confusion"] == r["confusion"][c]
        for key in ("accuracy", "precision", "recall", "specificity", "f1"):
            assert cls["at_0.5"][key] == r[key][c], key
    for key in ("accuracy_overall", "bce", "rsna_log_loss", "macro_auc",
                "macro_average_precision", "macro_f1"):
        assert doc["overall"][key] == r[key], key

    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["class"] for row in rows] == NAMES + ["overall"]

    def cell(text):
        return float(text) if text != "" else None

    for c, row in enumerate(rows[:6]):
        assert cell(row["auc"]) == r["auc"][c]
        assert cell(row["f1"]) == r["f1"][c]
        assert cell(row["precision"]) == r["precision"][c]
        assert cell(row["average_precision"]) == r["average_precision"][c]
        assert [[int(row["tn"]), int(row["fp"])], [int(row["fn"]), int(row["tp"])]] == \
            r["confusion"][c]
    assert cell(rows[6]["rsna_log_loss"]) == r["rsna_log_loss"]
    assert cell(rows[6]["bce"]) == r["bce"]
    assert cell(rows[6]["accuracy"]) == r["accuracy_overall"]
    assert rows[1]["auc"] == ""  # undefined: empty, not nan
    text = (out / "metrics.csv").read_text() + (out / "metrics.json").read_text()
    assert "nan" not in text.lower() and "inf" not in text.lower()

    html = (out / "report.html").read_text()
    assert not re.search(r"\bnan\b", html, re.IGNORECASE)
    assert "undefined" in html and "<svg" in html and "RSNA weighted log loss" in html
    exact = {float(v) for v in re.findall(r'title="([^"]+)"', html)
             if re.fullmatch(r"[-+0-9.eE]+", v)}
    wanted = [r["rsna_log_loss"], r["bce"], r["accuracy_overall"]]
    for key in ("accuracy", "precision", "recall", "specificity", "f1", "auc",
                "average_precision"):
        wanted += [v for v in r[key] if v is not None]
    wanted += [v for v in r["youden_threshold"] if v is not None and math.isfinite(v)]
    for v in wanted:
        assert v in exact, v


def test_without_history_has_a_note(data, tmp_path):
    folder, wide, _, _ = data
    m = ich.Model(SPEC)
    m.init_weights(2)
    m.metadata["ich.windows"] = "blood,brain,bone"
    m.metadata["ich.size"] = "32"
    m.save(tmp_path / "plain.safetensors")
    out = tmp_path / "out"
    ich.evaluate_report(tmp_path / "plain.safetensors", wide, folder / "images", out,
                        bootstrap=0)
    assert not (out / "loss.svg").exists() and not (out / "accuracy.svg").exists()
    assert "no training history" in (out / "report.html").read_text()
    doc = json.loads((out / "metrics.json").read_text())
    assert all(c["auc_ci"] is None for c in doc["classes"])  # bootstrap off


def test_errors(data, tmp_path):
    folder, wide, _, checkpoint = data
    with pytest.raises(ich.IchIOError):
        ich.evaluate_report(tmp_path / "missing.safetensors", wide, folder / "images",
                            tmp_path / "a")
    bad = tmp_path / "bad.csv"
    bad.write_text('ID,any\n"unterminated,1\n')
    with pytest.raises(ich.FormatError):
        ich.evaluate_report(checkpoint, bad, folder / "images", tmp_path / "b")
    two = tmp_path / "two.csv"
    two.write_text("ID,any,epidural\n" + "".join(
        "%s,0,0\n" % p.stem for p in sorted((folder / "images").glob("*.dcm"))))
    with pytest.raises(ich.ShapeError):
        ich.evaluate_report(checkpoint, two, folder / "images", tmp_path / "c")
    with pytest.raises(ich.InvalidArgumentError):
        ich.evaluate_report(checkpoint, wide, folder / "images", tmp_path / "d", batch_size=0)
    with pytest.raises(ich.CancelledError, match="cancelled"):
        ich.evaluate_report(checkpoint, wide, folder / "images", tmp_path / "e",
                            progress=lambda done, total: True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "e").exists()


def test_checkpoint_without_recipe(data, tmp_path):
    """Refused (NotFoundError) instead of a guessed window; accepted with an
    explicit recipe, whose predictions are then those of predict_files."""
    folder, wide, _, _ = data
    m = ich.Model(SPEC)
    m.init_weights(4)
    m.save(tmp_path / "bare.safetensors")
    with pytest.raises(ich.NotFoundError, match="no input recipe"):
        ich.evaluate_report(tmp_path / "bare.safetensors", wide, folder / "images",
                            tmp_path / "a", bootstrap=0)
    recipe = ich.Window("blood,brain,bone", size=32, mean=0.5, std=0.25)
    out = ich.evaluate_report(tmp_path / "bare.safetensors", wide, folder / "images",
                              tmp_path / "b", bootstrap=0, window=recipe)
    with open(out / "predictions.csv") as f:
        rows = [line.strip().split(",") for line in f][1:]
    ids, probs = ich.predict_files(m, folder / "images", window=recipe)
    want = dict(zip(ids, probs))
    for r in rows:
        np.testing.assert_allclose(np.array(r[1:], np.float32), want[r[0]], atol=1e-6)
    recipe.close()


def test_rows_left_out_are_counted_and_reported(data, tmp_path):
    """Rows without a readable image are left out of the numbers; the
    result, metrics.json and the page say how many (ich-evaluate then exits
    1), and the numbers are those of the remaining rows alone."""
    import shutil

    folder, wide, _, checkpoint = data
    images = tmp_path / "images"
    shutil.copytree(folder / "images", images)
    slices = sorted(images.glob("*.dcm"))
    slices[0].write_bytes(b"not a DICOM file")  # unreadable
    slices[1].unlink()  # missing
    report = ich.evaluate_report(checkpoint, wide, images, tmp_path / "r", bootstrap=0)
    assert (report.rows, report.evaluated, report.left_out) == (24, 22, 2)
    assert isinstance(report, ich.EvaluateReport) and str(report) == str(tmp_path / "r")
    doc = json.loads((report / "metrics.json").read_text())
    assert doc["samples"] == 22 and doc["rows_left_out"] == 2
    assert "2 rows of the label table were left out" in (report / "report.html").read_text()
    ids, _ = read_predictions(report / "predictions.csv")
    assert sorted(ids) == sorted(p.stem for p in slices[2:])
    # the same numbers as an evaluation of the 22 readable rows alone
    kept = tmp_path / "kept.csv"
    with open(wide, newline="") as f, open(kept, "w", newline="") as g:
        rows = list(csv.reader(f))
        csv.writer(g).writerows([rows[0]] + [r for r in rows[1:] if r[0] in ids])
    alone = ich.evaluate_report(checkpoint, kept, images, tmp_path / "k", bootstrap=0)
    assert (alone.rows, alone.evaluated, alone.left_out) == (22, 22, 0)
    other = json.loads((alone / "metrics.json").read_text())
    assert other["overall"] == doc["overall"] and other["classes"] == doc["classes"]


def bce(p, y):
    """torch.nn.BCELoss per element (logs clamped at -100), float64."""
    p = p.astype(np.float64)
    with np.errstate(divide="ignore"):
        lp = np.maximum(np.log(p), -100.0)
        lq = np.maximum(np.log1p(-p), -100.0)
    return -(y * lp + (1 - y) * lq)


def rsna(p, y):
    p = np.clip(p.astype(np.float64), 1e-15, 1 - 1e-15)
    w = np.array([2.0, 1, 1, 1, 1, 1])
    e = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(((e * w).sum(axis=1) / w.sum()).mean())


def test_cascade_losses_are_ungated(data, tmp_path):
    """A cascade whose "any" stage is confidently wrong (P(any) ~ 3e-4 on
    every image, positives included) gates every subtype to 0: the report's
    AUC/confusion numbers and predictions.csv are those gated probabilities
    (what users get), but its losses are computed from the ungated ones,
    the sigmoid of each logit, checked against numpy on the probabilities
    of the same network without the gate. Gated losses would be several
    times larger (a gated 0 on a positive costs 100, the clamp)."""
    folder, wide, truth, _ = data
    body = ("conv 8 3 pad 1, batchnorm, relu, maxpool 4, conv 8 3 pad 1, relu, maxpool 8, "
            "flatten, linear %d")
    spec = "input 3x32x32, %s(any: " + body % 1 + " | subtype: " + body % 5 + ")"
    model = ich.Model(spec % "cascade")
    model.init_weights(5)
    state = model.state_dict()
    state["any.fc1.weight"][...] = 0
    state["any.fc1.bias"][...] = -8.0  # P(any) = sigmoid(-8) ~ 3e-4
    model.load_state_dict(state)
    model.metadata["ich.windows"] = "blood,brain,bone"
    model.metadata["ich.size"] = "32"
    model.labels = NAMES
    model.save(tmp_path / "cascade.safetensors")
    # the same network without the gate (a concat of the same branches)
    plain = ich.Model(spec % "concat")
    plain.load_state_dict(model.state_dict())
    plain.metadata["ich.windows"] = "blood,brain,bone"
    plain.metadata["ich.size"] = "32"
    ids, ungated = ich.predict_files(plain, folder / "images")
    assert (ungated[:, 0] < 1e-3).all() and (ungated[:, 1:] > 1e-3).all()

    out = ich.evaluate_report(tmp_path / "cascade.safetensors", wide, folder / "images",
                              tmp_path / "r", bootstrap=0)
    got_ids, gated = read_predictions(out / "predictions.csv")
    assert sorted(got_ids) == sorted(ids)
    order = [ids.index(i) for i in got_ids]
    ungated = ungated[order]
    assert (gated[:, 1:] == 0).all()  # predictions are gated
    labels = np.array([truth[i] for i in got_ids], dtype=np.float64)
    labels[:, 1] = 0  # the wide CSV's epidural column
    assert labels[:, 1:].sum() > 0  # positive subtypes: gating costs 100 each
    want_bce = float(bce(ungated, labels).mean())
    want_rsna = rsna(ungated, labels)
    gated_bce = float(bce(gated, labels).mean())
    assert gated_bce > 3 * want_bce  # what the report must not show
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["overall"]["bce"] == pytest.approx(want_bce, rel=1e-5)
    assert doc["overall"]["rsna_log_loss"] == pytest.approx(want_rsna, rel=1e-5)
    with open(out / "metrics.csv", newline="") as f:
        overall = list(csv.DictReader(f))[-1]
    assert float(overall["bce"]) == pytest.approx(want_bce, rel=1e-5)
    assert float(overall["rsna_log_loss"]) == pytest.approx(want_rsna, rel=1e-5)
    # the decisions: the gated probabilities, as ich.Metrics counts them
    m = ich.Metrics(bootstrap=0)
    m.update(gated, labels.astype(np.float32))
    r = m.compute()
    for c, cls in enumerate(doc["classes"]):
        assert cls["at_0.5"]["confusion"] == r["confusion"][c]
        assert cls["auc"] == r["auc"][c]
    assert doc["overall"]["macro_auc"] == r["macro_auc"]
    html = (out / "report.html").read_text()
    assert "cascade model" in html and "ungated" in html
