#!/usr/bin/env bash
# The launchers of launch/: local_cpu.sh runs a real 2-rank training; mpirun_8gpu.sh builds the
# 8-rank command (dry run) and refuses a machine without its GPUs; bad options are usage errors.
#
# usage: launchers_test.sh REPO BRAINMRI BRAINMRI_PREP SAMPLE_DIR WORK_DIR
set -uo pipefail
repo=$1 brainmri=$2 prep=$3 sample=$4 work=$5
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
rm -rf "$work" && mkdir -p "$work"
"$prep" -q --out "$work/data" --folds 3 --seed 1 --size 32 "$sample/Training" >"$work/prep.log" 2>&1 || { cat "$work/prep.log"; exit 1; }

"$repo/launch/local_cpu.sh" -n 2 -- "$brainmri" train --data "$work/data" --output "$work/run" --epochs 1 --filters "8,16" \
    --dense-units 16 --batch-size 8 --report false >"$work/local_cpu.out" 2>&1 || { fail "local_cpu.sh: the training failed"; cat "$work/local_cpu.out" >&2; }
grep -q "2 ranks (mpi)" "$work/local_cpu.out" || fail "local_cpu.sh: not 2 MPI ranks"
grep -q "device cpu" "$work/local_cpu.out" || fail "local_cpu.sh: not on the CPU"

out=$("$repo/launch/mpirun_8gpu.sh" --dry-run -- "$brainmri" cv 2>&1)
[[ $out == *"mpirun -n 8 "* && $out == *"-x NCCL_DEBUG"* ]] || fail "mpirun_8gpu.sh --dry-run: $out"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  "$repo/launch/mpirun_8gpu.sh" -- true >"$work/nogpu.out" 2>&1
  code=$?
  if [[ $code != 2 ]] || ! grep -q "expected 8 GPUs" "$work/nogpu.out"; then
    fail "mpirun_8gpu.sh without GPUs: exit $code, $(cat "$work/nogpu.out")"
  fi
fi
for script in local_cpu.sh mpirun_8gpu.sh mpirun_local.sh; do
  "$repo/launch/$script" --bogus -- true >/dev/null 2>&1
  [[ $? == 2 ]] || fail "$script --bogus: not a usage error"
done
if ((failures)); then echo "$failures failure(s)"; exit 1; fi
echo "launchers: all checks passed"
