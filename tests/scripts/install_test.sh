#!/usr/bin/env bash
# `cmake --install` gives binaries that run from the install prefix without LD_LIBRARY_PATH: they
# find LibTorch (and the rest) through their RPATH.
#
#   install_test.sh BUILD_DIR
set -euo pipefail
build_dir=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
[[ -x $prefix/bin/brainmri ]] || { echo "FAIL: no bin/brainmri under the install prefix" >&2; exit 1; }
if ! (unset LD_LIBRARY_PATH; cd / && "$prefix/bin/brainmri" version); then
  echo "FAIL: the installed brainmri does not start; ldd says:" >&2
  ldd "$prefix/bin/brainmri" | grep "not found" >&2
  exit 1
fi
if [[ -x $prefix/bin/brainmri-prep ]]; then
  (unset LD_LIBRARY_PATH; cd / && "$prefix/bin/brainmri-prep" --help >/dev/null) ||
    { echo "FAIL: the installed brainmri-prep does not start" >&2; exit 1; }
fi
echo "installed binaries start from $prefix: OK"
