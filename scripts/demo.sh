#!/usr/bin/env bash
# The main job on built-in data, step by step as the pipeline runs it:
#   1. phantom     write the synthetic head-CT dataset (DICOM + RSNA labels)
#   2. labels      RSNA long CSV -> one row per image, any = OR checked
#   3. sample      N images per label, seeded
#   4. select      link the sampled DICOMs into a working folder, verified
#   5. split       train/validation/test 80/10/10 by patient, stratified
#   6. preprocess  HU -> blood/brain/bone windows -> 256x256 RGB PNG
#   7. augment     offline augmentation of the minority labels of train
#   8. dataset     shuffled float32 batches, as training reads them
#   9. train       the default network (ichnet) with validation, early stopping
#  10. evaluate    the held-out test patients: report.html, ROC curves, metrics
#  11. predict     six probabilities per DICOM (RSNA submission format)
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
$bin/ich-phantom "$out/phantom" --patients 200 --slices 24 --seed 7
echo "== 2. labels: RSNA long format -> one row per image ($out/labels.csv)"
$bin/ich-labels pivot "$out/phantom/labels.csv" "$out/labels.csv"
echo "== 3. sample: up to 1000 images per label and 1000 without hemorrhage"
$bin/ich-labels sample "$out/labels.csv" "$out/sampled.csv" --per-label 1000 --seed 7
echo "== 4. select: the sampled DICOMs -> $out/selected"
$bin/ich-select "$out/sampled.csv" "$out/phantom/images" "$out/selected" --link
echo "== 5. split by patient (PatientID from the DICOM headers) -> $out/split"
$bin/ich-split "$out/selected/labels.csv" "$out/split" --groups-from-dicom "$out/selected" --seed 7
echo "== 6. preprocess: windows blood,brain,bone -> $out/png"
$bin/ich-preprocess "$out/selected" "$out/png" --windows blood,brain,bone --size 256
echo "== 7. augment: minority labels of the training set -> $out/png"
$bin/ich-augment "$out/split/train.csv" "$out/png" "$out/png" --seed 7 --target 400 \
  --out-csv "$out/split/train_augmented.csv"
echo "== 8. dataset: float32 batches for training (Python bindings)"
ICH_BUILD_DIR="$PWD/build" PYTHONPATH="$PWD/bindings/python" \
  /usr/bin/python3 bindings/python/examples/dataset_batches.py \
  "$out/split/train_augmented.csv" "$out/png"
echo "== 9. train: ichnet on the training split (validation: val split) -> $out/model"
$bin/ich-train "$out/split/train_augmented.csv" "$out/png" --val "$out/split/val.csv" \
  --model ichnet --epochs ${DEMO_EPOCHS:-10} --patience 4 --balanced --seed 7 --out "$out/model"
echo "== 10. evaluate on the held-out test patients -> $out/report/report.html"
$bin/ich-evaluate "$out/model/best.safetensors" "$out/split/test.csv" "$out/selected" "$out/report"
/usr/bin/python3 - "$out/report/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
classes = m.get("classes") or m.get("per_class") or []
print("test ROC-AUC:", ", ".join(
    "%s %s" % (c.get("name"), "undefined" if c.get("auc") is None else "%.3f" % c["auc"])
    for c in classes))
PY
echo "== 11. predict: every selected DICOM -> $out/predictions_rsna.csv (RSNA submission rows)"
$bin/ich-predict "$out/model/best.safetensors" "$out/selected" --format rsna \
  --out "$out/predictions_rsna.csv" --quiet
echo "== done: report in $out/report/report.html, model in $out/model, splits in $out/split"
