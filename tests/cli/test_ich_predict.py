"""End-to-end tests of the ich-predict example program (and of
ich.Model.input_window / ich.predict_files), on phantom slices and a small
untrained model saved with its input recipe in the checkpoint metadata.

The program's probabilities are compared with an independent path in
Python: ich.read_dicom + an ich.Window built from the same recipe by hand +
Model.predict.
"""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
PREDICT = BUILD / "examples" / "ich-predict"
LABELS = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]
SPEC = "input 3x64x64, conv 4 5 stride 4, relu, maxpool 2, flatten, linear 6"
MEAN, STD = [0.1, 0.2, 0.3], [0.5, 0.6, 0.7]

pytestmark = pytest.mark.skipif(not PREDICT.exists(), reason="examples not built")


@pytest.fixture(scope="module")
def ich():
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    os.environ.setdefault("ICH_BUILD_DIR", str(BUILD))
    return pytest.importorskip("ich")


def run(*args, check=True):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr}")
    return result


def make_model(ich, spec=SPEC, seed=7):
    model = ich.Model(spec)
    model.init_weights(seed)
    model.metadata["ich.windows"] = "blood,brain,bone"
    model.metadata["ich.size"] = "64"
    model.metadata["ich.labels"] = ",".join(LABELS)
    model.metadata["ich.mean"] = ",".join(map(str, MEAN))
    model.metadata["ich.std"] = ",".join(map(str, STD))
    return model


@pytest.fixture(scope="module")
def data(ich, tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    ich.write_phantom(folder / "scans", patients=2, slices=3, size=96, seed=5)
    files = sorted((folder / "scans").rglob("*.dcm"))
    assert len(files) == 6
    model = make_model(ich)
    model.save(folder / "model.safetensors")
    return folder, files, model


def reference(ich, model, files):
    """Probabilities computed in Python from the same recipe, written out."""
    with ich.Window("blood,brain,bone", size=64, mean=MEAN, std=STD) as window:
        images = np.stack([window.apply(ich.read_dicom(f).hu, dtype="float32") for f in files])
    return model.predict(images)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_one_file_csv(ich, data, tmp_path):
    folder, files, model = data
    out = tmp_path / "p.csv"
    run(PREDICT, folder / "model.safetensors", files[0], "--out", out, "--quiet")
    rows = read_csv(out)
    assert rows[0] == ["ID"] + LABELS
    assert len(rows) == 2 and rows[1][0] == files[0].stem and rows[1][0].startswith("ID_")
    got = np.array(rows[1][1:], dtype=np.float64)
    np.testing.assert_allclose(got, reference(ich, model, files[:1])[0], atol=1e-6, rtol=0)


def test_folder_csv_matches_python(ich, data, tmp_path):
    folder, files, model = data
    out = tmp_path / "p.csv"
    result = run(PREDICT, folder / "model.safetensors", folder / "scans", "--out", out,
                 "--batch-size", 4, "--threads", 1)
    assert "6 predicted, 0 failed" in result.stdout
    rows = read_csv(out)
    assert rows[0] == ["ID"] + LABELS
    assert [r[0] for r in rows[1:]] == [f.stem for f in files]
    assert all(len(r) == 7 for r in rows)
    got = np.array([r[1:] for r in rows[1:]], dtype=np.float64)
    expected = reference(ich, model, files)
    assert np.ptp(expected[:, 0]) > 0  # the images differ, so a mix-up would show
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_folder_rsna_format(ich, data, tmp_path):
    folder, files, model = data
    out = tmp_path / "sub.csv"
    run(PREDICT, folder / "model.safetensors", folder / "scans", "--out", out,
        "--format", "rsna", "--quiet")
    rows = read_csv(out)
    assert rows[0] == ["ID", "Label"]
    expected = reference(ich, model, files)
    want_ids = [f"{f.stem}_{label}" for f in files for label in LABELS]
    assert [r[0] for r in rows[1:]] == want_ids
    assert all(r[0].startswith("ID_") and not r[0].startswith("ID_ID_") for r in rows[1:])
    got = np.array([r[1] for r in rows[1:]], dtype=np.float64).reshape(len(files), 6)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_rsna_adds_prefix_to_plain_names(ich, data, tmp_path):
    folder, files, _ = data
    plain = tmp_path / "abc123.dcm"
    shutil.copy(files[0], plain)
    out = tmp_path / "sub.csv"
    run(PREDICT, folder / "model.safetensors", plain, "--out", out, "--format", "rsna",
        "--quiet")
    assert [r[0] for r in read_csv(out)[1:]] == [f"ID_abc123_{label}" for label in LABELS]


def test_corrupt_file_is_skipped(ich, data, tmp_path):
    folder, files, model = data
    scans = tmp_path / "scans"
    shutil.copytree(folder / "scans", scans)
    (scans / "images" / "ID_broken.dcm").write_bytes(b"not a dicom file" * 20)
    out = tmp_path / "p.csv"
    result = run(PREDICT, folder / "model.safetensors", scans, "--out", out, check=False)
    assert result.returncode == 1
    assert "ID_broken.dcm" in result.stderr
    assert "6 predicted, 1 failed" in result.stdout
    rows = read_csv(out)
    assert [r[0] for r in rows[1:]] == [f.stem for f in files]
    got = np.array([r[1:] for r in rows[1:]], dtype=np.float64)
    np.testing.assert_allclose(got, reference(ich, model, files), atol=1e-6, rtol=0)


def test_nan_weights_are_refused(ich, data, tmp_path):
    """A checkpoint with a NaN weight once gave "-nan" probabilities with exit
    status 0: now it is refused, naming the file and the tensor."""
    folder, files, _ = data
    model = make_model(ich)
    state = model.state_dict()
    state["fc1.bias"][3] = np.nan
    model.load_state_dict(state)
    bad = tmp_path / "nan.safetensors"
    model.save(bad)
    out = tmp_path / "p.csv"
    result = run(PREDICT, bad, files[0], "--out", out, check=False)
    assert result.returncode == 1
    assert str(bad) in result.stderr and "fc1.bias" in result.stderr
    assert not out.exists() or "nan" not in out.read_text().lower()


def test_overflowing_network_skips_images_by_name(ich, data, tmp_path):
    """Finite weights that overflow inside the network (inf - inf = NaN):
    the library refuses the batch, the program names each image and skips
    it, and writes no NaN."""
    folder, files, _ = data
    model = make_model(ich, SPEC.replace("linear 6", "linear 2, linear 6"))
    state = model.state_dict()
    state["conv1.weight"][:] = 0
    state["conv1.bias"][:] = 1  # every activation 1
    state["fc1.weight"][:] = 3e38  # both outputs +inf
    state["fc2.weight"][:, 0], state["fc2.weight"][:, 1] = 1, -1  # inf - inf
    model.load_state_dict(state)
    path = tmp_path / "overflow.safetensors"
    model.save(path)
    out = tmp_path / "p.csv"
    result = run(PREDICT, path, folder / "scans", "--out", out, check=False)
    assert result.returncode == 1
    for f in files:
        assert "skipped %s" % f.stem in result.stderr, result.stderr
    assert "non-finite" in result.stderr
    assert "0 predicted, 6 failed" in result.stdout
    assert "nan" not in (out.read_text().lower() if out.exists() else "")


def test_channel_mismatch_errors(ich, data, tmp_path):
    folder, files, _ = data
    model = make_model(ich, spec=SPEC.replace("3x64x64", "1x64x64"))
    model.save(tmp_path / "one.safetensors")
    out = tmp_path / "p.csv"
    result = run(PREDICT, tmp_path / "one.safetensors", files[0], "--out", out, check=False)
    assert result.returncode == 1
    assert "3 channels" in result.stderr and "1 input channels" in result.stderr
    assert not out.exists()
    with pytest.raises(ich.ShapeError):
        model.input_window()


def test_bad_usage(data, tmp_path):
    folder, files, _ = data
    assert run(PREDICT, folder / "model.safetensors", check=False).returncode == 2
    result = run(PREDICT, folder / "model.safetensors", files[0], "--format", "xml",
                 check=False)
    assert result.returncode == 2
    assert run(PREDICT, "--help").stdout.startswith("usage")


def test_cascade_gating(ich, data, tmp_path):
    """A cascade whose "any" fires nowhere: every subtype is 0 in the output."""
    folder, files, _ = data
    spec = ("input 3x64x64, conv 4 5 stride 4, relu, maxpool 2, flatten, "
            "cascade(any: linear 1 | subtype: linear 5)")
    model = make_model(ich, spec=spec)
    state = model.state_dict()
    bias = [k for k in state if k.endswith("bias") and state[k].shape == (1,)][0]
    weight = bias.replace("bias", "weight")
    model.load_state_dict({weight: np.zeros_like(state[weight]),
                           bias: np.full((1,), -5.0, np.float32)}, strict=False)
    model.save(tmp_path / "cascade.safetensors")
    out = tmp_path / "p.csv"
    run(PREDICT, tmp_path / "cascade.safetensors", folder / "scans", "--out", out, "--quiet")
    got = np.array([r[1:] for r in read_csv(out)[1:]], dtype=np.float64)
    np.testing.assert_allclose(got[:, 0], 1 / (1 + np.exp(5.0)), atol=1e-6)
    assert np.all(got[:, 1:] == 0)
    # a threshold below P(any) lets the subtypes through
    run(PREDICT, tmp_path / "cascade.safetensors", folder / "scans", "--out", out, "--quiet",
        "--threshold", 0.001)
    got = np.array([r[1:] for r in read_csv(out)[1:]], dtype=np.float64)
    assert np.all(got[:, 1:] > 0)


def test_python_predict_files(ich, data):
    folder, files, model = data
    loaded = ich.Model.load(folder / "model.safetensors")
    window = loaded.input_window()
    assert window.size == (64, 64) and len(window.windows) == 3
    ids, probabilities = ich.predict_files(loaded, folder / "scans", batch_size=4)
    assert ids == [f.stem for f in files]
    assert probabilities.shape == (6, 6)
    np.testing.assert_allclose(probabilities, reference(ich, model, files), atol=1e-6, rtol=0)
    ids2, p2 = ich.predict_files(loaded, files[:2])
    assert ids2 == ids[:2]
    np.testing.assert_allclose(p2, probabilities[:2], atol=1e-6, rtol=0)


def test_backend_option(ich, data, tmp_path):
    """--backend cpu runs and says so; an unknown backend is an error that
    names it; --backend cuda either runs on the GPU or exits 1 saying why
    (no plugin, no device), never crashing or writing half a file."""
    folder, files, model = data
    out = tmp_path / "p.csv"
    done = run(PREDICT, folder / "model.safetensors", files[0], "--out", out, "--backend", "cpu")
    assert "ich-predict: running on cpu: " in done.stderr
    assert len(read_csv(out)) == 2
    bad = run(PREDICT, folder / "model.safetensors", files[0], "--out", tmp_path / "x.csv",
              "--backend", "gpu", check=False)
    assert bad.returncode == 1 and "gpu: unknown backend" in bad.stderr
    assert not (tmp_path / "x.csv").exists()
    cuda = run(PREDICT, folder / "model.safetensors", files[0], "--out", tmp_path / "c.csv",
               "--backend", "cuda", "--quiet", check=False)
    if cuda.returncode == 0:
        got = np.array(read_csv(tmp_path / "c.csv")[1][1:], dtype=np.float64)
        np.testing.assert_allclose(got, reference(ich, model, files[:1])[0], atol=1e-4)
    else:
        assert cuda.returncode == 1 and "libich-cuda.so" in cuda.stderr, cuda.stderr
        assert not (tmp_path / "c.csv").exists()


# ---- the recipe: a checkpoint without one is refused (issue 11) -----------

TUTORIAL_64 = ("windows=none;mode=minmax;size=64x64;resize=antialias;quantize=1;"
               "mean=0.38;std=0.236;neighbors=0")


def tutorial_steps(hu, size):
    """The tutorial's preprocessing as it writes it: raw min-max, uint8, PIL
    image, Resize (PIL bilinear), ToTensor, Normalize(0.380, 0.236)."""
    from PIL import Image
    img = (hu - hu.min()) / (hu.max() - hu.min() + 1e-5)
    pil = Image.fromarray((img * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    return (np.asarray(pil).astype(np.float32) / 255 - np.float32(0.38)) / np.float32(0.236)


def test_checkpoint_without_recipe(ich, data, tmp_path):
    """Refused (exit 1, saying why) instead of a guessed brain window;
    accepted with --recipe or the single-item options, and then fed the
    tutorial's input, computed here with numpy and PIL."""
    folder, files, _ = data
    model = ich.Model(SPEC.replace("3x64x64", "1x64x64"))
    model.init_weights(3)
    model.labels = LABELS
    model.save(tmp_path / "bare.safetensors")
    out = tmp_path / "p.csv"
    result = run(PREDICT, tmp_path / "bare.safetensors", folder / "scans", "--out", out,
                 check=False)
    assert result.returncode == 1
    assert "no input recipe" in result.stderr and "--recipe" in result.stderr
    assert not out.exists()
    with pytest.raises(ich.NotFoundError):
        ich.predict_files(model, files)
    images = np.stack([tutorial_steps(ich.read_dicom(f).hu, 64)[None] for f in files])
    want = model.predict(images)
    for options in (["--recipe", TUTORIAL_64],
                    ["--minmax", "--quantize", "--resize", "antialias", "--size", "64",
                     "--normalize", "0.38/0.236"]):
        run(PREDICT, tmp_path / "bare.safetensors", folder / "scans", "--out", out, "--quiet",
            *options)
        rows = read_csv(out)
        got = np.array([r[1:] for r in rows[1:]], dtype=np.float64)
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    _, probs = ich.predict_files(model, files, window=TUTORIAL_64)
    np.testing.assert_allclose(probs, want, atol=1e-6, rtol=0)
    # a recipe that does not make the model's input is bad usage of it
    result = run(PREDICT, tmp_path / "bare.safetensors", files[0], "--out", out,
                 "--windows", "blood,brain,bone", check=False)
    assert result.returncode == 1 and "3 channels" in result.stderr
    result = run(PREDICT, tmp_path / "bare.safetensors", files[0], "--recipe", "mode=oops",
                 check=False)
    assert result.returncode == 1 and "recipe" in result.stderr
    assert run(PREDICT, tmp_path / "bare.safetensors", files[0], "--resize", "cubic",
               check=False).returncode == 2
def test_column_names_are_the_models_labels(ich, data, tmp_path):
    """The output columns are the checkpoint's "ich.labels" in its order;
    a 6-output checkpoint without them has the standard six; another
    output count without names is refused, naming the checkpoint."""
    folder, files, _ = data
    order = ["subdural", "any", "epidural", "intraparenchymal", "intraventricular",
             "subarachnoid"]
    model = make_model(ich)
    model.metadata["ich.labels"] = ",".join(order)
    model.save(tmp_path / "ordered.safetensors")
    assert model.labels == order
    run(PREDICT, tmp_path / "ordered.safetensors", files[0], "--out", tmp_path / "a.csv",
        "--quiet")
    rows = read_csv(tmp_path / "a.csv")
    assert rows[0] == ["ID"] + order
    np.testing.assert_allclose(np.array(rows[1][1:], dtype=np.float64),
                               reference(ich, model, files[:1])[0], atol=1e-6, rtol=0)
    del model.metadata["ich.labels"]
    model.save(tmp_path / "unnamed.safetensors")
    assert model.labels == LABELS
    run(PREDICT, tmp_path / "unnamed.safetensors", files[0], "--out", tmp_path / "b.csv",
        "--quiet")
    assert read_csv(tmp_path / "b.csv")[0] == ["ID"] + LABELS
    three = make_model(ich, spec=SPEC.replace("linear 6", "linear 3"))
    del three.metadata["ich.labels"]
    three.save(tmp_path / "three.safetensors")
    result = run(PREDICT, tmp_path / "three.safetensors", files[0], "--out", tmp_path / "c.csv",
                 "--quiet", check=False)
    assert result.returncode == 1
    assert "three.safetensors" in result.stderr and "no label names" in result.stderr


def test_links_to_itself_and_fifos_do_not_loop_or_block(ich, data, tmp_path):
    """Links to "." and to a parent: the walk ends and each slice is
    predicted once; the FIFO (and a device, where one can be made) is named
    and skipped, never opened; the good files' predictions are written and
    the exit status is 1."""
    folder, files, model = data
    scans = tmp_path / "scans"
    shutil.copytree(folder / "scans", scans)
    os.symlink(".", scans / "self1")
    os.symlink(".", scans / "self2")
    os.symlink("..", scans / "images" / "up")
    os.mkfifo(scans / "pipe.dcm")
    skipped = ["pipe.dcm"]
    try:
        os.mknod(scans / "null.dcm", 0o20644, os.makedev(1, 3))  # S_IFCHR
        skipped.append("null.dcm")
    except OSError:
        pass
    out = tmp_path / "p.csv"
    result = subprocess.run([str(PREDICT), str(folder / "model.safetensors"), str(scans),
                             "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    for name in skipped:
        assert f"skipped {scans / name}" in result.stderr
    assert "6 predicted, 0 failed" in result.stdout
    rows = read_csv(out)
    assert [r[0] for r in rows[1:]] == [f.stem for f in files]
    got = np.array([r[1:] for r in rows[1:]], dtype=np.float64)
    np.testing.assert_allclose(got, reference(ich, model, files), atol=1e-6, rtol=0)
    # ich.predict_files walks the same way
    with pytest.warns(RuntimeWarning, match="FIFO"):
        ids, _ = ich.predict_files(model, scans)
    assert ids == [f.stem for f in files]


def test_fifo_as_input_is_refused(data, tmp_path):
    folder, _, _ = data
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    result = subprocess.run([str(PREDICT), str(folder / "model.safetensors"), str(fifo),
                             "--out", str(tmp_path / "p.csv")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "pipe.dcm: not a regular file or folder" in result.stderr
