"""Test setup: make `import ich` work from the source tree, and shared fixtures.

The library is found as ich._lib describes (ICH_LIBRARY, ICH_BUILD_DIR, the
repository's build/ folder, then the system).

Sanitizer builds: Python is not linked with ASan, so the runtime must be
preloaded, and libstdc++ with it (GDCM throws C++ exceptions; ASan resolves
its __cxa_throw interceptor once, at start-up, and aborts with "CHECK failed:
asan_interceptors.cpp ... real___cxa_throw" if libstdc++ was not loaded
then). Run

    ICH_LIBRARY=build-asan/libich/libich.so.0 \\
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)" \\
    ASAN_OPTIONS=detect_leaks=0 /usr/bin/python3 -m pytest -q bindings/python/tests

When only libasan is preloaded, pytest_configure below restarts pytest with
libstdc++ added (and detect_leaks=0 unless ASAN_OPTIONS says otherwise:
the interpreter itself never frees everything, so leak checking belongs to
the C tests).
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bindings/python


def _asan_without_libstdcxx():
    preload = os.environ.get("LD_PRELOAD", "")
    return ("libasan" in preload and "libstdc++" not in preload
            and not os.environ.get("ICH_TESTS_REEXECUTED"))


def pytest_configure(config):
    if not _asan_without_libstdcxx():
        return
    env = dict(os.environ, ICH_TESTS_REEXECUTED="1")
    env["LD_PRELOAD"] = env["LD_PRELOAD"] + " libstdc++.so.6"
    if "detect_leaks" not in env.get("ASAN_OPTIONS", ""):
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()  # give the new process the real stdout/stderr
    sys.stdout.write("conftest: LD_PRELOAD has libasan but not libstdc++; restarting "
                     "pytest with LD_PRELOAD=%r\n" % env["LD_PRELOAD"])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def pytest_report_header(config):
    import ich

    return "libich %s from %s" % (ich.version(), ich.library_path())


@pytest.fixture(scope="session")
def test_files():
    """pydicom's folder of DICOM test files."""
    pydicom_data = pytest.importorskip("pydicom.data")
    path = os.path.join(os.path.dirname(pydicom_data.__file__), "test_files")
    if not os.path.isdir(path):
        pytest.skip("pydicom test files not installed")
    return path


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)
