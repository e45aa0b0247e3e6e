#!/usr/bin/env bash
# scripts/check_dataset.sh says whether a download matches a hash list (and names what differs);
# scripts/reproduce_paper.sh runs end to end on the bundled sample (one epoch per run: the
# pipeline, not the numbers) and writes its side-by-side table from the runs' own files.
#
#   reproduce_paper_test.sh SOURCE_DIR BRAINMRI BRAINMRI_PREP WORK_DIR
# Exit 77 (skipped) without the Keras MobileNetV2 weights in ../shared/pretrained.
set -euo pipefail
source_dir=$1 brainmri=$2 brainmri_prep=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- check_dataset.sh against a list made here
mkdir -p "$work/download/Training/glioma" "$work/download/Training/notumor"
printf 'a' > "$work/download/Training/glioma/Tr-gl_0001.jpg"
printf 'b' > "$work/download/Training/glioma/Tr-gl_0002.jpg"
printf 'c' > "$work/download/Training/notumor/Tr-no_0001.jpg"
(cd "$work/download" && find Training -type f | LC_ALL=C sort | xargs sha256sum) > "$work/list.sha256"
check="$source_dir/scripts/check_dataset.sh"
"$check" "$work/download" "$work/list.sha256" > "$work/check.out" || fail "a matching download was refused: $(cat "$work/check.out")"
grep -q "all 3 listed files match" "$work/check.out" || fail "unexpected: $(cat "$work/check.out")"
printf 'x' >> "$work/download/Training/glioma/Tr-gl_0002.jpg"
rm "$work/download/Training/notumor/Tr-no_0001.jpg"
printf 'd' > "$work/download/Training/notumor/extra.jpg"
status=0
"$check" "$work/download" "$work/list.sha256" > "$work/check.out" 2>&1 || status=$?
[[ $status == 1 ]] || fail "a changed and a missing file gave exit $status, not 1"
grep -q "Training/glioma/Tr-gl_0002.jpg: FAILED$" "$work/check.out" || fail "the changed file is not named"
grep -q "Training/notumor/Tr-no_0001.jpg: FAILED open or read" "$work/check.out" || fail "the missing file is not named"
grep -q "Training/notumor/extra.jpg" "$work/check.out" || fail "the unlisted file is not named"
grep -q "1 of 3 files differ and 1 are missing" "$work/check.out" || fail "no summary: $(cat "$work/check.out")"
status=0
"$check" "$work" "$work/list.sha256" > /dev/null 2>&1 || status=$?
[[ $status == 2 ]] || fail "a folder without Training/ gave exit $status, not 2"
# The committed list is the real data's: 5,708 training images, one line each.
[[ $(wc -l < "$source_dir/data/brain-tumor-mri-training.sha256") == 5708 ]] || fail "the committed list is not 5,708 lines"

# --- reproduce_paper.sh: usage errors, then the sample
reproduce="$source_dir/scripts/reproduce_paper.sh"
status=0
"$reproduce" > /dev/null 2>&1 || status=$?
[[ $status == 2 ]] || fail "no dataset gave exit $status, not 2"
status=0
"$reproduce" --budget huge "$source_dir/data/sample" > /dev/null 2>&1 || status=$?
[[ $status == 2 ]] || fail "--budget huge gave exit $status, not 2"

weights="$source_dir/../shared/pretrained/keras/mobilenet_v2_1.0_no_top.h5"
if [[ ! -f $weights ]]; then
  echo "SKIP: no Keras MobileNetV2 weights at $weights"
  exit 77
fi
out="$work/paper"
BRAINMRI=$brainmri BRAINMRI_PREP=$brainmri_prep "$reproduce" --epochs 1 --threads 2 --out "$out" \
  --pretrained "$weights" "$source_dir/data/sample" > "$work/reproduce.out" 2>&1 ||
  fail "reproduce_paper.sh failed: $(tail -20 "$work/reproduce.out")"
# The sample is not the real data: said, and the run goes on.
grep -q "not the data the results were computed from" "$out/dataset_check.txt" || fail "no mismatch reported"
for run in baseline_cnn-paper baseline_cnn-leakage_free mobilenet_v2_frozen-paper mobilenet_v2_frozen-leakage_free \
  baseline_cnn-paper-lr1e-2 baseline_cnn-paper-lr1e-4; do
  [[ -s $out/runs/$run/validation/metrics.json ]] || fail "$run has no validation/metrics.json"
done
grep -q "^folds-by = random" "$out/runs/baseline_cnn-paper/config.ini" || fail "the paper's protocol is not random folds"
grep -q "^folds-by = group" "$out/runs/baseline_cnn-leakage_free/config.ini" || fail "leakage-free is not group folds"
grep -q "^lr = 0.01" "$out/runs/baseline_cnn-paper-lr1e-2/config.ini" || fail "the varied learning rate is not 1e-2"
[[ -s $out/runs/baseline_cnn-paper/report/index.html ]] || fail "the main runs have no report"
table="$out/paper_table.md"
grep -q "| baseline CNN (3 conv blocks) | paper (reported) | 1404 | ~0.65 |" "$table" || fail "no paper row: $(head -20 "$table")"
grep -q "| MobileNetV2, frozen ImageNet backbone | ours, leakage-free" "$table" || fail "no leakage-free MobileNetV2 row"
grep -q "| glioma | 0.85 / 0.32 / 0.47 / 0.87 |" "$table" || fail "no per-class paper row"
grep -q "| lr 1e-2 | 1 |" "$table" || fail "no learning-rate row"
grep -q "MobileNetV2, searched (results/)" "$table" || fail "no searched model from results/"
# The table's numbers are the runs' own.
python3 - "$out" <<'EOF' || fail "paper_table.json disagrees with the runs"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
table = json.loads((out / "paper_table.json").read_text())
for name, row in table["ours"].items():
    metrics = json.loads((out / "runs" / name / "validation" / "metrics.json").read_text())
    assert row["accuracy"] == metrics["accuracy"], name
    assert row["macro_auc_95ci"]["low"] == metrics["macro_auc_95ci"]["low"], name
assert table["paper"]["baseline_cnn"]["per_class"]["meningioma"]["auc"] == 0.76
EOF
# A second call trains nothing again.
BRAINMRI=$brainmri BRAINMRI_PREP=$brainmri_prep "$reproduce" --epochs 1 --out "$out" --pretrained "$weights" \
  "$source_dir/data/sample" > "$work/again.out" 2>&1 || fail "the second call failed: $(tail "$work/again.out")"
[[ $(grep -c "done before" "$work/again.out") == 6 ]] || fail "the second call retrained: $(cat "$work/again.out")"
# The full budget packs at the paper's 128 x 128.
BRAINMRI=$brainmri BRAINMRI_PREP=$brainmri_prep "$reproduce" --budget full --epochs 1 --threads 2 --out "$work/full" \
  --pretrained "$weights" "$source_dir/data/sample" > "$work/full.out" 2>&1 || fail "--budget full failed: $(tail "$work/full.out")"
grep -q '"image_size": 128' "$work/full/packed/manifest.json" || fail "--budget full did not pack at 128 x 128"
grep -q "budget full, images 128×128" "$work/full/paper_table.md" || fail "the full table does not say its budget"
echo "check_dataset.sh and reproduce_paper.sh: OK"
