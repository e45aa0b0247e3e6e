#!/usr/bin/env bash
# Says whether a download of the Kaggle "Brain Tumor MRI Dataset" is the one every result in
# results/ was computed from: the SHA-256 of each of its 5,708 training images is committed in
# data/brain-tumor-mri-training.sha256 (paths relative to the folder that holds Training/).
#
#   scripts/check_dataset.sh DATASET_ROOT [LIST]
#
# DATASET_ROOT is the folder holding Training/ (and Testing/, which the list does not cover: the
# results here were computed without it). Exit 0 when every listed file is there with its hash,
# 1 when a file is missing or differs (each named), 2 for usage. Files under Training/ that the
# list does not name are reported too (they would change a packing of the folder).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[[ $# -ge 1 && $# -le 2 && "$1" != -h && "$1" != --help ]] || usage
root="$1"
list="$(realpath "${2:-$repo/data/brain-tumor-mri-training.sha256}")"
[[ -d "$root/Training" ]] || {
  echo "check_dataset: $root has no Training/ folder; pass the folder that the Kaggle archive unpacks to" >&2
  exit 2
}
[[ -r "$list" ]] || {
  echo "check_dataset: cannot read the hash list $list" >&2
  exit 2
}

cd "$root"
listed=$(wc -l < "$list")
# sha256sum prints "FILE: FAILED" for a differing file and "FILE: FAILED open or read" for a
# missing one; --quiet leaves out the ones that match.
report=$(sha256sum --check --quiet "$list" 2>/dev/null || true)
differing=$(grep -c ': FAILED$' <<< "$report" || true)
missing=$(grep -c ': FAILED open or read$' <<< "$report" || true)
unlisted=$(comm -13 <(cut -c67- "$list" | LC_ALL=C sort) <(find Training -type f | LC_ALL=C sort))

if [[ -n "$report" ]]; then
  head -20 <<< "$report"  # (not a pipe: under pipefail, head closing it early would fail the script)
  (($(wc -l <<< "$report") > 20)) && echo "... ($(wc -l <<< "$report") files in all)"
fi
if [[ -n "$unlisted" ]]; then
  echo "not in the list ($(wc -l <<< "$unlisted") files):"
  head -5 <<< "$unlisted" | sed 's/^/  /'
fi
if ((differing == 0 && missing == 0)); then
  echo "check_dataset: all $listed listed files match ($list)"
  [[ -z "$unlisted" ]] || echo "check_dataset: but Training/ also holds files the list does not name (above)"
  exit 0
fi
echo "check_dataset: $differing of $listed files differ and $missing are missing: this is not the data" \
  "the results were computed from (another version of the Kaggle dataset?)" >&2
exit 1
