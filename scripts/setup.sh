#!/usr/bin/env bash
# Installs what brainmri needs (when missing), then configures and builds it. Idempotent: a second
# run only rebuilds what changed.
#
#   scripts/setup.sh [--with-test-tools] [--all-targets] [--no-system-install] [preset]
#
# preset: release (default), debug, asan, gpu-node.
# It builds the programs (brainmri, brainmri-prep: the CMake target `product`), which is what
# scripts/quickstart.sh runs;
# --all-targets        builds every target instead: the test executables and benchmarks too
#                      (scripts/test.sh asks for it).
# --with-test-tools    also the test-only extras: a local Slurm (slurmd, slurmctld, munge), Chromium
#                      and Selenium (serve's page in a browser), shellcheck, clang-format/-tidy, and
#                      the Python oracles (scikit-learn, h5py, safetensors, onnxruntime, ...).
#                      scripts/test.sh asks for them; each of those tests skips, saying why, without.
# --no-system-install  never install system packages (no root, e.g. on a cluster): says exactly what
#                      is missing (Debian/Ubuntu package names and the usual module names) and
#                      builds what the present libraries allow. Same as BRAINMRI_SKIP_INSTALL=1.
#
# Python packages go into a virtual environment, .venv/ (python3 -m venv), never into the system
# Python; CMake takes LibTorch from there. The venv sees the interpreter's own packages
# (--system-site-packages), so a site's torch module or a preinstalled wheel is reused when it is
# the pinned version. The CUDA torch wheel's CMake files need nvcc and cudart even without a GPU:
# where no CUDA toolkit is installed, PyPI's (the version torch was built with) go into .venv/.
#
# Environment: BRAINMRI_TORCH, the torch requirement (default torch==2.11.0, e.g. "torch==2.11.0+cpu");
# BRAINMRI_TORCH_INDEX, a pip index for it (e.g. https://download.pytorch.org/whl/cpu);
# BRAINMRI_PYTHON, the interpreter that makes the venv (default python3); BRAINMRI_CMAKE_ARGS, extra
# configure options (e.g. -DBRAINMRI_WARNINGS_AS_ERRORS=ON).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
with_test_tools=0
build_target=product
system_install=1
[[ "${BRAINMRI_SKIP_INSTALL:-0}" == 1 ]] && system_install=0
preset=release
for argument in "$@"; do
  case $argument in
    --with-test-tools) with_test_tools=1 ;;
    --all-targets) build_target=all ;;
    --no-system-install) system_install=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "setup: unknown option $argument (see scripts/setup.sh --help)" >&2
      exit 2
      ;;
    *) preset=$argument ;;
  esac
done
torch_requirement="${BRAINMRI_TORCH:-torch==2.11.0}"
venv=.venv

log() { printf 'setup: %s\n' "$*" >&2; }

# What the product needs, by feature: "apt packages|module names|CMake option that builds without".
# Required groups have no option.
declare -A feature_packages=(
  [toolchain]="build-essential cmake ninja-build pkg-config git|gcc cmake ninja|"
  [build-cache]="ccache|ccache|"
  [python-venv]="python3-venv|python|"
  [core]="libhdf5-dev hdf5-tools libboost-program-options-dev nlohmann-json3-dev libssl-dev|hdf5 boost nlohmann_json openssl|"
  [log]="libspdlog-dev|spdlog|-DBRAINMRI_WITH_SPDLOG=OFF"
  [mpi]="libopenmpi-dev openmpi-bin|openmpi|"
  [imaging]="libopencv-dev zlib1g-dev libdeflate-dev libturbojpeg0-dev|opencv libjpeg-turbo libdeflate zlib|-DBRAINMRI_WITH_OPENCV=OFF"
  [plots]="libplplot-dev plplot-driver-cairo|plplot|-DBRAINMRI_WITH_PLOTS=OFF"
  [serve]="libcpp-httplib-dev|cpp-httplib|-DBRAINMRI_WITH_SERVE=OFF"
  [unit-tests]="libgtest-dev time|googletest|-DBRAINMRI_BUILD_TESTS=OFF"
)
features=(toolchain build-cache python-venv core log mpi imaging plots serve unit-tests)
# Test-only extras (--with-test-tools): none of them is needed to build or run brainmri.
test_apt_packages=(
  shellcheck                             # tests: the scripts pass shellcheck
  slurmd slurmctld slurm-client munge    # tests: a local Slurm runs the slurm/ job scripts
  clang-format clang-tidy                # tests: the style check (.clang-format, .clang-tidy)
  chromium chromium-driver               # tests: brainmri serve's page in a real browser
)
test_python_packages=(numpy h5py pillow scikit-learn statsmodels "selenium==4.50.0" safetensors onnx onnxruntime tensorboard)

missing_of() {  # the packages of a list that dpkg does not know as installed
  local package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || printf '%s\n' "$package"
  done
}

can_install_system_packages() {
  ((system_install)) && command -v apt-get >/dev/null && { [[ $(id -u) -eq 0 ]] || command -v sudo >/dev/null; }
}

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing $*"
  as_root apt-get update -qq
  # OpenCV's recommended extras (GUI, video) are not needed.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Installs the missing system packages, or (without root / --no-system-install) reports them and
# leaves out the optional features they would enable. Sets cmake_feature_args.
cmake_feature_args=()
system_packages() {
  if ! command -v dpkg-query >/dev/null; then
    log "not a Debian/Ubuntu system: dependencies are left to CMake, which names any that is missing"
    return
  fi
  local all_missing=() feature packages modules disable missing
  local -A missing_by_feature=()  # asked of dpkg once per feature, reported below when not installing
  for feature in "${features[@]}"; do
    IFS='|' read -r packages _ _ <<<"${feature_packages[$feature]}"
    # shellcheck disable=SC2086  # the package list splits on spaces
    missing_by_feature[$feature]=$(missing_of $packages | tr '\n' ' ')
    # shellcheck disable=SC2206  # package names have no spaces or globs
    all_missing+=(${missing_by_feature[$feature]})
  done
  local test_missing=()
  ((with_test_tools)) && mapfile -t test_missing < <(missing_of "${test_apt_packages[@]}")
  if ((${#all_missing[@]} + ${#test_missing[@]} == 0)); then return; fi
  if can_install_system_packages; then
    apt_install "${all_missing[@]}" "${test_missing[@]}"
    return
  fi
  local reason="--no-system-install"
  ((system_install)) && reason="not root and no sudo"
  log "not installing system packages ($reason). Missing:"
  local required_missing=0
  for feature in "${features[@]}"; do
    IFS='|' read -r _ modules disable <<<"${feature_packages[$feature]}"
    # shellcheck disable=SC2206
    missing=(${missing_by_feature[$feature]})
    ((${#missing[@]})) || continue
    if [[ -n $disable ]]; then
      log "  $feature (optional; building without it: $disable): apt ${missing[*]}; modules: $modules"
      cmake_feature_args+=("$disable")
    else
      log "  $feature (required): apt ${missing[*]}; modules: $modules"
      required_missing=1
    fi
  done
  ((${#test_missing[@]})) && log "  test tools (their tests will skip): apt ${test_missing[*]}"
  if ((required_missing)); then
    log "ask your administrator for the packages above, or load the modules (module load ...) and run"
    log "again with --no-system-install; a module system's libraries are not visible to dpkg, so CMake"
    log "makes the final check and names anything it still cannot find."
    if ((system_install)); then exit 1; fi
    cmake_feature_args=()  # modules may provide them; let CMake decide
  fi
}

python_environment() {
  local python=${BRAINMRI_PYTHON:-python3}
  if [[ ! -x $venv/bin/python ]]; then
    log "creating the Python virtual environment $venv ($("$python" --version 2>&1))"
    "$python" -m venv --system-site-packages "$venv" || {
      log "python3 -m venv failed: install python3-venv (Debian/Ubuntu) or load a Python module"
      exit 1
    }
  fi
  local wanted=("$torch_requirement")
  ((with_test_tools)) && wanted+=("${test_python_packages[@]}")
  if "$venv/bin/python" - "${wanted[@]}" <<'PY' 2>/dev/null; then return; fi
import sys
from importlib.metadata import version
from pip._vendor.packaging.requirements import Requirement  # pip is in every venv
for text in sys.argv[1:]:
    requirement = Requirement(text)
    assert requirement.specifier.contains(version(requirement.name), prereleases=True), text
PY
  local index=()
  [[ -n ${BRAINMRI_TORCH_INDEX:-} ]] && index=(--extra-index-url "$BRAINMRI_TORCH_INDEX")
  log "installing ${wanted[*]} into $venv (the torch wheel is large; this takes a while once)"
  "$venv/bin/python" -m pip install --quiet "${index[@]}" "${wanted[@]}"
}

# LibTorch's CMake files, in a CUDA build of torch (PyPI's Linux wheels), configure CUDA even for
# code without kernels: they need the CUDA toolkit (nvcc, cudart), not a GPU or its driver. Without
# one, the toolkit's own wheels from PyPI (cuda-toolkit, the version torch was built with) go into
# the venv and CMake is pointed at them. Sets cmake_cuda_args.
cmake_cuda_args=()
cuda_toolkit() {
  local torch_cuda toolkit_version root
  torch_cuda=$("$venv/bin/python" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null) || return 0
  [[ -n $torch_cuda ]] || return 0
  command -v nvcc >/dev/null && return 0
  [[ -x ${CUDA_HOME:-/usr/local/cuda}/bin/nvcc ]] && return 0
  toolkit_version=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("cuda-toolkit"))' \
    2>/dev/null) || toolkit_version=""
  if [[ -z $toolkit_version ]]; then
    log "the torch wheel is a CUDA $torch_cuda build, and LibTorch's CMake files need the CUDA $torch_cuda"
    log "toolkit (nvcc and cudart; no GPU or driver needed) to configure: install it from NVIDIA's"
    log "repository, or module load cuda/$torch_cuda, or set CUDA_HOME to it"
    exit 1
  fi
  local where_wheels='import nvidia.cu13; print(list(nvidia.cu13.__path__)[0])'
  root=$("$venv/bin/python" -c "$where_wheels" 2>/dev/null) || root=""
  if [[ ! -x $root/bin/nvcc ]]; then
    log "no CUDA toolkit here: installing nvcc and cudart $toolkit_version from PyPI into $venv (LibTorch's CMake files need them)"
    "$venv/bin/python" -m pip install --quiet "cuda-toolkit[nvcc,cudart,crt,cccl,nvvm]==$toolkit_version"
    root=$("$venv/bin/python" -c "$where_wheels" 2>/dev/null) ||
      { log "the CUDA wheels are not laid out as nvidia/cu13 (a CUDA 12 torch?): install the CUDA toolkit instead"; exit 1; }
  fi
  # nvcc looks for its libraries in lib64, and CMake's FindCUDAToolkit for unversioned names.
  [[ -e $root/lib64 ]] || ln -s lib "$root/lib64"
  local library
  for library in "$root"/lib/lib*.so.*; do
    [[ -e ${library%%.so.*}.so ]] || ln -s "$(basename "$library")" "${library%%.so.*}.so"
  done
  cmake_cuda_args=(-DCUDA_TOOLKIT_ROOT_DIR="$root" -DCMAKE_CUDA_COMPILER="$root/bin/nvcc"
                   "-DCMAKE_CUDA_FLAGS=--cudart=shared --cudadevrt=none")
}

configure() {
  log "configuring (preset ${preset})"
  # BRAINMRI_CMAKE_ARGS: extra configure options (CI sets -DBRAINMRI_WARNINGS_AS_ERRORS=ON).
  # shellcheck disable=SC2086  # word splitting of the options is intended
  cmake --preset "$preset" -DPython3_EXECUTABLE="$PWD/$venv/bin/python" "${cmake_feature_args[@]}" \
    "${cmake_cuda_args[@]}" ${BRAINMRI_CMAKE_ARGS:-} >/dev/null
}

build() {
  local jobs
  jobs=$(nproc 2>/dev/null || echo 2)
  log "building target '$build_target' with ${jobs} jobs"
  cmake --build --preset "$preset" -j "$jobs" --target "$build_target"
}

python_packages() { python_environment; cuda_toolkit; }

# shellcheck source=scripts/phases.sh
source scripts/phases.sh
phases_open
phase "system packages" system_packages
phase "Python/torch" python_packages
phase "configure" configure
phase "build" build
log "done: binaries in build/${preset}; Python tools: source $venv/bin/activate"
