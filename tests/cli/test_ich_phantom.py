"""End-to-end tests of the ich-phantom example program (the built-in data
step): files and CSVs it writes, layouts, reproducibility, options.

The DICOM files are read back with pydicom, independently of libich."""
import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

BUILD = Path(os.environ.get("ICH_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
PHANTOM = BUILD / "examples" / "ich-phantom"
SUBTYPES = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid",
            "subdural"]

pytestmark = pytest.mark.skipif(not PHANTOM.exists(), reason="examples not built")


def run(*args, check=True):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr}")
    return result


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_writes_dicoms_and_rsna_labels(tmp_path):
    out = tmp_path / "data"
    result = run(PHANTOM, out, "--patients", 3, "--studies", 2, "--slices", 4, "--size", 64,
                 "--prevalence", 1, "--seed", 9, "--threads", 2)
    assert "24 slices" in result.stdout
    files = sorted((out / "images").glob("ID_*.dcm"))
    assert len(files) == 24
    labels = read_csv(out / "labels.csv")
    assert labels[0] == ["ID", "Label"]
    assert len(labels) == 1 + 6 * 24
    by_image = {}
    for row in labels[1:]:
        image, subtype = row[0].rsplit("_", 1)
        by_image.setdefault(image, {})[subtype] = int(row[1])
    assert {f.stem for f in files} == set(by_image)
    for values in by_image.values():
        assert list(values) == SUBTYPES
        assert values["any"] == max(values[s] for s in SUBTYPES[1:])
    meta = read_csv(out / "metadata.csv")
    assert meta[0] == ["ID", "patient", "study", "series", "instance", "z"]
    assert len({row[1] for row in meta[1:]}) == 3
    assert len({row[3] for row in meta[1:]}) == 6
    for row in meta[1:]:
        ds = pydicom.dcmread(out / "images" / (row[0] + ".dcm"))
        assert ds.PatientID == row[1]
        assert int(ds.InstanceNumber) == int(row[4])
        assert abs(float(ds.ImagePositionPatient[2]) - float(row[5])) < 1e-3
        assert ds.Modality == "CT" and ds.pixel_array.dtype == np.int16
        assert float(ds.RescaleSlope) == 1 and float(ds.RescaleIntercept) == -1024
    scans = read_csv(out / "scans.csv")
    assert scans[0] == ["patient", "scan"] + SUBTYPES
    assert len(scans) == 1 + 6
    # Prevalence 1: every scan has a bleed, but 4 slices are 30 mm apart, so
    # a bleed of a few millimetres can lie between two of them: most scans
    # are positive, and a scan is positive when one of its slices is.
    assert sum(row[2] == "1" for row in scans[1:]) >= 4
    for row in scans[1:]:
        ids = [m[0] for m in meta[1:] if m[3] == row[1]]
        assert int(row[2]) == max(by_image[i]["any"] for i in ids)


def test_tree_layout_has_a_folder_per_patient_and_scan(tmp_path):
    run(PHANTOM, tmp_path, "--patients", 2, "--studies", 2, "--slices", 3, "--size", 32,
        "--layout", "tree", "--quiet")
    scans = read_csv(tmp_path / "scans.csv")[1:]
    for patient, scan, *_ in scans:
        assert len(list((tmp_path / "images" / patient / scan).glob("ID_*.dcm"))) == 3
    assert len(list((tmp_path / "images").rglob("*.dcm"))) == 12


def test_prevalence_zero_gives_no_positive_label(tmp_path):
    run(PHANTOM, tmp_path, "--patients", 2, "--slices", 6, "--size", 48, "--prevalence", 0,
        "--quiet")
    labels = read_csv(tmp_path / "labels.csv")[1:]
    assert labels and all(value == "0" for _, value in labels)


def test_is_reproducible_for_any_thread_count(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run(PHANTOM, a, "--patients", 2, "--slices", 3, "--size", 64, "--seed", 11, "--threads", 1,
        "--quiet")
    run(PHANTOM, b, "--patients", 2, "--slices", 3, "--size", 64, "--seed", 11, "--threads", 2,
        "--quiet")
    run(PHANTOM, c, "--patients", 2, "--slices", 3, "--size", 64, "--seed", 12, "--quiet")
    fa, fb = sorted(a.rglob("*.*")), sorted(b.rglob("*.*"))
    assert [p.relative_to(a) for p in fa] == [p.relative_to(b) for p in fb]
    assert len(fa) == 6 + 3
    for x, y in zip(fa, fb):
        assert x.read_bytes() == y.read_bytes()
    assert (a / "labels.csv").read_bytes() != (c / "labels.csv").read_bytes()


def test_noise_option(tmp_path):
    run(PHANTOM, tmp_path, "--patients", 1, "--slices", 1, "--size", 64, "--noise", 0, "--quiet")
    ds = pydicom.dcmread(next((tmp_path / "images").glob("*.dcm")))
    hu = ds.pixel_array.astype(np.float32) - 1024
    assert hu[0, 0] == -1000 and np.all(hu[:4, :4] == -1000)  # air without noise


def test_creates_missing_parent_folders(tmp_path):
    out = tmp_path / "not" / "yet" / "there"
    run(PHANTOM, out, "--patients", 1, "--slices", 1, "--size", 32, "--quiet")
    assert len(list(out.rglob("*.dcm"))) == 1


@pytest.mark.parametrize("args", [["--size", "8"], ["--slices", "x"], ["--prevalence", "2"],
                                  ["--noise", "-1"], ["--layout", "nested"], ["--nosuch"],
                                  ["--studies", "0"], []])
def test_bad_options_fail_with_a_message(tmp_path, args):
    out = [tmp_path / "data"] if args else []
    result = run(PHANTOM, *out, *args, check=False)
    assert result.returncode == 2
    assert "ich-phantom" in result.stderr or "usage" in result.stderr
    assert not (tmp_path / "data").exists()


def test_help(tmp_path):
    result = run(PHANTOM, "--help")
    assert "--prevalence" in result.stdout and "--layout" in result.stdout


def test_unwritable_output_fails(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run(PHANTOM, blocker, "--patients", 1, "--slices", 1, "--size", 16, check=False)
    assert result.returncode == 1
    assert str(blocker) in result.stderr


def test_stats_reports_tissues_noise_and_lesions(tmp_path):
    # The realism report: nothing written, numbers a reader can check.
    result = run(PHANTOM, "--stats", "--patients", 6, "--size", 256, "--prevalence", 1,
                 "--seed", 3)
    out = result.stdout
    assert "HU per tissue" in out and "HU histograms" in out and "lesions" in out
    rows = {}
    table = out.split("HU per tissue")[1].split("\n\n")[0]
    for line in table.splitlines()[2:]:
        parts = line.rsplit(None, 6)
        if len(parts) == 7 and parts[1].isdigit():
            rows[parts[0].strip()] = [float(v) for v in parts[2:]]
    assert 33 <= rows["grey matter"][0] <= 43 and 24 <= rows["white matter"][0] <= 35
    assert rows["grey matter"][0] > rows["white matter"][0] + 4
    assert -2 <= rows["CSF"][0] <= 15 and rows["bone"][3] > 500
    noise = [line for line in out.splitlines() if line.startswith("noise in brain")][0]
    sd = float(noise.split("sd ")[1].split()[0])
    lag = float(noise.rsplit(" ", 1)[1])
    assert 3 <= sd <= 8 and lag > 0.3
    assert "volume, ml" in out and "slices spanned" in out
    assert not list(tmp_path.iterdir())


def test_vary_intercept_gives_common_intercepts(tmp_path):
    run(PHANTOM, tmp_path, "--patients", 12, "--slices", 1, "--size", 32, "--vary-intercept",
        "--quiet")
    seen = {float(pydicom.dcmread(f).RescaleIntercept) for f in (tmp_path / "images").glob("*.dcm")}
    assert seen <= {-1024.0, -1000.0, 0.0} and len(seen) >= 2
