#pragma once
// One training run, as `brainmri train` does it — its stages, then the validation (and held-out
// test) evaluation files — on the ranks of a communicator: all of a job's ranks, or one group of
// a cross-validation or search. The experiments (cross_validation.hpp, tuning.hpp) are made of
// these runs.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/distributed/communicator.hpp"
#include "brainmri/experiments/run_config.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/training/trainer.hpp"

namespace brainmri::experiments {

// A line of progress for people (an epoch, a loaded checkpoint); the caller decides where it goes.
using Say = std::function<void(const std::string&)>;

// Where one run goes and what it validates on, beyond its configuration's data selection.
struct RunPlacement {
  std::filesystem::path output;
  int val_fold = 0;
  std::string val_split;  // non-empty: validate on this split instead of a fold
  bool resume = false;
  std::string test_split;     // non-empty: also evaluate the final model on this held-out split
  bool all_folds = false;     // train on every fold without validation (a final model)
  bool export_model = false;  // also write model.torchscript.pt
  // The run's own placement: its output directory, validation fold or split, and resume flag.
  static RunPlacement of(const RunConfig& config);
};

// The scores of one evaluation of a run.
struct RunScores {
  evaluation::Scores scores;
  int samples = 0;
  std::string report;  // the classification report, in scikit-learn's layout
};

struct RunOutcome {
  std::filesystem::path directory;
  int validation_samples = 0;
  std::optional<RunScores> validation;
  std::optional<RunScores> test;
  nlohmann::json test_parts;  // the test's clean and contaminated parts (evaluation::held_out_parts_json)
  // As a job result in an experiment's journal: run_directory, validation_samples, accuracy,
  // macro_f1, macro_auc (null when undefined), loss, and "test" with the same keys, samples and
  // its "clean" and "contaminated" parts.
  nlohmann::json to_json() const;
};

// Training and validation sample ids: a validation fold of the manifest's group k-fold (the
// leakage-free default), or a whole split such as Testing. Throws ConfigError (val-fold,
// val-split) when the dataset cannot give them.
std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>> select_samples(const data::ShardedDataset& dataset,
                                                                               int val_fold,
                                                                               const std::string& val_split);

// The model the configuration describes, for the images and classes of `dataset` (untrained,
// unfrozen, no pretrained weights yet).
models::ClassifierPtr create_model(const ModelConfig& config, const data::ShardedDataset& dataset);

// The card every checkpoint of a run carries: the dataset's classes and preprocessing, the model's
// default explained layer, and where it came from (version, commit, command, the SHA-256 of the
// run's config text and of the dataset's manifest).
models::ModelCard model_card(const models::Classifier& model, const data::ShardedDataset& dataset,
                             const std::string& command, const std::string& config_text, const std::string& selection);

// Trains `config` placed as `where` on the ranks of `communicator`. Every rank returns the
// outcome; rank 0 of the communicator writes the files: config.ini (`config_text`, headed by
// `command`), the checkpoints, model.pt, validation/ and test/ (predictions.h5, metrics.json,
// classification_report.txt), and model.torchscript.pt when asked for.
RunOutcome train_run(const RunConfig& config, const RunPlacement& where, const data::ShardedDataset& dataset,
                     distributed::Communicator& communicator, const torch::Device& device, const Say& say,
                     const std::string& command, const std::string& config_text);

// The run's report (docs/reports.md), as `brainmri report` writes it, unless output.report is
// false; the explanation check (unless output.explanation_check or `check_explanations` is false)
// trains on `device`. A failure is reported through `say_error`, not thrown: the run itself
// succeeded.
void write_run_report(const std::filesystem::path& run_directory, const OutputConfig& output,
                      const torch::Device& device, const Say& say, const Say& say_error,
                      bool check_explanations = true);

// "[train] epoch   3  lr 1.00e-03  loss ..." — the console line of an epoch.
std::string format_epoch(const evaluation::EpochRecord& record);

}  // namespace brainmri::experiments
