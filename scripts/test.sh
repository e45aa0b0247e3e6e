#!/usr/bin/env bash
# Builds brainmri with the test tools (installing what is missing: scripts/setup.sh
# --with-test-tools) and runs the whole test suite with ctest, the Python oracles from .venv/.
#
#   scripts/test.sh [preset] [extra ctest arguments]     preset: release (default), debug, asan
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset="${1:-release}"
shift || true

scripts/setup.sh --with-test-tools "$preset"
# The tests call python3 for their oracles and checks: the venv's.
PATH="$PWD/.venv/bin:$PATH" ctest --preset "$preset" -j "$(nproc 2>/dev/null || echo 2)" "$@"
