"""ich.write_phantom / ich.phantom_slice: files read back with ich.read_dicom
and pydicom equal the in-memory slices; labels.csv consistent with them."""

import csv

import numpy as np
import pydicom
import pytest

import ich

SUBTYPES = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid",
            "subdural"]
SMALL = dict(patients=2, studies=2, slices=4, size=(48, 64), seed=3, prevalence=0.9)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    n = ich.write_phantom(folder, threads=2, **SMALL)
    return folder, n


def test_files_equal_the_slices(dataset):
    folder, n = dataset
    assert n == 2 * 2 * 4
    labels = {row[0]: float(row[1]) for row in read_csv(folder / "labels.csv")[1:]}
    assert len(labels) == 6 * n
    meta = read_csv(folder / "metadata.csv")[1:]
    assert len(meta) == n
    index = 0
    for p in range(2):
        for s in range(2):
            for k in range(4):
                hu, lab, ident = ich.phantom_slice(p, s, k, **SMALL)
                assert hu.shape == (48, 64) and hu.dtype == np.float32
                assert lab.shape == (6,) and lab.dtype == np.float32
                assert meta[index][0] == ident
                path = folder / "images" / (ident + ".dcm")
                img = ich.read_dicom(path)
                np.testing.assert_array_equal(img.hu, hu)
                ds = pydicom.dcmread(path)
                ref = ds.pixel_array.astype(np.float32) * np.float32(ds.RescaleSlope) + \
                    np.float32(ds.RescaleIntercept)
                np.testing.assert_array_equal(ref, hu)
                assert ds.PatientID == meta[index][1]
                for c, name in enumerate(SUBTYPES):
                    assert labels["%s_%s" % (ident, name)] == lab[c]
                assert lab[0] == lab[1:].max()
                index += 1


def test_scans_are_the_or_of_their_slices(dataset):
    folder, _ = dataset
    scans = read_csv(folder / "scans.csv")
    assert scans[0] == ["patient", "scan"] + SUBTYPES
    meta = read_csv(folder / "metadata.csv")[1:]
    labels = {row[0]: int(row[1]) for row in read_csv(folder / "labels.csv")[1:]}
    for patient, scan, *values in scans[1:]:
        ids = [row[0] for row in meta if row[3] == scan]
        assert len(ids) == 4 and all(row[1] == patient for row in meta if row[3] == scan)
        expect = [max(labels["%s_%s" % (i, name)] for i in ids) for name in SUBTYPES]
        assert [int(v) for v in values] == expect


def test_same_bytes_for_any_thread_count(dataset, tmp_path):
    folder, _ = dataset
    ich.write_phantom(tmp_path, threads=1, **SMALL)
    for f in sorted(folder.rglob("*.*")):
        assert (tmp_path / f.relative_to(folder)).read_bytes() == f.read_bytes()


def test_options_change_the_slices():
    base = dict(patients=1, slices=8, size=128, noise=0.0, seed=1)
    clean, lab0, _ = ich.phantom_slice(0, 0, 4, prevalence=0, **base)
    assert lab0.sum() == 0
    assert clean[0, 0] == -1000
    noisy, _, _ = ich.phantom_slice(0, 0, 4, prevalence=0, **{**base, "noise": 10.0})
    # options.noise times the study's factor (0.5-1.15), through its kernel.
    assert 5 < np.std(noisy[:10, :10]) < 14
    # Prevalence 1 with one type: the tissue map shows where the blood is
    # (the kernel blurs its edges and a large bleed pushes the brain, so the
    # HU differ around it too); inside it, blood HU; labels = what is drawn.
    found = 0
    for k in range(8):
        a, lab, _ = ich.phantom_slice(0, 0, k, prevalence=1, type_weights={"subdural": 1},
                                      **base)
        tissue = ich.phantom_tissues(0, 0, k, prevalence=1, type_weights={"subdural": 1},
                                     **base)
        blood = tissue >= 12
        assert set(np.unique(tissue[blood]).tolist()) <= {12 + 4}  # subdural only
        inner = blood.copy()
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                inner &= np.roll(np.roll(blood, dr, 0), dc, 1)
        assert np.all((a[inner] >= 35) & (a[inner] <= 90))
        pixels = int(blood.sum())
        assert lab[5] == (pixels >= 3)  # 128 x 128: 1.8 mm pixels, 3 of them
        assert lab[1:].tolist() in ([0, 0, 0, 0, 0], [0, 0, 0, 0, 1])
        found += lab[5]
    assert found >= 1
    other_seed, _, _ = ich.phantom_slice(0, 0, 4, prevalence=0, **{**base, "seed": 2})
    assert not np.array_equal(other_seed, clean)


def test_tissue_names_and_vary_intercept(tmp_path):
    assert len(ich.PHANTOM_TISSUES) == 17 and ich.PHANTOM_TISSUES[12:] == ich.PHANTOM_TYPES
    tissue = ich.phantom_tissues(0, 0, 12, patients=1, slices=24, size=64)
    assert tissue.shape == (64, 64) and tissue.dtype == np.uint8
    names = {ich.PHANTOM_TISSUES[t] for t in np.unique(tissue)}
    assert {"air", "bone", "grey", "white", "csf"} <= names
    ich.write_phantom(tmp_path, patients=12, slices=1, size=32, vary_intercept=True)
    intercepts = set()
    for f in (tmp_path / "images").glob("*.dcm"):
        intercepts.add(float(pydicom.dcmread(f).RescaleIntercept))
    assert intercepts <= {-1024.0, -1000.0, 0.0} and len(intercepts) >= 2


def test_tree_layout_and_progress(tmp_path):
    calls = []
    n = ich.write_phantom(tmp_path, patients=2, slices=3, size=32, layout="tree",
                          progress=lambda done, total: calls.append((done, total)))
    assert n == 6
    assert calls and calls[-1] == (6, 6)
    for patient, scan, *_ in read_csv(tmp_path / "scans.csv")[1:]:
        assert len(list((tmp_path / "images" / patient / scan).glob("ID_*.dcm"))) == 3


def test_progress_can_cancel_and_errors_propagate(tmp_path):
    with pytest.raises(ich.CancelledError, match="cancelled"):
        ich.write_phantom(tmp_path / "a", patients=4, slices=200, size=128,
                          progress=lambda done, total: True)
    assert not (tmp_path / "a" / "labels.csv").exists()

    def boom(done, total):
        raise KeyError("from the callback")

    with pytest.raises(KeyError):
        ich.write_phantom(tmp_path / "b", patients=4, slices=200, size=128, progress=boom)


@pytest.mark.parametrize("options", [
    dict(patients=0), dict(slices=0), dict(size=8), dict(size=(64,)), dict(size="big"),
    dict(prevalence=1.5), dict(multiple=-1), dict(size_range=(0.8, 0.2)),
    dict(noise=-1.0), dict(type_weights=[1, 2]), dict(type_weights={"nosuch": 1}),
    dict(type_weights=[0, 0, -1, 0, 0]), dict(layout="nested"), dict(studies=0),
    dict(seed=-1), dict(threads=-1)])
def test_bad_options(tmp_path, options):
    with pytest.raises(ich.InvalidArgumentError):
        ich.write_phantom(tmp_path / "x", **options)
    with pytest.raises(ich.InvalidArgumentError):
        ich.phantom_slice(0, 0, 0, **options)
    assert not (tmp_path / "x").exists()


def test_bad_slice_index():
    with pytest.raises(ich.InvalidArgumentError):
        ich.phantom_slice(1, 0, 0, patients=1, slices=2, size=32)
    with pytest.raises(ich.InvalidArgumentError):
        ich.phantom_slice(0, 0, 2, patients=1, slices=2, size=32)


def test_io_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ich.IchIOError):
        ich.write_phantom(blocker, patients=1, slices=1, size=16)
