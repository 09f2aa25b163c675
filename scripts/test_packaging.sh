#!/usr/bin/env bash
# What a user who installs libich gets (issue 13, packaging), checked in a
# fresh temporary folder with no ICH_* variable, LD_LIBRARY_PATH or
# PYTHONPATH pointing at the build:
#  - cmake --install to a prefix that is then moved: every installed ich-*
#    program runs (RUNPATH $ORIGIN/../lib), and the installed Python package
#    finds the moved libich by itself;
#  - pip install bindings/python into a fresh venv (offline) with libich
#    installed into the venv: the README's Python example runs;
#  - the README's pkg-config example runs as written;
#  - the type stubs: mypy --strict on them and on the example (against the
#    pip-installed package), stubtest against the runtime package.
# Usage: scripts/test_packaging.sh [BUILD_DIR]   (default build, already built)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$(cd "${1:-build}" && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"; rm -rf "$root/bindings/python/build" "$root/bindings/python/ich.egg-info"' EXIT
# A clean environment: nothing but the standard search places.
clean=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$work/home" LANG=C.UTF-8)
mkdir -p "$work/home"

echo "-- the Python package's version is libich's"
cmake_version=$(sed -n 's/^project(ich VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
py_version=$(sed -n 's/^version = "\(.*\)"/\1/p' bindings/python/pyproject.toml)
if [ "$cmake_version" != "$py_version" ]; then
  echo "bindings/python/pyproject.toml says version $py_version, CMakeLists.txt $cmake_version"; exit 1
fi

echo "-- cmake --install to a prefix, moved: the programs and the Python package find libich"
cmake --install "$build" --prefix "$work/staged" >/dev/null
mv "$work/staged" "$work/moved"
prefix="$work/moved"
for prog in "$prefix"/bin/ich-*; do
  if ! (cd "$work" && "${clean[@]}" "$prog" --help >/dev/null); then
    echo "$prog --help failed from a moved prefix:"; readelf -d "$prog" | grep -E 'RPATH|RUNPATH' || true
    exit 1
  fi
done
(cd "$work" && "${clean[@]}" PYTHONPATH="$prefix/lib/python3/dist-packages" $py -c '
import sys, ich
assert ich.__file__.startswith(sys.argv[1] + "/lib/python3/dist-packages/"), ich.__file__
assert ich.library_path() == sys.argv[1] + "/lib/libich.so.0", ich.library_path()
print("   ", ich.library_path(), ich.version())' "$prefix")

echo "-- pip install bindings/python into a fresh venv (offline), libich installed into the venv"
$py -m venv --system-site-packages "$work/venv"
"${clean[@]}" "$work/venv/bin/pip" install -q --no-index --no-build-isolation "$root/bindings/python"
cmake --install "$build" --prefix "$work/venv" >/dev/null
cp bindings/python/examples/quickstart.py "$work/"
$py - README.md bindings/python/examples/quickstart.py <<'PY'
import re, sys
readme = open(sys.argv[1]).read()
example = open(sys.argv[2]).read()
block = re.search(r"```python\n(.*?)```", readme, re.S)
if not block or block.group(1) not in example:
    sys.exit("README.md's Python example is not bindings/python/examples/quickstart.py: "
             "keep the two the same")
PY
(cd "$work" && "${clean[@]}" "$work/venv/bin/python" -c '
import sys, ich
site = sys.prefix + "/lib/python%d.%d/site-packages/" % sys.version_info[:2]
assert ich.__file__.startswith(site), "not the pip-installed package: " + ich.__file__
assert ich.library_path() == sys.prefix + "/lib/libich.so.0", ich.library_path()
print("   ", ich.__file__, ich.library_path())')
echo "-- the converter's console script (pyproject's [project.scripts])"
(cd "$work" && "${clean[@]}" "$work/venv/bin/ich-convert-pth" --help >/dev/null)
echo "-- the README's Python example against the installed package and libich"
(cd "$work" && "${clean[@]}" "$work/venv/bin/python" quickstart.py && test -s ichnet.safetensors)

echo "-- type stubs: mypy --strict on the stubs and on the example, stubtest"
$py -m mypy --strict --cache-dir=/dev/null bindings/python/ich/*.pyi
# The example, type-checked against the package pip installed (py.typed).
(cd "$work" && "${clean[@]}" "$work/venv/bin/python" -m mypy --strict --cache-dir=/dev/null quickstart.py)
if ! (cd "$work" && "${clean[@]}" "$work/venv/bin/python" -m mypy.stubtest --concise \
        --allowlist "$root/bindings/python/stubtest-allowlist.txt" ich); then
  echo "stubtest: the type stubs bindings/python/ich/*.pyi differ from the package (above:"
  echo "each name that is public at run time, in a module's __all__, needs a stub in that"
  echo "module's .pyi, with the same arguments); update the .pyi files and run"
  echo "  ICH_BUILD_DIR=build python3 -m mypy.stubtest --allowlist bindings/python/stubtest-allowlist.txt ich"
  echo "in bindings/python"
  exit 1
fi

echo "-- the README's pkg-config example, as written"
block=$($py - README.md <<'PY'
import re, sys
blocks = [b for b in re.findall(r"```sh\n(.*?)```", open(sys.argv[1]).read(), re.S)
          if "pkg-config" in b]
if len(blocks) != 1:
    sys.exit("README.md: expected one sh block with pkg-config, found %d" % len(blocks))
print(blocks[0])
PY
)
mkdir "$work/app"
ln -s "$build" "$work/app/build"
if ! (cd "$work/app" && "${clean[@]}" bash -euo pipefail -c "$block") >"$work/app.out" 2>&1 ||
   ! grep -q "^libich $cmake_version\$" "$work/app.out"; then
  cat "$work/app.out"; echo "the README's pkg-config example failed (above)"; exit 1
fi
echo "    $(tail -n 1 "$work/app.out")"
echo "-- packaging checks passed"
