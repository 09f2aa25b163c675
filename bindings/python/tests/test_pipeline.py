"""Tests of ich.preprocess_folder, ich.predict_folder and ich.predict_files
(libich's <ich/pipeline.h>): their results equal the per-file path
(ich.read_dicom + ich.Window + ich.write_png / Model.predict), bad files
are skipped and counted (or raise, for predict_files), and a progress
callback returning True cancels."""

import csv

import numpy as np
import pytest

import ich

SPEC = "input 3x32x32, conv 4 5 stride 4, relu, flatten, linear 6"
LABELS = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """scans/images/*.dcm (6 phantom slices) plus a truncated one."""
    root = tmp_path_factory.mktemp("pipeline") / "scans"
    ich.write_phantom(root, patients=2, slices=3, size=64, seed=4)
    good = sorted(root.rglob("*.dcm"))
    assert len(good) == 6
    return root, good


@pytest.fixture
def with_bad(scans, tmp_path):
    """A copy of the scans with a truncated DICOM and a text file."""
    import shutil
    root, good = scans
    copy = tmp_path / "scans"
    shutil.copytree(root, copy)
    data = good[0].read_bytes()
    (copy / "images" / "ID_broken.dcm").write_bytes(data[:len(data) // 2])
    (copy / "notes.txt").write_text("not an image")
    return copy, [copy / p.relative_to(root) for p in good]


@pytest.fixture(scope="module")
def model():
    m = ich.Model(SPEC)
    m.init_weights(5)
    m.labels = LABELS
    m.set_input_window(ich.Window("blood,brain,bone", size=32, mean=[0.2] * 3, std=[0.5] * 3))
    return m


def test_preprocess_folder_equals_the_per_file_path(scans, tmp_path):
    root, good = scans
    out = tmp_path / "png"
    with ich.Window("blood,brain,bone", size=40) as window:
        summary = ich.preprocess_folder(root, out, window, threads=2)
        assert summary.files == 6 and summary.converted == 6
        assert summary.existing == summary.failed == summary.skipped == 0
        assert summary.threads == 2
        for path in good:
            png = out / path.relative_to(root).with_suffix(".png")
            np.testing.assert_array_equal(ich.read_png(png),
                                          window.apply(ich.read_dicom(path)))
        assert (out / "recipe.txt").read_text().strip() == window.to_string()
    # a second run keeps them; overwrite converts again
    with ich.Window("brain", size=40) as brain:
        text = brain.to_string()
    again = ich.preprocess_folder(root, out, text)  # a recipe's text works too
    assert (again.converted, again.existing) == (0, 6)
    forced = ich.preprocess_folder(root, out, ich.Window("brain", size=40), overwrite=True)
    assert (forced.converted, forced.existing) == (6, 0)
    assert ich.read_png(out / good[0].relative_to(root).with_suffix(".png")).ndim == 2


def test_preprocess_folder_skips_and_counts_a_bad_file(with_bad, tmp_path):
    root, good = with_bad
    out = tmp_path / "png"
    messages = []
    ich.set_log_callback(lambda level, message: messages.append(message), "warning")
    try:
        summary = ich.preprocess_folder(root, out, ich.Window("brain", size=16))
    finally:
        ich.set_log_callback(None)
    assert (summary.files, summary.converted, summary.failed) == (7, 6, 1)
    assert any("ID_broken.dcm" in m for m in messages), messages
    assert not list(out.rglob("ID_broken*"))
    assert len(list(out.rglob("*.png"))) == 6


def test_preprocess_folder_errors_and_cancel(scans, tmp_path):
    root, _ = scans
    with pytest.raises(ich.IchIOError):
        ich.preprocess_folder(tmp_path / "nope", tmp_path / "png", ich.Window("brain"))
    assert not (tmp_path / "png").exists()
    with pytest.raises(ich.UnsupportedError):
        ich.preprocess_folder(root, tmp_path / "png", ich.Window("brain,bone"))
    calls = []
    with pytest.raises(ich.CancelledError, match="cancelled"):
        ich.preprocess_folder(root, tmp_path / "png", ich.Window("brain", size=16), threads=1,
                              progress=lambda done, total: calls.append((done, total)) or True)
    assert len(calls) == 1 and calls[0][1] == 6  # called a few times a second: may be at the end


def per_file(model, paths):
    """The per-file path: read, window, predict one at a time."""
    with model.input_window() as window:
        return np.concatenate([model.predict(window.apply(ich.read_dicom(p),
                                                          dtype="float32")[None])
                               for p in paths])


def assert_same_predictions(got, want):
    """Equal up to the float32 rounding of another summation order (a few
    ulps of a probability); a wrong image, window or row order is far off."""
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_predict_folder_equals_the_per_file_path(scans, model, tmp_path):
    root, good = scans
    out = tmp_path / "p.csv"
    summary = ich.predict_folder(model, root, out, batch_size=4, threads=2)
    assert summary == ich.PredictSummary(6, 6, 0, 0)
    rows = read_csv(out)
    assert rows[0] == ["ID"] + LABELS
    assert [r[0] for r in rows[1:]] == [p.stem for p in good]
    got = np.array([r[1:] for r in rows[1:]], dtype=np.float32)
    # %.9g writes float32 exactly; a batch of 4 may take another oneDNN
    # kernel (another summation order) than a batch of 1: equal to rounding
    assert_same_predictions(got, per_file(model, good))
    ids, probabilities = ich.predict_files(model, root, batch_size=5)
    assert ids == [p.stem for p in good]
    assert_same_predictions(probabilities, got)
    ich.predict_folder(model, good[0], out, format="rsna")
    rows = read_csv(out)
    assert rows[0] == ["ID", "Label"]
    assert [r[0] for r in rows[1:]] == ["%s_%s" % (good[0].stem, label) for label in LABELS]


def test_predict_folder_skips_and_counts_a_bad_file(with_bad, model, tmp_path):
    root, good = with_bad
    out = tmp_path / "p.csv"
    summary = ich.predict_folder(model, root, out)
    assert (summary.files, summary.predicted, summary.failed) == (7, 6, 1)
    rows = read_csv(out)
    assert [r[0] for r in rows[1:]] == [p.stem for p in good]
    assert_same_predictions(np.array([r[1:] for r in rows[1:]], dtype=np.float32),
                            per_file(model, good))
    # predict_files raises instead, naming the file
    with pytest.raises(ich.FormatError, match="ID_broken.dcm"):
        ich.predict_files(model, root)


def test_predict_cancel_and_errors(scans, model, tmp_path):
    root, good = scans
    out = tmp_path / "p.csv"
    with pytest.raises(ich.CancelledError, match="cancelled"):
        ich.predict_folder(model, root, out, batch_size=2, progress=lambda done, total: True)
    assert not out.exists()
    seen = []
    with pytest.raises(ich.CancelledError, match="cancelled"):
        ich.predict_files(model, good, batch_size=2,
                          progress=lambda done, total: seen.append((done, total)) or True)
    assert len(seen) == 1 and seen[0][1] == 6  # no call after the one that cancelled
    with pytest.raises(ich.NotFoundError, match="no such file"):
        ich.predict_folder(model, tmp_path / "nope", out)
    with pytest.raises(ich.ShapeError):
        ich.predict_files(model, good, window=ich.Window("brain", size=32))
    with pytest.raises(ich.InvalidArgumentError):
        ich.predict_folder(model, root, out, format="xml")
    ids, probabilities = ich.predict_files(model, [])
    assert ids == [] and probabilities.shape == (0, 6)
