#!/usr/bin/env bash
# The run logs a user follows a long job with: train_log.jsonl, metrics.csv and TensorBoard event
# files, read back by TensorBoard's own reader (check_run_logs.py) — for a two-stage training, for
# a training killed mid-epoch and resumed (TensorBoard must show each step once), for every fold
# of a cross-validation and for the trials of a search (with their hyperparameters) — and the
# tables of a running search and cross-validation, read while they run; and the log (--log-level).
#
# usage: run_logs_test.sh BRAINMRI BRAINMRI_PREP SAMPLE_DIR WORK_DIR PYTHON
set -uo pipefail
brainmri=$1 prep=$2 sample=$3 work=$4 python=$5
here=$(cd "$(dirname "$0")" && pwd)
"$python" -c "import tensorboard" 2>/dev/null ||
  { echo "SKIPPED: the tensorboard Python package is missing (scripts/setup.sh --with-test-tools installs it)"; exit 77; }
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
check() { "$python" "$here/check_run_logs.py" "$@" || fail "logs of $1 disagree"; }

rm -rf "$work" && mkdir -p "$work"
"$prep" -q --out "$work/data" --folds 3 --seed 1 --size 64 "$sample/Training" >"$work/prep.log" 2>&1 || { cat "$work/prep.log"; exit 1; }
small=(--data "$work/data" --dense-units 32 --batch-size 8 --threads 1 --report false --device cpu --log-every-steps 3)

# Two stages: one step axis over both (4 epochs).
"$brainmri" train "${small[@]}" --output "$work/staged" --stage 'first: epochs=2' --stage 'second: epochs=2 lr=1e-4' \
  >"$work/staged.out" 2>&1 || { fail "staged training"; cat "$work/staged.out" >&2; }
check "$work/staged" 4 3

# Killed in epoch 3 (after TensorBoard got step scalars of it), then resumed from epoch 3's start.
"$brainmri" train "${small[@]}" --output "$work/killed" --epochs 4 --inject-fault exit:0:30 >"$work/killed.out" 2>&1
[[ $(wc -l <"$work/killed/train_log.jsonl") == 2 ]] || fail "the killed run did not stop in epoch 3"
"$brainmri" train "${small[@]}" --output "$work/killed" --epochs 4 --resume >>"$work/killed.out" 2>&1 ||
  { fail "resumed training"; cat "$work/killed.out" >&2; }
check "$work/killed" 4 3

# A cross-validation: every fold a TensorBoard run of its own.
"$brainmri" cv "${small[@]}" --output "$work/cv" --epochs 2 >"$work/cv.out" 2>&1 || { fail "cv"; cat "$work/cv.out" >&2; }
for k in 0 1 2; do check "$work/cv/fold-$k" 2 3; done

# A search: each trial's runs carry its hyperparameters for TensorBoard's HParams view.
"$brainmri" tune "${small[@]}" --output "$work/tune" --epochs 1 --search 'lr: choice 0.001 0.0003' --algorithm grid \
  --folds 0 >"$work/tune.out" 2>&1 || { fail "tune"; cat "$work/tune.out" >&2; }
check "$work/tune/trials/trial-0000/fold-0" 1 3 lr=0.001
check "$work/tune/trials/trial-0001/fold-0" 1 3 lr=0.0003

# While a search and a cross-validation run, their tables are there to read after every job
# (complete: false), each a whole file (written atomically), with a line per settled job.
# watch NAME FILE COMMAND...: runs COMMAND in the background and reads FILE while it runs.
watch() {
  local name=$1 file=$2; shift 2
  "$@" >"$work/$name.out" 2>&1 &
  local pid=$! seen=0
  while kill -0 "$pid" 2>/dev/null; do
    if [[ -f $file ]] && "$python" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d['complete'] is False else 1)" "$file" 2>/dev/null; then
      seen=1
      "$python" -c "import json,sys; json.load(open(sys.argv[1]))" "$file" || fail "$name: $file is not whole JSON mid-run"
    fi
    sleep 0.05
  done
  wait "$pid" || { fail "$name failed"; cat "$work/$name.out" >&2; }
  ((seen)) || fail "$name: $file was never seen before the end"
  "$python" -c "import json,sys; assert json.load(open(sys.argv[1]))['complete'] is True" "$file" || fail "$name: $file not complete at the end"
  grep -q "\[1/[0-9]* jobs\] .* finished: .* so far" "$work/$name.out" || fail "$name: no line per job"
}
watch tune-live "$work/tune-live/trials.json" "$brainmri" tune "${small[@]}" --output "$work/tune-live" --epochs 2 \
  --search 'lr: loguniform 1e-4 1e-2' --algorithm random --trials 6 --folds 0
watch cv-live "$work/cv-live/cv_summary.json" "$brainmri" cv "${small[@]}" --output "$work/cv-live" --epochs 3

# Jobs that fail for good: a line each, named in the table, and exit 1 (not a crash of the
# reporting); rank 0 fails each fold's third step here.
"$brainmri" cv "${small[@]}" --output "$work/cv-failing" --epochs 1 --max-retries 0 --inject-fault throw:0:2 \
  >"$work/cv-failing.out" 2>&1
code=$?
[[ $code == 1 ]] || { fail "cv with failing folds: exit $code"; cat "$work/cv-failing.out" >&2; }
grep -q "\[3/3 jobs\] fold-2 failed: injected failure" "$work/cv-failing.out" || fail "cv with failing folds: no line per failed job"
"$python" -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['failed']) == 3, d" "$work/cv-failing/cv_summary.json" ||
  fail "cv with failing folds: the summary does not name them"

# The log: stderr lines with time, level and the job's label; results (tables) plain on stdout;
# --log-level and BRAINMRI_LOG_LEVEL choose what shows.
stamp='[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}'
"$brainmri" train "${small[@]}" --output "$work/debug" --epochs 1 --log-level debug >"$work/debug.out" 2>"$work/debug.err" ||
  { fail "train --log-level debug"; cat "$work/debug.err" >&2; }
grep -Eq "^$stamp debug   \[train\] epoch 1 step 3/[0-9]+ .*running loss [0-9.]+ .*img/s$" "$work/debug.err" || fail "no debug step lines"
grep -Eq "^$stamp debug   wrote checkpoint .*train_last.pt in [0-9.]+ s$" "$work/debug.err" || fail "no debug checkpoint lines"
grep -Eq "^$stamp info    \[train\] epoch   1 " "$work/debug.err" || fail "no timestamped epoch line"
grep -Evq "^$stamp (trace|debug|info|warning|error) " "$work/debug.err" && fail "an untimestamped line on stderr: $(grep -Ev "^$stamp" "$work/debug.err" | head -1)"
grep -Eq "^$stamp" "$work/debug.out" && fail "a log line on stdout (results only)"
grep -q "Validation (" "$work/debug.out" || fail "the result is not on stdout"
"$brainmri" train "${small[@]}" --output "$work/quiet" --epochs 1 --log-level warning >/dev/null 2>"$work/quiet.err" ||
  fail "train --log-level warning"
[[ -s $work/quiet.err ]] && fail "--log-level warning still logs: $(head -1 "$work/quiet.err")"
BRAINMRI_LOG_LEVEL=error "$brainmri" train "${small[@]}" --output "$work/quiet-env" --epochs 1 >/dev/null 2>"$work/quiet-env.err" ||
  fail "train with BRAINMRI_LOG_LEVEL=error"
[[ -s $work/quiet-env.err ]] && fail "BRAINMRI_LOG_LEVEL=error still logs: $(head -1 "$work/quiet-env.err")"
"$brainmri" train "${small[@]}" --output "$work/bad-level" --log-level loud >/dev/null 2>"$work/bad-level.err"
code=$?
[[ $code == 2 ]] || fail "--log-level loud: exit $code, not 2"
grep -q "log-level must be trace, debug, info, warning, error or off, got 'loud'" "$work/bad-level.err" ||
  fail "--log-level loud: $(cat "$work/bad-level.err")"
grep -Eq "^$stamp info    \[fold 1\] \[train\] epoch   2 " "$work/cv.out" || fail "cv: epoch lines do not name their fold"

if ((failures)); then echo "$failures failure(s)"; exit 1; fi
echo "run logs: all checks passed"
