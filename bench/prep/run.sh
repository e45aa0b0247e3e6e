#!/usr/bin/env bash
# Packing throughput and peak memory: brainmri-prep vs the Python reference, same input, same
# image size, same HDF5 filters, same number of workers, in one run.
#
#   bench/prep/run.sh [dataset root] [repetitions]
# Default root: ../shared/data/brain-tumor-mri/Training (5,708 images). Needs a release build
# (scripts/setup.sh) and GNU time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="${1:-../shared/data/brain-tumor-mri/Training}"
repetitions="${2:-3}"
workers=$(nproc)
prep=build/release/data_prep/brainmri-prep
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

[[ -x $prep ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "GNU time is needed: apt-get install time" >&2; exit 1; }
images=$(find "$root" -type f | wc -l)

# Runs a command under GNU time; prints "seconds max_rss_kb".
measure() {
  /usr/bin/time -f '%e %M' -o "$scratch/time" "$@" >/dev/null 2>"$scratch/stderr" || { cat "$scratch/stderr" >&2; exit 1; }
  cat "$scratch/time"
}

# Warm the page cache so both read the files from memory.
cat "$root"/*/* >/dev/null

best() { sort -n | head -1; }
cpp_runs=() py_runs=()
for ((i = 0; i < repetitions; i++)); do
  rm -rf "$scratch/cpp" "$scratch/py"
  cpp_runs+=("$(measure "$prep" --quiet --threads "$workers" --shards 2 --out "$scratch/cpp" "$root")")
  py_runs+=("$(measure python3 bench/prep/reference_packer.py --workers "$workers" --shards 2 "$root" "$scratch/py")")
done
cpp_best=$(printf '%s\n' "${cpp_runs[@]}" | best)
py_best=$(printf '%s\n' "${py_runs[@]}" | best)
read -r cpp_s cpp_rss <<<"$cpp_best"
read -r py_s py_rss <<<"$py_best"
cpp_mb=$(du -sm "$scratch/cpp" | cut -f1)
py_mb=$(du -sm "$scratch/py" | cut -f1)

awk -v n="$images" -v cs="$cpp_s" -v ps="$py_s" -v cr="$cpp_rss" -v pr="$py_rss" -v w="$workers" \
    -v cm="$cpp_mb" -v pm="$py_mb" -v reps="$repetitions" 'BEGIN {
  printf "images: %d, workers: %d, best of %d runs, page cache warm\n", n, w, reps
  printf "| packer | seconds | images/s | peak RSS (MB) | output (MB) |\n|---|---:|---:|---:|---:|\n"
  printf "| brainmri-prep (C++) | %.2f | %.0f | %.0f | %d |\n", cs, n / cs, cr / 1024, cm
  printf "| Python reference (Pillow + NumPy + h5py, multiprocessing) | %.2f | %.0f | %.0f | %d |\n", ps, n / ps, pr / 1024, pm
  printf "speed-up: %.2fx\n", ps / cs
}'
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "note: peak RSS is GNU time's maximum resident set of any single process (the Python pool's workers are separate processes)."
