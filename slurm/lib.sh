# shellcheck shell=bash
# Shared by the slurm/*.sh job scripts (sourced, not run): finds brainmri, starts one task per GPU
# with srun (or mpirun), forwards the preemption signal to every task, and requeues the job when
# brainmri stops for preemption (exit code 75), so the requeued job continues from its checkpoint.
#
# Variables (set them in the job script, with `sbatch --export=ALL,NAME=value`, or in the
# environment of sbatch):
#   BRAINMRI_BIN       the brainmri executable (default: build/release/bin/brainmri of the checkout
#                      this lib.sh belongs to, wherever sbatch ran)
#   BRAINMRI_DATA      the packed dataset (brainmri-prep output); required unless the config sets data
#   BRAINMRI_OUTPUT    the experiment directory (default runs/<job name>-<job id>; a requeued job
#                      keeps its id, so it finds its checkpoints and journal; the tasks of an
#                      array job share runs/<job name>-<array job id>)
#   BRAINMRI_LAUNCHER  srun (default) or mpirun (Open MPI's, inside the allocation)
#   BRAINMRI_SRUN_MPI  srun's --mpi plugin (default pmix; `srun --mpi=list` shows the cluster's)
#   BRAINMRI_CONTAINER run every rank in a container: FILE.sif (Apptainer/Singularity: `apptainer
#                      exec --nv`, MPI from the host, see docs/container.md) or an image name for
#                      enroot/pyxis sites (`srun --container-image`); the brainmri inside the image
#                      is used (BRAINMRI_BIN default: brainmri on the image's PATH)
#   BRAINMRI_DRY_RUN   1: print the command instead of running it
#   BRAINMRI_MAX_REQUEUES  requeue at most this many times (default 20)

brainmri_fail() { echo "brainmri job: $*" >&2; exit 2; }

# Slurm array jobs (sbatch --array=0-4, cv and tune only; ids 0..N-1): task K of N runs its share
# of the folds or trials (--array-task K --array-tasks N) in the shared experiment directory, with a
# journal of its own; once all have run, slurm/summarize.sh (or brainmri cv|tune summarize DIR)
# writes the summary. A task that ended early is resubmitted alone with the directory:
# BRAINMRI_OUTPUT=runs/NAME-ARRAYID sbatch --array=K slurm/train_kfold.sh CONFIG.

# The checkout: this file's parent directory (the job scripts source it from there; Slurm runs a
# copy of the job script itself, so only this file knows where the checkout is).
brainmri_home=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# brainmri_run COMMAND CONFIG [EXTRA ARGS...]: the job's one step.
brainmri_run() {
  local command=$1 config=${2:-}
  shift $(($# < 2 ? $# : 2))
  [[ -n $config ]] || brainmri_fail "no experiment config given (sbatch slurm/SCRIPT.sh configs/NAME.ini [brainmri $command options...])"
  [[ -f $config ]] || brainmri_fail "no experiment config '$config' here ($PWD)"
  local submit_dir=${SLURM_SUBMIT_DIR:-$PWD}
  local container=${BRAINMRI_CONTAINER:-} inside=()
  local bin=${BRAINMRI_BIN:-$brainmri_home/build/release/bin/brainmri}
  if [[ -n $container ]]; then
    bin=${BRAINMRI_BIN:-brainmri}
    if [[ $container == *.sif ]]; then
      [[ -f $container ]] || brainmri_fail "no container image '$container' (apptainer build: docs/container.md)"
      inside=(apptainer exec --nv --bind "$submit_dir" --pwd "$PWD" "$container")
    fi
  else
    [[ -x $bin ]] || brainmri_fail "$bin is not an executable; build brainmri (scripts/setup.sh) or set BRAINMRI_BIN"
  fi
  local job_id=${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-local}}
  local output=${BRAINMRI_OUTPUT:-$submit_dir/runs/${SLURM_JOB_NAME:-brainmri}-$job_id}
  local tasks=${SLURM_NTASKS:-1} threads=${SLURM_CPUS_PER_TASK:-1}
  local args=("$bin" "$command" --config "$config" --output "$output" --threads-per-rank "$threads"
              --preemption-signal USR1)
  [[ -n ${BRAINMRI_DATA:-} ]] && args+=(--data "$BRAINMRI_DATA")
  if [[ -n ${SLURM_ARRAY_TASK_ID:-} ]]; then
    [[ $command == cv || $command == tune ]] || brainmri_fail "an array job splits cv and tune; brainmri $command runs as one job"
    # Task ids are 0..N-1 (--array=0-4). A task resubmitted alone (BRAINMRI_OUTPUT=DIR sbatch
    # --array=2 ...) keeps its id, and N comes from the experiment's config.ini.
    local tasks_total
    tasks_total=$(sed -n 's/^array-tasks = //p' "$output/config.ini" 2>/dev/null)
    tasks_total=${tasks_total:-$((${SLURM_ARRAY_TASK_MAX:-0} + 1))}
    ((SLURM_ARRAY_TASK_ID < tasks_total)) ||
      brainmri_fail "array task $SLURM_ARRAY_TASK_ID of $tasks_total: the task ids must be 0..N-1 (--array=0-4)"
    args+=(--array-task "$SLURM_ARRAY_TASK_ID" --array-tasks "$tasks_total")
  fi
  [[ $command == train ]] && args+=(--resume)  # cv and tune resume from their journal anyway
  args+=("$@")

  local launch
  case ${BRAINMRI_LAUNCHER:-srun} in
    srun) launch=(srun --mpi="${BRAINMRI_SRUN_MPI:-pmix}" --kill-on-bad-exit=1 --cpus-per-task="$threads") ;;
    mpirun)
      # Open MPI reads the allocation from Slurm; -x passes the settings every rank needs.
      launch=(mpirun -n "$tasks" --map-by "ppr:${SLURM_NTASKS_PER_NODE:-$tasks}:node:PE=$threads" --bind-to core)
      ((EUID == 0)) && launch+=(--allow-run-as-root)
      local name
      for name in $(compgen -e | grep -E '^(NCCL_|CUDA_|OMP_|BRAINMRI_|UCX_)' || true); do launch+=(-x "$name"); done
      ;;
    *) brainmri_fail "BRAINMRI_LAUNCHER must be srun or mpirun, got '${BRAINMRI_LAUNCHER}'" ;;
  esac
  if [[ -n $container && $container != *.sif ]]; then  # enroot/pyxis: srun starts the tasks in it
    [[ ${launch[0]} == srun ]] || brainmri_fail "BRAINMRI_CONTAINER=$container (an image name) needs srun with pyxis; use a .sif with mpirun"
    launch+=(--container-image="$container" --container-mounts="$submit_dir:$submit_dir" --container-workdir="$PWD")
  fi
  launch+=("${inside[@]}")

  echo "brainmri job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+ (array task $SLURM_ARRAY_TASK_ID of ${SLURM_ARRAY_JOB_ID})} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-$(hostname)}: $tasks task(s) x $threads CPU(s)"
  echo "+ ${launch[*]} ${args[*]}"
  [[ ${BRAINMRI_DRY_RUN:-0} == 1 ]] && return 0
  mkdir -p "$output"

  # Slurm's --signal=B:USR1@N reaches this shell only: pass it on to the step, whose tasks write a
  # checkpoint at their next step and exit 75. `wait` returns when a trapped signal arrives, so
  # wait again until the step has really ended.
  "${launch[@]}" "${args[@]}" &
  local step=$! code
  trap 'echo "brainmri job: preemption signal; asking the tasks to checkpoint"; kill -USR1 "$step" 2>/dev/null' USR1
  while true; do
    wait "$step"
    code=$?
    kill -0 "$step" 2>/dev/null || break
  done
  trap - USR1
  if [[ $code == 75 ]]; then
    if ((${SLURM_RESTART_COUNT:-0} >= ${BRAINMRI_MAX_REQUEUES:-20})); then
      echo "brainmri job: preempted again after ${SLURM_RESTART_COUNT} requeues; not requeueing (BRAINMRI_MAX_REQUEUES)" >&2
      return 75
    fi
    echo "brainmri job: checkpoint written; requeueing job ${SLURM_JOB_ID} to continue"
    scontrol requeue "$SLURM_JOB_ID"
    return 0
  fi
  echo "brainmri job: finished with exit code $code"
  return "$code"
}

# brainmri_summarize cv|tune DIR: the summaries of an experiment that ran as array tasks (one
# process; in the container when BRAINMRI_CONTAINER names one).
brainmri_summarize() {
  local command=${1:-} directory=${2:-}
  [[ ($command == cv || $command == tune) && -n $directory ]] || brainmri_fail "usage: sbatch slurm/summarize.sh cv|tune DIR"
  [[ -f $directory/config.ini ]] || brainmri_fail "$directory holds no experiment (no config.ini)"
  local container=${BRAINMRI_CONTAINER:-} run=()
  if [[ $container == *.sif ]]; then
    run=(apptainer exec --nv --bind "${SLURM_SUBMIT_DIR:-$PWD}" --pwd "$PWD" "$container" "${BRAINMRI_BIN:-brainmri}")
  elif [[ -n $container ]]; then
    run=(srun --ntasks=1 --container-image="$container" --container-mounts="${SLURM_SUBMIT_DIR:-$PWD}:${SLURM_SUBMIT_DIR:-$PWD}"
         --container-workdir="$PWD" "${BRAINMRI_BIN:-brainmri}")
  else
    run=("${BRAINMRI_BIN:-$brainmri_home/build/release/bin/brainmri}")
    [[ -x ${run[0]} ]] || brainmri_fail "${run[0]} is not an executable; build brainmri (scripts/setup.sh) or set BRAINMRI_BIN"
  fi
  echo "+ ${run[*]} $command summarize $directory"
  [[ ${BRAINMRI_DRY_RUN:-0} == 1 ]] && return 0
  "${run[@]}" "$command" summarize "$directory"
}
