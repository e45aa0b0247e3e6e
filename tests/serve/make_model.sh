#!/usr/bin/env bash
# The model the serve tests talk to: the bundled sample packed at 128 px and a small baseline CNN
# trained on it for a few epochs (seconds on one core). Written to WORK/model/model.pt, next to
# its run's config.ini and validation metrics, as brainmri train leaves them.
#
#   make_model.sh BRAINMRI BRAINMRI_PREP SAMPLE_DIR WORK
set -euo pipefail
brainmri=$1 prep=$2 sample=$3 work=$4

rm -rf "$work"
mkdir -p "$work"
"$prep" -q --folds 5 --seed 7 --out "$work/dataset" "$sample"
"$brainmri" train --data "$work/dataset" --output "$work/model" --val-fold 0 --epochs 4 --seed 7 \
    --filters 8,16,32 --dense-units 32 --batch-size 16 --threads 2 --report false --explanation-check false >"$work/train.log"
test -s "$work/model/model.pt"
echo "serve test model: $work/model/model.pt"
