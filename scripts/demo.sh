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
# Usage: scripts/demo.sh [OUTPUT_DIR] [--labels CSV --dicom DIR]
#   OUTPUT_DIR   where everything goes (default: demo-output; emptied first)
#   --labels CSV --dicom DIR
#                real data laid out like RSNA's instead of the phantom: a label
#                CSV (RSNA long "ID,Label" or wide) and the folder holding the
#                <ID>.dcm files (searched recursively). Patients come from the
#                files' PatientID. DEMO_PER_LABEL (default 1000) and DEMO_EPOCHS
#                (default 10) set the sample size and the training length.
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo-output
labels_in="" dicom_in=""
while [ $# -gt 0 ]; do
  case "$1" in
    --labels) labels_in=$2; shift 2 ;;
    --dicom) dicom_in=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
if { [ -n "$labels_in" ] && [ -z "$dicom_in" ]; } || { [ -z "$labels_in" ] && [ -n "$dicom_in" ]; }; then
  echo "demo.sh: --labels and --dicom go together" >&2; exit 2
fi
bin=build/examples

scripts/deps.sh
echo "== building libich"
scripts/build.sh build
# Start from an empty OUTPUT_DIR, but only delete a folder an earlier demo made.
if [ -e "$out" ] && [ ! -e "$out/.ich-demo" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "demo.sh: $out exists and is not a demo output folder; give another OUTPUT_DIR" >&2
  exit 2
fi
rm -rf "$out"
mkdir -p "$out" && touch "$out/.ich-demo"
if [ -z "$labels_in" ]; then
  echo "== 1. phantom: synthetic head-CT dataset -> $out/phantom"
  $bin/ich-phantom "$out/phantom" --patients 200 --slices 24 --seed 7
  labels_in=$out/phantom/labels.csv dicom_in=$out/phantom/images
else
  echo "== 1. real data: labels $labels_in, DICOM files under $dicom_in"
fi
echo "== 2. labels: one row per image ($out/labels.csv)"
$bin/ich-labels pivot "$labels_in" "$out/labels.csv"
echo "== 3. sample: up to ${DEMO_PER_LABEL:-1000} images per label and as many without hemorrhage"
$bin/ich-labels sample "$out/labels.csv" "$out/sampled.csv" --per-label "${DEMO_PER_LABEL:-1000}" --seed 7
echo "== 4. select: the sampled DICOMs -> $out/selected"
$bin/ich-select "$out/sampled.csv" "$dicom_in" "$out/selected" --link
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
