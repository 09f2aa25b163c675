#!/usr/bin/env bash
# Fuzz DICOM reading (tests/fuzz/fuzz_dicom.c) with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer, starting from pydicom's test files and a few
# phantom slices. Findings are written to build-fuzz/findings/.
# Usage: scripts/fuzz.sh [SECONDS]   (default 300; needs clang and
#        libclang-rt-14-dev, which this script installs when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
scripts/deps.sh
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
    [ "$(id -u)" -eq 0 ] && apt-get install -y -qq "$p" >/dev/null; }
done
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DICH_FUZZ=ON \
  -DICH_SANITIZE=ON -DICH_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
corpus=build-fuzz/corpus
mkdir -p "$corpus" build-fuzz/findings
tests=$(/usr/bin/python3 -c 'import pydicom, os; print(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))')
find "$tests" -type f -size -2M -exec cp -n {} "$corpus"/ \;
build-fuzz/examples/ich-phantom build-fuzz/phantom --slices 2 --size 64 --quiet
find build-fuzz/phantom -name '*.dcm' -exec cp -n {} "$corpus"/ \;
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:fast_unwind_on_malloc=0 LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp \
  build-fuzz/tests/fuzz/fuzz_dicom "$corpus" -max_total_time="$seconds" -max_len=1048576 \
  -rss_limit_mb=4096 -artifact_prefix=build-fuzz/findings/ -print_final_stats=1
