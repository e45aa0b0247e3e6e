#!/usr/bin/env bash
# Installs what brainmri needs (when missing), then configures and builds it.
# Idempotent: a second run only rebuilds what changed.
#
#   scripts/setup.sh [preset]      preset: release (default), debug, asan, gpu-node
#
# Environment: BRAINMRI_SKIP_INSTALL=1 skips the package installation (e.g. on a cluster where
# modules provide the dependencies); BRAINMRI_TORCH_VERSION overrides the pinned torch wheel;
# BRAINMRI_CMAKE_ARGS adds configure options (e.g. -DBRAINMRI_WARNINGS_AS_ERRORS=ON).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset="${1:-release}"
torch_version="${BRAINMRI_TORCH_VERSION:-2.11.0}"

apt_packages=(
  build-essential cmake ninja-build ccache pkg-config git time
  libopencv-dev libhdf5-dev hdf5-tools libboost-program-options-dev
  libopenmpi-dev openmpi-bin nlohmann-json3-dev libssl-dev zlib1g-dev libdeflate-dev libturbojpeg0-dev libgtest-dev
  libplplot-dev plplot-driver-cairo
  libcpp-httplib-dev                             # brainmri serve
  shellcheck slurmd slurmctld slurm-client munge  # tests: a local Slurm runs the slurm/ job scripts
  clang-format clang-tidy                         # tests: the style check (.clang-format, .clang-tidy)
  chromium chromium-driver                        # tests: brainmri serve's page in a real browser
)
python_packages=("torch==${torch_version}" numpy h5py pillow scikit-learn "selenium==4.50.0" safetensors onnx onnxruntime)

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; exit 1
  fi
}

install_system_packages() {
  local missing=()
  for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null; then
      log "missing packages (${missing[*]}) and no apt-get; install them or set BRAINMRI_SKIP_INSTALL=1"
      exit 1
    fi
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    # OpenCV's recommended extras (GUI, video) are not needed.
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_python_packages() {
  if python3 - "$torch_version" <<'PY' 2>/dev/null; then return; fi
import sys, importlib
import torch
assert torch.__version__.split("+")[0] == sys.argv[1], torch.__version__
for name in ("numpy", "h5py", "PIL", "sklearn", "selenium", "safetensors", "onnx", "onnxruntime"):
    importlib.import_module(name)
PY
  log "installing ${python_packages[*]} (the torch wheel is large; this takes a while once)"
  python3 -m pip install --quiet "${python_packages[@]}"
}

if [[ "${BRAINMRI_SKIP_INSTALL:-0}" != 1 ]]; then
  install_system_packages
  install_python_packages
fi

jobs=$(nproc 2>/dev/null || echo 2)
log "configuring (preset ${preset})"
# BRAINMRI_CMAKE_ARGS: extra configure options (CI sets -DBRAINMRI_WARNINGS_AS_ERRORS=ON).
# shellcheck disable=SC2086  # word splitting of the options is intended
cmake --preset "$preset" ${BRAINMRI_CMAKE_ARGS:-} >/dev/null
log "building with ${jobs} jobs"
cmake --build --preset "$preset" -j "$jobs"
log "done: binaries in build/${preset}"
