#!/usr/bin/env bash
# Fine-tuning in stages (frozen backbone, then more and more of it) of one training run
# (brainmri train with the config's `stage = ...` lines), data-parallel over the job's GPUs.
#
#   mkdir -p logs && sbatch slurm/finetune.sh configs/finetune_mobilenet_v2.ini --pretrained /path/mobilenet_v2_1.0_no_top.h5 [--val-fold 0]
#
# Submit from the repository root (or set BRAINMRI_HOME to it). What to edit below:
#   --nodes and --ntasks-per-node (= GPUs per node): the global batch is the config's batch size
#   times the number of ranks; --cpus-per-task, --time, --partition/--account.
# Preemption: USR1 three minutes before the limit; every rank stops at the same step, rank 0
# writes the checkpoint (weights, optimizer, schedule, step within the epoch), the job requeues
# itself and the rerun (train --resume) continues from that step.
# Variables: BRAINMRI_DATA, BRAINMRI_OUTPUT, BRAINMRI_BIN, BRAINMRI_LAUNCHER, BRAINMRI_SRUN_MPI
# (slurm/lib.sh). For a cross-validated fine-tuning, use slurm/train_kfold.sh with the same config.
#SBATCH --job-name=brainmri-finetune
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=logs/%x-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@180
set -uo pipefail
# shellcheck source=slurm/lib.sh
source "${BRAINMRI_HOME:-${SLURM_SUBMIT_DIR:-.}}/slurm/lib.sh" || exit 2
brainmri_run train "$@"
