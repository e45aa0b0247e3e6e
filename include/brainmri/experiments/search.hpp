#pragma once
// Hyperparameter search: the search space, the trials drawn from it (grid or random), and the
// successive-halving plan that runs them in rungs of growing epoch budgets (ASHA).
//
// The plan works on the jobs of the scheduler: a job is one trial trained on one validation fold
// up to one rung's epoch budget, named "trial-0007/rung-1/fold-2". A trial's score at a rung is
// the mean of its folds' scores. Promotion follows ASHA: whenever the results of a rung allow it,
// the best trials not yet promoted go on to the next rung, continuing from their checkpoints, so
// that 1/eta of the trials that reach a rung go further. Unlike textbook ASHA, which promotes in
// whatever order results arrive (so a rerun can promote differently), a rung's results are
// taken in a fixed order — rung 0 in trial order, later rungs in promotion order — and each
// promotion is decided as soon as every result before it in that order is known. The trials
// table is thus a function of the seeds alone: a search killed and resumed, or run on another
// number of GPUs, ends with the same table. The price is that a slow trial can hold back the
// decisions about the trials after it, while groups go on running those trials' first rungs.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "brainmri/experiments/scheduler.hpp"

namespace brainmri::experiments {

// One searched option, written "NAME: KIND ARGS":
//   lr: loguniform 1e-5 1e-2     dropout: uniform 0.1 0.6     dense-units: int 64 256
//   schedule: choice constant cosine
struct ParameterSpace {
  std::string name;
  std::string kind;  // loguniform | uniform | int | choice
  double low = 0;
  double high = 0;
  std::vector<std::string> choices;

  // Throws std::invalid_argument naming what is wrong with `text`.
  static ParameterSpace parse(const std::string& text);
  // The value for a uniform number u in [0, 1), as the option's text.
  std::string value_at(double u) const;
  // Grid values: every choice, every integer (or `points` of them, evenly spaced), or `points`
  // values spaced evenly (logarithmically for loguniform) from low to high.
  std::vector<std::string> grid(int points) const;
};

using TrialParameters = std::vector<std::pair<std::string, std::string>>;  // (option, value), in search order

// Grid: every combination (the first parameter varies slowest). Random: `trials` draws, each
// parameter of trial t from a stream seeded by (seed, t, parameter), so trial t is the same
// whatever the number of trials. Throws std::invalid_argument for an empty or oversized grid.
std::vector<TrialParameters> grid_trials(const std::vector<ParameterSpace>& space, int points);
std::vector<TrialParameters> random_trials(const std::vector<ParameterSpace>& space, int trials, std::uint64_t seed);

// Epoch budgets of the rungs: from about min_epochs growing by `reduction_factor` up to
// max_epochs, the last rung exactly max_epochs (1, 3, 9 for 1, 9, 3; 3, 10 for 2, 10, 3).
std::vector<int> rung_epochs(int min_epochs, int max_epochs, int reduction_factor);

struct TrialJob {
  int trial = 0;
  int rung = 0;
  int fold = 0;
  std::string name() const;                                       // trial-0007/rung-1/fold-2
  static std::optional<TrialJob> parse(const std::string& name);  // nullopt if not such a name
};

// The plan of a search: every trial's first rung on every objective fold at the start, then
// promotions as above. With one rung it is a plain grid or random search.
class SuccessiveHalving : public JobPlan {
 public:
  // `objective` is the key of a job result to maximize (accuracy, macro_f1, macro_auc).
  SuccessiveHalving(int trials, std::vector<int> folds, int rungs, int reduction_factor, std::string objective);

  std::vector<std::string> initial_jobs() override;
  std::vector<std::string> on_finished(const std::string& job, const nlohmann::json& result) override;
  std::vector<std::string> on_failed(const std::string& job) override;

  struct Trial {
    int highest_rung = -1;                                 // highest rung with a complete score; -1: none yet
    bool failed = false;                                   // a job failed for good, or gave no score
    std::vector<double> score_by_rung;                     // one per rung reached
    std::map<int, std::map<int, nlohmann::json>> results;  // rung -> fold -> job result
  };
  const std::vector<Trial>& trials() const { return trials_; }
  int rung_count() const { return rungs_; }
  // Trial ids best first: higher rung reached, then higher score at it, then lower id; failed
  // trials last.
  std::vector<int> ranking() const;

 private:
  std::optional<TrialJob> own_job(const std::string& name) const;  // a job of this plan, or nullopt
  std::vector<std::string> rung_complete(int trial, int rung, std::optional<double> score);
  std::vector<std::string> jobs_of(int trial, int rung) const;

  int rungs_;
  int reduction_factor_;
  std::string objective_;
  std::vector<int> folds_;
  std::vector<Trial> trials_;
  std::vector<std::vector<int>> order_;                // per rung: trials in the order their results count
  std::vector<std::map<int, double>> outcome_;         // per rung: trial -> score (-inf when failed)
  std::vector<std::size_t> decided_;                   // per rung: length of the order's settled prefix
  std::vector<std::set<int>> promoted_;                // per rung: trials sent on to the next rung
  std::map<std::pair<int, int>, std::set<int>> done_;  // (trial, rung) -> folds settled
};

}  // namespace brainmri::experiments
