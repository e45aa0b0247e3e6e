#pragma once
// Hyperparameter search (docs/experiments.md): trials drawn from a search space (search.hpp) by
// grid, random or ASHA, each a typed patch of the base RunConfig, trained on the objective folds
// over rank groups and journaled so that the same call resumes; then the trials table
// (trials.csv, trials.json), tune_summary.md and best_config.ini.

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/mpi_environment.hpp"
#include "brainmri/experiments/messages.hpp"
#include "brainmri/experiments/run_config.hpp"
#include "brainmri/experiments/search.hpp"

namespace brainmri::experiments {

// A search resolved against its dataset: every trial's configuration, checked before any trains.
struct SearchPlan {
  std::vector<ParameterSpace> space;
  std::vector<TrialParameters> trials;
  std::vector<RunConfig> trial_configs;  // the base with the trial's values, epochs of the last rung
  std::vector<int> budgets;              // epochs per rung
  std::vector<int> folds;
  std::string objective_key;  // key of a job result: accuracy, macro_f1 or macro_auc
};
// Throws ConfigError naming the option (or the trial) that is wrong.
SearchPlan plan_search(const RunConfig& config, const SearchConfig& search, const data::ShardedDataset& dataset,
                       int world_size);

// The experiment's config.ini: every run option, then the search's.
std::string search_ini(const RunConfig& config, const SearchConfig& search);

// The config of one trial as a file, without its output directory (each job has its own). A
// portable one (best_config.ini, written into `portable_directory`) also leaves out the dataset
// path, which belongs to the machine it ran on and is given when it is run again, and names the
// other input files (pretrained weights) relative to itself.
std::string trial_ini(const RunConfig& trial, const std::filesystem::path& portable_directory = {});

struct SearchResult {
  int best_trial = -1;    // -1: no trial completed the last rung (or not world rank 0)
  nlohmann::json trials;  // trials.json (world rank 0; empty elsewhere)
  bool refused = false;   // the output directory holds another search (nothing ran)
  std::string refusal;
  // An array task writes no summary: how many of its own jobs did not finish.
  bool array_task = false;
  int unfinished_jobs = 0;
};

// Runs the search into config.output.directory. Collective over `world`; rank 0 writes the files
// and the best trial's reports. An array task (search.jobs.array_task >= 0) runs its share of
// the trials only; summarize_search then writes the files once every task has run.
SearchResult tune(const RunConfig& config, const SearchConfig& search, const distributed::MpiEnvironment& environment,
                  distributed::Communicator& world, const torch::Device& device,
                  const Messages& messages = Messages::standard());

// The trials table, summary, best_config.ini and the best trial's reports of the search in
// `directory` from its config.ini and journals (every array task's): what tune writes at its end
// when it ran as Slurm array tasks. Throws std::runtime_error naming the jobs not finished yet.
SearchResult summarize_search(const std::filesystem::path& directory, const torch::Device& device,
                              const Messages& messages = Messages::standard());

}  // namespace brainmri::experiments
