#!/usr/bin/env bash
# Fine-tuning in stages (frozen backbone, then more and more of it) of one training run
# (brainmri train with the config's `stage = ...` lines), data-parallel over the job's GPUs.
#
#   mkdir -p logs && sbatch slurm/finetune.sh configs/finetune_mobilenet_v2.ini --pretrained /path/mobilenet_v2_1.0_no_top.h5 [--val-fold 0]
#
# Submit from anywhere (paths in the arguments are relative to where you submit). What to edit below:
#   --nodes and --ntasks-per-node (= GPUs per node): the global batch is the config's batch size
#   times the number of ranks; --cpus-per-task, --time, --partition/--account.
# Preemption: USR1 three minutes before the limit; every rank stops at the same step, rank 0
# writes the checkpoint (weights, optimizer, schedule, step within the epoch), the job requeues
# itself and the rerun (train --resume) continues from that step.
# Variables: BRAINMRI_DATA, BRAINMRI_OUTPUT, BRAINMRI_BIN, BRAINMRI_LAUNCHER, BRAINMRI_SRUN_MPI
# (slurm/lib.sh). For a cross-validated fine-tuning, use slurm/train_kfold.sh with the same config.
# GPUs: --gres gives every task of a node all its GPUs and each rank takes the one of its local
# rank (cuda:LOCAL_RANK), so NCCL sees the NVLink peers that --gpus-per-task=1 would hide.
#SBATCH --job-name=brainmri-finetune
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
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
brainmri_run train "$@"
