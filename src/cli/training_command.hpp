#pragma once
// What the training commands (train, evaluate, cv, tune) share: the set-up that every rank checks
// before any collective, and the error handling of a job of many ranks. The work itself is in
// the library (brainmri/experiments).

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "brainmri/distributed/job_failures.hpp"
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
int run_summarize(const std::string& command, int argc, const char* const argv[]);  // cv or tune
int run_export(int argc, const char* const argv[]);
int run_predict(int argc, const char* const argv[]);  // only in builds with OpenCV
int run_serve(int argc, const char* const argv[]);    // only in builds with OpenCV and cpp-httplib

// One write per message: several ranks share the terminal, and std::cerr writes every << alone.
void say_error(const std::string& message);

// The message and exit code of an exception of `brainmri COMMAND`: 2 for usage errors (with a
// pointer to --help), 75 for a preemption, 1 for any other error.
distributed::DescribeFailure describe_failure(const std::string& command);

// distributed::agree_on_setup and run_or_abort_job with this command's messages on stderr.
void agree_on_setup(const distributed::MpiEnvironment& environment, const std::string& command,
                    const std::function<void()>& setup);
int run_or_abort_job(const distributed::MpiEnvironment& environment, const std::string& command,
                     const std::function<int()>& body);

// The rank's device (distributed::pick_device); a fallback to the CPU on a machine whose GPU is
// unusable is printed on every rank's stderr.
torch::Device choose_device(distributed::DeviceChoice choice, const distributed::MpiEnvironment& environment);
torch::Device choose_device(distributed::DeviceChoice choice);  // a command of one process

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

}  // namespace brainmri::cli
