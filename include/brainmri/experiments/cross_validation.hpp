#pragma once
// k-fold cross-validation over rank groups (docs/experiments.md): one training run per validation
// fold (fold-K/), shared among groups of ranks and journaled so that the same call resumes;
// then per-fold and across-fold metrics (cv_summary.json/.md), the pooled out-of-fold evaluation,
// the held-out test of every fold model and of their ensemble, and optionally a final model
// trained on every fold, tested and exported.

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/mpi_environment.hpp"
#include "brainmri/experiments/messages.hpp"
#include "brainmri/experiments/run_config.hpp"

namespace brainmri::experiments {

// What a cross-validation will run, resolved against its dataset.
struct CrossValidationPlan {
  std::vector<int> folds;
  std::string test_split;  // "" when there is none
};
// Checks the options against the dataset and the world; throws ConfigError naming the option.
CrossValidationPlan plan_cross_validation(const RunConfig& config, const CrossValidationConfig& cv,
                                          const data::ShardedDataset& dataset, int world_size);

// The experiment's config.ini: every run option, then the cross-validation's.
std::string cross_validation_ini(const RunConfig& config, const CrossValidationConfig& cv);

struct CrossValidationResult {
  nlohmann::json summary;           // cv_summary.json (world rank 0; empty elsewhere)
  std::vector<std::string> failed;  // jobs that failed for good, with the reason
  bool succeeded() const { return failed.empty(); }
};

// Runs the cross-validation into config.output.directory. Collective over `world`; rank 0 writes
// the experiment's files and the report (unless config.output.report is false). An array task
// (cv.jobs.array_task >= 0) runs its share of the folds only; summarize_cross_validation then
// writes the summaries once every task has run.
CrossValidationResult cross_validate(const RunConfig& config, const CrossValidationConfig& cv,
                                     const distributed::MpiEnvironment& environment, distributed::Communicator& world,
                                     const torch::Device& device, const Messages& messages = Messages::standard());

// The summaries and report of the cross-validation in `directory` from its config.ini and
// journals (every array task's): what cross_validate writes at its end. Throws std::runtime_error
// naming the folds not finished yet. `device`: where the report's explanation check trains.
CrossValidationResult summarize_cross_validation(const std::filesystem::path& directory, const torch::Device& device,
                                                 const Messages& messages = Messages::standard());

}  // namespace brainmri::experiments
