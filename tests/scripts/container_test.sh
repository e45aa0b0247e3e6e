#!/usr/bin/env bash
# The container image: built here from the Debian mirror and PyPI, then the quick start (with its
# 2-rank mpirun CV) inside it as the non-root user (scripts/container.sh build, test). It takes
# about as long as a clean build, so it runs only when asked: BRAINMRI_CONTAINER_TEST=1.
#
#   container_test.sh SOURCE_DIR
set -euo pipefail
[[ ${BRAINMRI_CONTAINER_TEST:-0} == 1 ]] || { echo "SKIPPED: set BRAINMRI_CONTAINER_TEST=1 to build and test the image"; exit 77; }
command -v podman >/dev/null || { echo "SKIPPED: podman is not installed"; exit 77; }
cd "$1"
scripts/container.sh build
scripts/container.sh test
