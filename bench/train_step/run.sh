#!/usr/bin/env bash
# Training throughput on CPU: brainmri's C++ train step vs the same networks in an ordinary
# Python PyTorch loop (same torch, batch, threads, random data), in one run.
#
#   bench/train_step/run.sh [threads] [batch] [steps]
# Needs a release build (scripts/setup.sh). Run on an otherwise idle machine.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
threads="${1:-$(nproc)}"
batch="${2:-32}"
steps="${3:-12}"
bench=build/release/bench/train_step_bench
[[ -x $bench ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for model in mobilenet_v2 baseline_cnn; do
  common=(--model "$model" --batch "$batch" --steps "$steps" --warmup 3 --threads "$threads")
  {
    "$bench" "${common[@]}" --channels-last 1
    python3 bench/train_step/reference_train_step.py "${common[@]}"
    python3 bench/train_step/reference_train_step.py "${common[@]}" --channels-last 1
  } >>"$results"
done

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"batch {rows[0]['batch']}, {rows[0]['threads']} threads, {rows[0]['steps']} timed steps after 3 warm-up steps")
print("| model | implementation | images/s | C++ / this |")
print("|---|---|---:|---:|")
for model in dict.fromkeys(r["model"] for r in rows):
    ours = next(r for r in rows if r["model"] == model and r["implementation"].startswith("brainmri"))
    for r in (r for r in rows if r["model"] == model):
        print(f"| {model} | {r['implementation']} | {r['images_per_second']:.1f} | {ours['images_per_second'] / r['images_per_second']:.2f}x |")
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
