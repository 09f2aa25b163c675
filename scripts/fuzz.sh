#!/usr/bin/env bash
# Fuzz libich's file readers with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer. Findings are written to build-fuzz/findings/.
#   dicom: DICOM reading (tests/fuzz/fuzz_dicom.c), from pydicom's test files,
#          a few phantom slices and tests/fuzz/regressions (earlier findings and
#          one file of each hostile class of issue 12, made by
#          tests/hostile_dicom.py). It runs with -rss_limit_mb=1024 and
#          -malloc_limit_mb=512: libich's default DICOM limits keep one file
#          under about 0.5 GB, so any input that makes the reader (GDCM
#          included) allocate more is a finding. (The old 4 GB limit hid a
#          4.2 GB allocation GDCM made from an element length read from text.)
#   dicom-short: as dicom, but N mutations (the SECONDS argument) from the
#          fixed seed 1 on a copy of the corpus: the same inputs while the
#          code is the same (scripts/fuzz.sh dicom-short 20000);
#   dicom-replay: every file of the DICOM corpus and tests/fuzz/regressions
#          once through the target, under the same limits (a quick check,
#          e.g. for the test command: scripts/fuzz.sh dicom-replay);
#   files: label CSVs and PNG images (tests/fuzz/fuzz_files.c), from phantom
#          label files and preprocessed PNGs;
#   safetensors: model files and checkpoints (tests/fuzz/fuzz_safetensors.c),
#          from files the normal build's Python bindings write.
# Usage: scripts/fuzz.sh [dicom|dicom-replay|dicom-short|files|safetensors] [SECONDS]   (default dicom,
#        300 s; a long run: scripts/fuzz.sh dicom 14400; needs
#        clang and libclang-rt-14-dev, which this script installs when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
target=dicom
case "${1:-}" in dicom|dicom-replay|dicom-short|files|safetensors) target=$1; shift ;; esac
seconds=${1:-300}
scripts/deps.sh
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
    [ "$(id -u)" -eq 0 ] && apt-get install -y -qq "$p" >/dev/null; }
done
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DICH_FUZZ=ON \
  -DICH_SANITIZE=ON -DICH_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
mkdir -p build-fuzz/findings
if [ "$target" = files ]; then
  corpus=build-fuzz/corpus-files
  mkdir -p "$corpus"
  rm -rf build-fuzz/phantom-files build-fuzz/png-files
  build-fuzz/examples/ich-phantom build-fuzz/phantom-files --patients 2 --slices 3 --size 32 --quiet
  build-fuzz/examples/ich-preprocess build-fuzz/phantom-files/images build-fuzz/png-files --size 16 --quiet
  # The first byte picks the reader: even = label CSV, odd = PNG.
  for f in build-fuzz/phantom-files/*.csv; do
    { printf '\x00'; head -c 4000 "$f"; } > "$corpus/csv-$(basename "$f")"
  done
  for f in $(find build-fuzz/png-files -name '*.png' | head -3); do
    { printf '\x01'; cat "$f"; } > "$corpus/png-$(basename "$f")"
  done
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    build-fuzz/tests/fuzz/fuzz_files "$corpus" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=4096 -artifact_prefix=build-fuzz/findings/ -print_final_stats=1
  exit 0
fi
if [ "$target" = safetensors ]; then
  corpus=build-fuzz/corpus-safetensors
  mkdir -p "$corpus"
  scripts/build.sh build
  # Seeds: a model file and an Adam checkpoint of fuzz_safetensors.c's SPEC,
  # behind the first byte that picks the loader (0: ich_model_load,
  # 1: ich_model_load_weights, 3: ich_checkpoint_load).
  ICH_BUILD_DIR="$PWD/build" PYTHONPATH="$PWD/bindings/python" /usr/bin/python3 - "$corpus" <<'PY'
import os, sys, tempfile
import ich
spec = ("input 2x6x6, conv 3 3 pad 1, batchnorm, relu, maxpool 2, flatten, "
        "dropout 0.5, linear 4")
model = ich.Model(spec)
optimizer = ich.Optimizer(model, "adam")
with tempfile.TemporaryDirectory() as tmp:
    ich.Model.save(model, os.path.join(tmp, "m"))
    ich.checkpoint_save(os.path.join(tmp, "c"), model, optimizer, {"ich.epoch": "1"})
    for first, name in ((b"\x00", "m"), (b"\x01", "m"), (b"\x03", "c")):
        data = open(os.path.join(tmp, name), "rb").read()
        open(os.path.join(sys.argv[1], "seed-%d-%s" % (first[0], name)), "wb").write(first + data)
PY
  # and the hostile files of tests/fuzz/regressions/checkpoints (ich_model_load)
  for f in tests/fuzz/regressions/checkpoints/*.safetensors; do
    { printf '\x00'; cat "$f"; } > "$corpus/regression-$(basename "$f")"
  done
  # Loading is bounded (ich/model.h limits, tensors checked against the
  # file before the model is built): 1 GB is far above what any input needs.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    build-fuzz/tests/fuzz/fuzz_safetensors "$corpus" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=1024 -artifact_prefix=build-fuzz/findings/ -print_final_stats=1
  exit 0
fi
corpus=build-fuzz/corpus
mkdir -p "$corpus"
tests=$(/usr/bin/python3 -c 'import pydicom, os; print(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))')
find "$tests" -type f -size -2M -exec cp -n {} "$corpus"/ \;
cp -n tests/fuzz/regressions/*.dcm "$corpus"/
build-fuzz/examples/ich-phantom build-fuzz/phantom --slices 2 --size 64 --quiet
find build-fuzz/phantom -name '*.dcm' -exec cp -n {} "$corpus"/ \;
# Memory: well below the 4 GB that once hid a 4.2 GB allocation (issue 12).
limits=(-rss_limit_mb=1024 -malloc_limit_mb=512 -timeout=20)
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:fast_unwind_on_malloc=0
export LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp
if [ "$target" = dicom-replay ]; then
  # Each file once (no mutation): exits non-zero on a crash, a leak, a
  # timeout or a limit exceeded.
  build-fuzz/tests/fuzz/fuzz_dicom "${limits[@]}" -runs=0 -artifact_prefix=build-fuzz/findings/ \
    "$corpus"
  exit 0
fi
if [ "$target" = dicom-short ]; then
  # A short run with a fixed seed on a scratch copy of the corpus: the
  # same mutations every time, so the test command stays reproducible
  # (time-bounded runs are not).
  scratch=$(mktemp -d)
  cp "$corpus"/* "$scratch"/
  build-fuzz/tests/fuzz/fuzz_dicom "$scratch" -seed=1 -runs="$seconds" -max_len=1048576 \
    "${limits[@]}" -artifact_prefix=build-fuzz/findings/ -print_final_stats=1
  rm -rf "$scratch"
  exit 0
fi
build-fuzz/tests/fuzz/fuzz_dicom "$corpus" -max_total_time="$seconds" -max_len=1048576 \
  "${limits[@]}" -artifact_prefix=build-fuzz/findings/ -print_final_stats=1
