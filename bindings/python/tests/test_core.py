"""Version, errors, library loading and the log callback."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import ich

HERE = os.path.dirname(os.path.abspath(__file__))


def test_version():
    assert ich.version() == ich.__version__
    parts = ich.version().split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)
    major, minor, patch = map(int, parts)
    assert ich._lib.lib.ich_version_number() == major * 10000 + minor * 100 + patch


def test_status_strings():
    names = ["ICH_OK", "ICH_ERR_INVALID_ARGUMENT", "ICH_ERR_NO_MEMORY", "ICH_ERR_IO",
             "ICH_ERR_FORMAT", "ICH_ERR_UNSUPPORTED", "ICH_ERR_NOT_FOUND", "ICH_ERR_SHAPE",
             "ICH_ERR_INTERNAL", "ICH_ERR_CANCELLED"]
    assert [ich.status_string(i) for i in range(10)] == names
    assert ich.status_string(99) == "ICH_ERR_UNKNOWN"
    assert ich.status_string(-1) == "ICH_ERR_UNKNOWN"


def test_error_attributes_and_classes(tmp_path):
    with pytest.raises(ich.IchError) as info:
        ich.read_dicom(tmp_path / "absent.dcm")
    err = info.value
    assert type(err) is ich.IchFileNotFoundError  # an IchIOError and a FileNotFoundError
    assert isinstance(err, ich.IchIOError)
    assert err.status == 3 and err.status_name == "ICH_ERR_IO"
    assert "absent.dcm" in err.message and "absent.dcm" in str(err)
    assert str(err).startswith("ICH_ERR_IO: ")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ich.IchFileNotFoundError and again.message == err.message
    for cls in (ich.InvalidArgumentError, ich.FormatError, ich.ShapeError):
        assert issubclass(cls, ich.IchError) and issubclass(cls, ValueError)
    assert issubclass(ich.NotFoundError, LookupError)
    assert issubclass(ich.InternalError, RuntimeError)


def test_error_message_is_per_call(tmp_path):
    """The message is the failing call's, not an older one."""
    with pytest.raises(ich.IchError) as first:
        ich.read_dicom(tmp_path / "first.dcm")
    with pytest.raises(ich.IchError) as second:
        ich.window_preset("second-unknown")
    assert "first.dcm" in first.value.message
    assert "second-unknown" in second.value.message or "preset" in second.value.message
    assert "first.dcm" not in second.value.message


def test_log_callback(tmp_path):
    got = []
    ich.set_log_callback(lambda level, msg: got.append((level, msg)), level=ich.LOG_DEBUG)
    try:
        with pytest.raises(ich.IchError):
            ich.read_dicom(tmp_path / "logged.dcm")
        ich.Window("brain").apply(np.zeros((4, 4), np.float32))
    finally:
        ich.set_log_callback(None)
    for level, msg in got:
        assert isinstance(level, int) and ich.LOG_DEBUG <= level <= ich.LOG_ERROR
        assert isinstance(msg, str)
    print("\nlog messages: %r" % got)
    # libich logs failed calls at debug level: the failure must have arrived
    assert any("logged.dcm" in msg for _, msg in got), got

    count = len(got)
    with pytest.raises(ich.IchError):
        ich.read_dicom(tmp_path / "not-logged.dcm")
    assert len(got) == count  # removed: nothing more arrives


def test_log_level_filter(tmp_path):
    got = []
    ich.set_log_callback(lambda level, msg: got.append(msg), level="error")
    try:
        with pytest.raises(ich.IchError):
            ich.read_dicom(tmp_path / "quiet.dcm")
    finally:
        ich.set_log_callback(None)
    assert not any("quiet.dcm" in m for m in got)  # debug messages are dropped
    with pytest.raises(ValueError):
        ich.set_log_callback(print, level="loud")
    with pytest.raises(TypeError):
        ich.set_log_callback(42)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_log_callback_exception_does_not_break(tmp_path):
    def bad(level, msg):
        raise RuntimeError("callback failure")

    ich.set_log_callback(bad, level=ich.LOG_DEBUG)
    try:
        with pytest.raises(ich.IchError) as info:
            ich.read_dicom(tmp_path / "x.dcm")
        assert info.value.status == ich.ERR_IO
    finally:
        ich.set_log_callback(None)


def _run(code, **env):
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(HERE)] + [p for p in [full.get("PYTHONPATH")] if p])
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=120)


def test_ich_library_env_is_used():
    """ICH_LIBRARY picks the library; a bad one is a clear ImportError."""
    path = ich.library_path()
    ok = _run("import ich; print(ich.library_path())", ICH_LIBRARY=path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == path
    bad = _run("import ich", ICH_LIBRARY="/nonexistent/libich.so.0")
    assert bad.returncode != 0
    assert "ImportError" in bad.stderr and "ICH_LIBRARY" in bad.stderr


def test_callback_installed_at_exit_is_safe():
    """A callback still installed when Python exits does no harm."""
    r = _run("import ich, numpy\n"
             "ich.set_log_callback(lambda l, m: None, level=0)\n"
             "try:\n    ich.read_dicom('/nonexistent.dcm')\nexcept ich.IchError:\n    pass\n"
             "print('done')")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"
