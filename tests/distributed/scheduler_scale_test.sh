#!/usr/bin/env bash
# The experiment scheduler at 8 ranks on stand-in jobs (bench/scheduler/scheduler_bench): an ASHA
# search of 200 trials and a cross-validation of 40 fold jobs run every job once; a search killed
# with SIGKILL midway and rerun skips what finished and finishes every job exactly once. The
# timings at 32 and 64 ranks are in docs/benchmarks.md (bench/scheduler/run.sh).
#
# usage: scheduler_scale_test.sh SCHEDULER_BENCH MPIEXEC WORK_DIR
set -uo pipefail
bench=$1 mpiexec=$2 work=$3
# finished_jobs JOURNAL: its "finished" records (0 while it does not exist yet).
finished_jobs() { local n; n=$(grep -c '"finished"' "$1" 2>/dev/null); echo "${n:-0}"; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
rm -rf "$work" && mkdir -p "$work"

# field NAME: the value of NAME in the JSON line on stdin.
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
finished_once() {  # every job of the journal finished exactly once
  python3 - "$1" <<'PY'
import collections, json, sys
finished = collections.Counter(json.loads(l)["job"] for l in open(sys.argv[1]) if '"finished"' in l)
twice = [job for job, n in finished.items() if n > 1]
sys.exit(f"finished twice: {twice[:5]}" if twice else 0)
PY
}

for plan in "asha --trials 200" "fixed --jobs 40"; do
  name=${plan%% *}
  # shellcheck disable=SC2086  # the plan's options are words
  out=$("$mpiexec" -np 8 "$bench" --plan $plan --dir "$work/$name" --min-ms 5 --max-ms 40 2>&1) ||
    { fail "$name: the bench failed"; echo "$out" >&2; continue; }
  known=$(field jobs_known <<<"$out") done_=$(field jobs_finished <<<"$out") ran=$(field jobs_run_now <<<"$out")
  [[ $known == "$done_" && $known == "$ran" ]] || fail "$name: $known jobs known, $done_ finished, $ran run"
  finished_once "$work/$name/journal.jsonl" || fail "$name: a job finished twice"
  echo "$name at 8 ranks: $out"
done

"$mpiexec" -np 8 "$bench" --plan asha --dir "$work/killed" --trials 200 --min-ms 20 --max-ms 80 >"$work/killed.out" 2>&1 &
pid=$!
for ((i = 0; i < 200; i++)); do
  (($(finished_jobs "$work/killed/journal.jsonl") >= 60)) && break
  sleep 0.05
done
pkill -KILL -P "$pid"; kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
before=$(grep -c '"finished"' "$work/killed/journal.jsonl")
out=$("$mpiexec" -np 8 "$bench" --plan asha --dir "$work/killed" --trials 200 --min-ms 20 --max-ms 80 2>&1) ||
  { fail "the resumed search failed"; echo "$out" >&2; }
known=$(field jobs_known <<<"$out") done_=$(field jobs_finished <<<"$out") ran=$(field jobs_run_now <<<"$out")
[[ $known == "$done_" ]] || fail "resumed: $done_ of $known jobs finished"
((ran < known && ran >= known - before)) || fail "resumed: ran $ran jobs of $known, $before had finished before the kill"
finished_once "$work/killed/journal.jsonl" || fail "resumed: a job finished twice"
echo "killed after $before finished jobs, resumed: $out"

if ((failures)); then echo "$failures failure(s)"; exit 1; fi
echo "scheduler at 8 ranks: all checks passed"
