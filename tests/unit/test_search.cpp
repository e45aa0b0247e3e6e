// The search space, trial generation, rung budgets and the successive-halving plan.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "brainmri/experiments/search.hpp"

using namespace brainmri::experiments;
using nlohmann::json;

TEST(ParameterSpace, ParsesEveryKindAndRejectsBadSpecs) {
  const auto lr = ParameterSpace::parse("lr: loguniform 1e-5 1e-2");
  EXPECT_EQ(lr.name, "lr");
  EXPECT_EQ(lr.kind, "loguniform");
  EXPECT_DOUBLE_EQ(lr.low, 1e-5);
  EXPECT_DOUBLE_EQ(lr.high, 1e-2);
  EXPECT_EQ(ParameterSpace::parse("schedule:choice constant cosine").choices,
            (std::vector<std::string>{"constant", "cosine"}));
  EXPECT_EQ(ParameterSpace::parse(" dense-units : int 64 256 ").name, "dense-units");
  for (const char* bad : {"lr loguniform 1e-5 1e-2", ": uniform 0 1", "lr: loguniform 0 1", "lr: uniform 1 0",
                          "lr: uniform 0", "lr: uniform zero 1", "units: int 1.5 4", "x: normal 0 1", "x: choice"}) {
    EXPECT_THROW(ParameterSpace::parse(bad), std::invalid_argument) << bad;
  }
}

TEST(RandomTrials, StayInRangeAreReproducibleAndSpreadLogarithmically) {
  const std::vector<ParameterSpace> space = {
      ParameterSpace::parse("lr: loguniform 1e-5 1e-1"), ParameterSpace::parse("dropout: uniform 0.1 0.6"),
      ParameterSpace::parse("units: int 2 4"), ParameterSpace::parse("schedule: choice constant cosine")};
  const auto trials = random_trials(space, 2000, 42);
  ASSERT_EQ(trials.size(), 2000u);
  int below_geometric_mean = 0;
  std::set<std::string> units, schedules;
  for (const auto& t : trials) {
    ASSERT_EQ(t.size(), 4u);
    const double lr = std::stod(t[0].second), dropout = std::stod(t[1].second);
    EXPECT_GE(lr, 1e-5 * 0.999);
    EXPECT_LE(lr, 1e-1 * 1.001);
    EXPECT_GE(dropout, 0.1);
    EXPECT_LE(dropout, 0.6);
    below_geometric_mean += lr < 1e-3 ? 1 : 0;
    units.insert(t[2].second);
    schedules.insert(t[3].second);
  }
  EXPECT_NEAR(below_geometric_mean / 2000.0, 0.5, 0.05);  // log-uniform: half below 1e-3
  EXPECT_EQ(units, (std::set<std::string>{"2", "3", "4"}));
  EXPECT_EQ(schedules, (std::set<std::string>{"constant", "cosine"}));
  EXPECT_EQ(random_trials(space, 2000, 42), trials);
  // Trial t does not depend on how many trials are drawn; another seed gives other trials.
  const auto few = random_trials(space, 5, 42);
  EXPECT_TRUE(std::equal(few.begin(), few.end(), trials.begin()));
  EXPECT_NE(random_trials(space, 5, 43), few);
}

TEST(GridTrials, EnumerateEveryCombinationOnce) {
  const std::vector<ParameterSpace> space = {ParameterSpace::parse("lr: loguniform 1e-4 1e-2"),
                                             ParameterSpace::parse("optimizer: choice adam sgd"),
                                             ParameterSpace::parse("units: int 1 10")};
  const auto trials = grid_trials(space, 3);
  ASSERT_EQ(trials.size(), 3u * 2u * 3u);
  std::set<TrialParameters> distinct(trials.begin(), trials.end());
  EXPECT_EQ(distinct.size(), trials.size());
  EXPECT_EQ(space[0].grid(3), (std::vector<std::string>{"0.0001", "0.001", "0.01"}));
  EXPECT_EQ(space[2].grid(3), (std::vector<std::string>{"1", "6", "10"}));
  EXPECT_EQ(ParameterSpace::parse("units: int 1 2").grid(3), (std::vector<std::string>{"1", "2"}));
  EXPECT_THROW(grid_trials({}, 3), std::invalid_argument);
}

TEST(RungEpochs, GrowByTheReductionFactorUpToTheMaximum) {
  EXPECT_EQ(rung_epochs(1, 9, 3), (std::vector<int>{1, 3, 9}));
  EXPECT_EQ(rung_epochs(2, 10, 3), (std::vector<int>{3, 10}));
  EXPECT_EQ(rung_epochs(1, 3, 3), (std::vector<int>{1, 3}));
  EXPECT_EQ(rung_epochs(4, 4, 3), (std::vector<int>{4}));
  EXPECT_EQ(rung_epochs(1, 8, 2), (std::vector<int>{1, 2, 4, 8}));
  EXPECT_THROW(rung_epochs(0, 9, 3), std::invalid_argument);
  EXPECT_THROW(rung_epochs(5, 4, 3), std::invalid_argument);
  EXPECT_THROW(rung_epochs(1, 9, 1), std::invalid_argument);
}

TEST(TrialJob, NamesRoundTrip) {
  const TrialJob job{7, 1, 2};
  EXPECT_EQ(job.name(), "trial-0007/rung-1/fold-2");
  const auto parsed = TrialJob::parse(job.name());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->trial, 7);
  EXPECT_EQ(parsed->rung, 1);
  EXPECT_EQ(parsed->fold, 2);
  EXPECT_FALSE(TrialJob::parse("fold-2").has_value());
  EXPECT_FALSE(TrialJob::parse("trial-0007/rung-1/fold-2x").has_value());
}

namespace {

// A fake objective: a fixed score per trial that grows a little with each rung.
double fake_score(int trial, int rung) { return std::fmod(trial * 0.6180339887, 1.0) * 0.5 + 0.1 * rung; }

// Runs a plan to the end, completing pending jobs in the order `pick` chooses; returns every job
// it ran. Trials in `failing` fail their jobs.
template <typename Pick>
std::vector<std::string> drive(SuccessiveHalving& plan, Pick pick, const std::set<int>& failing = {}) {
  std::vector<std::string> pending = plan.initial_jobs(), ran;
  while (!pending.empty()) {
    const std::size_t i = pick(pending.size());
    const std::string job = pending[i];
    pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
    ran.push_back(job);
    const auto j = *TrialJob::parse(job);
    const auto more = failing.count(j.trial) > 0 ? plan.on_failed(job)
                                                 : plan.on_finished(job, {{"macro_f1", fake_score(j.trial, j.rung)}});
    pending.insert(pending.end(), more.begin(), more.end());
  }
  return ran;
}

}  // namespace

TEST(SuccessiveHalving, PromotesOneInEtaAndRunsEachJobOnce) {
  SuccessiveHalving plan(6, {0, 1, 2}, 2, 3, "macro_f1");
  const auto ran = drive(plan, [](std::size_t) { return 0; });
  EXPECT_EQ(ran.size(), 6u * 3u + 2u * 3u);  // every trial's first rung, 2 of 6 promoted, on 3 folds
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), ran.size());
  int completed = 0;
  for (const auto& t : plan.trials()) {
    EXPECT_FALSE(t.failed);
    completed += t.highest_rung == 1 ? 1 : 0;
  }
  EXPECT_EQ(completed, 2);
  // The winner of each half: trials 0-2 settle first (quota 1), then 0-5 (quota 2).
  auto best_of = [](std::vector<int> ids) {
    return *std::max_element(ids.begin(), ids.end(), [](int a, int b) { return fake_score(a, 0) < fake_score(b, 0); });
  };
  const int first = best_of({0, 1, 2});
  std::vector<int> rest = {0, 1, 2, 3, 4, 5};
  rest.erase(std::find(rest.begin(), rest.end(), first));
  EXPECT_EQ(plan.trials()[first].highest_rung, 1);
  EXPECT_EQ(plan.trials()[best_of(rest)].highest_rung, 1);
  EXPECT_EQ(plan.ranking().front(), fake_score(first, 1) > fake_score(best_of(rest), 1) ? first : best_of(rest));
}

TEST(SuccessiveHalving, TheOutcomeDoesNotDependOnTheOrderOfResults) {
  SuccessiveHalving reference(24, {0, 1}, 3, 3, "macro_f1");
  auto sorted = drive(reference, [](std::size_t) { return 0; });
  std::sort(sorted.begin(), sorted.end());
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::mt19937 random(seed);
    SuccessiveHalving plan(24, {0, 1}, 3, 3, "macro_f1");
    auto ran = drive(plan, [&](std::size_t n) { return static_cast<std::size_t>(random() % n); });
    std::sort(ran.begin(), ran.end());
    EXPECT_EQ(ran, sorted) << "seed " << seed;
    EXPECT_EQ(plan.ranking(), reference.ranking()) << "seed " << seed;
  }
  int at_top = 0;
  for (const auto& t : reference.trials()) at_top += t.highest_rung == 2 ? 1 : 0;
  EXPECT_EQ(at_top, 2);  // 24 -> 8 -> 2
}

TEST(SuccessiveHalving, FailedTrialsAreNeverPromotedAndRankLast) {
  SuccessiveHalving plan(6, {0}, 2, 3, "macro_f1");
  // Trials 0-5; make the two best by score fail.
  std::vector<int> by_score = {0, 1, 2, 3, 4, 5};
  std::sort(by_score.begin(), by_score.end(), [](int a, int b) { return fake_score(a, 0) > fake_score(b, 0); });
  const std::set<int> failing = {by_score[0], by_score[1]};
  drive(
      plan, [](std::size_t) { return 0; }, failing);
  for (const int f : failing) {
    EXPECT_TRUE(plan.trials()[f].failed);
    EXPECT_EQ(plan.trials()[f].highest_rung, -1);
  }
  const auto ranking = plan.ranking();
  EXPECT_TRUE(failing.count(ranking[4]) && failing.count(ranking[5]));
  EXPECT_EQ(plan.trials()[ranking[0]].highest_rung, 1);
}

TEST(SuccessiveHalving, AResultWithoutTheObjectiveFailsTheTrial) {
  SuccessiveHalving plan(3, {0}, 1, 3, "macro_auc");
  plan.on_finished("trial-0000/rung-0/fold-0", {{"macro_auc", nullptr}});
  plan.on_finished("trial-0001/rung-0/fold-0", {{"macro_auc", 0.9}});
  EXPECT_TRUE(plan.trials()[0].failed);
  EXPECT_FALSE(plan.trials()[1].failed);
  EXPECT_EQ(plan.ranking().front(), 1);
}
