#!/usr/bin/env bash
# The project's own C++ files follow .clang-format, and the sources that do not include LibTorch
# pass .clang-tidy's checks (parsing <torch/torch.h> for each file would take longer than the
# build). Exit 77 (skipped) where the tools are missing: scripts/setup.sh --with-test-tools.
#
#   check_style.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
source_dir=$1 build_dir=$2
cd "$source_dir" || exit 2
for tool in clang-format clang-tidy run-clang-tidy git python3; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool is not installed"; exit 77; }
done
status=0
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.hpp.in')
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "FAIL: clang-format would change the files above (run: clang-format -i \$(git ls-files '*.cpp' '*.hpp'))"
  status=1
fi
# The Torch-free libraries and the packer, on every core (run-clang-tidy keeps each file's output
# together).
mapfile -t tidy_files < <(git ls-files 'src/common/*.cpp' 'src/data/hdf5.cpp' 'src/data/manifest.cpp' \
  'src/data/shard_file.cpp' 'src/data/folds.cpp' 'src/metrics/*.cpp' 'src/evaluation/*.cpp' 'src/imaging/*.cpp' 'data_prep/*.cpp')
# Their compile commands: the build's compile_commands.json names the unity sources that include
# them (CMAKE_UNITY_BUILD), and a file's own command is its unity source's with the file in its place.
tidy_database=$(mktemp -d)
trap 'rm -rf "$tidy_database"' EXIT
python3 - "$build_dir/compile_commands.json" "$tidy_database/compile_commands.json" "${tidy_files[@]/#/$PWD/}" <<'PY'
import json, re, sys
entries, wanted = json.load(open(sys.argv[1])), set(sys.argv[3:])
commands = []
for entry in entries:
    unity = re.search(r"/Unity/unity_[^/]*$", entry["file"])
    for source in re.findall(r'#include "([^"]+)"', open(entry["file"]).read()) if unity else [entry["file"]]:
        if source in wanted:
            commands.append(dict(entry, file=source, command=entry["command"].replace(entry["file"], source)))
missing = wanted - {c["file"] for c in commands}
if missing:
    sys.exit("no compile command for " + ", ".join(sorted(missing)))
json.dump(commands, open(sys.argv[2], "w"))
PY
if ! run-clang-tidy -p "$tidy_database" -j "$(nproc 2>/dev/null || echo 2)" -quiet \
  -extra-arg=-Wno-unknown-warning-option >"$tidy_database/output" 2>&1; then
  grep -v "^clang-tidy\|warnings generated\|^Suppressed\|^Use -header-filter" "$tidy_database/output"
  echo "FAIL: clang-tidy found the problems above"
  status=1
fi
[[ $status == 0 ]] && echo "style: ${#files[@]} files formatted, ${#tidy_files[@]} files pass clang-tidy"
exit "$status"
