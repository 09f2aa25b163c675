"""Tests of ich.Labels, ich.propagate_labels and ich.sample_labels against
references written here with Python's csv module and numpy."""

import csv
import random

import numpy as np
import pytest

import ich

RSNA = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]
# the order of the subtypes in RSNA's stage_2_train.csv
FILE_ORDER = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural",
              "any"]


def random_table(n, seed):
    """IDs and an n x 6 array of 0/1 labels with any = OR of the subtypes."""
    rng = np.random.default_rng(seed)
    sub = (rng.random((n, 5)) < [0.05, 0.2, 0.1, 0.15, 0.02]).astype(np.float32)
    values = np.concatenate([sub.max(axis=1, keepdims=True), sub], axis=1)
    ids = ["ID_%09x" % v for v in rng.choice(1 << 36, size=n, replace=False)]
    return ids, values


def write_long_csv(path, ids, values, duplicates=0, seed=0):
    """RSNA's long format with Python's csv module (CRLF line ends), the
    subtypes in the file's order and some rows written twice."""
    rows = []
    for image, row in zip(ids, values):
        for name in FILE_ORDER:
            rows.append(("%s_%s" % (image, name), int(row[RSNA.index(name)])))
    rnd = random.Random(seed)
    for _ in range(duplicates):
        i = rnd.randrange(len(rows))
        rows.insert(i + 1, rows[i])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "Label"])
        writer.writerows(rows)


def numpy_pivot(path):
    """Reference pivot of a long CSV: numpy only, no pandas."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        pairs = [(key.rsplit("_", 1), float(value)) for key, value in reader]
    images = np.array([p[0][0] for p in pairs])
    subtypes = np.array([RSNA.index(p[0][1]) for p in pairs])
    values = np.array([p[1] for p in pairs], dtype=np.float32)
    unique, first = np.unique(images, return_index=True)
    order = np.argsort(first)  # images in order of first appearance
    unique = unique[order]
    row_of = {name: i for i, name in enumerate(unique)}
    table = np.full((len(unique), 6), np.nan, dtype=np.float32)
    table[[row_of[i] for i in images], subtypes] = values
    return list(unique), table


# ---- tables ------------------------------------------------------------------

def test_label_names():
    assert ich.label_names() == RSNA


def test_table_basics():
    labels = ich.Labels()
    assert len(labels) == 0 and labels.columns == RSNA
    assert labels.values.shape == (0, 6)
    labels.add("ID_a", [1, 0, 1, 0, 0, 0], group="P1")
    labels.add("ID_b", np.array([0, 0, 0, 0, 0, 0.75]))
    assert len(labels) == 2
    assert labels.ids == ["ID_a", "ID_b"]
    assert labels.groups == ["P1", ""]
    assert labels.find("ID_b") == 1 and labels.find("nope") == -1
    assert labels.find_column("SUBDURAL") == 5
    np.testing.assert_array_equal(labels.values,
                                  [[1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0.75]])
    assert labels.values.dtype == np.float32
    np.testing.assert_array_equal(labels.positives(), [1, 0, 1, 0, 0, 1])
    labels.set_group(1, "P2")
    assert labels.groups == ["P1", "P2"]
    with pytest.raises(ich.InvalidArgumentError, match="duplicate"):
        labels.add("ID_a", [0] * 6)
    with pytest.raises(ich.ShapeError):
        labels.add("ID_c", [0] * 5)
    with pytest.raises(ich.InvalidArgumentError):
        labels.add("ID_c", [np.nan] + [0] * 5)
    assert len(labels) == 2


def test_copy_is_independent():
    labels = ich.Labels(["a", "b"])
    labels.add("x", [1, 0], group="P1")
    copy = labels.copy()
    labels.add("y", [0, 1])
    labels.set_group(0, "P9")
    assert copy.ids == ["x"] and copy.groups == ["P1"] and copy.columns == ["a", "b"]
    np.testing.assert_array_equal(copy.values, [[1, 0]])


def test_custom_columns_and_lifetime():
    with ich.Labels(["tumour", "Bleed"]) as labels:
        assert labels.columns == ["tumour", "Bleed"]
        labels.add("x", [0, 1])
    with pytest.raises(ich.InvalidArgumentError):
        len(labels)  # closed
    labels.close()  # twice is fine
    with pytest.raises(ich.InvalidArgumentError):
        ich.Labels(["a", "A"])
    with pytest.raises(TypeError):
        ich.Labels("any")


def test_from_handle_takes_ownership():
    labels = ich.Labels()
    labels.add("x", [1] * 6)
    handle, labels._handle = labels._handle, None  # steal it
    other = ich.Labels._from_handle(handle)
    assert other.ids == ["x"]
    other.close()
    with pytest.raises(ich.InvalidArgumentError):
        ich.Labels._from_handle(None)


# ---- CSV files ---------------------------------------------------------------

def test_read_long_written_by_csv_module(tmp_path):
    ids, values = random_table(400, seed=1)
    path = tmp_path / "stage_2_train.csv"
    write_long_csv(path, ids, values, duplicates=50)
    labels = ich.Labels.read(path)
    ref_ids, ref = numpy_pivot(path)
    assert labels.ids == ref_ids == ids
    np.testing.assert_array_equal(labels.values, ref)
    np.testing.assert_array_equal(labels.positives(), (ref >= 0.5).sum(axis=0))


def test_read_long_errors(tmp_path):
    path = tmp_path / "bad.csv"
    ids, values = random_table(3, seed=2)
    write_long_csv(path, ids, values)
    lines = path.read_text().splitlines()
    # a conflicting duplicate on line 5
    key, value = lines[1].split(",")
    lines.insert(4, "%s,%d" % (key, 1 - int(value)))
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ich.FormatError, match=r"bad\.csv:5:"):
        ich.Labels.read(path)
    # a missing subtype
    write_long_csv(path, ids, values)
    lines = path.read_text().splitlines()
    del lines[3]
    path.write_text("\n".join(lines))
    with pytest.raises(ich.FormatError, match="has no row for"):
        ich.Labels.read(path)
    with pytest.raises(ich.IchIOError, match="missing.csv"):
        ich.Labels.read(tmp_path / "missing.csv")


def test_read_wide(tmp_path):
    path = tmp_path / "wide.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Image", "SUBDURAL", "comment", "Any", "patient_id"])
        w.writerow(["ID_1.dcm", 1, "with, comma", 1, "P1"])
        w.writerow(["ID_2.png", 0, 'say "x"', 0, ""])
    labels = ich.Labels.read(path)
    assert labels.columns == ["SUBDURAL", "Any"]
    assert labels.ids == ["ID_1", "ID_2"]
    assert labels.groups == ["P1", ""]
    np.testing.assert_array_equal(labels.values, [[1, 1], [0, 0]])
    path.write_text("ID,any\nx,1\ny,maybe\n")
    with pytest.raises(ich.FormatError, match=r"wide\.csv:3:"):
        ich.Labels.read(path)


def test_read_without_header_is_refused(tmp_path):
    """A CSV whose first line is data lost that row and got a label column
    named "1"; now it is an error naming the file and the headers expected."""
    path = tmp_path / "noheader.csv"
    for text in ["ID_1,0,1,0,0,0,0\nID_2,1,1,0,0,0,0\n",
                 "ID_1_any,1\nID_1_epidural,0\n"]:
        path.write_text(text)
        with pytest.raises(ich.FormatError, match=r"noheader\.csv: the first line is not a "
                                                  r"header.*\"ID,Label\""):
            ich.Labels.read(path)
    path.write_text("ID,any,epidural\nID_1,0,1\n")
    assert ich.Labels.read(path).ids == ["ID_1"]


def test_write_round_trips(tmp_path):
    ids, values = random_table(200, seed=3)
    values[5, 2] = 0.25  # a soft label survives both formats
    labels = ich.Labels()
    for i, (image, row) in enumerate(zip(ids, values)):
        labels.add(image, row, group="P%d" % (i // 7))
    wide = tmp_path / "out" / "wide.csv"
    labels.write(wide)
    with open(wide, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ID"] + RSNA + ["patient"]
    assert rows[6][3] == "0.25"
    back = ich.Labels.read(wide)
    assert back.ids == ids and back.groups == labels.groups
    np.testing.assert_array_equal(back.values, values)

    long_path = tmp_path / "long.csv"
    labels.write_long(long_path)
    with open(long_path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ID", "Label"] and len(rows) == 1 + 6 * 200
    assert rows[1] == [ids[0] + "_any", str(int(values[0, 0]))]
    back = ich.Labels.read(long_path)
    assert back.ids == ids
    np.testing.assert_array_equal(back.values, values)
    ref_ids, ref = numpy_pivot(long_path)
    np.testing.assert_array_equal(back.values, ref)


def test_check_any(tmp_path):
    ids, values = random_table(300, seed=4)
    rng = np.random.default_rng(5)
    flip = rng.random(300) < 0.1
    values[flip, 0] = 1 - values[flip, 0]
    labels = ich.Labels()
    for image, row in zip(ids, values):
        labels.add(image, row)
    expected = int(flip.sum())
    assert labels.check_any() == expected
    np.testing.assert_array_equal(labels.values, values)  # unchanged
    assert labels.check_any(fix=True) == expected
    fixed = labels.values
    np.testing.assert_array_equal(fixed[:, 0], fixed[:, 1:].max(axis=1))
    assert labels.check_any() == 0
    with pytest.raises(ich.NotFoundError):
        ich.Labels(["subdural"]).check_any()


# ---- propagation ---------------------------------------------------------------

def test_propagate(tmp_path):
    root = tmp_path / "scans"
    for rel in ["P1/s1/b.dcm", "P1/s1/a.dcm", "P1/s1/readme.txt", "P2/ct/1.png",
                "P3/x/z.dcm"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    scans = tmp_path / "scans.csv"
    scans.write_text("patient,scan,any,epidural\nP2,ct,1,1\nP1,s1,0,0\nP7,none,1,0\n")
    messages = []
    ich.set_log_callback(lambda level, message: messages.append(message), ich.LOG_WARNING)
    try:
        labels = ich.propagate_labels(root, scans)
    finally:
        ich.set_log_callback(None)
    assert labels.ids == ["P2/ct/1", "P1/s1/a", "P1/s1/b"]
    assert labels.columns == ["any", "epidural"]
    assert labels.groups == ["P2", "P1", "P1"]
    np.testing.assert_array_equal(labels.values, [[1, 1], [0, 0], [0, 0]])
    assert any("P7/none" in m for m in messages)
    assert any("P3/x" in m for m in messages)
    with pytest.raises(ich.IchIOError):
        ich.propagate_labels(tmp_path / "nowhere", scans)


# ---- sampling ------------------------------------------------------------------

def test_sample_counts_and_seeds():
    ids, values = random_table(2000, seed=6)
    labels = ich.Labels()
    for image, row in zip(ids, values):
        labels.add(image, row)
    n = 30
    sample = ich.sample_labels(labels, n, seed=1)
    got = sample.values
    positives = values >= 0.5
    for c in range(6):
        want = min(n, int(positives[:, c].sum()))
        assert want <= int((got[:, c] >= 0.5).sum()) <= positives[:, c].sum()
    negatives = int((~positives.any(axis=1)).sum())
    assert int((~(got >= 0.5).any(axis=1)).sum()) == min(n, negatives)
    # rows are source rows, once each, in source order, with their values
    rows = [labels.find(i) for i in sample.ids]
    assert rows == sorted(set(rows))
    np.testing.assert_array_equal(got, values[rows])

    assert ich.sample_labels(labels, n, seed=1).ids == sample.ids
    assert ich.sample_labels(labels, n, seed=2).ids != sample.ids
    no_neg = ich.sample_labels(labels, n, seed=1, negatives=False)
    assert (no_neg.values >= 0.5).any(axis=1).all()
    with pytest.raises(ich.InvalidArgumentError):
        ich.sample_labels(labels, 0)
    with pytest.raises(TypeError):
        ich.sample_labels(values, 5)


# The tutorial's column order, spelled as a user might.
TUTORIAL = ["Any", "Intraparenchymal", "intraventricular", "subdural", "subarachnoid",
            "epidural"]


def tutorial_table(n=12, seed=3):
    ids, values = random_table(n, seed)
    table = ich.Labels(TUTORIAL)
    for i, image in enumerate(ids):
        table.add(image, [values[i, RSNA.index(c.lower())] for c in TUTORIAL],
                  group="P%d" % (i % 3))
    return ids, values, table


def test_match_model_reorders_by_name():
    """Columns matched to the model's labels by name, in its output order;
    the reference is the table read column by column in numpy."""
    ids, values, table = tutorial_table()
    model = ich.Model("input 1x8x8, flatten, linear 6")
    assert model.labels == RSNA  # 6 outputs, no "ich.labels": the standard order
    with table.match(model) as matched:
        assert matched.columns == RSNA
        assert matched.ids == ids and matched.groups == table.groups
        np.testing.assert_array_equal(matched.values, values)
    order = ["subdural", "ANY", "epidural", "intraparenchymal", "intraventricular",
             "subarachnoid"]
    model.metadata["ich.labels"] = ",".join(order)
    assert model.labels == order
    with table.match(model) as matched:
        assert matched.columns == order
        reference = table.values[:, [[c.lower() for c in TUTORIAL].index(o.lower())
                                     for o in order]]
        np.testing.assert_array_equal(matched.values, reference)


def test_match_model_refusals():
    _, _, table = tutorial_table()
    model = ich.Model("input 1x8x8, flatten, linear 6")
    model.metadata["ich.labels"] = "any,epidural,intraparenchymal,intraventricular,subarachnoid,bleed"
    with pytest.raises(ich.ShapeError) as e:
        table.match(model, source="test.csv", model_source="best.safetensors")
    text = str(e.value)
    assert "test.csv" in text and "best.safetensors" in text
    assert "missing: bleed" in text and "not a label of the model: subdural" in text
    model.metadata["ich.labels"] = "any,epidural"
    with pytest.raises(ich.FormatError):
        table.match(model)
    with pytest.raises(ich.FormatError):
        model.labels
    three = ich.Model("input 1x8x8, flatten, linear 3")
    with pytest.raises(ich.NotFoundError):
        three.labels
    with pytest.raises(ich.ShapeError, match="no label names"):
        table.match(three)
    abc = ich.Labels(["a", "b", "c"])
    abc.add("x", [1, 0, 1])
    with abc.match(three) as same:  # no names, as many columns: by position
        assert same.columns == ["a", "b", "c"]
    with pytest.raises(TypeError):
        table.match("model.safetensors")
