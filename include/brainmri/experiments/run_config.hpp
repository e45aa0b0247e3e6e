#pragma once
// The typed configuration of a training run, and of the experiments made of runs (a
// cross-validation, a search). Built once at the edge (command line, config file, or C++ code),
// validated in one place; everything below takes these structs, never text.
//
// Each configuration has an option table (common/option_table.hpp): the names a config file and
// the command line use, their help, and their defaults, which are the values of a
// default-constructed struct. A config file written with to_ini() reproduces the run exactly.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/common/option_table.hpp"
#include "brainmri/data/folds.hpp"
#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/device_selection.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/training/train_options.hpp"

namespace brainmri::data {
class ShardedDataset;
}

namespace brainmri::experiments {

// Which images train and validate, and how they are read.
struct DataSelection {
  std::filesystem::path dataset;  // a directory written by brainmri-prep
  int val_fold = 0;               // validation fold of the dataset's group k-fold; the others train
  data::FoldGrouping folds_by = data::FoldGrouping::DuplicateGroups;  // the leakage study changes it
  std::string val_split;  // non-empty: validate on this split (e.g. Testing) instead of a fold
  training::LoaderKind loader = training::LoaderKind::Auto;
  int memory_limit_mb = 4096;  // auto loader: stream when the selected pixels exceed this
};

// The network: architecture by registered name (models::create_model) and its options.
struct ModelConfig {
  std::string architecture = "baseline_cnn";
  double dropout = 0.5;
  int dense_units = 128;
  std::vector<int> filters = {32, 64, 128};  // baseline_cnn
  double width = 1.0;                        // mobilenet_v2: Keras alpha
  std::filesystem::path pretrained;          // mobilenet_v2: Keras HDF5 ImageNet weights of the same width
  int trainable_blocks = -1;                 // backbone groups that train, from the top (-1: all, 0: frozen)
};

// The stages of a run after the first: a list of 'NAME: KEY=VALUE ...' texts, or the two-option
// shorthand (a fine-tuning stage when finetune_epochs > 0).
struct StagePlan {
  std::vector<std::string> stages;
  int finetune_epochs = 0;
  double finetune_lr = 1e-5;
  int finetune_trainable_blocks = 4;
  std::string finetune_from;
};

// How the ranks of a job work together (the reducer's buckets and sync batch norm are in
// training options, which the trainer takes).
struct DistributionConfig {
  distributed::Backend backend = distributed::Backend::Auto;
  int threads = 0;           // older name of threads_per_rank
  int threads_per_rank = 0;  // 0: the node's cores / ranks on the node (one process: LibTorch's default)
  double comm_timeout_seconds = 300;
  bool log_all_ranks = false;
  int cpu_threads() const { return threads_per_rank > 0 ? threads_per_rank : threads; }
};

struct RuntimeConfig {
  distributed::DeviceChoice device = distributed::DeviceChoice::Auto;
  std::string preemption_signal = "USR1";  // USR1, USR2, TERM, INT or none
};

struct OutputConfig {
  std::filesystem::path directory;   // the run directory
  bool resume = false;               // continue from the directory's last checkpoints
  bool report = true;                // write DIR/report at the end
  bool explanation_check = true;     // the report checks its explanation method (trains a small copy)
  std::uint64_t bootstrap_seed = 7;  // also draws the halves of the temperature's cross-fitting
  models::Calibration calibration = models::Calibration::Temperature;
  // The held-out tests' predictions: averaged over these views of each image.
  models::TestTimeAugmentation test_time_augmentation = models::TestTimeAugmentation::None;
};

struct RunConfig {
  RunConfig() { training.epochs = 20; }

  DataSelection data;
  ModelConfig model;
  training::TrainOptions training;  // the first stage (and the base of every later one)
  StagePlan stages;
  DistributionConfig distribution;
  RuntimeConfig runtime;
  OutputConfig output;
};

// How long a collective may wait before the job is aborted.
inline std::chrono::milliseconds communication_timeout(const RunConfig& config) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(config.distribution.comm_timeout_seconds * 1000));
}

// The dataset of a run, its folds dealt as `selection.folds_by` says.
data::ShardedDataset open_dataset(const DataSelection& selection);

// The options of a run, in the order `brainmri train --help` lists them and config.ini holds them.
const std::vector<Option<RunConfig>>& run_options();

// The checks that need no data: ranges, stage texts. Throws ConfigError naming the option.
void validate(const RunConfig& config);

// One stage of a run: the options it trains with, and what of the backbone trains (unset: as
// the previous stage left it).
struct TrainingStage {
  training::TrainOptions options;
  std::optional<int> trainable_blocks;
  std::string trainable_from;  // non-empty: train from this layer or block on
};
// The stages: the `stage` list, or the first stage and, with finetune_epochs > 0, a "finetune"
// stage. Throws ConfigError ("stage") for a malformed stage text.
std::vector<TrainingStage> training_stages(const RunConfig& config);

// The experiment options shared by cv and tune: how many ranks train one job, how often a failed
// job is retried, and the validation folds ("all" or a list such as "0,2,4").
struct JobOptions {
  std::string folds = "all";
  int ranks_per_job = 1;
  int max_retries = 2;
  // A Slurm array job (scheduler.hpp, ArrayShare): this is task array_task (0-based) of
  // array_tasks, which share the experiment's jobs; -1: the experiment runs in this job alone.
  int array_task = -1;
  int array_tasks = 1;
  bool in_array() const { return array_task >= 0; }
};
// The folds `folds` names, each once and within the dataset's; throws ConfigError ("folds").
std::vector<int> selected_folds(const std::string& folds, const data::ShardedDataset& dataset);
// ranks_per_job divides world_size, max_retries >= 0; throws ConfigError.
void validate(const JobOptions& options, int world_size);
// An experiment directory is continued with the split it began with (one job, or N array tasks);
// throws ConfigError ("array-tasks") otherwise.
void check_same_split(const JobOptions& options, const std::filesystem::path& output);

struct CrossValidationConfig {
  JobOptions jobs;
  std::string test_split = "auto";  // auto: the split packed with --holdout-split; none; or a name
  bool final_model = false;         // also train on every fold, test and export (DIR/final)
};
const std::vector<Option<CrossValidationConfig>>& cross_validation_options();

enum class SearchAlgorithm { Grid, Random, Asha };

struct SearchConfig {
  JobOptions jobs;
  std::vector<std::string> space;  // 'NAME: KIND ARGS' texts (experiments/search.hpp)
  SearchAlgorithm algorithm = SearchAlgorithm::Asha;
  int trials = 24;
  int grid_points = 3;
  int min_epochs = 1;
  int reduction_factor = 3;
  training::MonitoredMetric objective = training::MonitoredMetric::ValMacroF1;  // maximized; not val_loss
};
const std::vector<Option<SearchConfig>>& search_options();

// Reads the config.ini an experiment wrote (every run option, then the cross-validation's or the
// search's) into `config` and the one of `cv` / `search` that is given. Relative input paths are
// relative to the file. Throws ConfigError naming the file, line and option.
void read_experiment_config(const std::filesystem::path& file, RunConfig& config, CrossValidationConfig* cv,
                            SearchConfig* search);

// A search trial: `base` with (option, value) pairs set, each a searchable run option. Throws
// ConfigError naming the option.
RunConfig patched(const RunConfig& base, const std::vector<std::pair<std::string, std::string>>& values);

}  // namespace brainmri::experiments

namespace brainmri {
template <>
struct EnumNames<experiments::SearchAlgorithm> {
  static constexpr std::string_view what = "algorithm";
  static constexpr std::array names = {std::pair{experiments::SearchAlgorithm::Grid, std::string_view("grid")},
                                       std::pair{experiments::SearchAlgorithm::Random, std::string_view("random")},
                                       std::pair{experiments::SearchAlgorithm::Asha, std::string_view("asha")}};
};
}  // namespace brainmri
