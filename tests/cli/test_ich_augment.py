"""End-to-end tests of the ich-augment example program (offline augmentation).

The copies are decoded with Pillow and compared with the mirrored source
images (the recipe used is a certain horizontal flip); the output CSV is
read with the csv module.
"""
import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BUILD = Path(os.environ.get("ICH_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
AUGMENT = BUILD / "examples" / "ich-augment"

pytestmark = pytest.mark.skipif(not AUGMENT.exists(), reason="examples not built")

LABELS = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]
ROWS = {
    "ID_a": [0, 0, 0, 0, 0, 0],
    "ID_b": [0, 0, 0, 0, 0, 0],
    "ID_c": [1, 1, 0, 0, 0, 0],
    "ID_d": [1, 0, 1, 0, 0, 0],
    "ID_e": [1, 0, 1, 1, 0, 0],
    "ID_f": [1, 0, 0, 0, 1, 1],
}


def run(*args, check=True):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture
def train(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(4)
    for name in ROWS:
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(
            images / f"{name}.png")
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID"] + LABELS + ["patient"])
        for i, (name, values) in enumerate(ROWS.items()):
            w.writerow([name] + values + [f"P{i // 2}"])
    return path, images


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tops_up_every_label(train, tmp_path):
    csv_path, images = train
    out = tmp_path / "aug"
    result = run(AUGMENT, csv_path, images, out, "--target", 3, "--recipe", "hflip:1",
                 "--seed", 2, "--threads", 2)
    assert "before" in result.stdout and "after" in result.stdout
    rows = read_rows(out / "train_augmented.csv")
    assert [r["ID"] for r in rows[:6]] == list(ROWS)
    for label in LABELS:
        assert sum(float(r[label]) >= 0.5 for r in rows) >= 3, label
    new = rows[6:]
    assert new
    for r in new:
        source, k = r["ID"].rsplit("_aug_", 1)
        assert int(k) >= 1
        assert [int(float(r[label])) for label in LABELS] == ROWS[source]
        copy = np.asarray(Image.open(out / f"{r['ID']}.png"))
        original = np.asarray(Image.open(images / f"{source}.png"))
        np.testing.assert_array_equal(copy, original[:, ::-1])
    # The table printed after: epidural went from 1 to at least 3.
    line = next(l for l in result.stdout.splitlines() if l.startswith("epidural"))
    before, after = map(int, line.split()[1:3])
    assert before == 1 and after >= 3


def test_same_seed_same_output(train, tmp_path):
    csv_path, images = train
    for name in ("one", "two"):
        run(AUGMENT, csv_path, images, tmp_path / name, "--target", 3, "--seed", 9,
            "--out-csv", tmp_path / f"{name}.csv", "--quiet")
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_unreadable_image_is_reported(train, tmp_path):
    csv_path, images = train
    (images / "ID_c.png").write_bytes(b"broken")  # the only epidural row
    result = run(AUGMENT, csv_path, images, tmp_path / "aug", "--target", 3, "--quiet",
                 check=False)
    assert result.returncode == 1
    assert "ID_c" in result.stderr


def test_usage_errors(train, tmp_path):
    csv_path, images = train
    assert run(AUGMENT, "--help").stdout.startswith("usage:")
    assert run(AUGMENT, csv_path, images, check=False).returncode == 2
    bad = run(AUGMENT, csv_path, images, tmp_path / "x", "--recipe", "spin:1", check=False)
    assert bad.returncode == 2 and "spin" in bad.stderr
    assert run(AUGMENT, csv_path, images, tmp_path / "x", "--target", "-4",
               check=False).returncode == 2
    missing = run(AUGMENT, tmp_path / "none.csv", images, tmp_path / "x", check=False)
    assert missing.returncode == 1 and "none.csv" in missing.stderr


def all_files(root):
    return {p for p in Path(root).rglob("*") if not p.is_dir()}


def test_hostile_ids_are_refused_and_nothing_written_outside(train, tmp_path):
    """IDs that climb out of the folders ("../outside/victim" once wrote
    outside/victim_aug_1.png) are refused by name and row; no file is
    written outside the output folder."""
    csv_path, images = train
    outside = tmp_path / "outside"
    outside.mkdir()
    (images / "a").mkdir()  # so that "a/../../outside/victim" would resolve
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(outside / "victim.png")
    hostile = ["../outside/victim", str(outside / "victim"), "a/../../outside/victim"]
    with open(csv_path, "a", newline="") as f:
        for name in hostile:
            csv.writer(f).writerow([name, 1, 1, 0, 0, 0, 0, "PX"])  # epidural, as ID_c
    before = all_files(tmp_path)
    out = tmp_path / "aug"
    # target 12: epidural needs 8 copies of its 4 rows, so every row is drawn
    result = run(AUGMENT, csv_path, images, out, "--target", 12, "--recipe", "hflip:1",
                 "--seed", 1, check=False)
    assert result.returncode == 1
    for row, name in enumerate(hostile, start=7):
        assert f'ID "{name}" cannot name a file inside' in result.stderr
        assert f"{name} (row {row})" in result.stderr
    assert "absolute path" in result.stderr and '".."' in result.stderr
    new = all_files(tmp_path) - before
    assert new and all(out in p.parents for p in new), sorted(map(str, new))
    assert sorted(p.name for p in outside.iterdir()) == ["victim.png"]
