#!/usr/bin/env bash
# The main job on the bundled sample: set up and build, pack the sample into sharded HDF5 with
# a 5-fold leakage-free split, verify and audit it, train the paper's baseline CNN briefly on
# folds 1-4 and evaluate it on fold 0, then cross-validate it over the 5 folds on 2 MPI ranks.
# (A few dozen images: the point is the pipeline, not the accuracy; results/ holds real-data runs.)
#
#   scripts/quickstart.sh [--serve] [output directory, default out/quickstart]
#
# --serve: then start the web page on the model the quick start trained (brainmri serve, on
# http://127.0.0.1:${BRAINMRI_PORT:-8080}/; Ctrl-C stops it); the quick start itself runs first only
# if that model is not there yet.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
serve=0
if [[ "${1:-}" == --serve ]]; then
  serve=1
  shift
fi
out="${1:-out/quickstart}"
bin=build/release

# shellcheck source=scripts/phases.sh
source scripts/phases.sh
phases_open
phases_share scripts/setup.sh release  # the programs only; scripts/test.sh builds the tests

serve_model() {
  phases_close
  echo "== Serving $out/baseline_cnn/model.pt (open the address below in a browser; Ctrl-C stops it)"
  exec "$bin/bin/brainmri" serve --model "$out/baseline_cnn/model.pt" --port "${BRAINMRI_PORT:-8080}"
}
if ((serve)) && [[ -s "$out/baseline_cnn/model.pt" ]]; then
  serve_model
fi

quick_start() {
  mkdir -p "$out"
  rm -rf "$out/baseline_cnn" "$out/cv_baseline_cnn"

  echo "== Packing data/sample into $out/dataset"
  "$bin/data_prep/brainmri-prep" --force --quiet --out "$out/dataset" --folds 5 --seed 42 data/sample
  echo "== Verifying"
  "$bin/data_prep/brainmri-prep" verify "$out/dataset"
  echo "== Leakage audit"
  "$bin/data_prep/brainmri-prep" audit "$out/dataset"

  echo "== Training the paper's baseline CNN (3 epochs) on folds 1-4"
  "$bin/bin/brainmri" train --config configs/paper_baseline_cnn.ini --data "$out/dataset" \
      --output "$out/baseline_cnn" --epochs 3 --explanation-check false
  echo "== Evaluating the trained model on fold 0"
  "$bin/bin/brainmri" evaluate --checkpoint "$out/baseline_cnn/model.pt" --data "$out/dataset" --fold 0 \
      --output "$out/baseline_cnn/eval-fold-0"

  echo "== 5-fold cross-validation of the baseline CNN (2 epochs per fold) on 2 MPI ranks"
  mpirun_root=()
  ((EUID == 0)) && mpirun_root=(--allow-run-as-root)
  mpirun "${mpirun_root[@]}" --oversubscribe -n 2 "$bin/bin/brainmri" cv --config configs/paper_baseline_cnn.ini \
      --data "$out/dataset" --output "$out/cv_baseline_cnn" --epochs 2 --threads-per-rank 1 --explanation-check false

  echo "== Reports: a comparison with the single run, then the cross-validation's with the check of its explanations"
  "$bin/bin/brainmri" report "$out/cv_baseline_cnn" "$out/baseline_cnn" --output "$out/comparison" --explanation-check false
  "$bin/bin/brainmri" report "$out/cv_baseline_cnn"
}
phase "run" quick_start

echo
echo "Quick start finished."
echo "  packed dataset: $out/dataset (manifest.json, audit.json)"
echo "  trained model:  $out/baseline_cnn/model.pt (train_log.jsonl, config.ini)"
echo "  evaluation:     $out/baseline_cnn/eval-fold-0 (metrics.json, classification_report.txt, predictions.h5)"
echo "  cross-validation: $out/cv_baseline_cnn (cv_summary.md, out_of_fold/, fold-K/, journal.jsonl)"
echo "  report:         $out/cv_baseline_cnn/report/index.html (figures, tables, classification reports)"
echo "  comparison:     $out/comparison/index.html"
if ((serve)); then
  echo
  serve_model
fi
echo "  web page:       scripts/quickstart.sh --serve (brainmri serve on the trained model)"
