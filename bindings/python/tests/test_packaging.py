"""How an installed copy of the package finds libich (ich/_lib.py): the
library folder a CMake install records in ich/_install.py, relative (a
prefix that moves) or absolute, and no repository build tree outside a
checkout. Each case imports a copy of the package in a fresh interpreter
with no ICH_* variable. scripts/test_packaging.sh checks the real install
and pip."""

import os
import shutil
import subprocess
import sys

import pytest

import ich

PACKAGE = os.path.dirname(os.path.abspath(ich.__file__))


def _env():
    """The test's environment without the variables that point at a build."""
    env = dict(os.environ)
    for name in ("ICH_LIBRARY", "ICH_BUILD_DIR", "PYTHONPATH", "LD_LIBRARY_PATH"):
        env.pop(name, None)
    return env


def _install_copy(site, libdir=None, install_py=None):
    """Copy the package's modules into site/ich (and libich into libdir)."""
    target = os.path.join(site, "ich")
    os.makedirs(target)
    for name in os.listdir(PACKAGE):
        if name.endswith((".py", ".pyi", ".typed")) and name != "_install.py":
            shutil.copy(os.path.join(PACKAGE, name), target)
    if install_py is not None:
        with open(os.path.join(target, "_install.py"), "w") as f:
            f.write(install_py)
    if libdir is not None:
        os.makedirs(libdir, exist_ok=True)
        shutil.copy(ich.library_path(), os.path.join(libdir, "libich.so.0"))


def _import(site, cwd):
    """library_path() of the copy in `site`, imported from `cwd`."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import ich; "
         "print(ich.__file__); print(ich.library_path())", site],
        cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    package_file, library = out.stdout.splitlines()[-2:]
    assert package_file.startswith(site), package_file  # the copy, not the checkout
    return library


def test_relative_libdir_follows_a_moved_prefix(tmp_path):
    prefix = tmp_path / "prefix"
    site = str(prefix / "lib" / "python3" / "dist-packages")
    _install_copy(site, libdir=str(prefix / "lib"), install_py='LIBDIR = "../../../"\n')
    moved = tmp_path / "moved"
    os.rename(prefix, moved)
    site = str(moved / "lib" / "python3" / "dist-packages")
    assert _import(site, str(tmp_path)) == str(moved / "lib" / "libich.so.0")


def test_absolute_libdir(tmp_path):
    libdir = str(tmp_path / "elsewhere" / "lib64")
    site = str(tmp_path / "site")
    _install_copy(site, libdir=libdir, install_py="LIBDIR = %r\n" % libdir)
    assert _import(site, str(tmp_path)) == os.path.join(libdir, "libich.so.0")


def test_recorded_libdir_without_the_library_says_where_it_looked(tmp_path):
    missing = str(tmp_path / "gone" / "lib")
    site = str(tmp_path / "site")
    _install_copy(site, install_py="LIBDIR = %r\n" % missing)
    out = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import ich", site],
        cwd=str(tmp_path), env=_env(), capture_output=True, text=True, timeout=120)
    if out.returncode == 0:
        pytest.skip("a libich is installed where the loader finds it")
    assert "ImportError" in out.stderr
    assert os.path.join(missing, "libich.so.0") in out.stderr
    assert "the CMake install's library folder" in out.stderr
    # A copy outside the checkout never looks in the checkout's build tree.
    assert "repository build tree" not in out.stderr
    assert "cmake --install build" in out.stderr
