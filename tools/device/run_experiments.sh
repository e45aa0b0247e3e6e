#!/usr/bin/env bash
# Runs the paper's real-data experiments (results/cv, results/hpsearch) on a lent GPU machine
# that has CUDA and the torch wheel but cannot build brainmri (no OpenCV or Boost libraries, no
# package registry). Everything comes prebuilt in a bundle made on the development machine:
#
#   BUNDLE/bundle.tar.xz   bin/brainmri and bin/distributed_tests (built against the same torch
#                          version as the GPU machine's python3), lib/ (Boost.Program_options and
#                          HDF5 of the build machine, used only where the GPU machine lacks them),
#                          pretrained/mobilenet_v2_1.0_no_top.h5
#   BUNDLE/packed0.tar.xz  the dataset packed by brainmri-prep with --compression 0 (xz packs it
#                          smaller than HDF5's deflate)
#
#   tools/device/run_experiments.sh BUNDLE OUT [SECONDS]
#
# Runs, within SECONDS (default 540): the NCCL tests in a world of one, a one-epoch smoke run
# (bf16, else fp32), then at once on the one GPU — small batches leave it mostly idle, so three
# processes share it — the 5-fold CV of fine-tuned MobileNetV2, the 24-trial ASHA search, and
# the 5-fold CVs of frozen MobileNetV2 and of the baseline CNN one after the other. Results (no
# checkpoints) are packed into OUT/results.tar.gz after each step, so a step cut off by the time
# limit still leaves the others'.
set -uo pipefail
bundle=$(realpath "$1") out=$(realpath "$2") budget=${3:-540}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
start=$SECONDS
say() { echo "[$((SECONDS - start)) s] $*"; }
left() { echo $((budget - (SECONDS - start))); }

work=/tmp/brainmri-gpu
runs=$work/runs
rm -rf "$work" && mkdir -p "$runs" "$work/fallback"
tar -xJf "$bundle/bundle.tar.xz" -C "$work" || exit 1
tar -xJf "$bundle/packed0.tar.xz" -C "$work" || exit 1
data=$work/packed0
pretrained=$work/pretrained/mobilenet_v2_1.0_no_top.h5
say "unpacked"

# Libraries: torch and the CUDA/NCCL wheels of python3; the build machine's only where missing.
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
wheel_libs=$(python3 - <<'PY'
import glob, importlib.util, os
spec = importlib.util.find_spec("nvidia")
roots = list(spec.submodule_search_locations) if spec else []
print(":".join(sorted({d for r in roots for d in glob.glob(os.path.join(r, "*", "lib")) + glob.glob(os.path.join(r, "*", "*", "lib"))})))
PY
)
for lib in "$work"/lib/*; do
  name=$(basename "$lib")
  ldconfig -p | grep -qF "$name (" || { cp "$lib" "$work/fallback/"; say "using the bundled $name"; }
done
export LD_LIBRARY_PATH=$torch_lib:$wheel_libs:/usr/local/cuda/lib64:$work/fallback${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
brainmri=$work/bin/brainmri
if ldd "$brainmri" | grep "not found"; then say "missing libraries"; exit 1; fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())'
  "$brainmri" version
  echo "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
} | tee "$out/machine.txt"

pack() {  # atomically: experiments running side by side pack at any time
  local temporary=$out/.results.$BASHPID.tmp
  tar -czf "$temporary" -C "$runs" --exclude='*.pt' . 2>/dev/null && mv -f "$temporary" "$out/results.tar.gz"
}

say "NCCL backend, world of one"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 BRAINMRI_FORCE_MPI=1 timeout 90 \
  "$work/bin/distributed_tests" --gtest_filter='NcclBackend.*' >"$out/nccl_tests.log" 2>&1
say "NCCL tests exit $? ($(grep -c '\[       OK \]' "$out/nccl_tests.log") passed)"

cd "$repo" || exit 1
precision=()
smoke() {
  timeout 120 "$brainmri" train --config configs/paper_baseline_cnn.ini --data "$data" --output "$runs/smoke_$1" \
    --epochs 1 --precision "$1" >"$runs/smoke_$1.log" 2>&1
}
if smoke bf16; then
  say "smoke run (bf16) passed: $(grep -o '[0-9]* img/s' "$runs/smoke_bf16.log" | head -1)"
elif smoke fp32; then
  precision=(--precision fp32)
  say "bf16 smoke run failed (tail below); running everything in fp32"; tail -5 "$runs/smoke_bf16.log"
else
  say "smoke runs failed"; tail -20 "$runs/smoke_bf16.log" "$runs/smoke_fp32.log"; pack; exit 1
fi
pack

# Each experiment stops at the deadline (its journal records what finished).
experiment() {  # experiment NAME brainmri-arguments...
  local name=$1; shift
  local seconds=$(($(left) - 20))
  if ((seconds < 30)); then say "skip $name: out of time"; return; fi
  say "start $name"
  OMP_NUM_THREADS=4 timeout "$seconds" "$brainmri" "$@" "${precision[@]}" --threads 4 >"$runs/$name.log" 2>&1
  say "$name exit $?"
  pack
}
experiment cv_mobilenet_v2_finetune cv --config configs/finetune_mobilenet_v2.ini --data "$data" \
  --pretrained "$pretrained" --output "$runs/cv_mobilenet_v2_finetune" &
experiment hpsearch_mobilenet_v2 tune --config configs/hpsearch_mobilenet_v2.ini --data "$data" \
  --pretrained "$pretrained" --output "$runs/hpsearch_mobilenet_v2" &
{
  experiment cv_mobilenet_v2_frozen cv --config configs/paper_kfold_mobilenet_v2.ini --data "$data" \
    --pretrained "$pretrained" --output "$runs/cv_mobilenet_v2_frozen"
  experiment cv_baseline_cnn cv --config configs/paper_kfold_baseline_cnn.ini --data "$data" \
    --output "$runs/cv_baseline_cnn"
} &
wait
pack
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv,noheader >>"$out/machine.txt"
say "done"
