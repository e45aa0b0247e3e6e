#!/usr/bin/env bash
# Whole training epochs of the paper's two models with their augmentation on the same packed data,
# in one run: `brainmri train` (configs/paper_baseline_cnn.ini, configs/paper_mobilenet_v2_frozen.ini)
# against the original Keras pipelines (reference_keras_epoch.py: augmentation layers in the
# model, model.fit). Training images/s of the second epoch (the first warms up), batch and threads
# alike; Keras runs REPEATS times and its best run is the reference (its speed on a small VM is
# bimodal: some runs are half as fast as others). Prints the ratios.
#
#   bench/train_step/epoch.sh DATASET [threads] [batch] [repeats]
# DATASET: packed by brainmri-prep with --folds (fold 0 validates). BRAINMRI_KERAS_PYTHON: a python
# with tensorflow-cpu and h5py (default python3). Run on an otherwise idle machine.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
dataset=${1:?usage: bench/train_step/epoch.sh DATASET [threads] [batch] [repeats]}
threads=${2:-$(nproc)}
batch=${3:-32}
repeats=${4:-3}
python=${BRAINMRI_KERAS_PYTHON:-python3}
brainmri=build/release/bin/brainmri
weights=../shared/pretrained/keras/mobilenet_v2_1.0_no_top.h5
[[ -x $brainmri ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for model in baseline_cnn mobilenet_v2_frozen; do
  case $model in
    baseline_cnn) config=configs/paper_baseline_cnn.ini keras_weights=() ;;
    mobilenet_v2_frozen)
      config=configs/paper_mobilenet_v2_frozen.ini
      keras_weights=()
      [[ -f $weights ]] && keras_weights=(--weights "$weights")
      ;;
  esac
  "$brainmri" train --config "$config" --data "$dataset" --output "$work/$model" --epochs 2 --patience 0 \
    --threads "$threads" --batch-size "$batch" --report false >"$work/$model.log"
  python3 -c 'import json, sys; print(json.dumps({"model": sys.argv[2], "implementation": "brainmri train (C++)",
    "images_per_second": json.loads(open(sys.argv[1]).readlines()[-1])["images_per_second"]}))' \
    "$work/$model/train_log.jsonl" "$model" >>"$work/results.jsonl"
  for ((run = 0; run < repeats; run++)); do
    "$python" bench/train_step/reference_keras_epoch.py "$dataset" --model "$model" "${keras_weights[@]}" --fold 0 \
      --batch "$batch" --threads "$threads" --epochs 1 --warmup-epochs 1 2>/dev/null >>"$work/results.jsonl"
  done
done

python3 - "$work/results.jsonl" "$batch" "$threads" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"fold 0 training images, batch {sys.argv[2]}, {sys.argv[3]} threads, images/s of the second epoch")
print("| model | brainmri train (C++) | Keras model.fit, each run | brainmri / best Keras |")
print("|---|---:|---:|---:|")
for model in dict.fromkeys(r["model"] for r in rows):
    ours = next(r for r in rows if r["model"] == model and r["implementation"].startswith("brainmri"))
    keras = [r for r in rows if r["model"] == model and not r["implementation"].startswith("brainmri")]
    best = max(r["images_per_second"] for r in keras)
    runs = ", ".join(f"{r['images_per_second']:.1f}" for r in keras)
    print(f"| {model} | {ours['images_per_second']:.1f} | {runs} | {ours['images_per_second'] / best:.2f}x |")
print("Keras:", keras[0]["implementation"])
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
