#!/usr/bin/env bash
# The GPU checks in one command, on a machine with an NVIDIA GPU, from the
# repository root, with a kit made by scripts/gpu_kit.sh on a machine that
# builds libich (the GPU machine needs no libich dependency installed):
#
#   scripts/gpu_check.sh [--quick] [KIT_DIR]      (KIT_DIR default gpu-kit)
#
# 1. the CUDA backend starts (ich.backend_info("cuda"));
# 2. tests/gpu: every layer kind, training steps of the presets and
#    checkpoints on the GPU against the CPU backend (1e-4, FP32), then the
#    mixed-precision tests (ICH_CUDA_MATH=bf16);
# 3. NCCL: the plugin's collectives (tests/dist/test_collective from the
#    kit): one rank (libnccl.so.2 loaded, a communicator of one, a sum of a
#    device buffer on the plugin's stream); with 2 GPUs and mpiexec, 2
#    ranks: the device sum and a model's gradients summed with NCCL
#    against the sums computed on each rank (NCCL needs a GPU per rank:
#    with one GPU the 2-rank part is skipped, saying so);
# 4. bench/run_cuda.sh: training and inference images/s beside PyTorch on
#    the same GPU, with PyTorch's default math (TF32 convolutions) against
#    libich in FP32 and in TF32, then both in FP32, then both in bfloat16
#    mixed precision, then both timing cuDNN's algorithms (cudnn.benchmark).
#    --quick: a smoke test.
#
# Environment: PYTHON (default: python3 on the PATH if it has numpy, else
# /usr/bin/python3); OUT (when set, the output is also written to
# $OUT/gpu_check.txt). cuDNN and cuBLAS come from the library path, else
# from the Python's nvidia-cudnn / nvidia-cublas packages, else from
# /usr/local/cuda. Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
quick=()
if [[ ${1:-} == --quick ]]; then quick=(--quick); shift; fi
kit=$(cd "${1:-gpu-kit}" 2>/dev/null && pwd) || { echo "gpu_check.sh: no kit folder ${1:-gpu-kit} (scripts/gpu_kit.sh makes it)" >&2; exit 2; }
if [[ -n ${OUT:-} ]]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/gpu_check.txt") 2>&1
fi

python=${PYTHON:-}
if [[ -z $python ]]; then
  python=/usr/bin/python3
  command -v python3 >/dev/null && python3 -c 'import numpy' 2>/dev/null && python=$(command -v python3)
fi

deps=$(mktemp -d)
trap 'rm -rf "$deps"' EXIT
tar -xJf "$kit/deps.tar.xz" -C "$deps"
extra=$("$python" - <<'EOF' 2>/dev/null
import importlib, os
dirs = []
for name in ("nvidia.cudnn", "nvidia.cublas", "nvidia.cu13", "nvidia.cuda_runtime", "nvidia.nccl"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    for base in list(getattr(module, "__path__", [])):
        lib = os.path.join(base, "lib")
        if os.path.isdir(lib):
            dirs.append(lib)
print(":".join(dirs))
EOF
)
export LD_LIBRARY_PATH=$deps${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}${extra:+:$extra}:/usr/local/cuda/lib64:/usr/local/cuda/lib
export ICH_LIBRARY=$kit/libich/libich.so.0
export ICH_BUILD_DIR=$kit # examples/ich-train for tests/gpu
export PYTHONPATH=$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}
export PYTHON=$python

failed=0
step() { echo; echo "== $*"; }

step "machine"
echo "$(nproc) cores; python: $python"
command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
missing=$(ldd "$kit/libich/libich.so.0" "$kit/libich/libich-cuda.so" | grep 'not found' | sort -u)
if [[ -n $missing ]]; then
  echo "libraries not found:"; echo "$missing"; exit 1
fi

step "the CUDA backend"
"$python" -c 'import ich; print(ich.backend_info("cuda"))' || { echo "the CUDA backend does not start"; exit 1; }

step "tests/gpu: every layer, training steps and checkpoints against the CPU backend"
"$python" -m pytest -q -rs -p no:cacheprovider tests/gpu || failed=1
step "tests/gpu with bfloat16 mixed precision"
ICH_CUDA_MATH=bf16 "$python" -m pytest -q -p no:cacheprovider tests/gpu || failed=1

step "NCCL: the plugin's collectives on the GPU"
collective=$kit/tests/test_collective
if [[ ! -x $collective ]]; then
  echo "(the kit has no tests/test_collective: scripts/gpu_kit.sh after a full build)"; failed=1
else
  # One rank: no launcher, a communicator of one.
  ICH_BACKEND=cuda ICH_PLUGIN_PATH=$kit/libich "$collective" direct || failed=1
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  launcher=$(command -v mpiexec || command -v mpirun || true)
  if ((gpus < 2)); then
    echo "(2 ranks skipped: $gpus GPU here, NCCL needs one per rank)"
  elif [[ -z $launcher || ! -f $kit/libich/libich-mpi.so ]]; then
    echo "(2 ranks skipped: no mpiexec here or no libich-mpi.so in the kit)"
  else
    for args in "direct" "gradients expect-device"; do
      # shellcheck disable=SC2086
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ICH_BACKEND=cuda \
        ICH_PLUGIN_PATH=$kit/libich ICH_DIST_TIMEOUT=120 \
        "$launcher" -np 2 -x LD_LIBRARY_PATH -x ICH_BACKEND -x ICH_PLUGIN_PATH \
        -x ICH_DIST_TIMEOUT -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
        "$collective" $args || failed=1
    done
  fi
fi

step "benchmark beside PyTorch on the same GPU"
only=()
if ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "(PyTorch cannot use a GPU here: libich alone)"
  only=(--only libich)
fi
bench/run_cuda.sh "${quick[@]}" "${only[@]}" "$kit" || failed=1
if [[ ${#quick[@]} -eq 0 ]]; then
  step "benchmark: libich with TF32 (as PyTorch's default convolutions)"
  bench/run_cuda.sh --tf32 "${only[@]}" "$kit" || failed=1
  step "benchmark: both sides in FP32"
  bench/run_cuda.sh --fp32 "${only[@]}" "$kit" || failed=1
  step "benchmark: both sides in bfloat16 mixed precision"
  bench/run_cuda.sh --bf16 "${only[@]}" "$kit" || failed=1
  step "benchmark: both sides timing cuDNN's algorithms (cudnn.benchmark), default math"
  bench/run_cuda.sh --benchmark "${only[@]}" "$kit" || failed=1
fi
echo
((failed)) && echo "gpu_check.sh: FAILED (see above)" || echo "gpu_check.sh: all passed"
exit $failed
