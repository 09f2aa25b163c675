#!/usr/bin/env bash
# Pack a finished build for a GPU machine that has CUDA, cuDNN, cuBLAS and
# a Python with numpy (and PyTorch, for the benchmark) but none of libich's
# other libraries and no package registry: a machine lent for a short check.
#
#   scripts/gpu_kit.sh [--emulated] [BUILD_DIR [KIT_DIR]]
#
# KIT_DIR (default gpu-kit, ignored by git) receives libich/libich.so.0
# (and the libich.so link), libich/libich-cuda.so, examples/ich-train,
# tests/test_collective with libich/libich-mpi.so (the NCCL check; when
# built), and deps.tar.xz: the
# shared libraries libich needs beyond glibc and libstdc++ (GDCM, oneDNN,
# OpenBLAS, libdeflate, ...; about 16 MB). Copy the repository with the kit
# to the GPU machine and run there:
#
#   scripts/gpu_check.sh [KIT_DIR]
#
# --emulated packs the plugin built against the CPU emulation of CUDA
# (tests/cuda_emu) instead, to rehearse gpu_check.sh on a machine without
# a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
emulated=0
if [[ ${1:-} == --emulated ]]; then emulated=1; shift; fi
build=${1:-build}
kit=${2:-gpu-kit}

plugin=$build/libich/libich-cuda.so
((emulated)) && plugin=$build/tests/cuda_emu/libich-cuda.so
for f in "$build/libich/libich.so.0" "$plugin"; do
  [[ -f $f ]] || { echo "gpu_kit.sh: missing $f (run scripts/build.sh $build first)" >&2; exit 1; }
done

rm -rf "$kit"
mkdir -p "$kit/libich" "$kit/deps" "$kit/examples"
cp "$build/libich/libich.so.0" "$plugin" "$kit/libich/"
# for tests/gpu's run of the program (ICH_BUILD_DIR=KIT_DIR)
cp "$build/examples/ich-train" "$kit/examples/"
ln -s libich.so.0 "$kit/libich/libich.so"
# for gpu_check.sh's NCCL step: the collectives' white-box test (libich's
# objects linked in, the same libraries as libich.so.0) and the MPI plugin
if [[ -f $build/tests/dist/test_collective ]]; then
  mkdir -p "$kit/tests"
  cp "$build/tests/dist/test_collective" "$kit/tests/"
  [[ -f $build/libich/libich-mpi.so ]] && cp "$build/libich/libich-mpi.so" "$kit/libich/"
fi
# Everything libich.so.0 loads except the C library family and libstdc++
# / libgcc (the GPU machine's own are newer, and mixing them breaks).
ldd "$build/libich/libich.so.0" | awk '$3 ~ /^\// {print $3}' |
  grep -vE '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so' |
  while read -r lib; do cp -L "$lib" "$kit/deps/"; done
tar -cJf "$kit/deps.tar.xz" -C "$kit/deps" .
rm -rf "$kit/deps"
echo "gpu_kit.sh: $kit: $(du -sh "$kit" | cut -f1) ($(tar -tJf "$kit/deps.tar.xz" | grep -c '\.so') libraries in deps.tar.xz)"
