#!/usr/bin/env bash
# Benchmark on a GPU: libich's CUDA backend (libich-cuda.so) against PyTorch
# on the same GPU, training (forward, BCE-with-logits, backward, Adam step)
# and inference of the "tutorial" preset (1x512x512) and "ichnet"
# (3x256x256) at batch 16 and 64 (bench/cuda_bench.py, one process per
# side, network and batch). See bench/README.md.
#
#   bench/run_cuda.sh [--fp32] [--tf32] [--bf16] [--benchmark] [--quick] [--only libich|pytorch] [BUILD_DIR]
#
# --fp32       PyTorch without TF32 (cudnn and matmul allow_tf32 off): libich's default math
# --tf32       libich with ICH_CUDA_MATH=tf32 (TF32 convolutions, as PyTorch's default)
# --bf16       mixed precision on both sides: libich ICH_CUDA_MATH=bf16, PyTorch autocast bf16
# --benchmark  both sides time cuDNN's algorithms, keep the fastest (cudnn.benchmark)
# --quick      a smoke test: batch 2, 1 warm-up and 2 timed steps (figures mean little)
# --only SIDE  run one side only (no ratios)
#
# BUILD_DIR (or $ICH_BUILD_DIR, default "build", relative to the current
# folder or to the repository root) must hold a finished build with
# libich/libich.so and, beside it, libich/libich-cuda.so (built when the
# CUDA toolkit is installed). Environment:
#   BENCH_BATCHES      batch sizes (default "16 64"; --quick: "2")
#   BENCH_MODELS       presets (default "tutorial ichnet")
#   BENCH_WARMUP       untimed steps before the timed ones, per mode (default 3; --quick: 1)
#   BENCH_STEPS        timed steps per mode (default 10; --quick: 2)
#   BENCH_TRAIN_STEPS  timed training steps (default BENCH_STEPS)
#   BENCH_INFER_STEPS  timed inference steps (default BENCH_STEPS)
#   PYTHON             the Python with numpy and torch (default /usr/bin/python3)
#
# Without a GPU (libich's CUDA backend cannot start and PyTorch sees none)
# it prints why and exits 0. It fails only on a real error: a program that
# fails, or a GPU that PyTorch can use and libich cannot. A batch too big
# for the GPU's memory shows as "OOM" in the table, not as an error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
fp32=0
tf32=0
bf16=0
benchmark=0
quick=0
only=
build=
die() { echo "run_cuda.sh: $*" >&2; exit 1; }
help_text() { sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//'; }
usage() { help_text >&2; exit 2; }
while (($#)); do
    case $1 in
    --fp32) fp32=1; shift ;;
    --tf32) tf32=1; shift ;;
    --bf16) bf16=1; shift ;;
    --benchmark) benchmark=1; shift ;;
    --quick) quick=1; shift ;;
    --only) (($# >= 2)) || usage; only=$2; shift 2 ;;
    -h | --help) help_text; exit 0 ;;
    -*) usage ;;
    *) [[ -z $build ]] || usage; build=$1; shift ;;
    esac
done
[[ -z $only || $only == libich || $only == pytorch ]] || die "--only takes libich or pytorch, got '$only'"
if ((quick)); then
    batches=${BENCH_BATCHES:-2} warmup=${BENCH_WARMUP:-1} steps=${BENCH_STEPS:-2}
else
    batches=${BENCH_BATCHES:-16 64} warmup=${BENCH_WARMUP:-3} steps=${BENCH_STEPS:-10}
fi
models=${BENCH_MODELS:-tutorial ichnet}
train_steps=${BENCH_TRAIN_STEPS:-$steps}
infer_steps=${BENCH_INFER_STEPS:-$steps}
for v in train_steps infer_steps; do
    [[ ${!v} =~ ^[0-9]+$ ]] && ((${!v} >= 1)) || die "$v must be a positive number, got '${!v}'"
done
[[ $warmup =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a number, got '$warmup'"
for b in $batches; do
    [[ $b =~ ^[0-9]+$ ]] && ((b >= 1)) || die "BENCH_BATCHES must be positive numbers, got '$batches'"
done
for m in $models; do
    [[ $m == tutorial || $m == ichnet ]] || die "BENCH_MODELS takes tutorial and ichnet, got '$m'"
done
[[ -n ${batches// /} && -n ${models// /} ]] || die "BENCH_BATCHES and BENCH_MODELS must not be empty"
python=${PYTHON:-/usr/bin/python3}
run_libich=1 run_torch=1
[[ $only == pytorch ]] && run_libich=0
[[ $only == libich ]] && run_torch=0

build=${build:-${ICH_BUILD_DIR:-build}}
[[ -d $build || $build == /* ]] || build=$root/$build
if ((run_libich)); then
    [[ -d $build ]] || die "no build folder '$build' (build first, or pass BUILD_DIR)"
    build=$(cd "$build" && pwd)
    [[ -e $build/libich/libich.so ]] || die "missing $build/libich/libich.so (build libich first)"
    export ICH_LIBRARY=$build/libich/libich.so
    export PYTHONPATH=$root/bindings/python${PYTHONPATH:+:$PYTHONPATH}
fi
((tf32)) && export ICH_CUDA_MATH=tf32
((bf16)) && export ICH_CUDA_MATH=bf16
torch_flags=()
((fp32)) && torch_flags+=(--fp32)
((bf16)) && torch_flags+=(--bf16)
((benchmark)) && torch_flags+=(--benchmark)
((benchmark)) && export ICH_CUDA_BENCHMARK=1
bench() { "$python" "$here/cuda_bench.py" "$@"; }

# ---- Is there a GPU? -------------------------------------------------------
# probe: exit 0 = usable, 3 = no GPU (the first line says why), 4 = no torch.
probe() { # side -> sets probe_rc, probe_text (first line), probe_result (RESULT line)
    local out
    probe_rc=0
    out=$(bench probe "$1" "${@:2}" 2>&1) || probe_rc=$?
    probe_text=$(grep -v '^RESULT ' <<<"$out" | head -n1 || true)
    probe_result=$(grep '^RESULT ' <<<"$out" | tail -n1 || true)
    ((probe_rc == 0 || probe_rc == 3 || probe_rc == 4)) || die "cuda_bench.py probe $1 failed:
$out"
}
lib_ok=0 lib_info= torch_ok=0 torch_info= torch_rc=
if ((run_libich)); then
    probe libich
    lib_info=$probe_text
    ((probe_rc == 0)) && lib_ok=1
fi
if ((run_torch)); then
    probe pytorch "${torch_flags[@]}"
    torch_info=$probe_text torch_rc=$probe_rc torch_result=$probe_result
    ((probe_rc == 0)) && torch_ok=1
fi
if ((run_libich && !lib_ok)); then
    ((torch_ok)) && die "PyTorch can use the GPU ($torch_info) but libich's CUDA backend cannot: $lib_info"
    echo "run_cuda.sh: no GPU here, nothing to measure."
    echo "  libich:  $lib_info"
    ((run_torch)) && echo "  PyTorch: $torch_info"
    exit 0
fi
if ((run_torch && !torch_ok)); then
    if ((!run_libich)) && [[ $torch_rc == 3 ]]; then
        echo "run_cuda.sh: no GPU here, nothing to measure."
        echo "  PyTorch: $torch_info"
        exit 0
    fi
    die "$torch_info (use --only libich to time libich alone)"
fi

# ---- Machine -----------------------------------------------------------
field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<"$1"; }
result() { grep "^RESULT .*mode=$2\( \|$\)" <<<"$1" | tail -n1; }
onoff() { [[ $1 == 1 ]] && echo on || echo off; }
cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)
echo "machine: $(nproc) cores (nproc), CPU: ${cpu:-unknown}, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
if command -v nvidia-smi >/dev/null; then
    echo "GPU:     $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1 || echo '?') (nvidia-smi: name, driver, memory)"
fi
((run_libich)) && echo "libich:  $build/libich/libich.so, $lib_info"
((run_torch)) && echo "python:  $python, $torch_info"
setup="setup:  "
((run_libich)) && setup+=" libich [$lib_info];"
((bf16 && run_torch)) && setup+=" PyTorch under torch.autocast(bfloat16);"
((benchmark && run_torch)) && setup+=" PyTorch with cudnn.benchmark;"
((run_torch)) && setup+=" PyTorch $(field "$torch_result" version) TF32 convolutions $(onoff "$(field "$torch_result" conv_tf32)"), matrix products $(onoff "$(field "$torch_result" matmul_tf32)")"
echo "$setup"
[[ -n ${NVIDIA_TF32_OVERRIDE:-} ]] && echo "         (NVIDIA_TF32_OVERRIDE=$NVIDIA_TF32_OVERRIDE is set: it overrides both sides' TF32 settings)"
echo "work:    ${models// /, } at batch ${batches// /, }; per network, batch and side: $warmup untimed warm-up step(s), then $infer_steps timed inference and $train_steps timed training steps"
((quick)) && echo "         (--quick: a smoke test, the figures mean little)"
echo

# ---- Runs --------------------------------------------------------------
declare -A rate best
sides=()
((run_libich)) && sides+=(libich)
((run_torch)) && sides+=(pytorch)
for model in $models; do
    for batch in $batches; do
        for side in "${sides[@]}"; do
            flags=()
            [[ $side == pytorch ]] && flags=("${torch_flags[@]}")
            ((tf32)) && [[ $side == libich ]] && flags+=(--tf32)
            ((bf16)) && [[ $side == libich ]] && flags+=(--bf16)
            out=$(bench run "$side" --model "$model" --batch "$batch" --warmup "$warmup" \
                --train-steps "$train_steps" --infer-steps "$infer_steps" "${flags[@]}") ||
                die "cuda_bench.py run $side --model $model --batch $batch failed"
            grep -v '^RESULT ' <<<"$out" | sed 's/^/  /'
            for mode in infer train; do
                line=$(result "$out" "$mode")
                [[ -n $line ]] || die "$side $model batch $batch $mode printed no RESULT line"
                if [[ $(field "$line" oom) == 1 ]]; then
                    rate[$side,$model,$batch,$mode]=OOM best[$side,$model,$batch,$mode]=OOM
                else
                    rate[$side,$model,$batch,$mode]=$(field "$line" images_per_s)
                    best[$side,$model,$batch,$mode]=$(field "$line" best_images_per_s)
                fi
            done
        done
    done
done

# ---- Table -------------------------------------------------------------
# "-" where a side did not run, "OOM" where the batch did not fit.
get() { local v=${rate[$1]:-}; [[ -n $v ]] && echo "$v" || echo "-"; }
getbest() { local v=${best[$1]:-}; [[ -n $v ]] && echo "$v" || echo "-"; }
num() { [[ $1 != - && $1 != OOM ]]; }
fmt() { num "$1" && awk -v v="$1" 'BEGIN { printf "%.1f", v }' || echo "$1"; }
ratio() { num "$1" && num "$2" && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' || echo "-"; }
echo
printf '%-9s %5s  %-9s %14s %14s %15s %17s\n' "network" "batch" "" "libich img/s" "PyTorch img/s" \
    "libich/PyTorch" "(fastest steps)"
for model in $models; do
    for batch in $batches; do
        for mode in train infer; do
            name=training
            [[ $mode == infer ]] && name=inference
            k=$model,$batch,$mode
            printf '%-9s %5s  %-9s %14s %14s %15s %17s\n' "$model" "$batch" "$name" \
                "$(fmt "$(get "libich,$k")")" "$(fmt "$(get "pytorch,$k")")" \
                "$(ratio "$(get "libich,$k")" "$(get "pytorch,$k")")" \
                "$(ratio "$(getbest "libich,$k")" "$(getbest "pytorch,$k")")"
        done
    done
done
echo "(libich/PyTorch above 1: libich is faster)"
