#!/usr/bin/env bash
# A hyperparameter search (brainmri tune): trials x folds as jobs over the ranks, ASHA or grid or
# random, one rank per GPU.
#
#   mkdir -p logs && sbatch slurm/hpsearch.sh configs/hpsearch_mobilenet_v2.ini [brainmri tune options...]
#
# Submit from anywhere (paths in the arguments are relative to where you submit). What to edit below:
#   --nodes and --ntasks-per-node (= GPUs per node) set how many trials train at once (one per
#   rank with the config's --ranks-per-job 1); --cpus-per-task, --time, --partition/--account.
#   A search usually outlives one time limit: it checkpoints on USR1, requeues itself, and the
#   journal lets the rerun skip every finished (trial, rung, fold) and resume the interrupted ones.
# As an array job (task K trains trials K, K+N, ...; with asha every task must run at once, since
# each waits for the others' results of a rung before it promotes — no %throttle):
#   jid=$(sbatch --parsable --array=0-7 --nodes=1 --ntasks-per-node=1 --gres=gpu:1 slurm/hpsearch.sh CONFIG)
#   sbatch --dependency=afterok:$jid slurm/summarize.sh tune runs/brainmri-hpsearch-$jid
# Variables: BRAINMRI_DATA, BRAINMRI_OUTPUT, BRAINMRI_BIN, BRAINMRI_LAUNCHER, BRAINMRI_SRUN_MPI
# (slurm/lib.sh). The best configuration ends up in OUTPUT/best_config.ini; run it with
# BRAINMRI_DATA=... slurm/train_kfold.sh OUTPUT/best_config.ini (it names no dataset path).
# GPUs: --gres gives every task of a node all its GPUs and each rank takes the one of its local
# rank (cuda:LOCAL_RANK), so NCCL sees the NVLink peers that --gpus-per-task=1 would hide.
#SBATCH --job-name=brainmri-hpsearch
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --output=logs/%x-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@180
set -uo pipefail
# Slurm runs a copy of this script: the checkout is where the submitted script lives (scontrol's
# Command=), else BRAINMRI_HOME or the submit directory.
home=${BRAINMRI_HOME:-$(scontrol show job "${SLURM_JOB_ID:-}" 2>/dev/null | sed -n 's|^ *Command=\(/.*\)/slurm/[^/]*\.sh.*|\1|p' | head -n 1)}
# shellcheck source=slurm/lib.sh
source "${home:-${SLURM_SUBMIT_DIR:-.}}/slurm/lib.sh" || exit 2
brainmri_run tune "$@"
