#!/usr/bin/env bash
# What a developer runs on a GPU machine, in one call: builds brainmri against the torch of this
# machine's python3 (preset gpu-node: no OpenCV, no PLplot), runs the GPU tests (CUDA graph vs eager
# step, fused Adam, trainer, NCCL in a world of one) and the GPU benchmark (bench/gpu/run.sh).
#
#   scripts/gpu_check.sh PACKED_DATA OUT [--quick]
# PACKED_DATA: a brainmri-prep output at 128x128 (a directory, or a .tar.xz of one); OUT: where the
# logs, machine facts and benchmark table go. --quick: benchmark at batch 256 only, no CV timing.
# BRAINMRI_DEPS_PREFIX: a prefix (include/, lib/) with what the machine lacks — e.g. Debian's
# Boost.Program_options, nlohmann-json, spdlog and fmt (libspdlog-dev, libspdlog1.10, libfmt-dev,
# libfmt9) and GoogleTest packages (and libssl-dev if absent) extracted with dpkg-deb -x — added to
# CMAKE_PREFIX_PATH and LD_LIBRARY_PATH. Budget: about 1 minute to build with 16 cores, 1 for the
# tests, 3 to 6 for the benchmark.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
data=${1:?usage: scripts/gpu_check.sh PACKED_DATA OUT [--quick]} out=${2:?usage: scripts/gpu_check.sh PACKED_DATA OUT [--quick]}
quick=${3:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$SECONDS
say() { echo "[gpu_check $((SECONDS - start)) s] $*"; }
status=0

if ! nvidia-smi -L >/dev/null 2>&1; then say "no GPU visible (nvidia-smi)"; exit 1; fi
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || { say "python3 has no torch"; exit 1; }
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
wheel_libs=$(python3 - <<'PY'
import glob, importlib.util, os
spec = importlib.util.find_spec("nvidia")
roots = list(spec.submodule_search_locations) if spec else []
print(":".join(sorted({d for r in roots for d in glob.glob(os.path.join(r, "*", "lib"))})))
PY
)
deps=${BRAINMRI_DEPS_PREFIX:-}
export LD_LIBRARY_PATH=$torch_lib:$wheel_libs${deps:+:$deps/lib:$deps/lib/x86_64-linux-gnu}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())'
  echo "CPU: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
} | tee "$out/machine.txt"

say "configuring and building (preset gpu-node)"
prefix_path="$torch_prefix${deps:+;$deps}"
if ! { cmake --preset gpu-node -DCMAKE_PREFIX_PATH="$prefix_path" >"$out/configure.log" 2>&1 &&
       cmake --build build/gpu-node -j "$(nproc)" >"$out/build.log" 2>&1; }; then
  say "build failed; the end of the logs:"; tail -n 30 "$out/configure.log" "$out/build.log"; exit 1
fi
bin=build/gpu-node
say "built: $("$bin/bin/brainmri" version)"

say "GPU tests"
timeout 300 "$bin/tests/model_tests" --gtest_filter='CudaGraph.*:FusedAdam.*:Trainer.*:GradCam.*' >"$out/model_tests.log" 2>&1 ||
  { status=1; say "model tests FAILED"; tail -n 30 "$out/model_tests.log"; }
grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/model_tests.log"
timeout 120 "$bin/tests/distributed_tests" --gtest_filter='NcclBackend.*' >"$out/nccl_tests.log" 2>&1 ||
  { status=1; say "NCCL tests FAILED"; tail -n 30 "$out/nccl_tests.log"; }
grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/nccl_tests.log"

if [[ -f $data && $data == *.tar.xz ]]; then
  mkdir -p "$out/data" && tar -xJf "$data" -C "$out/data" && data=$(find "$out/data" -name manifest.json -printf '%h\n' | head -1)
fi
[[ -f $data/manifest.json ]] || { say "no packed dataset at $data"; exit 1; }
say "benchmark"
bench/gpu/run.sh "$bin/bin/brainmri" "$data" "$out/bench" "$quick" || status=1
say "done (status $status)"
exit "$status"
