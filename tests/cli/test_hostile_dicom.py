"""Issue 12, end to end: a folder of good phantom slices plus one file of
each hostile class (tests/hostile_dicom.py: bit layouts that aborted GDCM, a
length GDCM read from text, a deflate bomb, a huge RLE image, a truncated
JPEG-LS fragment, absurd rescale values, a 3 GB sparse file, a FIFO).

ich-preprocess, ich-predict and ich.read_dicom must each convert or predict
every good slice (compared with pydicom where values are involved), report
every hostile file by name, exit with status 1 (programs), never abort, and
stay under 1 GB of peak memory and a minute. Each program runs under a
fresh Python parent that reports the peak RSS of its children
(RUSAGE_CHILDREN), so other tests' children do not count.
"""
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
PREPROCESS = BUILD / "examples" / "ich-preprocess"
PREDICT = BUILD / "examples" / "ich-predict"
TRAIN = BUILD / "examples" / "ich-train"
LABELS = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]
SPEC = "input 3x64x64, conv 4 5 stride 4, relu, maxpool 2, flatten, linear 6"
PEAK_LIMIT_MIB = 1024
TIME_LIMIT_S = 60

pytestmark = pytest.mark.skipif(not (PREPROCESS.exists() and PREDICT.exists()),
                                reason="examples not built")

_MEASURE = """
import resource, subprocess, sys, time
start = time.monotonic()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
sys.stdout.write("%d %.1f %.2f\\n" % (proc.returncode, peak, time.monotonic() - start))
sys.stdout.write(proc.stdout)
sys.stderr.write(proc.stderr)
"""


def run_measured(*args):
    """(exit status, stdout, stderr, peak RSS MiB, seconds) of a program."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, _, stdout = proc.stdout.partition("\n")
    status, peak, seconds = first.split()
    return int(status), stdout, proc.stderr, float(peak), float(seconds)


@pytest.fixture(scope="module")
def ich():
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    os.environ.setdefault("ICH_BUILD_DIR", str(BUILD))
    return pytest.importorskip("ich")


@pytest.fixture(scope="module")
def hostile():
    sys.path.insert(0, str(ROOT / "tests"))
    import hostile_dicom

    return hostile_dicom


@pytest.fixture(scope="module")
def folder(ich, hostile, tmp_path_factory):
    """scans/images/: 6 good phantom slices and one file of each hostile
    class. Returns (folder, good paths, {class: hostile path})."""
    root = tmp_path_factory.mktemp("hostile")
    ich.write_phantom(root / "scans", patients=2, slices=3, size=96, seed=11)
    good = sorted((root / "scans").rglob("*.dcm"))
    assert len(good) == 6
    images = good[0].parent
    bad = hostile.write_all(images)
    assert set(bad) == set(hostile.ALL)
    return root, good, {k: Path(v) for k, v in bad.items()}


def assert_every_hostile_named(text, bad):
    """Every hostile file is reported by name. The FIFO may instead be
    skipped by the folder walk, which lists regular files only (it then
    never reaches the reader, which refuses it at once when it does)."""
    missing = [p.name for k, p in bad.items() if p.name not in text and k != "fifo"]
    assert not missing, "not reported: %s\n%s" % (missing, text[-4000:])


def test_ich_preprocess_converts_good_and_names_hostile(folder, tmp_path):
    root, good, bad = folder
    out = tmp_path / "png"
    status, stdout, stderr, peak, seconds = run_measured(
        PREPROCESS, root / "scans", out, "--size", 0, "--threads", 2)
    assert status == 1, (status, stderr[-3000:])
    assert peak < PEAK_LIMIT_MIB and seconds < TIME_LIMIT_S, (peak, seconds)
    assert_every_hostile_named(stdout + stderr, bad)
    pngs = sorted(out.rglob("*.png"))
    assert sorted(p.stem for p in pngs) == sorted(p.stem for p in good), pngs
    # Each PNG is the slice's blood/brain/bone windows of pydicom's HU.
    import pydicom
    from PIL import Image

    for path in good:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) * np.float32(ds.RescaleSlope) + np.float32(
            ds.RescaleIntercept)
        channels = []
        for center, width in [(75, 215), (40, 80), (600, 2800)]:
            lo = np.float32(center) - np.float32(width) / np.float32(2)
            v = np.clip((hu - lo) / np.float32(width), 0, 1)
            channels.append((v * np.float32(255)).astype(np.uint8))
        png = out / path.relative_to(root / "scans").with_suffix(".png")
        image = np.asarray(Image.open(png))
        assert np.abs(image.astype(int) - np.stack(channels, -1).astype(int)).max() <= 1


def test_ich_predict_predicts_good_and_names_hostile(ich, folder, tmp_path):
    root, good, bad = folder
    model = ich.Model(SPEC)
    model.init_weights(3)
    model.metadata["ich.windows"] = "blood,brain,bone"
    model.metadata["ich.size"] = "64"
    model.metadata["ich.labels"] = ",".join(LABELS)
    checkpoint = tmp_path / "model.safetensors"
    model.save(checkpoint)
    out = tmp_path / "predictions.csv"
    status, stdout, stderr, peak, seconds = run_measured(
        PREDICT, checkpoint, root / "scans", "--out", out)
    assert status == 1, (status, stderr[-3000:])
    assert peak < PEAK_LIMIT_MIB and seconds < TIME_LIMIT_S, (peak, seconds)
    assert_every_hostile_named(stdout + stderr, bad)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    predicted = rows[1:]
    names = {os.path.basename(r[0]) for r in predicted}
    stems = {os.path.splitext(n)[0] for n in names}
    assert stems == {p.stem for p in good}, rows
    for row in predicted:
        values = [float(v) for v in row[1:]]
        assert len(values) == 6 and all(0 <= v <= 1 for v in values), row


def test_ich_train_skips_hostile_and_names_them(ich, folder, tmp_path):
    """ich-train on a label CSV that lists the good slices and every hostile
    file: it trains on the good ones, names each hostile file, writes its
    checkpoints and exits 1 (a file failed)."""
    root, good, bad = folder
    images = good[0].parent
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID"] + LABELS)
        for i, path in enumerate(good + sorted(bad.values())):
            w.writerow([path.stem] + [i % 2] * 6)
    out = tmp_path / "model"
    status, stdout, stderr, peak, seconds = run_measured(
        TRAIN, labels, images, "--model", SPEC, "--size", 64, "--epochs", 1, "--batch-size", 4,
        "--out", out, "--threads", 2)
    assert status == 1, (status, stderr[-3000:])
    assert peak < PEAK_LIMIT_MIB and seconds < TIME_LIMIT_S, (peak, seconds)
    assert_every_hostile_named(stderr, bad)
    assert "%d images were left out" % len(bad) in stderr, stderr[-3000:]
    assert (out / "last.safetensors").exists()
    model = ich.Model.load(out / "last.safetensors")
    assert model.labels == LABELS


_READ_ALL = """
import os, resource, sys, time
sys.path.insert(0, sys.argv[1])
import ich
start = time.monotonic()
for path in sys.argv[2:]:
    try:
        image = ich.read_dicom(path)
        print("OK", os.path.basename(path), image.rows, image.columns, flush=True)
    except ich.IchError as err:
        print("ERROR", os.path.basename(path), err.status,
              int(os.path.basename(path) in err.message), flush=True)
# this process's own peak, VmHWM: ru_maxrss keeps the parent's resident
# size at the fork across exec
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print("PEAK %.1f %.2f" % (peak / 1024.0, time.monotonic() - start))
"""


def test_read_dicom_raises_for_each_hostile_file(ich, folder):
    """ich.read_dicom: an exception naming each hostile file, images for the
    good ones, all in one process under 1 GB and a minute."""
    root, good, bad = folder
    paths = [str(p) for p in good] + [str(p) for p in bad.values()]
    proc = subprocess.run([sys.executable, "-c", _READ_ALL, str(ROOT / "bindings" / "python")]
                          + paths, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    peak, seconds = map(float, lines[-1].split()[1:])
    assert peak < PEAK_LIMIT_MIB and seconds < TIME_LIMIT_S, (peak, seconds)
    results = {line.split()[1]: line.split() for line in lines[:-1]}
    for path in good:
        assert results[path.name][0] == "OK", results[path.name]
    for kind, path in bad.items():
        word, _, status, named = results[path.name]
        assert word == "ERROR" and named == "1", (kind, results[path.name])
        assert int(status) in (ich.ERR_IO, ich.ERR_FORMAT, ich.ERR_UNSUPPORTED), kind
