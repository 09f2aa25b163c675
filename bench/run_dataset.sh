#!/usr/bin/env bash
# Benchmark: the dataset handle (DICOM -> windowed 3x256x256 float32
# batches of 16) with 1 and 2 worker threads, against the same step in
# Python on one core (bench/dataset_reference.py). See bench/README.md.
#
#   bench/run_dataset.sh [BUILD_DIR]
#
# BUILD_DIR (or $ICH_BUILD_DIR, default "build", relative to the current
# folder or to the repository root) must hold a finished build with
# libich/libich.so. bench/bench_dataset.c is compiled against it with $CC
# (default cc). Environment:
#   BENCH_SLICES  number of 512x512 slices (default 300)
#   BENCH_EPOCHS  epochs per run (default 2)
#   BENCH_KEEP=1  keep the temporary folder
#   PYTHON        the Python to use (default /usr/bin/python3)
#
# The script fails only on a real error; a slow machine is reported, never
# an error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-${ICH_BUILD_DIR:-build}}
slices=${BENCH_SLICES:-300}
epochs=${BENCH_EPOCHS:-2}
python=${PYTHON:-/usr/bin/python3}
cc=${CC:-cc}

die() { echo "run_dataset.sh: $*" >&2; exit 1; }

[[ -d $build || $build == /* ]] || build=$root/$build
[[ -d $build ]] || die "no build folder '$build' (build first, or pass BUILD_DIR)"
build=$(cd "$build" && pwd)
lib=$build/libich/libich.so
[[ -e $lib ]] || die "missing $lib (build libich first)"
[[ $slices =~ ^[0-9]+$ ]] && ((slices >= 16)) || die "BENCH_SLICES must be a number >= 16, got '$slices'"
[[ $epochs =~ ^[0-9]+$ ]] && ((epochs >= 1)) || die "BENCH_EPOCHS must be a positive number, got '$epochs'"
"$python" -c 'import pydicom, numpy' 2>/dev/null ||
    die "$python cannot import pydicom and numpy (apt install python3-pydicom python3-numpy)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ich-bench-dataset.XXXXXX")
if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    echo "keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi

# ---- Program -----------------------------------------------------------
"$cc" -O2 -std=c11 -D_GNU_SOURCE -I"$root/include" "$here/bench_dataset.c" \
    -L"$build/libich" -Wl,-rpath,"$build/libich" -lich -o "$tmp/bench_dataset" ||
    die "cannot compile bench_dataset.c"

# ---- Machine -----------------------------------------------------------
cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)
echo "machine: $(nproc) cores (nproc), CPU: ${cpu:-unknown}"
echo "libich:  $lib"
echo "python:  $python ($("$python" -c 'import sys, pydicom, numpy; print("%d.%d" % sys.version_info[:2], "pydicom", pydicom.__version__, "numpy", numpy.__version__)'))"

# ---- Inputs ------------------------------------------------------------
"$tmp/bench_dataset" make "$tmp/data" "$slices" || die "cannot write the inputs"
count=$(find "$tmp/data/images" -name '*.dcm' | wc -l)
((count > 0)) || die "no .dcm files written"
sync
cat "$tmp/data/images"/*.dcm >/dev/null # into the page cache for every run alike
echo "work:    $count DICOM slices x $epochs epochs -> HU -> blood, brain, bone -> 256x256 bilinear -> float32 batches of 16"
echo

# ---- Runs --------------------------------------------------------------
# Each contender runs twice: with glibc's default malloc settings, and with
# large blocks kept on the heap (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_,
# what ich-preprocess used to set with mallopt: each slice needs a few
# megabytes of buffers, which glibc otherwise maps and unmaps, or trims,
# for every image). libich keeps its DICOM buffers per thread since issue
# 16, so the two columns should agree; a gap means a regression. The
# settings go through glibc's environment variables, so both sides get
# exactly the same.
tuned=(MALLOC_MMAP_THRESHOLD_=$((64 << 20)) MALLOC_TRIM_THRESHOLD_=$((128 << 20)))
rate_of() { sed -n 's/.*= \([0-9.]*\) images\/s.*/\1/p'; }
declare -A rate
for malloc in default tuned; do
    env_args=()
    [[ $malloc == tuned ]] && env_args=("${tuned[@]}")
    for workers in 1 2; do
        line=$(env "${env_args[@]}" "$tmp/bench_dataset" run "$tmp/data" "$workers" "$epochs") ||
            die "bench_dataset run failed"
        echo "  [$malloc malloc] libich $line"
        rate[$malloc,$workers]=$(rate_of <<<"$line")
    done
    line=$(env "${env_args[@]}" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$python" \
        "$here/dataset_reference.py" "$tmp/data/images" --epochs "$epochs") ||
        die "dataset_reference.py failed"
    echo "  [$malloc malloc] $line"
    rate[$malloc,py]=$(rate_of <<<"$line")
done

# ---- Table -------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
echo
printf '%-28s %16s %16s\n' "images/s" "default malloc" "tuned malloc"
printf '%-28s %16s %16s\n' "libich, 1 worker thread" "${rate[default,1]}" "${rate[tuned,1]}"
printf '%-28s %16s %16s\n' "libich, 2 worker threads" "${rate[default,2]}" "${rate[tuned,2]}"
printf '%-28s %16s %16s\n' "python reference, 1 core" "${rate[default,py]}" "${rate[tuned,py]}"
printf '%-28s %16s %16s\n' "libich 1 thread / python" "$(ratio "${rate[default,1]}" "${rate[default,py]}")" \
    "$(ratio "${rate[tuned,1]}" "${rate[tuned,py]}")"
printf '%-28s %16s %16s\n' "libich 2 threads / python" "$(ratio "${rate[default,2]}" "${rate[default,py]}")" \
    "$(ratio "${rate[tuned,2]}" "${rate[tuned,py]}")"
