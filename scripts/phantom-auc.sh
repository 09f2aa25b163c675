#!/usr/bin/env bash
# Is the demo's held-out AUC informative? scripts/demo.sh's steps 1-10 with
# its settings (the default run), then a stronger setting, both evaluated on
# the same held-out images, with a paired bootstrap of the AUC difference:
#   default   200 patients, DEMO_PER_LABEL 1000, ichnet, 10 epochs, patience 4
#   stronger  400 patients (0-199 are the default's, the same slices),
#             per label 2000 (every positive), 15 epochs, patience 5; the
#             default's test patients are removed from its training and
#             validation, so it is evaluated on the default's test images
#             (and on its own test split).
# Usage: scripts/phantom-auc.sh [OUT_DIR] (default phantom-auc-output)
#   THREADS (default 1), EPOCHS and STRONG_EPOCHS, PATIENTS and STRONG_PATIENTS
#   change the sizes; REUSE_DEFAULT=1 keeps a default run already in OUT_DIR
#   (its model and test split) and makes only the stronger one. Needs the
#   build (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-phantom-auc-output}
bin=build/examples; T="--threads ${THREADS:-1}"

# One run: data, sample, select, split, preprocess, augment, train.
# run DIR PATIENTS PER_LABEL EPOCHS PATIENCE [TEST_CSV_TO_LEAVE_OUT]
run() {
  local d=$1 patients=$2 per=$3 epochs=$4 patience=$5 leave_out=${6:-}
  rm -rf "$d"; mkdir -p "$d"
  $bin/ich-phantom "$d/phantom" --patients "$patients" --slices 24 --seed 7 $T --quiet
  $bin/ich-labels pivot "$d/phantom/labels.csv" "$d/labels.csv" >/dev/null
  $bin/ich-labels sample "$d/labels.csv" "$d/sampled.csv" --per-label "$per" --seed 7 >/dev/null
  $bin/ich-select "$d/sampled.csv" "$d/phantom/images" "$d/selected" --link $T >/dev/null
  $bin/ich-split "$d/selected/labels.csv" "$d/split" --groups-from-dicom "$d/selected" \
    --seed 7 $T >/dev/null
  if [ -n "$leave_out" ]; then
    /usr/bin/python3 - "$leave_out" "$d/split" <<'PY'
import csv, sys
test = {r["patient"] for r in csv.DictReader(open(sys.argv[1]))}
for part in ("train", "val"):
    path = "%s/%s.csv" % (sys.argv[2], part)
    rows = list(csv.DictReader(open(path)))
    keep = [r for r in rows if r["patient"] not in test]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(keep)
    print("%s: %d rows, %d of the default run's test patients left out"
          % (part, len(keep), len(rows) - len(keep)))
PY
  fi
  $bin/ich-preprocess "$d/selected" "$d/png" --windows blood,brain,bone --size 256 $T >/dev/null
  $bin/ich-augment "$d/split/train.csv" "$d/png" "$d/png" --seed 7 --target 400 \
    --out-csv "$d/split/train_augmented.csv" $T >/dev/null
  $bin/ich-train "$d/split/train_augmented.csv" "$d/png" --val "$d/split/val.csv" \
    --model ichnet --epochs "$epochs" --patience "$patience" --balanced --seed 7 \
    --out "$d/model" $T 2>&1 | tr '\r' '\n' | grep -E "^ich-train: [0-9]+ epochs"
}

evaluate() { # evaluate CHECKPOINT TEST_CSV DICOM_DIR REPORT_DIR NAME
  $bin/ich-evaluate "$1" "$2" "$3" "$4" $T >/dev/null
  /usr/bin/python3 -c "
import json, sys
m = json.load(open(sys.argv[1] + '/metrics.json'))
c = {x['name']: x for x in m['classes']}
print('%-36s any %.3f (95%% CI %.3f-%.3f); ' % (sys.argv[2], c['any']['auc'], *c['any']['auc_ci'])
      + ', '.join('%s %.3f' % (n, x['auc']) for n, x in c.items()
                  if n != 'any' and x.get('auc') is not None))" "$4" "$5"
}

echo "== default: the demo's settings"
if [ "${REUSE_DEFAULT:-0}" = 1 ] && [ -f "$out/default/model/best.safetensors" ]; then
  echo "(kept from an earlier run in $out/default)"
else
  run "$out/default" "${PATIENTS:-200}" 1000 "${EPOCHS:-10}" 4
fi
echo "== stronger: ${STRONG_PATIENTS:-400} patients, every positive, up to ${STRONG_EPOCHS:-15} epochs"
run "$out/stronger" "${STRONG_PATIENTS:-400}" 2000 "${STRONG_EPOCHS:-15}" 5 \
  "$out/default/split/test.csv"
test_csv=$out/default/split/test.csv
evaluate "$out/default/model/best.safetensors" "$test_csv" "$out/default/selected" \
  "$out/default/report" "default, default's test images"
evaluate "$out/stronger/model/best.safetensors" "$test_csv" "$out/default/selected" \
  "$out/stronger/report_default_test" "stronger, default's test images"
evaluate "$out/stronger/model/best.safetensors" "$out/stronger/split/test.csv" \
  "$out/stronger/selected" "$out/stronger/report" "stronger, its own test split"
/usr/bin/python3 - "$test_csv" "$out/default/report/predictions.csv" \
  "$out/stronger/report_default_test/predictions.csv" <<'PY'
# Paired bootstrap over the same test images: AUC(stronger) - AUC(default).
import csv, sys
import numpy as np
truth = {r["ID"]: int(r["any"]) for r in csv.DictReader(open(sys.argv[1]))}
ids = sorted(truth)
def probabilities(path):
    rows = {r["ID"]: float(r["any"]) for r in csv.DictReader(open(path))}
    return np.array([rows[i] for i in ids])
def auc(y, p):
    pos, neg = p[y == 1], p[y == 0]
    return (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
y, a, b = np.array([truth[i] for i in ids]), probabilities(sys.argv[2]), probabilities(sys.argv[3])
rng, diffs = np.random.default_rng(0), []
for _ in range(2000):
    s = rng.integers(0, len(y), len(y))
    if y[s].min() != y[s].max():
        diffs.append(auc(y[s], b[s]) - auc(y[s], a[s]))
diffs = np.array(diffs)
print("any: stronger - default = %.3f (paired bootstrap 95%% CI %.3f to %.3f, %d images)"
      % (auc(y, b) - auc(y, a), *np.percentile(diffs, [2.5, 97.5]), len(y)))
PY
