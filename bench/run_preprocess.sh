#!/usr/bin/env bash
# Benchmark: ich-preprocess against the same step in Python
# (bench/preprocess_reference.py). See bench/README.md.
#
#   bench/run_preprocess.sh [BUILD_DIR]
#
# BUILD_DIR (or $ICH_BUILD_DIR, default "build", relative to the current
# folder or to the repository root) must hold a finished build with
# examples/ich-phantom and examples/ich-preprocess. Environment:
#   BENCH_SLICES  number of 512x512 slices to generate (default 300)
#   BENCH_KEEP=1  keep the temporary folder with the inputs and outputs
#   PYTHON        the Python to use (default /usr/bin/python3)
#
# The script fails only on a real error (missing program, a failed run,
# missing outputs); a slow machine is reported, never an error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-${ICH_BUILD_DIR:-build}}
slices=${BENCH_SLICES:-300}
python=${PYTHON:-/usr/bin/python3}
cores=$(nproc)
goal=10

die() { echo "run_preprocess.sh: $*" >&2; exit 1; }

[[ -d $build || $build == /* ]] || build=$root/$build
[[ -d $build ]] || die "no build folder '$build' (build first, or pass BUILD_DIR)"
phantom=$build/examples/ich-phantom
preprocess=$build/examples/ich-preprocess
[[ -x $phantom ]] || die "missing $phantom (build the examples first)"
[[ -x $preprocess ]] || die "missing $preprocess (build the examples first)"
[[ $slices =~ ^[0-9]+$ ]] && ((slices >= 1)) || die "BENCH_SLICES must be a positive number, got '$slices'"
"$python" -c 'import pydicom, numpy, PIL' 2>/dev/null ||
    die "$python cannot import pydicom, numpy and PIL (apt install python3-pydicom python3-numpy python3-pil)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ich-bench.XXXXXX")
if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    echo "keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi

# ---- Machine -----------------------------------------------------------
cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)
echo "machine: $cores cores (nproc), CPU: ${cpu:-unknown}"
echo "libich:  $preprocess"
echo "python:  $python ($("$python" -c 'import sys, pydicom, numpy, PIL; print("%d.%d" % sys.version_info[:2], "pydicom", pydicom.__version__, "numpy", numpy.__version__, "Pillow", PIL.__version__)'))"

# ---- Inputs: about $slices slices, 30 per patient like a head-CT series --
patients=$(((slices + 29) / 30))
per=$(((slices + patients - 1) / patients))
"$phantom" "$tmp/phantom" --patients "$patients" --slices "$per" --size 512 --seed 1 --quiet ||
    die "ich-phantom failed"
# ich-phantom writes one flat folder, images/, so both programs see the same list.
dicom=$tmp/phantom/images
count=$(find "$dicom" -name '*.dcm' | wc -l)
((count > 0)) || die "ich-phantom wrote no .dcm files"
sync # write the inputs back now, not during the timed runs
cat "$dicom"/*.dcm >/dev/null # into the page cache, for every contender alike
echo "input:   $count DICOM slices of 512x512 -> 256x256 RGB PNG (blood, brain, bone)"
echo

# ---- Runs --------------------------------------------------------------
# time_run NAME OUTPUT_DIR COMMAND...: runs the command, checks that it wrote
# one PNG per input, sets rate[NAME] to images per second (wall time) and
# cpu[NAME] to CPU seconds (user + system, children included) when
# /usr/bin/time is there.
declare -A rate cpu
time_run() {
    local name=$1 out=$2
    shift 2
    local timer=()
    [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f '%U %S' -o "$tmp/$name.time")
    local start end
    start=$(date +%s.%N)
    if ! "${timer[@]}" "$@" >"$tmp/$name.log" 2>&1; then
        cat "$tmp/$name.log" >&2
        die "$name failed: $*"
    fi
    end=$(date +%s.%N)
    local made
    made=$(find "$out" -name '*.png' | wc -l)
    if ((made != count)); then
        cat "$tmp/$name.log" >&2
        die "$name wrote $made PNGs for $count inputs"
    fi
    rate[$name]=$(awk -v n="$count" -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", n / (b - a) }')
    cpu[$name]=$([[ -s $tmp/$name.time ]] && awk '{ printf "%.2f", $1 + $2 }' "$tmp/$name.time" || echo "?")
    printf '  %-28s %8.2f s  %8s images/s  %6s s CPU\n' "$name" \
        "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "${rate[$name]}" "${cpu[$name]}"
}

echo "running (wall time includes program start-up):"
time_run "ich-preprocess 1 thread" "$tmp/out-ich-1" \
    "$preprocess" "$dicom" "$tmp/out-ich-1" --threads 1 --quiet
time_run "ich-preprocess $cores threads" "$tmp/out-ich-n" \
    "$preprocess" "$dicom" "$tmp/out-ich-n" --threads "$cores" --quiet
time_run "python 1 worker" "$tmp/out-py-1" \
    "$python" "$here/preprocess_reference.py" "$dicom" "$tmp/out-py-1" --workers 1 --quiet
time_run "python $cores workers" "$tmp/out-py-n" \
    "$python" "$here/preprocess_reference.py" "$dicom" "$tmp/out-py-n" --workers "$cores" --quiet

# ---- Table -------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
per_core=$(ratio "${rate[ich-preprocess 1 thread]}" "${rate[python 1 worker]}")
all_cores=$(ratio "${rate[ich-preprocess $cores threads]}" "${rate[python $cores workers]}")

echo
printf '%-16s %18s %18s\n' "" "1 core" "$cores cores"
printf '%-16s %18s %18s\n' "ich-preprocess" "${rate[ich-preprocess 1 thread]} img/s" "${rate[ich-preprocess $cores threads]} img/s"
printf '%-16s %18s %18s\n' "python" "${rate[python 1 worker]} img/s" "${rate[python $cores workers]} img/s"
printf '%-16s %18s %18s\n' "libich/python" "${per_core}x" "${all_cores}x"
if [[ ${cpu[python 1 worker]} != "?" && ${cpu[ich-preprocess 1 thread]} != "?" ]]; then
    printf '%-16s %18s\n' "by CPU time" "$(ratio "${cpu[python 1 worker]}" "${cpu[ich-preprocess 1 thread]}")x"
fi
echo
if awk -v r="$per_core" -v g="$goal" 'BEGIN { exit !(r >= g) }'; then
    echo "goal: >= ${goal}x python per core: met (${per_core}x)"
else
    echo "goal: >= ${goal}x python per core: NOT met (${per_core}x)"
fi
