#!/usr/bin/env bash
# The main job on built-in data: generate the synthetic head-CT dataset (DICOM
# slices with RSNA-style labels), then run the preprocessing step (HU ->
# blood/brain/bone windows -> 256x256 RGB PNG) over them.
# Usage: scripts/demo.sh [OUTPUT_DIR]   (default: demo-output)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-output}

scripts/deps.sh
echo "== building libich"
scripts/build.sh build
echo "== generating the synthetic head-CT dataset in $out/phantom (DICOM + labels.csv)"
build/examples/ich-phantom "$out/phantom" --patients 3 --slices 8 --seed 7
echo "== preprocessing: windows blood,brain,bone -> $out/png"
build/examples/ich-preprocess "$out/phantom/images" "$out/png" --windows blood,brain,bone --size 256 --force
echo "== done: $(find "$out/png" -name '*.png' | wc -l) PNG images under $out/png"
