#!/usr/bin/env bash
# The summaries and report of a cross-validation or search that ran as Slurm array tasks (each
# task ran its share of the folds or trials; see slurm/lib.sh). Submit it to start when every
# task has finished (requeued tasks included):
#
#   jid=$(sbatch --parsable --array=0-4 slurm/train_kfold.sh configs/paper_kfold_baseline_cnn.ini)
#   sbatch --dependency=afterok:$jid slurm/summarize.sh cv runs/brainmri-kfold-$jid
#
# (or run `brainmri cv summarize DIR` / `brainmri tune summarize DIR` yourself). It refuses, naming
# them, while jobs of the experiment are not finished.
#SBATCH --job-name=brainmri-summarize
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --time=01:00:00
#SBATCH --output=logs/%x-%j.out
set -uo pipefail
# Slurm runs a copy of this script: the checkout is where the submitted script lives (scontrol's
# Command=), else BRAINMRI_HOME or the submit directory.
home=${BRAINMRI_HOME:-$(scontrol show job "${SLURM_JOB_ID:-}" 2>/dev/null | sed -n 's|^ *Command=\(/.*\)/slurm/[^/]*\.sh.*|\1|p' | head -n 1)}
# shellcheck source=slurm/lib.sh
source "${home:-${SLURM_SUBMIT_DIR:-.}}/slurm/lib.sh" || exit 2
brainmri_summarize "$@"
