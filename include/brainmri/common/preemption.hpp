#pragma once
// Preemption: a scheduler (Slurm's --signal=B:USR1@180, forwarded to every task by the job
// script) announces that the job will be stopped. The handler only raises a flag; training
// notices it at its next step boundary, agrees with the other ranks that everyone stops, writes
// a checkpoint and throws PreemptionRequested, which the CLI turns into exit code
// kExitPreempted so that the job script requeues the job; the rerun continues from the
// checkpoint exactly.
//
// SIGUSR1 by default, not SIGTERM: NCCL, Open MPI and Slurm's own shutdown use SIGTERM, and a
// training that treated it as "checkpoint and go on" would outlive its time limit.

#include <csignal>
#include <stdexcept>
#include <string>

namespace brainmri {

// EX_TEMPFAIL of sysexits.h: "try again later" — the job scripts requeue on it.
inline constexpr int kExitPreempted = 75;

class PreemptionRequested : public std::runtime_error {
 public:
  PreemptionRequested()
      : std::runtime_error("stopped for preemption; the checkpoint is written, rerun the same command to continue") {}
};

// Installs the handler for `signal_name` ("USR1", "USR2", "TERM", "INT", with or without "SIG";
// "none": no signal means preemption), restoring the default action of the signal handled before.
// Throws std::invalid_argument for another name.
void install_preemption_handler(const std::string& signal_name);
// True once the signal arrived in this process (or request_preemption() was called).
bool preemption_requested();
void request_preemption();  // as if the signal had arrived (tests, and a rank told by another)
void clear_preemption_request();

}  // namespace brainmri
