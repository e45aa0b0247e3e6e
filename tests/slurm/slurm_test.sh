#!/usr/bin/env bash
# The Slurm job scripts under a real (single-node, local) Slurm: `sbatch slurm/train_kfold.sh`
# with a small CPU config on the bundled sample runs to completion with two tasks (srun --mpi=pmix);
# then the same job is sent the preemption signal the way Slurm's --signal=B:USR1 sends it (to the
# batch shell), requeues itself, resumes, and ends with exactly the uninterrupted job's results.
# The finetune script (brainmri train) and the mpirun launcher run too. An array job of three
# tasks (one fold each, one of them preempted and requeued) and slurm/summarize.sh after it give
# the one job's results exactly.
#
# usage: slurm_test.sh REPO BRAINMRI BRAINMRI_PREP SAMPLE_DIR WORK_DIR
# Needs root and Debian's slurmd, slurmctld, slurm-client and munge (scripts/setup.sh --with-test-tools).
set -uo pipefail
repo=$1 brainmri=$2 prep=$3 sample=$4 work=$5
# ctest reports 77 as skipped: said plainly, so that a machine without Slurm is not a silent pass.
((EUID == 0)) || { echo "SKIPPED: the local Slurm needs root"; exit 77; }
for tool in munged slurmctld slurmd sbatch; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool not installed (scripts/setup.sh --with-test-tools installs it)"; exit 77; }
done
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

rm -rf "$work" && mkdir -p "$work/logs"
cluster=$work/cluster
eval "$("$repo/tests/slurm/local_slurm.sh" start "$cluster")" || exit 1
trap '"$repo/tests/slurm/local_slurm.sh" stop "$cluster"' EXIT
echo "Slurm up: $(sinfo -h -o '%P %D %c %T')"

"$prep" -q --out "$work/data" --folds 3 --seed 1 --size 64 "$sample/Training" >"$work/prep.log" 2>&1 || { cat "$work/prep.log"; exit 1; }
# cpu_config FILE EPOCHS [LINE...]: a small CPU experiment config for these jobs.
cpu_config() {
  local file=$1 epochs=$2; shift 2
  printf '%s\n' "model = baseline_cnn" "dense-units = 32" "epochs = $epochs" "batch-size = 8" "device = cpu" \
      "explanation-check = false" "$@" >"$file"
}
cpu_config "$work/cpu_kfold.ini" 5 "ranks-per-job = 1"

# submit NAME SCRIPT ARGS...: sbatch on this machine's resources (two tasks of one CPU, no GPU).
submit() {
  local name=$1 script=$2; shift 2
  (cd "$repo" && sbatch --parsable --job-name="$name" --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gres=none \
     --time=15 --output="$work/logs/%x-%j.out" \
     --export="ALL,BRAINMRI_BIN=$brainmri,BRAINMRI_DATA=$work/data,BRAINMRI_OUTPUT=$work/$name" \
     "$script" "$@")
}
# state JOB: the job's state (PENDING, RUNNING, COMPLETED, FAILED, ...).
state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
# finish JOB SECONDS: waits for the job to end; fails on a time-out.
finish() {
  local job=$1 limit=$2 s
  for ((i = 0; i < limit * 2; i++)); do
    s=$(state "$job")
    case $s in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) echo "$s"; return;; esac
    sleep 0.5
  done
  echo "STILL-$s"
}

# 1. The k-fold script, to completion.
ref=$(submit reference slurm/train_kfold.sh "$work/cpu_kfold.ini") || { fail "sbatch refused the k-fold script"; exit 1; }
result=$(finish "$ref" 300)
log=$work/logs/reference-$ref.out
[[ $result == COMPLETED ]] || { fail "k-fold job $ref: $result"; cat "$log" >&2; }
grep -q "srun --mpi=pmix" "$log" || fail "k-fold job: not launched with srun --mpi=pmix"
grep -q "Cross-validating baseline_cnn over 3 folds on 2 group(s)" "$log" || fail "k-fold job: not 3 folds on 2 ranks"
python3 - "$work/reference/cv_summary.json" <<'PY' || fail "k-fold job: bad cv_summary.json"
import json, sys
s = json.load(open(sys.argv[1]))
assert len(s["folds"]) == 3, s["folds"]
assert 0.0 <= s["accuracy"]["mean"] <= 1.0
assert s["out_of_fold"]["samples"] == 154, s["out_of_fold"]
PY

# 2. Preempted like Slurm does it before the time limit (USR1 to the batch shell only), requeued,
#    resumed; the results must be the uninterrupted job's, exactly.
job=$(submit preempted slurm/train_kfold.sh "$work/cpu_kfold.ini")
log=$work/logs/preempted-$job.out
for ((i = 0; i < 600; i++)); do grep -q "epoch   2" "$log" 2>/dev/null && break; sleep 0.1; done
scancel --batch --signal=USR1 "$job" || fail "scancel --signal refused"
for ((i = 0; i < 600; i++)); do [[ $(scontrol show job "$job" | grep -o 'Restarts=[0-9]*') == Restarts=1 ]] && break; sleep 0.2; done
result=$(finish "$job" 400)
[[ $result == COMPLETED ]] || fail "preempted job $job: $result"
grep -q "checkpoint written; requeueing job $job" "$log" || fail "preempted job: did not requeue itself"
grep -q "restart 1" "$log" || fail "preempted job: never ran again"
grep -q "Resumed train from" "$log" || fail "preempted job: the rerun did not resume a fold"
python3 "$repo/tests/distributed/same_predictions.py" "$work/reference/out_of_fold/predictions.h5" \
    "$work/preempted/out_of_fold/predictions.h5" || fail "preempted job: results differ from the uninterrupted job's"
[[ $failures == 0 ]] || cat "$log" >&2

# 3. As an array job: one task per fold, task 1 preempted and requeued; summarize.sh waits for
#    the array (afterok) and writes what the one job wrote, with the same predictions.
# Submitted from $work: the tasks share the default experiment directory, runs/array-<array job id>.
array=$(cd "$work" && sbatch --parsable --job-name=array --array=0-2 --nodes=1 --ntasks-per-node=1 --cpus-per-task=1 \
          --gres=none --time=15 --output="$work/logs/%x-%A_%a.out" \
          --export="ALL,BRAINMRI_BIN=$brainmri,BRAINMRI_DATA=$work/data" "$repo/slurm/train_kfold.sh" cpu_kfold.ini) ||
  fail "sbatch refused the array job"
summary=$(cd "$work" && sbatch --parsable --job-name=summarize --dependency="afterok:$array" --cpus-per-task=1 \
            --gres=none --time=15 --output="$work/logs/%x-%j.out" --export="ALL,BRAINMRI_BIN=$brainmri" \
            "$repo/slurm/summarize.sh" cv "runs/array-$array")
log=$work/logs/array-${array}_1.out
for ((i = 0; i < 600; i++)); do grep -q "epoch   2" "$log" 2>/dev/null && break; sleep 0.1; done
scancel --batch --signal=USR1 "${array}_1" || fail "scancel --signal refused (array task 1)"
# While tasks are still at work, a summary is refused, naming what is not finished.
if "$brainmri" cv summarize "$work/runs/array-$array" >"$work/early.log" 2>&1; then
  fail "cv summarize succeeded before the array finished"
fi
grep -q "is not finished: .*fold-" "$work/early.log" || { fail "early summarize: no clear refusal"; cat "$work/early.log" >&2; }
for ((i = 0; i < 600; i++)); do [[ $(scontrol show job "${array}_1" | grep -o 'Restarts=[0-9]*') == Restarts=1 ]] && break; sleep 0.2; done
for task in 0 1 2; do
  result=$(finish "${array}_$task" 300)
  [[ $result == COMPLETED ]] || { fail "array task $task: $result"; cat "$work/logs/array-${array}_$task.out" >&2; }
done
result=$(finish "$summary" 300)
[[ $result == COMPLETED ]] || { fail "summarize job $summary: $result"; cat "$work/logs/summarize-$summary.out" >&2; scancel "$summary"; }
grep -q "array task 1 of $array" "$log" || fail "array task 1: not said in its log"
grep -q "checkpoint written; requeueing" "$log" || fail "array task 1: not preempted and requeued"
grep -q "restart 1" "$log" || fail "array task 1: never ran again"
grep -q -- "--array-task 1 --array-tasks 3" "$log" || fail "array task 1: not told its share"
grep -q "Array task 1 of 3 has run its jobs (fold-1)" "$log" || fail "array task 1: did not run fold 1"
python3 "$repo/tests/distributed/same_predictions.py" "$work/reference/out_of_fold/predictions.h5" \
    "$work/runs/array-$array/out_of_fold/predictions.h5" || fail "array job: results differ from the one job's"
[[ -f $work/runs/array-$array/report/index.html ]] || fail "array job: no report"

# 4. The fine-tuning script (brainmri train --resume) and the mpirun launcher, each to completion.
cpu_config "$work/cpu_finetune.ini" 2
job=$(BRAINMRI_LAUNCHER=mpirun submit finetune slurm/finetune.sh "$work/cpu_finetune.ini" --val-fold 1)
result=$(finish "$job" 300)
log=$work/logs/finetune-$job.out
[[ $result == COMPLETED ]] || { fail "finetune job $job: $result"; cat "$log" >&2; }
grep -q "+ mpirun -n 2" "$log" || fail "finetune job: not launched with mpirun"
grep -q "2 ranks (mpi), global batch 16" "$log" || fail "finetune job: not data-parallel on 2 ranks"
[[ -f $work/finetune/validation/metrics.json ]] || fail "finetune job: no validation metrics"

# A job script without its config: a clear error, exit 2 (the job FAILS).
job=$(submit noconfig slurm/hpsearch.sh)
result=$(finish "$job" 60)
[[ $result == FAILED ]] || fail "hpsearch job without a config: $result"
grep -q "no experiment config" "$work/logs/noconfig-$job.out" || fail "hpsearch job without a config: no clear error"

# Submitted from another directory, with neither BRAINMRI_BIN nor BRAINMRI_HOME: the job finds
# the checkout's binary (from the submitted script's path), and the config relative to the
# submit directory.
mkdir -p "$work/elsewhere" && cp "$work/cpu_kfold.ini" "$work/elsewhere/here.ini"
job=$(cd "$work/elsewhere" && sbatch --parsable --job-name=elsewhere --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
        --gres=none --time=5 --output="$work/logs/%x-%j.out" --export="ALL,BRAINMRI_DRY_RUN=1" \
        "$repo/slurm/train_kfold.sh" here.ini)
result=$(finish "$job" 60)
[[ $result == COMPLETED ]] || { fail "job submitted from elsewhere: $result"; cat "$work/logs/elsewhere-$job.out" >&2; }
grep -q "+ srun .* $repo/build/release/bin/brainmri cv --config here.ini" "$work/logs/elsewhere-$job.out" ||
  { fail "job submitted from elsewhere: not the checkout's brainmri"; cat "$work/logs/elsewhere-$job.out" >&2; }

# BRAINMRI_CONTAINER (dry runs: neither Apptainer nor pyxis is installed here): every rank in
# `apptainer exec --nv IMAGE.sif brainmri ...`, or srun's pyxis options for an image name.
touch "$work/brainmri.sif"
for container in "$work/brainmri.sif" "registry.example.org#brainmri:0.1.0"; do
  job=$(cd "$work/elsewhere" && sbatch --parsable --job-name=container --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
          --gres=none --time=5 --output="$work/logs/%x-%j.out" \
          --export="ALL,BRAINMRI_DRY_RUN=1,BRAINMRI_CONTAINER=$container" "$repo/slurm/train_kfold.sh" here.ini)
  result=$(finish "$job" 60)
  [[ $result == COMPLETED ]] || fail "container job ($container): $result"
  if [[ $container == *.sif ]]; then
    expected="+ srun .* apptainer exec --nv --bind $work/elsewhere --pwd $work/elsewhere $container brainmri cv --config here.ini"
  else
    expected="+ srun .* --container-image=$container --container-mounts=$work/elsewhere:$work/elsewhere .* brainmri cv"
  fi
  grep -q -- "$expected" "$work/logs/container-$job.out" ||
    { fail "container job ($container): not run in the container"; cat "$work/logs/container-$job.out" >&2; }
done

if ((failures)); then echo "$failures failure(s); Slurm logs in $cluster/log"; exit 1; fi
echo "slurm: all checks passed"
