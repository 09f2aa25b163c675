"""End-to-end tests of the ich-select example program: the files it puts in
the destination are compared with the sources, and its CSV is read back
with Python's csv module."""
import csv
import os
import subprocess
from pathlib import Path

import pytest

BUILD = Path(os.environ.get("ICH_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
SELECT = BUILD / "examples" / "ich-select"

pytestmark = pytest.mark.skipif(not SELECT.exists(), reason="examples not built")

HEADER = ["ID", "any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid",
          "subdural"]


def run(*args, check=True):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture
def data(tmp_path):
    """12 images under src/ (every third one a folder down), a wide CSV
    naming them plus two that do not exist."""
    src = tmp_path / "src"
    rows, files = [], {}
    for i in range(12):
        name = f"ID_{i:03d}"
        path = src / ("deeper" if i % 3 == 0 else "") / f"{name}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + 50 * i))
        files[name] = path
        rows.append([name] + [str(int(i % 6 == k)) for k in range(6)])
    rows += [["ID_missing1"] + ["0"] * 6, ["ID_missing2"] + ["1"] * 6]
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return labels, src, files


def read_ids(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        assert next(reader)[: len(HEADER)] == HEADER
        return [row[0] for row in reader]


def test_copies_and_reports(data, tmp_path):
    labels, src, files = data
    dst = tmp_path / "dst"
    result = run(SELECT, labels, src, dst, "--threads", 2)
    assert "12 copied, 2 missing, 0 failed" in result.stdout
    assert "ID_missing1" in result.stderr and "ID_missing2" in result.stderr
    for name, path in files.items():
        target = dst / f"{name}.dcm"
        assert target.read_bytes() == path.read_bytes()
        assert not target.is_symlink()
    assert read_ids(dst / "labels.csv") == sorted(files)
    assert not list(dst.rglob("*.tmp-*"))


def test_links_and_out_csv(data, tmp_path):
    labels, src, files = data
    out_csv = tmp_path / "found.csv"
    run(SELECT, labels, src, tmp_path / "hard", "--link", "--out-csv", out_csv)
    run(SELECT, labels, src, tmp_path / "soft", "--symlink", "--quiet")
    for name, path in files.items():
        assert os.stat(tmp_path / "hard" / f"{name}.dcm").st_ino == os.stat(path).st_ino
        link = tmp_path / "soft" / f"{name}.dcm"
        assert link.is_symlink() and os.readlink(link) == os.path.realpath(path)
    assert read_ids(out_csv) == sorted(files)
    assert not (tmp_path / "hard" / "labels.csv").exists()


def test_other_extension_finds_nothing_and_fails(data, tmp_path):
    labels, src, _ = data
    result = run(SELECT, labels, src, tmp_path / "dst", "--ext", ".png", check=False)
    assert result.returncode == 1
    assert "none of the 14 images" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_file_fails(data, tmp_path):
    labels, src, files = data
    files["ID_001"].chmod(0)
    try:
        result = run(SELECT, labels, src, tmp_path / "dst", check=False)
    finally:
        files["ID_001"].chmod(0o644)
    assert result.returncode == 1
    assert "11 copied, 2 missing, 1 failed" in result.stdout
    assert not (tmp_path / "dst" / "ID_001.dcm").exists()


@pytest.mark.parametrize("args", [[], ["--threads", "0"], ["--bogus"]])
def test_bad_usage(data, tmp_path, args):
    labels, src, _ = data
    extra = [] if not args else [labels, src, tmp_path / "dst"]
    result = run(SELECT, *extra, *args, check=False)
    assert result.returncode == 2
    assert "usage" in result.stderr or "ich-select" in result.stderr


def test_bad_inputs(data, tmp_path):
    labels, src, _ = data
    result = run(SELECT, tmp_path / "nope.csv", src, tmp_path / "dst", check=False)
    assert result.returncode == 1 and "nope.csv" in result.stderr
    result = run(SELECT, labels, tmp_path / "nosrc", tmp_path / "dst", check=False)
    assert result.returncode == 1 and "nosrc" in result.stderr
