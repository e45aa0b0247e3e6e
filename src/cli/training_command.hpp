#pragma once
// What the training commands (train, evaluate, cv, tune) share: the set-up that every rank checks
// before any collective, and the error handling of a job of many ranks. The work itself is in
// the library (brainmri/experiments).

#include <torch/torch.h>

#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "brainmri/common/preemption.hpp"
#include "brainmri/distributed/mpi_environment.hpp"
#include "brainmri/experiments/messages.hpp"
#include "brainmri/experiments/run_config.hpp"
#include "options.hpp"

namespace brainmri::cli {

// The subcommands, each with argv after the command name.
int run_train(int argc, const char* const argv[], const distributed::MpiEnvironment& environment);
int run_evaluate(int argc, const char* const argv[], const distributed::MpiEnvironment& environment);
int run_cv(int argc, const char* const argv[], const distributed::MpiEnvironment& environment);
int run_tune(int argc, const char* const argv[], const distributed::MpiEnvironment& environment);
int run_report(int argc, const char* const argv[]);
int run_export(int argc, const char* const argv[]);
int run_predict(int argc, const char* const argv[]);  // only in builds with OpenCV
int run_serve(int argc, const char* const argv[]);    // only in builds with OpenCV and cpp-httplib

// Ends a command with an exit code after its message was already printed.
struct QuietExit {
  int code;
};

// One write per message: several ranks share the terminal, and std::cerr writes every << alone.
void say_error(const std::string& message);

// The rank's device (distributed::pick_device); a fallback to the CPU on a machine whose GPU is
// unusable is printed on every rank's stderr.
torch::Device choose_device(distributed::DeviceChoice choice, const distributed::MpiEnvironment& environment);

// CPU threads of this rank: `requested`, or with several ranks and 0 its share of the node's cores.
void set_threads(int requested, const distributed::MpiEnvironment& environment);

// The sections of a command's help: General (help, config) first, then the run options.
std::vector<Section> run_option_sections();

// The options of an experiment command (cv, tune): the run's, then the experiment's own table.
template <typename Config>
po::options_description experiment_options(const std::string& title, const std::vector<Option<Config>>& table) {
  auto sections = run_option_sections();
  add_options(sections, table);
  return combined(title, sections);
}

// The parsed, validated and cross-rank-checked configuration of a training command.
struct TrainingSetup {
  experiments::RunConfig config;
  torch::Device device = torch::kCPU;
  bool help = false;
};

// Parses the command line and config file, builds the RunConfig (and, through `build_more`, the
// command's own configuration, returning its part of the resolved config text), validates it,
// installs the preemption handler and picks the device — on every rank, which then agree that
// all succeeded and that every rank has the same configuration; finally sets the CPU threads.
TrainingSetup prepare_training(
    int argc, const char* const argv[], const po::options_description& options,
    const distributed::MpiEnvironment& environment, const std::string& command,
    const std::function<std::string(const po::variables_map&, const experiments::RunConfig&)>& build_more = {});

// Messages of an experiment: results on world rank 0's stdout, progress on stderr.
experiments::Messages console_messages();

// Runs the set-up of a command that may fail on some ranks only (a config file missing on one
// node, a node with fewer GPUs), then lets every rank learn whether all succeeded before any of
// them waits in a collective. A rank whose set-up failed prints its own error unless every rank
// failed (then rank 0 alone does); all ranks then exit with the failure's code.
template <typename Setup>
void agree_on_setup(const distributed::MpiEnvironment& environment, const std::string& command, Setup setup) {
  std::exception_ptr failure;
  try {
    try {
      setup();
    } catch (const ConfigError& e) {
      throw usage_error(e);
    }
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
      say_error(environment.log_prefix() + "brainmri " + command + ": " + std::to_string(failed) +
                " rank(s) failed to start (their errors are above); stopping every rank");
    }
    throw QuietExit{kExitUsage};
  }
  if (environment.rank() == 0 || failed < environment.size()) {
    try {
      std::rethrow_exception(failure);
    } catch (const UsageError& e) {
      say_error(environment.log_prefix() + "brainmri " + command + ": " + e.what());
      throw QuietExit{kExitUsage};
    } catch (const po::error& e) {
      say_error(environment.log_prefix() + "brainmri " + command + ": " + e.what());
      throw QuietExit{kExitUsage};
    } catch (const std::exception& e) {
      say_error(environment.log_prefix() + "brainmri " + command + ": error: " + e.what());
      throw QuietExit{kExitFailure};
    }
  }
  throw QuietExit{kExitUsage};  // every rank failed alike; rank 0 reported it
}

// Runs the part of a command that holds a communicator. In a job of several ranks, a failure
// other than a usage error (which every rank sees alike) is reported with this rank and ends
// the whole job at once: unwinding first would wait on collectives the other ranks never finish.
template <typename Body>
int abort_job_on_failure(const distributed::MpiEnvironment& environment, const std::string& command, Body body) {
  if (environment.size() == 1) return body();
  try {
    return body();
  } catch (const PreemptionRequested&) {
    throw;  // every rank agreed to stop; the checkpoint is written
  } catch (const UsageError&) {
    throw;
  } catch (const ConfigError&) {
    throw;
  } catch (const po::error&) {
    throw;
  } catch (const c10::Error& e) {
    say_error(environment.log_prefix() + "brainmri " + command + ": error: " + e.what_without_backtrace() + "\n" +
              environment.log_prefix() + "aborting the job");
  } catch (const std::exception& e) {
    say_error(environment.log_prefix() + "brainmri " + command + ": error: " + e.what() + "\n" +
              environment.log_prefix() + "aborting the job");
  }
  environment.abort_job(kExitFailure);
}

}  // namespace brainmri::cli
