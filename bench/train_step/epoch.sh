#!/usr/bin/env bash
# Whole training epochs of the paper's CNN with its augmentation on the same packed data, in one
# run: `brainmri train` (configs/paper_baseline_cnn.ini) against the original Keras pipeline
# (reference_keras_epoch.py: augmentation layers in the model, model.fit). Training images/s of
# the second epoch (the first warms up), batch and threads alike; prints the ratio.
#
#   bench/train_step/epoch.sh DATASET [threads] [batch]
# DATASET: packed by brainmri-prep with --folds (fold 0 validates). BRAINMRI_KERAS_PYTHON: a python
# with tensorflow-cpu and h5py (default python3). Run on an otherwise idle machine.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
dataset=${1:?usage: bench/train_step/epoch.sh DATASET [threads] [batch]}
threads=${2:-$(nproc)}
batch=${3:-32}
python=${BRAINMRI_KERAS_PYTHON:-python3}
brainmri=build/release/bin/brainmri
[[ -x $brainmri ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$brainmri" train --config configs/paper_baseline_cnn.ini --data "$dataset" --output "$work/run" --epochs 2 \
  --patience 0 --threads "$threads" --batch-size "$batch" --report false >"$work/train.log"
ours=$(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readlines()[-1])["images_per_second"])' \
  "$work/run/train_log.jsonl")
keras=$("$python" bench/train_step/reference_keras_epoch.py "$dataset" --fold 0 --batch "$batch" --threads "$threads" \
  --epochs 1 --warmup-epochs 1)
python3 - "$ours" "$keras" <<'PY'
import json, sys
ours, keras = float(sys.argv[1]), json.loads(sys.argv[2])
print(f"baseline_cnn, fold 0 training images ({keras['images']}), batch {keras['batch']}, {keras['threads']} threads, second epoch")
print("| implementation | images/s | brainmri / this |")
print("|---|---:|---:|")
print(f"| brainmri train (C++) | {ours:.1f} | 1.00x |")
print(f"| {keras['implementation']} | {keras['images_per_second']:.1f} | {ours / keras['images_per_second']:.2f}x |")
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
