#!/usr/bin/env bash
# The README's two commands, exactly as written, on a bare Debian 12 machine: a container made from
# the minbase image that scripts/container.sh builds from the Debian mirror, holding nothing but a
# clean clone of this checkout's HEAD (streamed in, as CI clones it) and ../shared (read-only)
# beside it. Both commands print their phase times; this script repeats them at the end.
#
#   scripts/fresh_machine_check.sh [--log FILE] [--only quickstart|test] [--commit REV]
#
# --log FILE    the whole output (default: out/fresh_machine_check.log)
# --only X      run one of the two commands (default: scripts/quickstart.sh, then scripts/test.sh)
# --commit REV  check another commit, e.g. an older one for a before/after comparison (default: HEAD)
#
# It checks committed work: commit first. Each command's wall-clock time is printed after it. The container runs as root with a fresh machine's privileges
# (--privileged: the tests start Slurm's daemons) and reaches the package registries through the
# host's network; pip's index and certificate settings (PIP_INDEX_URL, PIP_CERT) reach it, nothing
# else of the host. Needs podman and mmdebstrap (apt-get install podman mmdebstrap);
# BRAINMRI_PODMAN_VM=1 as for scripts/container.sh. It takes a fresh machine's time: about an hour
# on 2 cores. Exit status: 0 when both commands passed, 1 otherwise, 2 for usage, 77 without podman.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log_file=out/fresh_machine_check.log
commands=(scripts/quickstart.sh scripts/test.sh)
commit=HEAD
while (($#)); do
  case $1 in
    --log) log_file=${2:?--log needs a file}; shift 2 ;;
    --commit) commit=${2:?--commit needs a revision}; shift 2 ;;
    --only)
      case ${2:-} in
        quickstart | test) commands=("scripts/$2.sh"); shift 2 ;;
        *) echo "fresh_machine_check: --only takes quickstart or test" >&2; exit 2 ;;
      esac
      ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh_machine_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v podman >/dev/null || { echo "fresh_machine_check: podman is not installed (apt-get install podman mmdebstrap)" >&2; exit 77; }
[[ -d ../shared ]] || { echo "fresh_machine_check: ../shared is missing beside the checkout" >&2; exit 1; }
[[ ${BRAINMRI_PODMAN_VM:-0} == 1 ]] && export CONTAINERS_CONF=$PWD/container/containers-vm.conf
revision=$(git rev-parse --verify --short "$commit^{commit}") ||
  { echo "fresh_machine_check: $commit is not a commit" >&2; exit 2; }
[[ $commit != HEAD || -z $(git status --porcelain --untracked-files=no) ]] ||
  echo "fresh_machine_check: uncommitted changes are not checked (it clones HEAD, $revision)" >&2

base=$(scripts/container.sh base)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --no-hardlinks . "$work/brainmri"
git -C "$work/brainmri" checkout --quiet --detach "$revision"

pip_settings=()
[[ -n ${PIP_INDEX_URL:-} ]] && pip_settings+=(--env "PIP_INDEX_URL=$PIP_INDEX_URL")
if [[ -n ${PIP_CERT:-} && -f $PIP_CERT ]]; then
  pip_settings+=(--volume "$PIP_CERT:/run/pip-cert.pem:ro" --env PIP_CERT=/run/pip-cert.pem)
fi

# In the container: unpack the clone beside ../shared, then each command in turn (both run even
# when the first fails); the exit status says whether all passed.
# shellcheck disable=SC2016  # expanded in the container
inside='set -u; mkdir -p /work && tar -x -C /work && cd /work/brainmri || exit 1
status=0
for command in "$@"; do
  echo "== fresh machine: $command"
  started=$SECONDS
  "$command" || { echo "== fresh machine: $command FAILED (exit $?)"; status=1; }
  seconds=$((SECONDS - started))
  printf "== fresh machine: %s took %dm%02ds\n" "$command" $((seconds / 60)) $((seconds % 60))
done
exit $status'

mkdir -p "$(dirname "$log_file")"
echo "fresh_machine_check: ${commands[*]} in a bare $base container at $revision; log: $log_file" >&2
status=0
tar -C "$work" -c brainmri |
  podman run --rm -i --privileged --network host --shm-size 4g --volume "$(realpath ../shared):/work/shared:ro" \
    "${pip_settings[@]}" "$base" bash -c "$inside" bash "${commands[@]}" >"$log_file" 2>&1 || status=1

# The phase tables, each after the name of its command.
grep -E '^== fresh machine:|^Phase times|^  [^ ].* [0-9]+m[0-9]{2}s$' "$log_file" >&2 || true
if ((status)); then
  echo "fresh_machine_check: FAILED (see $log_file)" >&2
  exit 1
fi
echo "fresh_machine_check: passed" >&2
