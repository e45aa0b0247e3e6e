#!/usr/bin/env bash
# The experiment scheduler at scale (docs/benchmarks.md): stand-in jobs (sleeps) under
# `mpirun --oversubscribe`, one group per rank, for a 1,000-trial ASHA search (3 rungs, eta 3:
# about 1,444 jobs of 50-500 ms) and a 100-fold-job cross-validation (jobs of 1-3 s), at each world
# size given; then a search killed with SIGKILL halfway and resumed, timing the resume.
#
#   bench/scheduler/run.sh [BUILD_DIR] [RANKS...]     (default: build/release, 8 32 64)
set -uo pipefail
build=${1:-build/release}; shift || true
sizes=("$@"); ((${#sizes[@]})) || sizes=(8 32 64)
bench=$build/bench/scheduler_bench
[[ -x $bench ]] || { echo "no $bench; build the release preset first" >&2; exit 2; }
# finished_jobs JOURNAL: its "finished" records (0 while it does not exist yet).
finished_jobs() { local n; n=$(grep -c '"finished"' "$1" 2>/dev/null); echo "${n:-0}"; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for n in "${sizes[@]}"; do
  mpirun --oversubscribe -np "$n" "$bench" --plan asha --dir "$work/asha-$n" --trials 1000 --rungs 3 --eta 3 \
    --min-ms 50 --max-ms 500
  mpirun --oversubscribe -np "$n" "$bench" --plan fixed --dir "$work/cv-$n" --jobs 100 --min-ms 1000 --max-ms 3000
done
# Killed halfway through (700 of 1,444 jobs finished; SIGKILL to mpirun and its ranks: nothing is flushed or closed), then the
# same command again: the journal and the plan are replayed, the finished jobs skipped.
n=${sizes[-1]}
mpirun --oversubscribe -np "$n" "$bench" --plan asha --dir "$work/killed" --trials 1000 --min-ms 50 --max-ms 500 &
pid=$!
until (($(finished_jobs "$work/killed/journal.jsonl") >= 700)); do sleep 0.1; done
pkill -KILL -P "$pid"; kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
echo "killed with $(grep -c '"finished"' "$work/killed/journal.jsonl") jobs finished, $(wc -c <"$work/killed/journal.jsonl") journal bytes"
mpirun --oversubscribe -np "$n" "$bench" --plan asha --dir "$work/killed" --trials 1000 --min-ms 50 --max-ms 500
