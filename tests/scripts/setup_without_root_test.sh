#!/usr/bin/env bash
# scripts/setup.sh for a user without root: it must name what is missing (apt package and module
# names), build without the optional features whose libraries are missing, and stop only when a
# required one is missing. Runs setup.sh with shims on PATH: `id` says uid 1000, `dpkg-query`
# reports the packages in $MISSING as not installed, `cmake` records its arguments instead of
# building (the real build is the rest of the suite's business).
#
#   setup_without_root_test.sh SOURCE_DIR
set -euo pipefail
source_dir=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir "$work/shims"
cat >"$work/shims/id" <<'SH'
#!/usr/bin/env bash
echo 1000
SH
cat >"$work/shims/dpkg-query" <<'SH'
#!/usr/bin/env bash
package=${!#}
for missing in $MISSING; do [[ $package == "$missing" ]] && exit 1; done
echo "install ok installed"
SH
cat >"$work/shims/cmake" <<'SH'
#!/usr/bin/env bash
echo "$*" >>"$CMAKE_LOG"
SH
chmod +x "$work/shims/"*
# apt-get and sudo must not be reachable: the shims directory has neither, and the real PATH's
# apt-get is hidden by one that fails loudly.
cat >"$work/shims/apt-get" <<'SH'
#!/usr/bin/env bash
echo "apt-get was called: $*" >&2; exit 99
SH
chmod +x "$work/shims/apt-get"
command -v sudo >/dev/null && { echo "SKIPPED: sudo is installed here, so 'no root' cannot be simulated"; exit 77; }

run_setup() {  # MISSING, then setup.sh's arguments; output in $work/out, status in $status
  : >"$work/cmake.log"
  set +e
  MISSING=$1 CMAKE_LOG=$work/cmake.log PATH="$work/shims:$PATH" "$source_dir/scripts/setup.sh" "${@:2}" >"$work/out" 2>&1
  status=$?
  set -e
}

# Optional features missing: named with their apt packages and modules, built without.
run_setup "libplplot-dev libcpp-httplib-dev libspdlog-dev" release
((status == 0)) || { cat "$work/out"; fail "setup stopped although only optional packages were missing"; }
grep -q "not root and no sudo" "$work/out" || fail "the reason for not installing is not given"
grep -q "plots (optional; building without it: -DBRAINMRI_WITH_PLOTS=OFF): apt libplplot-dev; modules: plplot" \
  "$work/out" || { cat "$work/out"; fail "missing PLplot not reported with its package and module"; }
grep -q "serve (optional.*libcpp-httplib-dev" "$work/out" || fail "missing cpp-httplib not reported"
grep -q "log (optional.*libspdlog-dev; modules: spdlog" "$work/out" || fail "missing spdlog not reported"
grep -q -- "--preset release .*-DBRAINMRI_WITH_SPDLOG=OFF -DBRAINMRI_WITH_PLOTS=OFF -DBRAINMRI_WITH_SERVE=OFF" "$work/cmake.log" ||
  { cat "$work/cmake.log"; fail "cmake was not configured without the missing features"; }
grep -q -- "-DPython3_EXECUTABLE=.*/.venv/bin/python" "$work/cmake.log" || fail "cmake does not take the venv's Python"
# It builds the programs alone (what the quick start runs); --all-targets the tests too. The phase
# times come at the end.
grep -q -- "--build --preset release -j [0-9]* --target product$" "$work/cmake.log" ||
  { cat "$work/cmake.log"; fail "setup did not build the 'product' target alone"; }
grep -A6 "^Phase times (wall clock):" "$work/out" | grep -q "^  configure .*0m0[0-9]s$" ||
  { cat "$work/out"; fail "setup printed no phase times"; }
run_setup "" --all-targets release
grep -q -- "--build --preset release -j [0-9]* --target all$" "$work/cmake.log" ||
  { cat "$work/cmake.log"; fail "setup --all-targets did not build every target"; }

# A required library missing: setup stops with the exact list, before configuring.
run_setup "libhdf5-dev" release
((status == 1)) || fail "setup went on (status $status) although HDF5 is missing"
grep -q "core (required): apt libhdf5-dev; modules: hdf5" "$work/out" || { cat "$work/out"; fail "HDF5 not named"; }
[[ ! -s $work/cmake.log ]] || fail "cmake ran although a required package is missing"

# --no-system-install: modules may provide what dpkg does not see, so CMake makes the final check.
run_setup "libhdf5-dev" --no-system-install release
((status == 0)) || fail "--no-system-install stopped before CMake could look for module-provided libraries"
grep -q -- "--no-system-install" "$work/out" || fail "the reason for not installing is not given"

# The test tools are asked for only with --with-test-tools, and never installed here.
run_setup "shellcheck chromium" release
grep -q "test tools" "$work/out" && fail "test tools reported without --with-test-tools"
run_setup "shellcheck chromium" --with-test-tools release
grep -q "test tools (their tests will skip): apt shellcheck chromium" "$work/out" || { cat "$work/out"; fail "missing test tools not named"; }
echo "setup without root: OK"
