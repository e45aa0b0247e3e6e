#!/usr/bin/env bash
# Builds brainmri and its tests with the test tools (installing what is missing: scripts/setup.sh
# --with-test-tools --all-targets) and runs the whole test suite with ctest, the Python oracles from .venv/.
#
#   scripts/test.sh [preset] [extra ctest arguments]     preset: release (default), debug, asan
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset="${1:-release}"
shift || true

# shellcheck source=scripts/phases.sh
source scripts/phases.sh
phases_open
phases_share scripts/setup.sh --with-test-tools --all-targets "$preset"
# The tests call python3 for their oracles and checks: the venv's.
PATH="$PWD/.venv/bin:$PATH" phase "run (ctest)" ctest --preset "$preset" -j "$(nproc 2>/dev/null || echo 2)" "$@"
