#!/usr/bin/env bash
# Builds brainmri (installing what is missing) and runs the whole test suite with ctest.
#
#   scripts/test.sh [preset] [extra ctest arguments]     preset: release (default), debug, asan
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset="${1:-release}"
shift || true

scripts/setup.sh "$preset"
ctest --preset "$preset" -j "$(nproc 2>/dev/null || echo 2)" "$@"
