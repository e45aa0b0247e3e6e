#!/usr/bin/env bash
# Any number of CPU ranks on a workstation (no GPU used even if there is one): each rank bound to
# its share of the cores with that many LibTorch threads, gradients averaged with MPI.
#
#   launch/local_cpu.sh [-n RANKS] [--dry-run] -- build/release/bin/brainmri cv --config configs/paper_kfold_baseline_cnn.ini --data DATA --output runs/cv
#
# RANKS defaults to 2. More ranks than cores oversubscribe (slower, but works: useful to try a
# multi-rank configuration on a laptop). Results are bit-for-bit reproducible for a given RANKS.
set -euo pipefail
ranks=2
pass=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -n|--ranks) ranks=$2; shift 2 ;;
    --dry-run) pass+=(--dry-run); shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "local_cpu.sh: unknown option '$1' (the command goes after --)" >&2; exit 2 ;;
  esac
done
# No visible GPU: brainmri's --device auto picks the CPU, and mpirun_local.sh splits the cores.
export CUDA_VISIBLE_DEVICES=""
exec "$(dirname "${BASH_SOURCE[0]}")/mpirun_local.sh" -n "$ranks" "${pass[@]}" -- "$@"
