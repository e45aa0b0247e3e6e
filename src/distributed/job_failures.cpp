#include "brainmri/distributed/job_failures.hpp"

#include <stdexcept>

namespace brainmri::distributed {

int end_with_failure(const MpiEnvironment* environment, const FailureReport& report, const Say& say) {
  const bool several = environment != nullptr && environment->size() > 1;
  if (!several || !report.same_on_every_rank || environment->rank() == 0) say(report.message);
  if (several && !report.same_on_every_rank) {
    say("aborting the job");
    environment->abort_job(report.exit_code);
  }
  return report.exit_code;
}

void agree_on_setup(const MpiEnvironment& environment, const std::function<void()>& setup,
                    const DescribeFailure& describe, const Say& say) {
  std::exception_ptr failure;
  try {
    setup();
  } catch (...) {
    failure = std::current_exception();
  }
  const int failed = environment.count_failures(failure != nullptr);
  if (environment.size() == 1 || failed == 0) {
    if (failure) std::rethrow_exception(failure);
    return;
  }
  if (!failure) {
    if (environment.rank() == 0) {
      say(std::to_string(failed) + " rank(s) failed to start (their errors are above); stopping every rank");
    }
    throw JobExit{2};
  }
  const auto report = describe(failure);
  // When every rank failed, they failed alike: rank 0 speaks for them.
  if (environment.rank() == 0 || failed < environment.size()) say(report.message);
  throw JobExit{report.exit_code};
}

int run_or_abort_job(const MpiEnvironment& environment, const std::function<int()>& body,
                     const DescribeFailure& describe, const Say& say) {
  if (environment.size() == 1) return body();
  try {
    return body();
  } catch (const JobExit&) {
    throw;
  } catch (...) {
    const auto report = describe(std::current_exception());
    if (report.same_on_every_rank) throw;
    return end_with_failure(&environment, report, say);
  }
}

}  // namespace brainmri::distributed
