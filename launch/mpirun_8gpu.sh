#!/usr/bin/env bash
# One server with 8 GPUs: 8 ranks, one per GPU, NCCL all-reduce, each rank bound to its eighth
# of the cores.
#
#   launch/mpirun_8gpu.sh [--gpus N] [--dry-run] -- build/release/bin/brainmri cv --config configs/paper_kfold_mobilenet_v2.ini --data DATA --output runs/cv
#
# --gpus N: a server with another number of GPUs (checked against nvidia-smi).
# NCCL settings (set before calling; every NCCL_* variable reaches every rank through mpirun -x):
#   NCCL_DEBUG=WARN (default here; INFO prints the rings and transports chosen at start-up),
#   NCCL_P2P_LEVEL=NVL to insist on NVLink between GPUs, NCCL_SOCKET_IFNAME / NCCL_IB_HCA to pick
#   the network only when several servers are joined (MPIRUN_ARGS="--hostfile hosts").
# Rank k uses local GPU k; brainmri also honours a CUDA_VISIBLE_DEVICES of one GPU per rank.
set -euo pipefail
gpus=8
pass=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --gpus) gpus=$2; shift 2 ;;
    --dry-run) pass+=(--dry-run); shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "mpirun_8gpu.sh: unknown option '$1' (the command goes after --)" >&2; exit 2 ;;
  esac
done
[[ $gpus =~ ^[1-9][0-9]*$ ]] || { echo "mpirun_8gpu.sh: --gpus needs a positive integer, got '$gpus'" >&2; exit 2; }
if [[ ${pass[*]:-} != --dry-run ]]; then
  found=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  if [[ $found != "$gpus" ]]; then
    echo "mpirun_8gpu.sh: expected $gpus GPUs, nvidia-smi shows ${found:-none}; pass --gpus $found, or use launch/local_cpu.sh" >&2
    exit 2
  fi
fi
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
exec "$(dirname "${BASH_SOURCE[0]}")/mpirun_local.sh" -n "$gpus" "${pass[@]}" -- "$@"
