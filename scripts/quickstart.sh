#!/usr/bin/env bash
# The main job on the bundled sample: set up and build, pack the sample into sharded HDF5 with
# a 5-fold leakage-free split, verify it and print the leakage audit.
#
#   scripts/quickstart.sh [output directory, default out/quickstart]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-out/quickstart}"
bin=build/release

scripts/setup.sh release
mkdir -p "$out"

echo "== Packing data/sample into $out/dataset"
"$bin/data_prep/brainmri-prep" --force --quiet --out "$out/dataset" --folds 5 --seed 42 data/sample
echo "== Verifying"
"$bin/data_prep/brainmri-prep" verify "$out/dataset"
echo "== Leakage audit"
"$bin/data_prep/brainmri-prep" audit "$out/dataset"

echo
echo "Quick start finished. Packed dataset: $(cd "$out/dataset" && pwd)"
echo "  manifest: $out/dataset/manifest.json   audit: $out/dataset/audit.json"
