"""End-to-end tests of the ich-labels example program (pivot, propagate,
sample, stats), checked against references computed here with Python's csv
module and numpy."""
import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

BUILD = Path(os.environ.get("ICH_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
LABELS = BUILD / "examples" / "ich-labels"

pytestmark = pytest.mark.skipif(not LABELS.exists(), reason="examples not built")

RSNA = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]


def run(*args, code=0):
    result = subprocess.run([str(LABELS)] + [str(a) for a in args], capture_output=True,
                            text=True)
    assert result.returncode == code, (args, result.returncode, result.stderr)
    return result


def read_wide(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [r[0] for r in rows[1:]], np.array([r[1:7] for r in rows[1:]], dtype=float)


@pytest.fixture
def long_csv(tmp_path):
    """A long CSV of 60 images with one duplicate row and two rows whose
    any is wrong; returns its path, the IDs and the true wide table."""
    rng = np.random.default_rng(0)
    sub = (rng.random((60, 5)) < 0.3).astype(int)
    table = np.concatenate([sub.max(axis=1, keepdims=True), sub], axis=1)
    ids = ["ID_%04d" % i for i in range(60)]
    written = table.copy()
    written[3, 0] = 1 - written[3, 0]
    written[7, 0] = 1 - written[7, 0]
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID", "Label"])
        for image, row in zip(ids, written):
            for c in [1, 2, 3, 4, 5, 0]:
                w.writerow(["%s_%s" % (image, RSNA[c]), row[c]])
        w.writerow(["ID_0000_any", written[0, 0]])  # an exact duplicate
    return path, ids, table, written


def test_pivot(long_csv, tmp_path):
    path, ids, table, written = long_csv
    out = tmp_path / "wide.csv"
    result = run("pivot", path, out)
    assert "any != OR of the subtypes: 2 rows" in result.stdout
    assert "rows: 60" in result.stdout
    for c, name in enumerate(RSNA):
        assert "%-18s %10d" % (name, (written[:, c] >= 0.5).sum()) in result.stdout
    header, got_ids, values = read_wide(out)
    assert header == ["ID"] + RSNA and got_ids == ids
    np.testing.assert_array_equal(values, written)

    result = run("pivot", path, out, "--fix-any")
    assert "2 rows (fixed)" in result.stdout
    np.testing.assert_array_equal(read_wide(out)[2], table)


def test_quiet_prints_nothing(long_csv, tmp_path):
    """--quiet: no table, no any line, no progress; only stats keeps its
    table, which is its result."""
    path, ids, table, written = long_csv
    out = tmp_path / "wide.csv"
    result = run("pivot", path, out, "--fix-any", "--quiet")
    assert (result.stdout, result.stderr) == ("", "")
    np.testing.assert_array_equal(read_wide(out)[2], table)
    result = run("sample", out, tmp_path / "s.csv", "--per-label", 4, "--quiet")
    assert (result.stdout, result.stderr) == ("", "")
    root = tmp_path / "scans"
    (root / "A" / "1").mkdir(parents=True)
    (root / "A" / "1" / "s1.dcm").write_bytes(b"x")
    scans = tmp_path / "scans.csv"
    scans.write_text("patient,scan,any\nA,1,1\n")
    result = run("propagate", root, scans, tmp_path / "p.csv", "--quiet")
    assert (result.stdout, result.stderr) == ("", "")
    assert "rows: 60" in run("stats", out, "--quiet").stdout
    result = run("stats", tmp_path / "missing.csv", "--quiet", code=1)
    assert "missing.csv" in result.stderr  # errors still reach stderr


def test_stats_and_sample(long_csv, tmp_path):
    path, ids, table, written = long_csv
    wide = tmp_path / "wide.csv"
    run("pivot", path, wide, "--fix-any", "--quiet")
    assert "rows: 60" in run("stats", wide).stdout

    out = tmp_path / "sample.csv"
    run("sample", wide, out, "--per-label", 4, "--seed", 3, "--quiet")
    _, sample_ids, values = read_wide(out)
    assert sample_ids == sorted(set(sample_ids))  # source order, no repeats
    for c in range(6):
        assert (values[:, c] >= 0.5).sum() >= min(4, (table[:, c] >= 0.5).sum())
    assert (~(values >= 0.5).any(axis=1)).sum() == min(4, (~(table >= 0.5).any(axis=1)).sum())
    again = tmp_path / "again.csv"
    run("sample", wide, again, "--per-label", 4, "--seed", 3, "--quiet")
    assert again.read_bytes() == out.read_bytes()
    run("sample", wide, again, "--per-label", 4, "--seed", 3, "--no-negatives", "--quiet")
    assert (read_wide(again)[2] >= 0.5).any(axis=1).all()


def test_propagate(tmp_path):
    root = tmp_path / "scans"
    for rel in ["A/1/s2.dcm", "A/1/s1.dcm", "B/9/x.png", "C/5/y.dcm"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    scans = tmp_path / "scans.csv"
    scans.write_text("patient,scan,any,subdural\r\nA,1,1,1\r\nB,9,0,0\r\n")
    out = tmp_path / "slices.csv"
    result = run("propagate", root, scans, out)
    assert "C/5" in result.stderr  # the folder without a row is reported
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["ID", "any", "subdural", "patient"], ["A/1/s1", "1", "1", "A"],
                    ["A/1/s2", "1", "1", "A"], ["B/9/x", "0", "0", "B"]]


def test_errors_and_usage(tmp_path):
    assert "usage" in run("--help").stdout
    run(code=2)
    run("pivot", "only-one.csv", code=2)
    run("sample", "a.csv", "b.csv", code=2)  # no --per-label
    run("sample", "a.csv", "b.csv", "--per-label", "zero", code=2)
    run("frobnicate", code=2)
    result = run("stats", tmp_path / "missing.csv", code=1)
    assert "missing.csv" in result.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,any\nx,1\ny\n")
    result = run("pivot", bad, tmp_path / "o.csv", code=1)
    assert "bad.csv:3:" in result.stderr
    assert not (tmp_path / "o.csv").exists()


def test_csv_without_header_is_refused(tmp_path):
    bad = tmp_path / "noheader.csv"
    bad.write_text("ID_1,0,1,0,0,0,0\nID_2,1,1,0,0,0,0\n")
    result = run("pivot", bad, tmp_path / "o.csv", code=1)
    assert "noheader.csv" in result.stderr and "not a header" in result.stderr
    assert '"ID,Label"' in result.stderr
    assert not (tmp_path / "o.csv").exists()
