"""End-to-end tests of the ich-split example program: the three CSVs are
read back with Python's csv module and checked for whole patients, every
row once, the ratios and the printed distribution table."""
import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
SPLIT = BUILD / "examples" / "ich-split"

pytestmark = pytest.mark.skipif(not SPLIT.exists(), reason="examples not built")

LABELS = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid",
          "subdural"]


def run(*args, check=True):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr}")
    return result


def write_table(path, patients=100, with_patient=True, seed=0):
    rnd = random.Random(seed)
    rows = []
    for p in range(patients):
        has = [rnd.random() < q for q in (0.15, 0.3, 0.2, 0.25, 0.35)]
        for s in range(rnd.randint(1, 12)):
            sub = [int(h and rnd.random() < 0.5) for h in has]
            row = [f"ID_{p:03d}_{s:02d}", str(max(sub))] + [str(v) for v in sub]
            rows.append(row + ([f"PAT{p:03d}"] if with_patient else []))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID"] + LABELS + (["patient"] if with_patient else []))
        writer.writerows(rows)
    return rows


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_split_by_patient(tmp_path):
    rows = write_table(tmp_path / "labels.csv")
    out = tmp_path / "split"
    result = run(SPLIT, tmp_path / "labels.csv", out, "--seed", 3)
    parts = [read(out / name) for name in ("train.csv", "val.csv", "test.csv")]
    ids = [r["ID"] for part in parts for r in part]
    assert sorted(ids) == sorted(r[0] for r in rows)
    patients = [{r["patient"] for r in part} for part in parts]
    assert not (patients[0] & patients[1] or patients[0] & patients[2]
                or patients[1] & patients[2])
    for part, ratio in zip(parts, (0.8, 0.1, 0.1)):
        assert abs(len(part) / len(rows) - ratio) <= 0.02
    # the table: one line per part and one for all, with the counts
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()
             if line.split() and line.split()[0] in ("train", "val", "test", "all")}
    assert set(lines) == {"train", "val", "test", "all"}
    for name, part, pats in zip(("train", "val", "test"), parts, patients):
        assert int(lines[name][1]) == len(part)
        assert int(lines[name][3]) == len(pats)
        epidural = sum(r["epidural"] == "1" for r in part)
        assert int(lines[name][6]) == epidural
    assert int(lines["all"][1]) == len(rows)


def test_seed_ratios_and_no_stratify(tmp_path):
    write_table(tmp_path / "labels.csv")
    for name, args in (("a", ["--seed", 1]), ("b", ["--seed", 1]), ("c", ["--seed", 2]),
                       ("d", ["--ratios", "0.5,0.5,0", "--no-stratify"])):
        run(SPLIT, tmp_path / "labels.csv", tmp_path / name, *args, "--quiet")
    ids = {name: [r["ID"] for r in read(tmp_path / name / "test.csv")] for name in "abcd"}
    assert ids["a"] == ids["b"] and ids["a"] != ids["c"]
    assert ids["d"] == []
    assert len(read(tmp_path / "d" / "val.csv")) > 0


def test_no_patient_column_warns(tmp_path):
    write_table(tmp_path / "labels.csv", with_patient=False)
    result = run(SPLIT, tmp_path / "labels.csv", tmp_path / "out")
    assert "no row has a group" in result.stderr


@pytest.mark.parametrize("args", [["--ratios", "0.8,0.1"], ["--ratios", "0.8,0.1,0.2"],
                                  ["--ratios", "0.9,-0.1,0.2"], ["--seed", "x"], ["--nope"]])
def test_bad_usage(tmp_path, args):
    write_table(tmp_path / "labels.csv", patients=5)
    result = run(SPLIT, tmp_path / "labels.csv", tmp_path / "out", *args, check=False)
    assert result.returncode == 2
    assert not (tmp_path / "out").exists()


def test_empty_table_fails(tmp_path):
    (tmp_path / "labels.csv").write_text("ID,any\n")
    result = run(SPLIT, tmp_path / "labels.csv", tmp_path / "out", check=False)
    assert result.returncode == 1 and "empty" in result.stderr


def test_groups_from_dicom(tmp_path):
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    os.environ.setdefault("ICH_BUILD_DIR", str(BUILD))
    ich = pytest.importorskip("ich")
    import numpy as np

    rows = write_table(tmp_path / "labels.csv", patients=30, with_patient=False)
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.zeros((4, 4), np.int16)
    for r in rows:  # the patient is in the ID: ID_<patient>_<slice>
        ich.write_ct(images / f"{r[0]}.dcm", pixels, patient_id="P" + r[0].split("_")[1])
    (images / f"{rows[0][0]}.dcm").write_bytes(b"broken")
    result = run(SPLIT, tmp_path / "labels.csv", tmp_path / "out", "--groups-from-dicom",
                 images, "--threads", 2, check=False)
    # written, but the unreadable file makes it a failure (exit status 1)
    assert result.returncode == 1, result.stderr
    assert "1 of" in result.stderr and "could not be read" in result.stderr
    parts = [read(tmp_path / "out" / n) for n in ("train.csv", "val.csv", "test.csv")]
    owner = {}
    for k, part in enumerate(parts):
        for r in part:
            if r["ID"] == rows[0][0]:
                assert r["patient"] == ""  # unreadable: no group
                continue
            assert r["patient"] == "P" + r["ID"].split("_")[1]
            assert owner.setdefault(r["patient"], k) == k


def test_groups_from_dicom_refuses_hostile_ids(tmp_path):
    """IDs that climb out of the DICOM folder are refused by name and row,
    never read: their rows keep the CSV's patient, not the one of the file
    they point at."""
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    os.environ.setdefault("ICH_BUILD_DIR", str(BUILD))
    ich = pytest.importorskip("ich")
    import numpy as np

    rows = write_table(tmp_path / "labels.csv", patients=20)
    images, outside = tmp_path / "images", tmp_path / "outside"
    images.mkdir()
    outside.mkdir()
    (images / "a").mkdir()  # so that "a/../../outside/victim" would resolve
    pixels = np.zeros((4, 4), np.int16)
    for r in rows:
        ich.write_ct(images / f"{r[0]}.dcm", pixels, patient_id=r[-1])
    ich.write_ct(outside / "victim.dcm", pixels, patient_id="VICTIM")
    hostile = ["../outside/victim", str(outside / "victim"), "a/../../outside/victim"]
    with open(tmp_path / "labels.csv", "a", newline="") as f:
        for k, name in enumerate(hostile):
            csv.writer(f).writerow([name, 0, 0, 0, 0, 0, 0, f"CSV{k}"])
    before = {p for p in tmp_path.rglob("*")}
    result = run(SPLIT, tmp_path / "labels.csv", tmp_path / "out", "--groups-from-dicom",
                 images, "--threads", 2, check=False)
    assert result.returncode == 1, result.stderr
    for k, name in enumerate(hostile):
        assert f"{name} (row {len(rows) + 1 + k}) keeps its group" in result.stderr
        assert f'ID "{name}" cannot name a file inside {images}' in result.stderr
    assert "3 of" in result.stderr and "could not be read" in result.stderr
    patients = {r["ID"]: r["patient"] for n in ("train.csv", "val.csv", "test.csv")
                for r in read(tmp_path / "out" / n)}
    assert [patients[name] for name in hostile] == ["CSV0", "CSV1", "CSV2"]
    assert "VICTIM" not in patients.values()
    new = {p for p in tmp_path.rglob("*")} - before
    assert all(p == tmp_path / "out" or tmp_path / "out" in p.parents for p in new)
