#!/usr/bin/env bash
# The cost of distribution on this machine, in one run:
#  1. all-reduce bus bandwidth of the MPI backend, 2 ranks, 4 KiB ... 64 MiB;
#  2. data-parallel train-step time at a fixed per-rank batch: 1 rank vs 2 ranks (one core and
#     one LibTorch thread each), with the reducer's overlap on and off.
#
#   bench/allreduce/run.sh [model] [batch-per-rank] [steps]
# On a GPU node: BACKEND=nccl bench/allreduce/run.sh (one rank per GPU).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
model="${1:-baseline_cnn}"
batch="${2:-32}"
steps="${3:-10}"
backend="${BACKEND:-mpi}"
bench=build/release/bench/allreduce_bench
[[ -x $bench ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
ranks="${RANKS:-2}"

results=$(mktemp)
trap 'rm -f "$results"' EXIT
common=(step --backend "$backend" --model "$model" --batch "$batch" --steps "$steps" --threads 1)
{
  mpirun -n "$ranks" --bind-to core "$bench" bandwidth --backend "$backend"
  mpirun -n 1 --bind-to core "$bench" "${common[@]}"
  mpirun -n "$ranks" --bind-to core "$bench" "${common[@]}" --overlap 1
  mpirun -n "$ranks" --bind-to core "$bench" "${common[@]}" --overlap 0
} >>"$results"

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
bw = [r for r in rows if r["benchmark"] == "allreduce"]
print(f"all-reduce, {bw[0]['backend']}, {bw[0]['ranks']} ranks (float32, average)")
print("| message | time | algorithm bandwidth | bus bandwidth |")
print("|---:|---:|---:|---:|")
for r in bw:
    size = r["bytes"]
    label = f"{size // 1024} KiB" if size < 1 << 20 else f"{size >> 20} MiB"
    print(f"| {label} | {r['microseconds']:.0f} µs | {r['algorithm_gb_per_s']:.2f} GB/s | {r['bus_gb_per_s']:.2f} GB/s |")
steps = [r for r in rows if r["benchmark"] == "step"]
single = next(r for r in steps if r["ranks"] == 1)
print()
print(f"train step, {single['model']}, batch {single['batch_per_rank']} per rank, "
      f"{single['threads_per_rank']} thread per rank, {single['gradient_mib']:.1f} MiB of gradients")
print("| ranks | overlap | buckets | ms per step | vs 1 rank | images/s |")
print("|---:|---|---:|---:|---:|---:|")
for r in steps:
    print(f"| {r['ranks']} | {'on' if r['overlap'] else 'off'} | {r['buckets']} | {r['milliseconds_per_step']:.0f} | "
          f"{r['milliseconds_per_step'] / single['milliseconds_per_step']:.3f}x | {r['images_per_second']:.1f} |")
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(mpirun --version | head -1)"
