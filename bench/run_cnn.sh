#!/usr/bin/env bash
# Benchmark: the tutorial's ConvNet (1x512x512 input, 4 conv + ReLU + max
# pool stages, 2 linear layers, 6 outputs), or libich's ichnet or torchvision's
# efficientnet_v2_s or convnext_tiny (3x256x256, 6 outputs), trained
# (forward, BCE-with-logits, backward, Adam step) and run for inference at
# batch 16, with libich (bench/bench_cnn.c) and with PyTorch
# (bench/cnn_reference.py) on the same machine and thread count, against the
# machine's measured FMA peak (bench/peak_flops.c). See bench/README.md.
#
#   bench/run_cnn.sh [--model M] [--threads N] [--quick] [--only libich|pytorch] [BUILD_DIR]
#
# --model M    tutorial (default), ichnet, efficientnet_v2_s or convnext_tiny
# --threads N  threads for both sides and the peak (default 2)
# --quick      a smoke test: batch 2, 1 timed step, 1 repetition
# --only SIDE  run one side only (no ratios, no goal check)
#
# BUILD_DIR (or $ICH_BUILD_DIR, default "build", relative to the current
# folder or to the repository root) must hold a finished build with
# libich/libich.so. bench/bench_cnn.c and bench/peak_flops.c are compiled
# with $CC (default cc). Environment:
#   BENCH_BATCH        images per step (default 16; --quick: 2)
#   BENCH_WARMUP       untimed steps before the timed ones (default 1)
#   BENCH_TRAIN_STEPS  timed training steps (default 2, other models 3; --quick: 1)
#   BENCH_INFER_STEPS  timed inference steps (default 3; --quick: 1)
#   BENCH_REPEAT       repetitions of the four measurements, interleaved
#                      (default 1, other models 3; --quick: 1); the table
#                      gives the medians
#   PYTHON             the Python with torch (default /usr/bin/python3)
#   ICH_PROFILE=1      libich's per-layer profile after each libich run (forward,
#                      backward data and weights, reorders, % of the peak
#                      measured here, or of ICH_PROFILE_PEAK when set)
#
# Each measurement runs in its own process, so that each peak memory figure
# is its own. With repetitions the sides take turns (libich first in odd
# repetitions, PyTorch first in even ones), so that both see the same
# machine load on average. The script fails only on a real error; a slow machine or a
# missed goal is reported, never an error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
threads=2
model=tutorial
quick=0
only=
build=
die() { echo "run_cnn.sh: $*" >&2; exit 1; }
help_text() { sed -n '10,16p' "$0" | sed 's/^# \{0,1\}//'; }
usage() { help_text >&2; exit 2; }
while (($#)); do
    case $1 in
    --threads) (($# >= 2)) || usage; threads=$2; shift 2 ;;
    --model) (($# >= 2)) || usage; model=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --only) (($# >= 2)) || usage; only=$2; shift 2 ;;
    -h | --help) help_text; exit 0 ;;
    -*) usage ;;
    *) [[ -z $build ]] || usage; build=$1; shift ;;
    esac
done
[[ $threads =~ ^[0-9]+$ ]] && ((threads >= 1)) || die "--threads must be a positive number, got '$threads'"
[[ -z $only || $only == libich || $only == pytorch ]] || die "--only takes libich or pytorch, got '$only'"
case $model in
tutorial) default_train_steps=2 default_repeat=1 input="1x512x512" ;;
ichnet) default_train_steps=10 default_repeat=3 input="3x256x256" ;;
efficientnet_v2_s | convnext_tiny) default_train_steps=3 default_repeat=3 input="3x256x256" ;;
*) die "--model takes tutorial, ichnet, efficientnet_v2_s or convnext_tiny, got '$model'" ;;
esac
if ((quick)); then
    batch=${BENCH_BATCH:-2} train_steps=${BENCH_TRAIN_STEPS:-1} infer_steps=${BENCH_INFER_STEPS:-1}
    repeat=${BENCH_REPEAT:-1}
else
    batch=${BENCH_BATCH:-16} train_steps=${BENCH_TRAIN_STEPS:-$default_train_steps}
    infer_steps=${BENCH_INFER_STEPS:-3} repeat=${BENCH_REPEAT:-$default_repeat}
fi
warmup=${BENCH_WARMUP:-1}
for v in batch train_steps infer_steps repeat; do
    [[ ${!v} =~ ^[0-9]+$ ]] && ((${!v} >= 1)) || die "$v must be a positive number, got '${!v}'"
done
[[ $warmup =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a number, got '$warmup'"
python=${PYTHON:-/usr/bin/python3}
cc=${CC:-cc}
run_libich=1 run_torch=1
[[ $only == pytorch ]] && run_libich=0
[[ $only == libich ]] && run_torch=0

build=${build:-${ICH_BUILD_DIR:-build}}
[[ -d $build || $build == /* ]] || build=$root/$build
if ((run_libich)); then
    [[ -d $build ]] || die "no build folder '$build' (build first, or pass BUILD_DIR)"
    build=$(cd "$build" && pwd)
    [[ -e $build/libich/libich.so ]] || die "missing $build/libich/libich.so (build libich first)"
fi
if ((run_torch)); then
    "$python" -c 'import torch' 2>/dev/null || die "$python cannot import torch (apt install python3-torch)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ich-bench-cnn.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- Programs ----------------------------------------------------------
"$cc" -O2 -std=c11 -D_GNU_SOURCE -pthread "$here/peak_flops.c" -o "$tmp/peak_flops" ||
    die "cannot compile peak_flops.c"
if ((run_libich)); then
    "$cc" -O2 -std=c11 -D_GNU_SOURCE -I"$root/include" "$here/bench_cnn.c" \
        -L"$build/libich" -Wl,-rpath,"$build/libich" -lich -lm -o "$tmp/bench_cnn" ||
        die "cannot compile bench_cnn.c"
fi

# ---- Machine -----------------------------------------------------------
cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)
echo "machine: $(nproc) cores (nproc), CPU: ${cpu:-unknown}, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; other work on the machine makes every figure noisy)"
((run_libich)) && echo "libich:  $build/libich/libich.so"
((run_torch)) && echo "python:  $python ($("$python" -c 'import sys, torch; print("%d.%d" % sys.version_info[:2], "torch", torch.__version__)'))"
echo "work:    $model ($input input, 6 outputs), batch $batch, $threads threads; $warmup untimed warm-up step(s), then $train_steps timed training and $infer_steps timed inference step(s) per process; $repeat repetition(s), medians"
((quick)) && echo "         (--quick: a smoke test, the figures mean little)"
echo

calc() { awk "BEGIN { $1 }"; }
# field LINE KEY: the value of KEY=... in a RESULT line
field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<"$1"; }
result() { grep '^RESULT ' <<<"$1" | tail -n1; }

# ---- FLOPs and peak ----------------------------------------------------
# The model's FLOPs are counted twice, independently: from bench_cnn.c's
# table of the tutorial network and from the PyTorch module's real output
# shapes. They must agree. The other networks are counted from the PyTorch
# module only (without PyTorch, no GFLOP/s figures).
flops=
if ((run_torch)); then
    out=$("$python" "$here/cnn_reference.py" flops --model "$model") || die "cnn_reference.py flops failed"
    flops=$(field "$(result "$out")" forward_flops)
fi
if ((run_libich)) && [[ $model == tutorial ]]; then
    out=$("$tmp/bench_cnn" flops) || die "bench_cnn flops failed"
    cflops=$(field "$(result "$out")" forward_flops)
    [[ -z $flops || $flops == "$cflops" ]] ||
        die "the two FLOP counts differ: PyTorch module $flops, bench_cnn.c $cflops"
    flops=$cflops
fi
if [[ -n $flops ]]; then
    echo "$out" | grep -v '^RESULT' || true
    awk -v f="$flops" 'BEGIN { printf "forward: %.2f GFLOP per image; training counted as 3x forward: %.2f GFLOP per image\n\n", f / 1e9, 3 * f / 1e9 }'
fi

out=$("$tmp/peak_flops" --threads "$threads") || die "peak_flops failed"
echo "$out" | grep -v '^RESULT'
peak=$(field "$(result "$out")" peakn_gflops)
peak1=$(field "$(result "$out")" peak1_gflops)
# Other work on a core lowers the N-thread figure, not the hardware's peak:
# then N x the one-thread figure is the fairer denominator.
if calc "exit !($peak < 0.9 * $threads * $peak1)"; then
    peak=$(calc "printf \"%.1f\", $threads * $peak1")
    echo "  (the $threads-thread figure is below 0.9 x $threads x one thread: a core is busy with other"
    echo "   work; the percentages below use $threads x one thread = $peak GFLOP/s)"
fi
echo

# ---- Runs --------------------------------------------------------------
# Per side and mode, the figures of every repetition (space-separated);
# the table gives their medians (best: the fastest step of all).
declare -A rates bests mems bases cpus rate best mem base cpu
run_one() { # side mode steps
    local side=$1 mode=$2 steps=$3 out line
    if [[ $side == libich ]]; then
        # with ICH_PROFILE=1, libich's per-layer table gives % of this peak
        out=$(ICH_PROFILE_PEAK=${ICH_PROFILE_PEAK:-$peak} "$tmp/bench_cnn" "$mode" --preset "$model" \
            --threads "$threads" --batch "$batch" --warmup "$warmup" --steps "$steps") ||
            die "bench_cnn $mode failed"
    else
        out=$("$python" "$here/cnn_reference.py" "$mode" --model "$model" --threads "$threads" \
            --batch "$batch" --warmup "$warmup" --steps "$steps") || die "cnn_reference.py $mode failed"
    fi
    echo "  $(grep -v '^RESULT' <<<"$out")"
    line=$(result "$out")
    [[ -n $line ]] || die "$side $mode printed no RESULT line"
    rates[$side,$mode]+=" $(field "$line" images_per_s)"
    bests[$side,$mode]+=" $(field "$line" best_images_per_s)"
    mems[$side,$mode]+=" $(field "$line" maxrss_kib)"
    bases[$side,$mode]+=" $(field "$line" base_kib)"
    # images per CPU-second (all threads): less moved by other work than wall time
    cpus[$side,$mode]+=" $(calc "printf \"%.4f\", $batch * $steps / $(field "$line" cpu_seconds)")"
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
maximum() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tail -n1; }
sides=()
((run_libich)) && sides+=(libich)
((run_torch)) && sides+=(pytorch)
for ((r = 1; r <= repeat; r++)); do
    ((repeat > 1)) && echo "repetition $r of $repeat (load $(cut -d' ' -f1 /proc/loadavg)):"
    order=("${sides[@]}")
    ((r % 2 == 0 && ${#sides[@]} == 2)) && order=(pytorch libich)
    for mode in infer train; do
        steps=$infer_steps
        [[ $mode == train ]] && steps=$train_steps
        for side in "${order[@]}"; do
            run_one "$side" "$mode" "$steps"
        done
    done
done
for key in "${!rates[@]}"; do
    rate[$key]=$(median "${rates[$key]}")
    best[$key]=$(maximum "${bests[$key]}")
    mem[$key]=$(median "${mems[$key]}")
    base[$key]=$(median "${bases[$key]}")
    cpu[$key]=$(median "${cpus[$key]}")
done
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) after the runs"
((repeat > 1)) && echo "(images/s and memory: medians of the $repeat repetitions; fastest step: the fastest of all)"

# ---- Table -------------------------------------------------------------
# awk does the arithmetic; "-" where a side did not run.
get() { local v=${rate[$1,$2]:-}; [[ -n $v ]] && echo "$v" || echo "-"; }
getbest() { local v=${best[$1,$2]:-}; [[ -n $v ]] && echo "$v" || echo "-"; }
getcpu() { local v=${cpu[$1,$2]:-}; [[ -n $v ]] && echo "$v" || echo "-"; }
mib() { [[ -n ${mem[$1,$2]:-} ]] && calc "printf \"%.0f\", (${mem[$1,$2]} - ${base[$1,$2]}) / 1024" || echo "-"; }
raw() { [[ -n ${mem[$1,$2]:-} ]] && calc "printf \"%.0f\", ${mem[$1,$2]} / 1024" || echo "-"; }
ratio() { [[ $1 != - && $2 != - ]] && calc "printf \"%.2fx\", $1 / $2" || echo "-"; }
gflops() { # side mode -> "G (P%)"
    local r=${rate[$1,$2]:-} k=1
    [[ $2 == train ]] && k=3
    [[ -n $r && -n $flops ]] && calc "g = $r * $k * $flops / 1e9; printf \"%.1f (%.0f%%)\", g, 100 * g / $peak" || echo "-"
}
echo
printf '%-40s %14s %14s %14s\n' "" "libich" "PyTorch" "libich/PyTorch"
for mode in train infer; do
    name=training
    [[ $mode == infer ]] && name=inference
    printf '%-40s %14s %14s %14s\n' "$name images/s" "$(get libich $mode)" "$(get pytorch $mode)" \
        "$(ratio "$(get libich $mode)" "$(get pytorch $mode)")"
    printf '%-40s %14s %14s %14s\n' "  (fastest step)" "$(getbest libich $mode)" \
        "$(getbest pytorch $mode)" "$(ratio "$(getbest libich $mode)" "$(getbest pytorch $mode)")"
    printf '%-40s %14s %14s %14s\n' "  (images per CPU-second)" "$(getcpu libich $mode)" \
        "$(getcpu pytorch $mode)" "$(ratio "$(getcpu libich $mode)" "$(getcpu pytorch $mode)")"
done
for mode in train infer; do
    name=training
    [[ $mode == infer ]] && name=inference
    printf '%-40s %14s %14s %14s\n' "$name peak memory MiB (above base)" "$(mib libich $mode)" \
        "$(mib pytorch $mode)" "$(ratio "$(mib libich $mode)" "$(mib pytorch $mode)")"
    printf '%-40s %14s %14s %14s\n' "$name peak memory MiB (raw)" "$(raw libich $mode)" \
        "$(raw pytorch $mode)" "$(ratio "$(raw libich $mode)" "$(raw pytorch $mode)")"
done
for mode in train infer; do
    name=training
    [[ $mode == infer ]] && name=inference
    printf '%-40s %14s %14s\n' "$name GFLOP/s (% of peak)" "$(gflops libich $mode)" "$(gflops pytorch $mode)"
done
printf '%-40s %14s\n' "FMA peak, $threads threads, GFLOP/s" "$peak"

# ---- Goal --------------------------------------------------------------
# issue 16: peak memory at most half of PyTorch's for the tutorial and
# ichnet, training and inference
if [[ $model == tutorial ]]; then
    goal_train=3 goal_infer=4 goal_mem=0.5
elif [[ $model == ichnet ]]; then
    goal_train=1.5 goal_infer=1.5 goal_mem=0.5
else
    goal_train=1.5 goal_infer=1.5 goal_mem=1
fi
if ((run_libich && run_torch)); then
    check() { # label value op bound [note]
        local verdict
        verdict=$(calc "v = $2; b = $4; print ((\"$3\" == \">=\" ? v >= b : v <= b) ? \"met\" : \"NOT met\")")
        printf '  %-36s %7s  (goal %s %-4s) %-8s %s\n' "$1" "$(calc "printf \"%.2fx\", $2")" "$3" "$4x" \
            "$verdict" "${5:-}"
    }
    fastest() { echo "(fastest steps: $(calc "printf \"%.2fx\", ${best[libich,$1]} / ${best[pytorch,$1]}"))"; }
    echo
    echo "goal (libich against PyTorch$( ((quick)) && echo ', --quick: not meaningful')):"
    check "training images/s" "${rate[libich,train]} / ${rate[pytorch,train]}" ">=" $goal_train "$(fastest train)"
    check "inference images/s" "${rate[libich,infer]} / ${rate[pytorch,infer]}" ">=" $goal_infer "$(fastest infer)"
    check "training peak memory (above base)" \
        "(${mem[libich,train]} - ${base[libich,train]}) / (${mem[pytorch,train]} - ${base[pytorch,train]})" "<=" $goal_mem
    check "inference peak memory (above base)" \
        "(${mem[libich,infer]} - ${base[libich,infer]}) / (${mem[pytorch,infer]} - ${base[pytorch,infer]})" "<=" $goal_mem
fi
