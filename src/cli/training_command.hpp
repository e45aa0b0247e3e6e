#pragma once
// What the training commands (train, cv, tune) share: their options, a set-up that every rank
// checks before any collective, one training run on a communicator, and the error handling of a
// job of many ranks.

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "brainmri/common/preemption.hpp"
#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/mpi_environment.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/training/trainer.hpp"
#include "options.hpp"

namespace brainmri::cli {

namespace fs = std::filesystem;
using nlohmann::json;

// The subcommands, each with argv after the command name.
int run_train(int argc, const char* const argv[], const distributed::MpiEnvironment& environment);
int run_evaluate(int argc, const char* const argv[], const distributed::MpiEnvironment& environment);
int run_cv(int argc, const char* const argv[], const distributed::MpiEnvironment& environment);
int run_tune(int argc, const char* const argv[], const distributed::MpiEnvironment& environment);
int run_report(int argc, const char* const argv[]);
int run_predict(int argc, const char* const argv[]);  // only in builds with OpenCV
int run_serve(int argc, const char* const argv[]);    // only in builds with OpenCV and cpp-httplib

std::vector<int> parse_int_list(const std::string& text);  // "0,2,4"; UsageError otherwise

// Options of the experiment commands (cv, tune): --ranks-per-job divides the ranks and
// --max-retries >= 0; and the validation folds that --folds names ("all" or a list), each once and
// within the dataset's folds. UsageError otherwise.
void check_job_options(const po::variables_map& vm, const distributed::MpiEnvironment& environment);
std::vector<int> selected_folds(const std::string& wanted, const data::ShardedDataset& dataset);
torch::Device pick_device(const std::string& name, const distributed::MpiEnvironment& environment);
void set_threads(int requested, const distributed::MpiEnvironment& environment);
int threads_option(const po::variables_map& vm);

// Console output of rank 0 only, unless --log-all-ranks; then every line carries its rank.
class Console {
 public:
  Console(const distributed::MpiEnvironment& environment, bool all_ranks)
      : enabled_(environment.rank() == 0 || all_ranks), prefix_(environment.log_prefix()) {}
  void line(const std::string& text) const {
    if (enabled_) std::cout << prefix_ << text << std::endl;
  }
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  std::string prefix_;
};

std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>> select_samples(const data::ShardedDataset& dataset,
                                                                              int val_fold, const std::string& val_split);
std::string format_epoch(const training::EpochRecord& r);
// Writes RUN/report as `brainmri report RUN` does (tables only where PLplot is missing, saying how
// to get the figures); a failure is reported, not thrown: the run itself succeeded.
// The run's report (docs/reports.md), as `brainmri report` writes it, unless --report false; the
// explanation check (unless --explanation-check false or `check_explanations` false) trains on
// `device`.
void write_run_report(const fs::path& run_directory, const po::variables_map& vm, const torch::Device& device,
                      bool check_explanations = true);
// The model the options describe, for images and classes of `dataset` (untrained, unfrozen).
models::ClassifierPtr create_model(const po::variables_map& vm, const data::ShardedDataset& dataset);
po::options_description train_options();

// One stage of a run: the options it trains with and what of the backbone trains (unset: as
// the previous stage left it).
struct TrainingStage {
  training::TrainOptions options;
  std::optional<int> trainable_blocks;
  std::string trainable_from;  // non-empty: train from this layer or block on
};
// The stages the options describe: the `stage` list, or the first stage (trainable-blocks, lr,
// epochs, ...) and, when finetune-epochs > 0, a "finetune" stage. `base` holds the options every
// stage starts from. Throws UsageError for a malformed stage.
std::vector<TrainingStage> training_stages(const po::variables_map& vm, const training::TrainOptions& base);
training::TrainOptions trainer_options(const po::variables_map& vm, const fs::path& output);

// Ends a command with an exit code after its message was already printed.
struct QuietExit {
  int code;
};

// One write per message: several ranks share the terminal, and std::cerr writes every << alone.
void say_error(const std::string& message);

// Runs the set-up of a command that may fail on some ranks only (a config file missing on one
// node, a node with fewer GPUs), then lets every rank learn whether all succeeded before any of
// them waits in a collective. A rank whose set-up failed prints its own error unless every rank
// failed (then rank 0 alone does); all ranks then exit with the failure's code.
template <typename Setup>
void agree_on_setup(const distributed::MpiEnvironment& environment, const std::string& command, Setup setup) {
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


std::chrono::milliseconds comm_timeout(const po::variables_map& vm);
distributed::CommunicatorOptions communicator_options(const po::variables_map& vm);

// Where one training run goes and what it validates on.
struct RunPlacement {
  fs::path output;
  int val_fold = 0;
  std::string val_split;   // non-empty: validate on this split instead of a fold
  bool resume = false;
  std::string test_split;  // non-empty: also evaluate the final model on this held-out split
  bool all_folds = false;  // train on every fold without validation (a final model)
  bool export_model = false;  // also write model.torchscript.pt
};

// One training run as `brainmri train` does it — one or two stages, then the validation files —
// on the ranks of `communicator` (all of them, or one group of a cross-validation). Returns the
// validation summary, with the held-out test set's under "test" (every rank gets it); rank 0 of
// the communicator writes the files: validation/ and test/ (predictions.h5, metrics.json,
// classification_report.txt), model.pt, and model.torchscript.pt when asked for.
json train_run(const po::variables_map& vm, training::TrainOptions stage1, const RunPlacement& where,
               distributed::Communicator& communicator, const torch::Device& device,
               const std::function<void(const std::string&)>& say, const std::string& command,
               const std::string& config_text);

// The parsed, validated and cross-rank-checked options of a training command (train, cv).
struct TrainingSetup {
  po::variables_map vm;
  training::TrainOptions stage1;
  std::string config_text;
  fs::path output;
  torch::Device device = torch::kCPU;
  bool help = false;
};

TrainingSetup prepare_training(int argc, const char* const argv[], const po::options_description& options,
                               const distributed::MpiEnvironment& environment, const std::string& command,
                               const std::function<void(const po::variables_map&)>& extra_checks = {});

}  // namespace brainmri::cli
