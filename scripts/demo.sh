#!/usr/bin/env bash
# The main job on built-in data, step by step as the pipeline runs it:
#   1. phantom     write the synthetic head-CT dataset (DICOM + RSNA labels)
#   2. labels      RSNA long CSV -> one row per image, any = OR checked
#   3. sample      N images per label, seeded
#   4. select      link the sampled DICOMs into a working folder, verified
#   5. split       train/validation/test 80/10/10 by patient, stratified
#   6. preprocess  HU -> blood/brain/bone windows -> 256x256 RGB PNG
#   7. augment     offline augmentation of the minority labels of train
#   8. dataset     shuffled float32 batches, as training will read them
# (Training and evaluation come with the CNN and metrics issues.)
# Usage: scripts/demo.sh [OUTPUT_DIR]   (default: demo-output)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-output}
bin=build/examples

scripts/deps.sh
echo "== building libich"
scripts/build.sh build
rm -rf "$out"
echo "== 1. phantom: synthetic head-CT dataset -> $out/phantom"
$bin/ich-phantom "$out/phantom" --patients 60 --slices 24 --seed 7
echo "== 2. labels: RSNA long format -> one row per image ($out/labels.csv)"
$bin/ich-labels pivot "$out/phantom/labels.csv" "$out/labels.csv"
echo "== 3. sample: 100 images per label and 100 without hemorrhage"
$bin/ich-labels sample "$out/labels.csv" "$out/sampled.csv" --per-label 100 --seed 7
echo "== 4. select: the sampled DICOMs -> $out/selected"
$bin/ich-select "$out/sampled.csv" "$out/phantom/images" "$out/selected" --link
echo "== 5. split by patient (PatientID from the DICOM headers) -> $out/split"
$bin/ich-split "$out/selected/labels.csv" "$out/split" --groups-from-dicom "$out/selected" --seed 7
echo "== 6. preprocess: windows blood,brain,bone -> $out/png"
$bin/ich-preprocess "$out/selected" "$out/png" --windows blood,brain,bone --size 256
echo "== 7. augment: minority labels of the training set -> $out/png"
$bin/ich-augment "$out/split/train.csv" "$out/png" "$out/png" --seed 7 \
  --out-csv "$out/split/train_augmented.csv"
echo "== 8. dataset: float32 batches for training (Python bindings)"
ICH_BUILD_DIR="$PWD/build" PYTHONPATH="$PWD/bindings/python" \
  /usr/bin/python3 bindings/python/examples/dataset_batches.py \
  "$out/split/train_augmented.csv" "$out/png"
echo "== done: PNG images in $out/png, splits in $out/split"
