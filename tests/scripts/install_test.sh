#!/usr/bin/env bash
# `cmake --install` gives a prefix that runs wherever it is copied: the programs find LibTorch (and,
# in a CUDA build, its CUDA libraries) in <prefix>/lib/brainmri through their RUNPATH, without
# LD_LIBRARY_PATH and without the .venv/ they were built from (cmake/BrainmriInstall.cmake).
#
#   install_test.sh BUILD_DIR SOURCE_DIR
#
# Installs into one directory, copies the prefix to another and removes the first; from the copy,
# in an environment with no .venv/ on any path: brainmri version, brainmri-prep --help, the sample
# packed and one epoch of training. Every library the programs load from outside the system's
# directories must resolve inside the copy.
set -euo pipefail
build_dir=$(realpath "$1")
source_dir=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build_dir" --prefix "$work/installed" >/dev/null
cp -a "$work/installed" "$work/copied"
rm -rf "$work/installed"
prefix=$work/copied
echo "installed and copied to $prefix: $(du -sh "$prefix" | cut -f1)"

# A clean environment: the system's PATH only, no LD_LIBRARY_PATH, no Python of the build.
in_clean_env() { (cd "$work" && env -i HOME="$work" PATH=/usr/local/bin:/usr/bin:/bin "$@"); }

programs=("$prefix/bin/brainmri")
[[ -x $prefix/bin/brainmri-prep ]] && programs+=("$prefix/bin/brainmri-prep")
for program in "${programs[@]}"; do
  [[ -x $program ]] || fail "no $program under the install prefix"
  # What the loader would take from outside /lib and /usr/lib must come from the copied prefix.
  libraries=$(in_clean_env ldd "$program")
  if grep -q "not found" <<<"$libraries"; then
    fail "$(basename "$program") misses libraries from $prefix:"$'\n'"$(grep "not found" <<<"$libraries")"
  fi
  if grep -E "=> /" <<<"$libraries" | grep -vE "=> (/usr)?/lib(32|64)?/|=> $prefix/" >&2; then
    fail "$(basename "$program") loads the libraries above from outside the copied prefix"
  fi
done
libraries=$(in_clean_env ldd "$prefix/bin/brainmri")
grep -qE "libtorch_cpu.so => $prefix/(bin/\.\./)?lib/brainmri/" <<<"$libraries" ||
  fail "brainmri does not load LibTorch from $prefix/lib/brainmri"

in_clean_env "$prefix/bin/brainmri" version || fail "the copied brainmri does not start"
if [[ -x $prefix/bin/brainmri-prep ]]; then
  in_clean_env "$prefix/bin/brainmri-prep" --help >/dev/null || fail "the copied brainmri-prep does not start"
  in_clean_env "$prefix/bin/brainmri-prep" --quiet --out "$work/dataset" --folds 5 --seed 42 "$source_dir/data/sample" ||
    fail "the copied brainmri-prep could not pack the sample"
  in_clean_env "$prefix/bin/brainmri" train --config "$source_dir/configs/paper_baseline_cnn.ini" --data "$work/dataset" \
    --output "$work/run" --epochs 1 --explanation-check false --progress none >/dev/null ||
    fail "the copied brainmri could not train"
  [[ -s $work/run/model.pt ]] || fail "training from the copied prefix wrote no model.pt"
fi
echo "the copied install prefix runs without .venv/: OK"
