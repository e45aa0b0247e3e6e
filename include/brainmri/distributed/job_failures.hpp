#pragma once
// How a job of many ranks ends on an error. A usage error (a bad option, a config file) is the
// same on every rank, because every rank parses the same command line: rank 0 alone reports it
// and every rank exits. Any other error belongs to the rank that met it: that rank reports it
// with its rank and ends the whole job at once, because unwinding would wait in collectives the
// other ranks never finish. Set-up that can fail on some ranks only (a config file missing on
// one node, a node with fewer GPUs) is agreed on before any rank enters a collective.

#include <exception>
#include <functional>
#include <string>

#include "brainmri/distributed/mpi_environment.hpp"

namespace brainmri::distributed {

// What the command says about a failure, and the exit code it ends with.
struct FailureReport {
  std::string message;
  int exit_code = 1;
  bool same_on_every_rank = false;  // a usage error, or a preemption every rank agreed on
};

// The command's description of an exception (it knows its own error types).
using DescribeFailure = std::function<FailureReport(const std::exception_ptr&)>;
using Say = std::function<void(const std::string& line)>;

// Thrown once the failure was reported: the command ends with this exit code and prints nothing.
struct JobExit {
  int code;
};

// Prints `report` as its job should (see above) and returns the exit code; a rank's own failure
// in a job of several ranks does not return: it aborts the job. `environment` may be null (a
// command without MPI).
int end_with_failure(const MpiEnvironment* environment, const FailureReport& report, const Say& say);

// Runs `setup` on every rank, then every rank learns whether all succeeded. If all did, returns.
// With one rank, rethrows its failure. With several, throws JobExit on every rank once the
// failures are reported: each failed rank reports its own (rank 0 alone when every rank failed
// alike), and rank 0 of the others says how many ranks failed.
void agree_on_setup(const MpiEnvironment& environment, const std::function<void()>& setup,
                    const DescribeFailure& describe, const Say& say);

// Runs the part of a command that holds a communicator. In a job of several ranks a failure that
// is not the same on every rank is reported by end_with_failure (aborting the job); the others
// propagate.
int run_or_abort_job(const MpiEnvironment& environment, const std::function<int()>& body,
                     const DescribeFailure& describe, const Say& say);

}  // namespace brainmri::distributed
