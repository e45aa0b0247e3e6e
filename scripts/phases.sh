# shellcheck shell=bash
# Wall-clock phase times for scripts/setup.sh, quickstart.sh and test.sh (sourced, not run).
#
# The outermost script opens the record and prints it when it exits; a script it runs through
# phases_share (setup.sh from quickstart.sh) adds its phases to the same record, so one table at
# the end shows system packages, Python/torch, configure, build and run together. Other children
# (the tests, which run setup.sh themselves) do not see the record.
#
#   source scripts/phases.sh
#   phases_open                      # once, at the top
#   phase "build" cmake --build ...  # runs the command (a function too) and records its time
#   phases_share scripts/setup.sh    # runs a script that records its own phases here
#   phases_close                     # prints the table now (before an exec); else it comes at exit

_phases_owner=0
_phase_running=""  # the phase under way: on exit (a failure, under set -e) it is recorded as stopped

phases_open() {
  if [[ -n ${BRAINMRI_PHASE_LOG:-} && -w ${BRAINMRI_PHASE_LOG} ]]; then
    trap '_phase_stopped' EXIT
    return
  fi
  BRAINMRI_PHASE_LOG=$(mktemp "${TMPDIR:-/tmp}/brainmri-phases.XXXXXX")
  export -n BRAINMRI_PHASE_LOG  # given by phases_share only
  _phases_owner=1
  _phases_started=$SECONDS
  trap '_phases_report $?' EXIT
}

phase() {
  _phase_running=$1
  _phase_started=$SECONDS
  shift
  "$@"
  printf '%s\t%d\n' "$_phase_running" $((SECONDS - _phase_started)) >>"$BRAINMRI_PHASE_LOG"
  _phase_running=""
}

_phase_stopped() {
  [[ -n $_phase_running ]] || return 0
  printf '%s (stopped)\t%d\n' "$_phase_running" $((SECONDS - _phase_started)) >>"$BRAINMRI_PHASE_LOG"
  _phase_running=""
}

phases_share() { BRAINMRI_PHASE_LOG=$BRAINMRI_PHASE_LOG "$@"; }

phases_close() {
  ((_phases_owner)) || return 0
  trap - EXIT
  _phases_report 0
}

_phases_minutes() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

_phases_report() {
  local status=$1 name seconds
  _phase_stopped
  {
    echo
    if ((status == 0)); then
      echo "Phase times (wall clock):"
    else
      echo "Phase times (wall clock; stopped with exit status $status):"
    fi
    while IFS=$'\t' read -r name seconds; do
      printf '  %-18s %9s\n' "$name" "$(_phases_minutes "$seconds")"
    done <"$BRAINMRI_PHASE_LOG"
    printf '  %-18s %9s\n' "total" "$(_phases_minutes $((SECONDS - _phases_started)))"
  } >&2
  rm -f "$BRAINMRI_PHASE_LOG"
  _phases_owner=0
}
