#!/usr/bin/env bash
# GPU training throughput: brainmri's trainer (`brainmri train` on the packed real data: uint8 on
# the GPU, augmentation on the batch, bf16, channels-last, fused Adam, the step in a CUDA graph)
# against a Python PyTorch loop on the same GPU, in one run; then the time of the paper's 5-fold
# CV of MobileNetV2 (30 epochs per fold) and the projection of a 100-trial search on 8 GPUs.
#
#   bench/gpu/run.sh BRAINMRI PACKED_DATA OUT [--quick]
# BRAINMRI: the executable; PACKED_DATA: brainmri-prep output at 128x128; OUT: where the JSON
# lines and the table go. --quick: batch 256 only and no CV (a smoke run of the script).
set -uo pipefail
brainmri=$1 data=$2 out=$3 quick=${4:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"
batches=(256 1024)
[[ $quick == --quick ]] && batches=(256)

# ours MODEL BATCH: images/s of epochs 2..4 of a real training run (epoch 1 holds the warm-up,
# cuDNN's autotuning and the graph capture), no augmentation cost hidden: the paper's augmentation is on.
ours() {
  local model=$1 batch=$2 dir=$out/runs/${1}_$2
  rm -rf "$dir"
  "$brainmri" train --data "$data" --output "$dir" --model "$model" --batch-size "$batch" --epochs 4 --lr 1e-3 \
      --eval-batch-size 2048 --report false --augment true >"$dir.log" 2>&1 || { echo "brainmri train failed: $(tail -3 "$dir.log")" >&2; return; }
  python3 - "$dir/train_log.jsonl" "$model" "$batch" "$(grep -m1 'training step:' "$dir.log" | sed 's/.*training step: //')" >>"$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
rate = sum(r["images_per_second"] for r in rows) / len(rows)
print(json.dumps({"implementation": "brainmri trainer (" + sys.argv[4] + ")", "model": sys.argv[2],
                  "batch": int(sys.argv[3]), "images_per_second": rate}))
PY
}

for model in mobilenet_v2 baseline_cnn; do
  for batch in "${batches[@]}"; do
    ours "$model" "$batch"
    python3 "$here/reference_train.py" --model "$model" --batch "$batch" >>"$results" || echo "reference failed" >&2
    if [[ $model == mobilenet_v2 ]]; then
      python3 "$here/reference_train.py" --model "$model" --batch "$batch" --compile 1 >>"$results" || echo "compiled reference failed" >&2
    fi
  done
done

if [[ $quick != --quick ]]; then
  # The paper's 5-fold CV of MobileNetV2, 30 epochs per fold, one GPU, timed end to end.
  started=$(date +%s.%N)
  "$brainmri" cv --config configs/paper_kfold_mobilenet_v2.ini --data "$data" --output "$out/runs/cv_mobilenet_v2" \
      --epochs 30 --patience 0 --report false >"$out/runs/cv_mobilenet_v2.log" 2>&1
  seconds=$(python3 -c "import time; print(time.time() - $started)")
  echo "{\"cv_5fold_30epochs_seconds\": $seconds}" >>"$results"
fi

python3 - "$results" <<'PY' | tee "$out/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
speed = [r for r in rows if "images_per_second" in r]
print("| model | batch | implementation | images/s | brainmri / this |")
print("|---|---:|---|---:|---:|")
for (model, batch) in dict.fromkeys((r["model"], r["batch"]) for r in speed):
    group = [r for r in speed if r["model"] == model and r["batch"] == batch]
    ours = next((r for r in group if r["implementation"].startswith("brainmri")), None)
    for r in group:
        ratio = f"{ours['images_per_second'] / r['images_per_second']:.2f}x" if ours else "n/a"
        print(f"| {model} | {batch} | {r['implementation']} | {r['images_per_second']:.0f} | {ratio} |")
cv = [r for r in rows if "cv_5fold_30epochs_seconds" in r]
if cv:
    s = cv[0]["cv_5fold_30epochs_seconds"]
    per_job = s / 5
    print(f"\nPaper's 5-fold CV of MobileNetV2 (30 epochs per fold), one GPU: {s:.0f} s ({per_job:.0f} s per fold).")
    print(f"Projected 100-trial search (one fold-job of 30 epochs per trial) on 8 GPUs: {100 * per_job / 8 / 60:.1f} min.")
PY
