#!/usr/bin/env bash
# k-fold cross-validation of one experiment config (brainmri cv), one rank per GPU.
#
#   mkdir -p logs && sbatch slurm/train_kfold.sh configs/paper_kfold_mobilenet_v2.ini [brainmri cv options...]
#   e.g. BRAINMRI_DATA=/scratch/$USER/brain-tumor-mri-128 sbatch slurm/train_kfold.sh configs/paper_kfold_baseline_cnn.ini
#
# Submit from anywhere (paths in the arguments are relative to where you submit). What to edit below:
#   --nodes, --ntasks-per-node and --gres=gpu:N (N = GPUs per node), --cpus-per-task, --time,
#   --partition/--account for your site. Folds run in parallel, one per rank by default
#   (--ranks-per-job 1); add --ranks-per-job N to train each fold data-parallel on N GPUs.
# Multi-node: raise --nodes; nothing else changes (NCCL finds the network; see docs/cluster.md).
# As an array job, one job per fold (each task its own allocation, queued on its own):
#   jid=$(sbatch --parsable --array=0-4 --ntasks-per-node=1 --gres=gpu:1 slurm/train_kfold.sh CONFIG)
#   sbatch --dependency=afterok:$jid slurm/summarize.sh cv runs/brainmri-kfold-$jid
# Preemption: Slurm sends USR1 three minutes before the time limit; every rank checkpoints at its
# next step, the job requeues itself and continues where it stopped (finished folds are not rerun).
# Variables: BRAINMRI_DATA, BRAINMRI_OUTPUT, BRAINMRI_BIN, BRAINMRI_LAUNCHER (srun|mpirun),
# BRAINMRI_SRUN_MPI (pmix) — see slurm/lib.sh.
# GPUs: --gres gives every task of a node all its GPUs and each rank takes the one of its local
# rank (cuda:LOCAL_RANK), so NCCL sees the NVLink peers that --gpus-per-task=1 would hide.
#SBATCH --job-name=brainmri-kfold
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
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
brainmri_run cv "$@"
