#!/usr/bin/env bash
# The project's own C++ files follow .clang-format, and the sources that do not include LibTorch
# pass .clang-tidy's checks (parsing <torch/torch.h> for each file would take longer than the
# build). Exit 77 (skipped) where the tools are missing: scripts/setup.sh --with-test-tools.
#
#   check_style.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
source_dir=$1 build_dir=$2
cd "$source_dir" || exit 2
for tool in clang-format clang-tidy git; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool is not installed"; exit 77; }
done
status=0
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.hpp.in')
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "FAIL: clang-format would change the files above (run: clang-format -i \$(git ls-files '*.cpp' '*.hpp'))"
  status=1
fi
# The Torch-free libraries and the packer (compile_commands.json comes with the build).
mapfile -t tidy_files < <(git ls-files 'src/common/*.cpp' 'src/data/hdf5.cpp' 'src/data/manifest.cpp' \
  'src/data/shard_file.cpp' 'src/data/folds.cpp' 'src/metrics/*.cpp' 'src/evaluation/*.cpp' 'src/imaging/*.cpp' 'data_prep/*.cpp')
if ! clang-tidy -p "$build_dir" --quiet --extra-arg=-Wno-unknown-warning-option "${tidy_files[@]}"; then
  echo "FAIL: clang-tidy found the problems above"
  status=1
fi
[[ $status == 0 ]] && echo "style: ${#files[@]} files formatted, ${#tidy_files[@]} files pass clang-tidy"
exit "$status"
