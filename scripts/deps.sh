#!/usr/bin/env bash
# Install the Debian packages libich needs to build and test, when missing.
# Usage: scripts/deps.sh  (as root, or with sudo available)
set -euo pipefail

packages=(build-essential cmake pkg-config zlib1g-dev libdeflate-dev libgdcm-dev libstb-dev libcmocka-dev
          libdnnl-dev libopenblas-dev
          # Debian's oneDNN is built with its OpenCL GPU runtime: its CMake
          # package config needs the OpenCL headers and loader (a Recommends
          # of libdnnl-dev, which --no-install-recommends leaves out).
          ocl-icd-opencl-dev opencl-headers
          valgrind
          # the tests that watch system calls (ich-preprocess stops OpenBLAS's idle threads)
          strace
          # distributed training: the MPI plugin (libich-mpi.so) and mpirun for its tests
          libopenmpi-dev openmpi-bin
          # the ABI baseline check (scripts/abi.sh: abidw, abidiff)
          abigail-tools
          python3 python3-numpy python3-pydicom python3-pil python3-pytest python3-torch
          # test references: the tutorial's preprocessing (Resize, ToTensor,
          # Normalize) and the metrics
          python3-torchvision python3-sklearn
          # packaging checks (scripts/test_packaging.sh): pip in a venv,
          # offline, and the type stubs
          python3-venv python3-pip python3-setuptools python3-wheel python3-mypy)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
