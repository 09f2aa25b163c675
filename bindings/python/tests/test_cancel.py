"""ICH_ERR_CANCELLED, Ctrl-C during long calls, and missing files.

The Ctrl-C tests run the long call in a child Python process, send it
SIGINT as a terminal's Ctrl-C would, and check that it stops within 2
seconds with KeyboardInterrupt (the binding's own progress callback sees
the signal and asks libich to stop; see ich._cancel)."""
import errno
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import ich

BINDINGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cancelled_status_and_class():
    assert ich.ERR_CANCELLED == 9
    assert ich.status_string(ich.ERR_CANCELLED) == "ICH_ERR_CANCELLED"
    assert issubclass(ich.CancelledError, ich.IchError)
    # a cancel is not a bad argument
    assert not issubclass(ich.CancelledError, ValueError)
    err = ich._errors.error(ich.ERR_CANCELLED, "x: cancelled")
    assert type(err) is ich.CancelledError
    assert type(pickle.loads(pickle.dumps(err))) is ich.CancelledError


def test_user_callback_true_gives_cancelled_error(tmp_path):
    calls = []
    with pytest.raises(ich.CancelledError, match="cancelled") as info:
        ich.write_phantom(tmp_path / "p", patients=4, slices=4, size=32, threads=1,
                          progress=lambda done, total: calls.append(done) or True)
    assert info.value.status == ich.ERR_CANCELLED and calls
    assert not (tmp_path / "p" / "labels.csv").exists()


def test_evaluate_progress_sees_every_batch_and_can_stop(tmp_path):
    ich.write_phantom(tmp_path, patients=2, slices=8, size=32, threads=1)
    data = ich.Dataset(str(tmp_path / "labels.csv"), str(tmp_path / "images"),
                       window="blood,brain,bone", size=32, batch_size=4, workers=0)
    model = ich.Model("input 3x32x32, conv 4 3 pad 1, relu, maxpool 32, flatten, linear 6")
    model.init_weights(1)
    reports = []
    assert ich.evaluate(model, data, progress=reports.append) == ich.evaluate(model, data)
    assert [r["batch"] for r in reports] == list(range(1, data.num_batches + 1))
    assert data.num_batches == 4
    assert {r["phase"] for r in reports} == {"validate"}
    with pytest.raises(ich.CancelledError, match="ich_evaluate: cancelled"):
        ich.evaluate(model, data, progress=lambda report: True)


def test_find_files_callback_errors_still_raise(tmp_path, monkeypatch):
    (tmp_path / "a").write_text("a")
    boom = RuntimeError("boom")

    def text(value):
        raise boom

    monkeypatch.setattr(ich.files, "_text", text)
    with pytest.raises(RuntimeError) as info:
        ich.find_files(tmp_path)
    assert info.value is boom


# ---- Missing files --------------------------------------------------------------


def _assert_missing(err, path, status_class):
    assert isinstance(err, FileNotFoundError) and isinstance(err, status_class)
    assert isinstance(err, ich.IchError)
    assert err.errno == errno.ENOENT
    assert err.filename == str(path)
    assert str(path) in str(err)


def test_missing_files_raise_file_not_found(tmp_path):
    missing = tmp_path / "absent.dcm"
    with pytest.raises(FileNotFoundError) as info:
        ich.read_dicom(missing)
    _assert_missing(info.value, missing, ich.IchIOError)
    again = pickle.loads(pickle.dumps(info.value))
    _assert_missing(again, missing, ich.IchIOError)

    checkpoint = tmp_path / "absent.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        ich.Model.load(checkpoint)
    _assert_missing(info.value, checkpoint, ich.IchError)

    csv = tmp_path / "absent.csv"
    with pytest.raises(FileNotFoundError) as info:
        ich.Labels.read(csv)
    assert info.value.errno == errno.ENOENT


def test_missing_resume_checkpoint_is_file_not_found(tmp_path):
    ich.write_phantom(tmp_path, patients=1, slices=4, size=32, threads=1)
    data = ich.Dataset(str(tmp_path / "labels.csv"), str(tmp_path / "images"),
                       window="blood,brain,bone", size=32, batch_size=4, workers=0)
    model = ich.Model("input 3x32x32, conv 4 3 pad 1, relu, maxpool 32, flatten, linear 6")
    missing = tmp_path / "absent.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        ich.train(model, ich.Optimizer(model, "sgd", lr=0.1), data, epochs=1, resume=missing)
    _assert_missing(info.value, missing, ich.NotFoundError)
    assert type(info.value) is ich.MissingFileError


def test_other_io_errors_are_not_file_not_found(tmp_path):
    folder = tmp_path / "folder.dcm"
    folder.mkdir()
    with pytest.raises(ich.IchError) as info:
        ich.read_dicom(folder)  # exists, but is not a file
    assert not isinstance(info.value, FileNotFoundError)


# ---- Ctrl-C ----------------------------------------------------------------------

# Each child prints READY just before the long call, and INTERRUPTED when the
# call raised KeyboardInterrupt; anything else ends it with another code.
_SETUP = """
import os, sys, time
sys.path.insert(0, {bindings!r})
import ich
ich._cdll.ich_set_threads(1)
folder = {folder!r}
"""

# A phantom, a dataset over it, a small model and its optimizer.
_DATA = """
ich.write_phantom(folder, patients=4, slices=8, size=32, seed=4, prevalence=1.0, threads=1)
data = ich.Dataset(os.path.join(folder, "labels.csv"), os.path.join(folder, "images"),
                   window="blood,brain,bone", size=32, batch_size=8, seed=3, workers=0)
model = ich.Model("input 3x32x32, conv 8 3 pad 1, relu, maxpool 32, flatten, linear 6")
model.init_weights(1)
opt = ich.Optimizer(model, "sgd", lr=0.01)
progress = {progress}
"""

_TRAIN = _DATA + """
def long_call():
    ich.train(model, opt, data, epochs=1000000, progress=progress)
"""

_EVALUATE = _DATA + """
def long_call():
    while True:
        ich.evaluate(model, data, progress=progress)
"""

_REPORT = _DATA + """
ich.train(model, opt, data, epochs=1, checkpoint_dir=os.path.join(folder, "model"))
def long_call():
    while True:
        ich.evaluate_report(os.path.join(folder, "model", "best.safetensors"),
                            os.path.join(folder, "labels.csv"), os.path.join(folder, "images"),
                            os.path.join(folder, "report"), batch_size=4, progress=progress)
"""

# One predict call of a deep network on a large batch takes seconds (5 s on
# the project's loaded two-core machine): libich's cancel check between the
# layers must stop it, not the end of the call. On the CPU, where a layer
# takes a fraction of a second (the CUDA emulator takes longer per layer).
_PREDICT = """
import numpy as np
ich.use_backend("cpu")
spec = "input 3x64x64, " + ", ".join(["conv 16 3 pad 1, relu"] * 48) + ", gap, linear 6"
model = ich.Model(spec)
model.init_weights(1)
x = np.random.default_rng(0).random((512, 3, 64, 64), dtype=np.float32)
def long_call():
    while True:
        model.predict(x)
"""

_GROUPS = """
ich.write_phantom(folder, patients=50, slices=24, size=32, threads=2)
labels = ich.Labels.read(os.path.join(folder, "labels.csv"))
def long_call():
    while True:
        ich.groups_from_dicom(labels, os.path.join(folder, "images"), threads=1)
"""

_PHANTOM = """
def long_call():
    ich.write_phantom(folder, patients=100000, slices=8, size=64, threads=2,
                      progress={progress})
"""

_FIND = """
for i in range(50):
    os.makedirs(os.path.join(folder, "d%d" % i), exist_ok=True)
    for j in range(40):
        open(os.path.join(folder, "d%d" % i, "f%d" % j), "w").close()
def long_call():
    while True:  # many walks: a Python loop around C calls must stop too
        ich.find_files(folder)
"""

# The folder jobs over a phantom of 1,600 slices, again and again.
_FOLDERS = """
ich.write_phantom(folder, patients=100, slices=16, size=64, seed=2, threads=2)
images = os.path.join(folder, "images")
model = ich.Model("input 3x64x64, conv 4 5 stride 4, relu, maxpool 2, flatten, linear 6")
model.init_weights(1)
model.metadata["ich.windows"] = "blood,brain,bone"
model.metadata["ich.size"] = "64"
progress = {progress}
"""

_PREPROCESS = _FOLDERS + """
recipe = ich.Window("blood,brain,bone", size=64)
def long_call():
    while True:
        ich.preprocess_folder(images, os.path.join(folder, "png"), recipe,
                              threads=1, overwrite=True, progress=progress)
"""

_PREDICT_FOLDER = _FOLDERS + """
def long_call():
    while True:
        ich.predict_folder(model, images, os.path.join(folder, "p.csv"), threads=1,
                           progress=progress)
"""

_RUN = """
print("READY", flush=True)
try:
    long_call()
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
    sys.exit(3)
print("FINISHED", flush=True)
"""

_CALLS = {"train": _TRAIN, "evaluate": _EVALUATE, "predict": _PREDICT, "groups": _GROUPS,
          "report": _REPORT,
          "phantom": _PHANTOM, "find_files": _FIND, "preprocess": _PREPROCESS,
          "predict_folder": _PREDICT_FOLDER}


def _interrupt(tmp_path, call, progress="None"):
    script = (_SETUP.format(bindings=BINDINGS, folder=str(tmp_path / "data"))
              + textwrap.dedent(_CALLS[call]).format(progress=progress) + _RUN)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "READY", child.stderr.read()
        time.sleep(1.0)  # well inside the long call
        assert child.poll() is None, "the long call ended by itself"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 3, (child.returncode, out, err)
    assert "INTERRUPTED" in out
    assert "Exception ignored" not in err  # nothing lost in a ctypes callback
    assert took < 2.0, "stopped %.2f s after Ctrl-C" % took


@pytest.mark.parametrize("progress", ["None", "lambda report: False"])
def test_ctrl_c_stops_train(tmp_path, progress):
    _interrupt(tmp_path, "train", progress)


@pytest.mark.parametrize("progress", ["None", "lambda report: False"])
def test_ctrl_c_stops_evaluate(tmp_path, progress):
    _interrupt(tmp_path, "evaluate", progress)


@pytest.mark.parametrize("progress", ["None", "lambda done, total: False"])
def test_ctrl_c_stops_evaluate_report(tmp_path, progress):
    _interrupt(tmp_path, "report", progress)


def test_ctrl_c_stops_a_long_predict_between_layers(tmp_path):
    _interrupt(tmp_path, "predict")


def test_ctrl_c_stops_groups_from_dicom(tmp_path):
    _interrupt(tmp_path, "groups")


@pytest.mark.parametrize("progress", ["None", "lambda done, total: False"])
def test_ctrl_c_stops_write_phantom(tmp_path, progress):
    _interrupt(tmp_path, "phantom", progress)


def test_ctrl_c_stops_find_files(tmp_path):
    _interrupt(tmp_path, "find_files")



@pytest.mark.parametrize("progress", ["None", "lambda done, total: False"])
def test_ctrl_c_stops_preprocess_folder(tmp_path, progress):
    _interrupt(tmp_path, "preprocess", progress)


@pytest.mark.parametrize("progress", ["None", "lambda done, total: False"])
def test_ctrl_c_stops_predict_folder(tmp_path, progress):
    _interrupt(tmp_path, "predict_folder", progress)
