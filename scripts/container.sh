#!/usr/bin/env bash
# Builds and tests the brainmri container image (container/Containerfile) with Podman.
#
#   scripts/container.sh build   the image brainmri:VERSION (and brainmri:latest); when no base
#                                image is given, a Debian 12 base is made from the Debian mirror
#                                (mmdebstrap --variant=minbase + podman import: no registry needed)
#   scripts/container.sh test    in the image: brainmri version, then the quick start (packing,
#                                training, evaluation, a 2-rank mpirun CV, the reports) as its
#                                non-root user
#   scripts/container.sh save FILE   a docker-archive for Apptainer (apptainer build brainmri.sif
#                                docker-archive://FILE) or another machine (podman load -i FILE)
#   scripts/container.sh base    prints the name of the base image, making it first if needed
#                                (scripts/fresh_machine_check.sh runs the README's commands in it)
#
# Environment: BRAINMRI_BASE_IMAGE (e.g. docker.io/library/debian:bookworm where a registry is
# reachable), BRAINMRI_TORCH (the torch requirement, as for scripts/setup.sh), BRAINMRI_PODMAN_VM=1
# (runc + cgroupfs, no default ulimits: container/containers-vm.conf, for VMs where crun fails).
# pip's settings (PIP_INDEX_URL, PIP_CERT) reach the build; the certificate file is mounted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v podman >/dev/null || { echo "container: podman is not installed (apt-get install podman)" >&2; exit 77; }
[[ ${BRAINMRI_PODMAN_VM:-0} == 1 ]] && export CONTAINERS_CONF=$PWD/container/containers-vm.conf
version=$(sed -n 's/^project(brainmri VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
image=localhost/brainmri:${version}
log() { printf 'container: %s\n' "$*" >&2; }

base_image() {
  if [[ -n ${BRAINMRI_BASE_IMAGE:-} ]]; then echo "$BRAINMRI_BASE_IMAGE"; return; fi
  local base=localhost/brainmri-base:bookworm
  if ! podman image exists "$base"; then
    command -v mmdebstrap >/dev/null || { log "mmdebstrap is not installed (apt-get install mmdebstrap)"; exit 1; }
    local work
    work=$(mktemp -d)
    log "making the Debian 12 base image from the mirror (mmdebstrap --variant=minbase bookworm)"
    mmdebstrap --quiet --variant=minbase bookworm "$work/base.tar" >&2
    podman import --quiet "$work/base.tar" "$base" >/dev/null
    rm -rf "$work"
  fi
  echo "$base"
}

build() {
  local base start pip_args=()
  base=$(base_image)
  [[ -n ${PIP_INDEX_URL:-} ]] && pip_args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
  if [[ -n ${PIP_CERT:-} && -f $PIP_CERT ]]; then
    pip_args+=(--volume "$PIP_CERT:/run/pip-cert.pem:ro" --build-arg PIP_CERT=/run/pip-cert.pem)
  fi
  start=$(date +%s)
  log "building $image from $base (apt and pip through the host network)"
  podman build --network host --file container/Containerfile --build-arg "BASE=$base" \
    --build-arg "BRAINMRI_TORCH=${BRAINMRI_TORCH:-torch==2.11.0}" "${pip_args[@]}" \
    --tag "$image" --tag localhost/brainmri:latest .
  log "built $image in $(($(date +%s) - start)) s; size $(podman image inspect --format '{{.Size}}' "$image" |
    awk '{printf "%.2f GB", $1 / 1e9}')"
}

run() { podman run --rm --network none --shm-size 1g "$@"; }

test_image() {
  podman image exists "$image" || { log "no image $image: scripts/container.sh build first"; exit 1; }
  log "brainmri version in $image"
  run "$image" version
  [[ $(run --entrypoint id "$image" -u) != 0 ]] || { log "FAIL: the image runs as root"; exit 1; }
  log "the quick start in $image (as its user brainmri)"
  run --entrypoint scripts/quickstart.sh "$image" /tmp/quickstart
  log "container test passed"
}

case ${1:-} in
  build) build ;;
  base) base_image ;;
  test) test_image ;;
  save)
    [[ -n ${2:-} ]] || { echo "usage: scripts/container.sh save FILE" >&2; exit 2; }
    podman save --quiet --format docker-archive --output "$2" "$image"
    ;;
  *)
    echo "usage: scripts/container.sh build|test|base|save FILE" >&2
    exit 2
    ;;
esac
