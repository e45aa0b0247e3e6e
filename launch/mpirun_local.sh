#!/usr/bin/env bash
# Runs a brainmri command as N ranks on this machine: one rank per GPU when there are GPUs, else
# N CPU ranks that split the cores between them.
#
#   launch/mpirun_local.sh [-n RANKS] [--dry-run] -- build/release/bin/brainmri train --config ... --output ...
#
# GPUs: RANKS defaults to the number of GPUs visible (nvidia-smi, CUDA_VISIBLE_DEVICES); rank k
#   uses local GPU k and the NCCL backend. Each rank is bound to its share of the cores.
# CPU:  RANKS defaults to 1; with -n N each rank is bound to cores/N cores and runs that many
#   LibTorch threads (brainmri's --threads-per-rank default does the same arithmetic).
# NCCL_*, CUDA_*, OMP_*, BRAINMRI_* and UCX_* variables are passed to every rank (Open MPI's
# -x), so the same line works when a hostfile adds remote nodes (MPIRUN_ARGS="--hostfile h").
set -euo pipefail

ranks=""
dry_run=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -n|--ranks) ranks=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "mpirun_local.sh: unknown option '$1' (the command goes after --)" >&2; exit 2 ;;
  esac
done
[[ $# -gt 0 ]] || { echo "mpirun_local.sh: no command given; usage: launch/mpirun_local.sh [-n RANKS] -- brainmri train ..." >&2; exit 2; }
command -v mpirun >/dev/null || { echo "mpirun_local.sh: mpirun not found (Debian/Ubuntu: apt-get install openmpi-bin)" >&2; exit 1; }

gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  if [[ -v CUDA_VISIBLE_DEVICES ]]; then  # set, even empty (no GPU: launch/local_cpu.sh), it wins
    IFS=, read -ra visible <<<"$CUDA_VISIBLE_DEVICES"
    gpus=${#visible[@]}
  fi
fi
if [[ -z $ranks ]]; then
  ranks=$((gpus > 0 ? gpus : 1))
fi
if ! [[ $ranks =~ ^[1-9][0-9]*$ ]]; then echo "mpirun_local.sh: -n needs a positive integer, got '$ranks'" >&2; exit 2; fi
if ((gpus > 0 && ranks > gpus)); then
  echo "mpirun_local.sh: $ranks ranks but $gpus GPU(s); start at most one rank per GPU" >&2
  exit 2
fi

cores=$(nproc)
per_rank=$((cores / ranks))
args=(-n "$ranks")
if ((per_rank >= 1)); then
  args+=(--map-by "slot:PE=$per_rank" --bind-to core)
else
  args+=(--oversubscribe --bind-to none)  # more ranks than cores: let the kernel schedule them
fi
((EUID == 0)) && args+=(--allow-run-as-root)
for name in $(compgen -e | grep -E '^(NCCL_|CUDA_|OMP_|BRAINMRI_|UCX_)' || true); do args+=(-x "$name"); done
# shellcheck disable=SC2206  # MPIRUN_ARGS is a list of extra mpirun words on purpose
args+=(${MPIRUN_ARGS:-})

echo "+ mpirun ${args[*]} $*" >&2
((dry_run)) && exit 0
exec mpirun "${args[@]}" "$@"
