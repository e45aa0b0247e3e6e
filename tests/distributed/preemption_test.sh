#!/usr/bin/env bash
# Preemption on CPU: a training (one process, then two data-parallel ranks) and a cross-validation
# (two ranks, one fold each at a time) are sent the preemption signal at random moments, several
# times, each time rerun with the same command; the final metrics must equal those of a run that
# was never interrupted, bit for bit.
#
# usage: preemption_test.sh BRAINMRI BRAINMRI_PREP SAMPLE_DIR MPIEXEC WORK_DIR [SEED]
set -uo pipefail
brainmri=$1 prep=$2 sample=$3 mpiexec=$4 work=$5
seed=${6:-$(date +%s)}  # of the moments of the signals; printed, so a failure can be replayed
RANDOM=$seed
echo "random seed of the signal moments: $seed (pass it as the 6th argument to replay)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

rm -rf "$work" && mkdir -p "$work"
"$prep" -q --out "$work/data" --folds 3 --seed 1 --size 64 "$sample/Training" >"$work/prep.log" 2>&1 || { cat "$work/prep.log"; exit 1; }
# The paper's filters at 64x64: about half a second per epoch on one core, long enough to be hit.
small=(--data "$work/data" --dense-units 32 --batch-size 8 --threads-per-rank 1 --report false)

# reference NAME COMMAND...: the uninterrupted run; sets reference_ms to its wall time.
reference() {
  local name=$1; shift
  local started
  started=$(date +%s%N)
  "$@" >"$work/$name.out" 2>&1 || { fail "$name: the uninterrupted run failed"; cat "$work/$name.out" >&2; }
  reference_ms=$((($(date +%s%N) - started) / 1000000))
  echo "$name: uninterrupted in $reference_ms ms"
}

# preempt NAME MIN_PREEMPTIONS COMMAND...: runs COMMAND until it exits 0, sending SIGUSR1 (to the
# process, or to mpirun, which forwards it to every rank) at a random moment after training began:
# within the first reference_ms / (MIN_PREEMPTIONS + 2), so that each lands before the end.
preempt() {
  local name=$1 wanted=$2; shift 2
  local preemptions=0 attempt
  for attempt in $(seq 1 30); do
    local log=$work/$name.attempt$attempt.out
    "$@" >"$log" 2>&1 &
    local pid=$!
    if ((preemptions < wanted)); then
      # Wait for training to start (the handler is in place well before), then 0.1 to 2.9 s more.
      local waited=0
      while kill -0 "$pid" 2>/dev/null && ! grep -q "Training \|Cross-validating" "$log" && ((waited < 600)); do
        sleep 0.1; waited=$((waited + 1))
      done
      local window=$((reference_ms / (wanted + 2))) delay_ms
      delay_ms=$((50 + (RANDOM * 32768 + RANDOM) % (window > 50 ? window - 50 : 1)))
      local delay
      delay=$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))
      sleep "$delay"
      kill -USR1 "$pid" 2>/dev/null && echo "$name: attempt $attempt: SIGUSR1 after $delay s"
    fi
    wait "$pid"
    local code=$?
    cat "$log" >>"$work/$name.out"
    if [[ $code == 75 ]]; then
      preemptions=$((preemptions + 1))
      continue
    fi
    [[ $code == 0 ]] || { fail "$name: exit $code on attempt $attempt"; tail -20 "$log" >&2; return; }
    echo "$name: finished on attempt $attempt after $preemptions preemption(s)"
    ((preemptions >= wanted)) || fail "$name: only $preemptions preemption(s) landed before the run finished (wanted $wanted)"
    return
  done
  fail "$name: did not finish in 30 attempts"
}

# same_predictions A B: the probabilities and labels of two predictions.h5, exactly.
same_predictions() { python3 "$(dirname "${BASH_SOURCE[0]}")/same_predictions.py" "$1" "$2"; }
# same_log A B: every metric of every epoch of two train_log.jsonl (not the timings).
same_log() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def rows(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        out.append({k: v for k, v in r.items() if k not in ("seconds", "images_per_second")})
    return out
a, b = (rows(p) for p in sys.argv[1:])
sys.exit(None if a == b and a else f"{len(a)} vs {len(b)} epochs, first difference: {next((x, y) for x, y in zip(a, b) if x != y) if a != b else None}")
PY
}

# 1. One process.
reference train_ref "$brainmri" train "${small[@]}" --epochs 8 --output "$work/train_ref"
# Five signals: each lands at a random moment, and at least one must stop the run mid-epoch
# (with fast steps, a signal during start-up or an epoch's first step stops at its start).
preempt train 5 "$brainmri" train "${small[@]}" --epochs 8 --output "$work/train" --resume
grep -q "stopped for preemption" "$work/train.out" || fail "train: no preemption message"
grep -q "Resumed train from" "$work/train.out" || fail "train: never resumed"
grep -q "Resumed train from .*, step [2-9]" "$work/train.out" || grep -q "Resumed train from .*, step [1-9][0-9]" "$work/train.out" ||
  fail "train: no attempt resumed in the middle of an epoch"
same_predictions "$work/train_ref/validation/predictions.h5" "$work/train/validation/predictions.h5" || fail "train: predictions differ from the uninterrupted run's"
same_log "$work/train_ref/train_log.jsonl" "$work/train/train_log.jsonl" || fail "train: epoch metrics differ from the uninterrupted run's"

# 2. Two data-parallel ranks; the signal goes to mpirun.
reference ranks_ref "$mpiexec" -n 2 "$brainmri" train "${small[@]}" --epochs 8 --output "$work/ranks_ref"
preempt ranks 2 "$mpiexec" -n 2 "$brainmri" train "${small[@]}" --epochs 8 --output "$work/ranks" --resume
same_predictions "$work/ranks_ref/validation/predictions.h5" "$work/ranks/validation/predictions.h5" || fail "2 ranks: predictions differ from the uninterrupted run's"
same_log "$work/ranks_ref/train_log.jsonl" "$work/ranks/train_log.jsonl" || fail "2 ranks: epoch metrics differ from the uninterrupted run's"

# 3. A cross-validation: two groups of one rank, three folds.
cv=("$brainmri" cv "${small[@]}" --epochs 4 --ranks-per-job 1)
reference cv_ref "$mpiexec" -n 2 "${cv[@]}" --output "$work/cv_ref"
preempt cv 2 "$mpiexec" -n 2 "${cv[@]}" --output "$work/cv"
grep -q '"state": *"interrupted"' "$work/cv/journal.jsonl" || fail "cv: the journal records no interrupted fold"
same_predictions "$work/cv_ref/out_of_fold/predictions.h5" "$work/cv/out_of_fold/predictions.h5" || fail "cv: out-of-fold predictions differ from the uninterrupted run's"
for k in 0 1 2; do
  same_log "$work/cv_ref/fold-$k/train_log.jsonl" "$work/cv/fold-$k/train_log.jsonl" || fail "cv: fold $k's epoch metrics differ"
done

# --preemption-signal none: the signal is not ours to handle (default action: the process ends).
"$brainmri" train "${small[@]}" --epochs 50 --output "$work/ignored" --preemption-signal none >"$work/ignored.out" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null && ! grep -q "Training " "$work/ignored.out"; do sleep 0.1; done
kill -USR1 "$pid"; wait "$pid"; code=$?
[[ $code == $((128 + 10)) ]] || fail "--preemption-signal none: exit $code, expected death by SIGUSR1 (138)"
"$brainmri" train "${small[@]}" --output "$work/bad" --preemption-signal HUP >"$work/bad.out" 2>&1; code=$?
[[ $code == 2 ]] || fail "--preemption-signal HUP: exit $code, expected 2"

if ((failures)); then echo "$failures failure(s)"; exit 1; fi
echo "preemption: all checks passed"
