#!/usr/bin/env bash
# Slurm array jobs without Slurm: the tasks of an array are independent processes that share one
# experiment directory, each told its share (--array-task K --array-tasks N). Two run at once for
# a cross-validation and for an ASHA search (whose tasks wait for each other's results of a rung
# before they promote); `cv summarize` / `tune summarize` must then write what one job writes,
# with the same predictions and the same trials table. The Slurm test adds sbatch --array,
# preemption and requeue.
#
# usage: array_tasks_test.sh BRAINMRI BRAINMRI_PREP SAMPLE_DIR WORK_DIR
set -uo pipefail
brainmri=$1 prep=$2 sample=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

rm -rf "$work" && mkdir -p "$work"
"$prep" -q --out "$work/data" --folds 3 --seed 1 --size 64 "$sample/Training" >"$work/prep.log" 2>&1 || { cat "$work/prep.log"; exit 1; }
small=(--data "$work/data" --dense-units 32 --batch-size 8 --threads-per-rank 1 --report false --device cpu)

# run NAME COMMAND...: runs it, failing the test (with its output) when it fails.
run() {
  local name=$1; shift
  "$@" >"$work/$name.out" 2>&1 || { fail "$name failed"; cat "$work/$name.out" >&2; }
}
# array NAME TASKS COMMAND...: the array's tasks at once, then each must have succeeded.
array() {
  local name=$1 tasks=$2; shift 2
  local pids=() k
  for ((k = 0; k < tasks; k++)); do
    "$@" --array-task "$k" --array-tasks "$tasks" >"$work/$name-task$k.out" 2>&1 &
    pids+=($!)
  done
  for k in "${!pids[@]}"; do
    wait "${pids[$k]}" || { fail "$name: array task $k failed"; cat "$work/$name-task$k.out" >&2; }
  done
}

# 1. Cross-validation: 3 folds over 2 tasks (task 0: folds 0 and 2, task 1: fold 1).
cv=("$brainmri" cv "${small[@]}" --epochs 2)
run cv-one "${cv[@]}" --output "$work/cv-one"
array cv-array 2 "${cv[@]}" --output "$work/cv-array"
grep -q "Array task 0 of 2 has run its jobs (fold-0, fold-2)" "$work/cv-array-task0.out" || fail "cv task 0: not folds 0 and 2"
grep -q "Array task 1 of 2 has run its jobs (fold-1)" "$work/cv-array-task1.out" || fail "cv task 1: not fold 1"
[[ -f $work/cv-array/journal-task-0.jsonl && -f $work/cv-array/journal-task-1.jsonl ]] || fail "cv: no journal per task"
[[ ! -e $work/cv-array/cv_summary.json ]] || fail "cv: an array task wrote the summary"
run cv-summarize "$brainmri" cv summarize "$work/cv-array"
python3 "$here/same_predictions.py" "$work/cv-one/out_of_fold/predictions.h5" "$work/cv-array/out_of_fold/predictions.h5" ||
  fail "cv: the array's out-of-fold predictions differ from one job's"
python3 - "$work/cv-one/cv_summary.json" "$work/cv-array/cv_summary.json" <<'PY' || fail "cv: summaries differ"
import json, sys
one, arr = (json.load(open(p)) for p in sys.argv[1:3])
for key in ("accuracy", "macro_f1", "macro_auc", "out_of_fold"):
    assert one[key] == arr[key], (key, one[key], arr[key])
assert [f["accuracy"] for f in one["folds"]] == [f["accuracy"] for f in arr["folds"]]
assert arr["array_tasks"] == 2 and arr["ranks"] is None, arr
PY

# 2. An ASHA search, 4 trials in rungs of 1 and 3 epochs on fold 0, over 2 tasks.
tune=("$brainmri" tune "${small[@]}" --search 'lr: loguniform 1e-4 1e-2' --algorithm asha --trials 4 --min-epochs 1
      --epochs 3 --reduction-factor 3 --folds 0)
run tune-one "${tune[@]}" --output "$work/tune-one"
array tune-array 2 "${tune[@]}" --output "$work/tune-array"
run tune-summarize "$brainmri" tune summarize "$work/tune-array"
python3 - "$work/tune-one/trials.json" "$work/tune-array/trials.json" <<'PY' || fail "tune: trials tables differ"
import json, sys
one, arr = (json.load(open(p)) for p in sys.argv[1:3])
strip = lambda rows: [{k: r[k] for k in ("trial", "rank", "state", "rung", "objective", "parameters")} for r in rows]
assert strip(one["trials"]) == strip(arr["trials"]), (strip(one["trials"]), strip(arr["trials"]))
assert one["best_trial"] == arr["best_trial"] is not None
assert any(r["rung"] == 1 for r in arr["trials"]), "no trial was promoted"
PY
cmp <(grep -v '^#' "$work/tune-one/best_config.ini") <(grep -v '^#' "$work/tune-array/best_config.ini") ||
  fail "tune: best_config.ini differs"

# A summary of an experiment that has not run to its end names the jobs left.
rm -rf "$work/cv-part" && mkdir -p "$work/cv-part"
"${cv[@]}" --output "$work/cv-part" --array-task 1 --array-tasks 2 >"$work/cv-part.out" 2>&1 || fail "cv-part failed"
if "$brainmri" cv summarize "$work/cv-part" >"$work/cv-part-summary.out" 2>&1; then fail "cv summarize of a partial run succeeded"; fi
grep -q "is not finished: fold-0 (pending), fold-2 (pending)" "$work/cv-part-summary.out" ||
  { fail "partial summary: no clear refusal"; cat "$work/cv-part-summary.out" >&2; }

# An array's directory is continued as an array of the same size, not as one job (which would
# rerun the other tasks' folds) nor with another split: exit 2, saying why.
for other in "" "--array-task 0 --array-tasks 3"; do
  # shellcheck disable=SC2086  # the options are words
  "${cv[@]}" --output "$work/cv-array" $other >"$work/cv-resplit.out" 2>&1
  code=$?
  [[ $code == 2 ]] || { fail "cv-array continued with '$other': exit $code"; cat "$work/cv-resplit.out" >&2; }
  grep -q "was run as 2 array task(s)" "$work/cv-resplit.out" || fail "cv-array with '$other': no reason given"
done

if ((failures)); then echo "$failures failure(s)"; exit 1; fi
echo "array tasks: all checks passed"
