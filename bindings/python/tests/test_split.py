"""Tests of ich.split_labels, ich.select_files and ich.groups_from_dicom,
checked with Python sets, numpy and os.stat."""

import os

import numpy as np
import pytest

import ich

# Tolerances of the split on the table below (absolute shares; labels.h).
ROW_TOLERANCE = 0.01
LABEL_TOLERANCE = 0.04


def patient_table(seed, patients=200, with_groups=True):
    """~2000 rows of `patients` patients with 1..19 images; each patient has
    each subtype with a skewed probability and half its images positive for
    it; any = OR of the subtypes."""
    rng = np.random.default_rng(seed)
    labels = ich.Labels()
    for p in range(patients):
        has = rng.random(5) < [0.1, 0.25, 0.15, 0.2, 0.3]
        for s in range(int(rng.integers(1, 20))):
            sub = (has & (rng.random(5) < 0.5)).astype(np.float32)
            labels.add("ID_%03d_%02d" % (p, s), np.concatenate([[sub.max()], sub]),
                       "PAT%03d" % p if with_groups else None)
    return labels


def shares(table, parts, label=None):
    total = len(table) if label is None else (table.values[:, label] >= 0.5).sum()
    have = [len(p) if label is None else (p.values[:, label] >= 0.5).sum() for p in parts]
    return np.array(have, dtype=float) / total


# ---- split_labels ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_split_keeps_patients_together(seed):
    table = patient_table(seed)
    parts = ich.split_labels(table, seed=seed)
    groups = [set(p.groups) for p in parts]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert groups[0] | groups[1] | groups[2] == set(table.groups)
    ids = [i for p in parts for i in p.ids]
    assert sorted(ids) == sorted(table.ids)  # every row exactly once
    position = {i: k for k, i in enumerate(table.ids)}
    for p in parts:
        rows = [position[i] for i in p.ids]
        assert rows == sorted(rows)  # source order
        np.testing.assert_array_equal(p.values, table.values[rows])
        assert p.groups == [table.groups[r] for r in rows]


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.7, 0.15, 0.15)])
def test_split_shares_within_tolerance(ratios):
    table = patient_table(3)
    parts = ich.split_labels(table, ratios, seed=5)
    assert np.abs(shares(table, parts) - ratios).max() <= ROW_TOLERANCE
    for label in range(6):
        assert np.abs(shares(table, parts, label) - ratios).max() <= LABEL_TOLERANCE


def test_split_stratify_matters():
    errors = {True: 0.0, False: 0.0}
    for seed in range(1, 5):
        table = patient_table(seed)
        for stratify in (True, False):
            parts = ich.split_labels(table, seed=seed, stratify=stratify)
            errors[stratify] += sum(np.abs(shares(table, parts, l) - (0.8, 0.1, 0.1)).max()
                                    for l in range(6))
    assert errors[True] * 2 < errors[False]


def test_split_is_reproducible():
    table = patient_table(4)
    a = [p.ids for p in ich.split_labels(table, seed=11)]
    b = [p.ids for p in ich.split_labels(table, seed=11)]
    c = [p.ids for p in ich.split_labels(table, seed=12)]
    assert a == b
    assert a != c


@pytest.mark.parametrize("ratios", [(0.9, -0.1, 0.2), (float("nan"), 0.5, 0.5),
                                    (0.8, 0.1, 0.2), (0.5, 0.5), (0.8, 0.1, 0.1, 0.0),
                                    (float("inf"), 0, 0)])
def test_split_bad_ratios(ratios):
    table = patient_table(1, patients=10)
    with pytest.raises(ich.InvalidArgumentError, match="ratios"):
        ich.split_labels(table, ratios)


def test_split_zero_ratio_and_empty_table():
    table = patient_table(2, patients=50)
    train, val, test = ich.split_labels(table, (0.9, 0.0, 0.1))
    assert len(val) == 0 and len(train) > len(test) > 0
    with pytest.raises(ich.InvalidArgumentError, match="empty"):
        ich.split_labels(ich.Labels())
    with pytest.raises(TypeError):
        ich.split_labels("labels.csv")


def test_split_without_groups_splits_rows():
    table = patient_table(5, with_groups=False)
    parts = ich.split_labels(table, seed=2)
    assert np.abs(shares(table, parts) - (0.8, 0.1, 0.1)).max() <= 0.002
    assert sum(len(p) for p in parts) == len(table)


# ---- select_files -----------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    """src/ with three images (one two folders down), a table naming them
    and one that does not exist."""
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    files = {"ID_a": src / "ID_a.dcm", "ID_b": src / "ID_b.dcm",
             "ID_deep": src / "x" / "y" / "ID_deep.dcm"}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.integers(0, 256, int(rng.integers(10, 5000)),
                                      dtype=np.uint8).tobytes())
    table = ich.Labels()
    for i, name in enumerate(["ID_a", "ID_b", "ID_deep", "ID_gone"]):
        values = np.zeros(6, np.float32)
        values[i] = 1
        table.add(name, values, "P%d" % i)
    return table, src, files, tmp_path / "dst"


def test_select_copy(tree):
    table, src, files, dst = tree
    result = ich.select_files(table, src, dst, threads=2)
    assert (result["copied"], result["missing"], result["failed"]) == (3, 1, 0)
    assert result["found"].ids == ["ID_a", "ID_b", "ID_deep"]
    for name, path in files.items():
        target = dst / (name + ".dcm")
        assert target.read_bytes() == path.read_bytes()
        assert os.stat(target).st_ino != os.stat(path).st_ino
    assert not (dst / "ID_gone.dcm").exists()
    assert [p.name for p in dst.iterdir() if ".tmp" in p.name] == []


def test_select_links(tree):
    table, src, files, dst = tree
    result = ich.select_files(table, src, dst, mode="hardlink")
    assert result["copied"] == 3
    for name, path in files.items():
        assert os.stat(dst / (name + ".dcm")).st_ino == os.stat(path).st_ino
    other = dst.parent / "sym"
    result = ich.select_files(table, src, other, mode="symlink")
    assert result["copied"] == 3
    for name, path in files.items():
        target = other / (name + ".dcm")
        assert target.is_symlink()
        assert os.readlink(target) == os.path.realpath(path)


def test_select_progress_and_cancel(tree):
    table, src, files, dst = tree
    calls = []
    ich.select_files(table, src, dst, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (3, 3)
    with pytest.raises(ich.CancelledError, match="cancelled"):
        ich.select_files(table, src, dst.parent / "d2", progress=lambda d, t: True)

    def boom(done, total):
        raise KeyError("from the callback")

    with pytest.raises(KeyError):
        ich.select_files(table, src, dst.parent / "d3", progress=boom)


def test_select_errors(tree):
    table, src, files, dst = tree
    with pytest.raises(ich.InvalidArgumentError):
        ich.select_files(table, src, dst, mode="move")
    with pytest.raises(ich.IchIOError, match="nowhere"):
        ich.select_files(table, src / "nowhere", dst)
    with pytest.raises(TypeError):
        ich.select_files(None, src, dst)
    result = ich.select_files(table, src, dst, extension=".png")
    assert result["missing"] == 4 and len(result["found"]) == 0


# ---- groups_from_dicom -------------------------------------------------------------


def test_groups_from_dicom(tmp_path):
    patients = {"ID_1": "PAT_A", "ID_2": "PAT_B", "ID_3": "PAT_A"}
    table = ich.Labels()
    for name in ["ID_1", "ID_2", "ID_3", "ID_bad", "ID_absent"]:
        table.add(name, np.zeros(6, np.float32), "old" if name == "ID_bad" else None)
    pixels = np.arange(16, dtype=np.int16).reshape(4, 4)
    for name, patient in patients.items():
        ich.write_ct(tmp_path / (name + ".dcm"), pixels, patient_id=patient)
    (tmp_path / "ID_bad.dcm").write_bytes(b"not a DICOM file" * 20)
    assert ich.groups_from_dicom(table, tmp_path, threads=2) == 2
    assert table.groups == ["PAT_A", "PAT_B", "PAT_A", "old", ""]
    with pytest.raises(TypeError):
        ich.groups_from_dicom(table, tmp_path, threads="2")
