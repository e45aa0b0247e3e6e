// The experiments as a library: a RunConfig built in C++ (no argv, no config file) runs a
// cross-validation and a search, which leave the same files as `brainmri cv` and `brainmri tune`.

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/evaluation/evaluation_files.hpp"
#include "brainmri/experiments/cross_validation.hpp"
#include "brainmri/experiments/tuning.hpp"
#include "synthetic_dataset.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace brainmri;
using namespace brainmri::experiments;
using brainmri::testing::ScratchDir;
using nlohmann::json;

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A small, fast run on the synthetic dataset.
RunConfig small_run(const fs::path& data, const fs::path& output) {
  RunConfig config;
  config.data.dataset = data;
  config.output.directory = output;
  config.output.report = false;
  config.runtime.device = distributed::DeviceChoice::Cpu;
  config.model.filters = {4, 8};
  config.model.dense_units = 8;
  config.training.epochs = 1;
  config.training.batch_size = 8;
  return config;
}

// Reads "key = value" lines back into a configuration through the option table.
RunConfig from_ini(const std::string& text) {
  RunConfig config;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const auto equals = line.find(" = ");
    if (line.empty() || line.front() == '#' || equals == std::string::npos) continue;
    set_option(run_options(), config, line.substr(0, equals), line.substr(equals + 3));
  }
  return config;
}

TEST(RunConfiguration, WritesEveryOptionWithFullPrecisionAndReadsItBack) {
  RunConfig config;
  config.data.dataset = "/data/packed";
  config.output.directory = "runs/a";
  config.training.optimizer.learning_rate = 0.00047873312345678;
  config.training.optimizer.kind = training::OptimizerKind::AdamW;
  config.training.schedule.kind = training::ScheduleKind::Cosine;
  config.model.filters = {8, 16};
  config.stages.stages = {"head: trainable-blocks=0 lr=1e-3 epochs=1", "top: lr=1e-4 epochs=2"};
  const auto text = to_ini(run_options(), config);
  EXPECT_NE(text.find("lr = 0.00047873312345678\n"), std::string::npos) << text;
  EXPECT_NE(text.find("optimizer = adamw\n"), std::string::npos) << text;
  EXPECT_NE(text.find("filters = 8,16\n"), std::string::npos) << text;
  EXPECT_NE(text.find("stage = top: lr=1e-4 epochs=2\n"), std::string::npos) << text;
  const auto again = from_ini(text);
  EXPECT_EQ(to_ini(run_options(), again), text);
  EXPECT_EQ(again.training.optimizer.learning_rate, config.training.optimizer.learning_rate);
  EXPECT_EQ(training_stages(again).size(), 2u);
}

TEST(RunConfiguration, ErrorsNameTheOption) {
  RunConfig config;
  try {
    set_option(run_options(), config, "optimizer", "adagrad");
    FAIL() << "accepted an unknown optimizer";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.option(), "optimizer");
    EXPECT_NE(std::string(e.what()).find("adam, adamw or sgd"), std::string::npos) << e.what();
  }
  EXPECT_THROW(set_option(run_options(), config, "lr", "fast"), ConfigError);
  EXPECT_THROW(set_option(run_options(), config, "batch-size", "8.5"), ConfigError);
  EXPECT_THROW(set_option(run_options(), config, "no-such-option", "1"), ConfigError);
  // A search may patch training options, never where data and results live nor the seed.
  EXPECT_EQ(patched(config, {{"lr", "0.01"}, {"schedule", "cosine"}}).training.schedule.kind,
            training::ScheduleKind::Cosine);
  for (const auto* fixed : {"data", "output", "seed", "device", "stage"}) {
    EXPECT_THROW(patched(config, {{fixed, "x"}}), ConfigError) << fixed;
  }
  config.data.dataset = "d";
  config.output.directory = "o";
  config.training.optimizer.learning_rate = -1;
  EXPECT_THROW(validate(config), ConfigError);
  config.training.optimizer.learning_rate = 1e-3;
  config.stages.stages = {"broken"};
  try {
    validate(config);
    FAIL() << "accepted a malformed stage";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.option(), "stage");
  }
}

TEST(ExperimentsLibrary, CrossValidationAndSearchWithoutArgv) {
  ScratchDir scratch;
  const auto data = scratch / "data";
  brainmri::testing::write_synthetic_dataset(data, 48, 4, 16, 1, false, 2, 2);
  int argc = 1;
  char name[] = "experiment_tests";
  char* arguments[] = {name, nullptr};
  char** argv = arguments;
  distributed::MpiEnvironment environment(&argc, &argv);
  const auto world =
      distributed::make_communicator(environment, distributed::Backend::Auto, torch::kCPU, {std::chrono::seconds(60)});

  // A 2-fold cross-validation.
  const auto config = small_run(data, scratch / "cv");
  const CrossValidationConfig cv;
  const auto result = cross_validate(config, cv, environment, *world, torch::kCPU, Messages::silent());
  ASSERT_TRUE(result.succeeded());
  EXPECT_EQ(result.summary["folds"].size(), 2u);
  EXPECT_EQ(result.summary["out_of_fold"]["samples"], 48);
  EXPECT_EQ(json::parse(slurp(scratch / "cv" / "cv_summary.json")), result.summary);
  for (const auto* file :
       {"cv_summary.md", "config.ini", "journal.jsonl", "out_of_fold/predictions.h5", "out_of_fold/metrics.json",
        "fold-0/model.pt", "fold-1/validation/metrics.json", "fold-1/train_log.jsonl", "fold-0/config.ini"}) {
    EXPECT_TRUE(fs::exists(scratch / "cv" / file)) << file;
  }
  EXPECT_EQ(evaluation::read_predictions(scratch / "cv" / "out_of_fold" / "predictions.h5").labels.size(), 48u);
  // The experiment's config.ini reproduces it: the run options, then the cross-validation's.
  const auto ini = slurp(scratch / "cv" / "config.ini");
  EXPECT_NE(ini.find(cross_validation_ini(config, cv)), std::string::npos) << ini;

  // A 4-trial random search on both folds.
  auto search_run = small_run(data, scratch / "search");
  SearchConfig search;
  search.algorithm = SearchAlgorithm::Random;
  search.trials = 4;
  search.space = {"lr: loguniform 1e-4 1e-2", "dropout: uniform 0.2 0.6"};
  const auto found = tune(search_run, search, environment, *world, torch::kCPU, Messages::silent());
  ASSERT_FALSE(found.refused);
  ASSERT_GE(found.best_trial, 0);
  EXPECT_EQ(found.trials["trials"].size(), 4u);
  for (const auto& row : found.trials["trials"]) EXPECT_EQ(row["state"], "completed") << row;
  std::istringstream csv(slurp(scratch / "search" / "trials.csv"));
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "trial,rank,lr,dropout,state,rung,epochs,objective,fold_0,fold_1,seconds");
  int rows = 0;
  for (std::string line; std::getline(csv, line);) rows += line.empty() ? 0 : 1;
  EXPECT_EQ(rows, 4);
  for (const auto* file : {"trials.json", "tune_summary.md", "search_plan.json", "journal.jsonl",
                           "trials/trial-0003/fold-1/validation/metrics.json"}) {
    EXPECT_TRUE(fs::exists(scratch / "search" / file)) << file;
  }
  // The best configuration carries the best trial's values and no path of this machine.
  const auto best = slurp(scratch / "search" / "best_config.ini");
  const auto& best_row = found.trials["trials"][static_cast<std::size_t>(found.best_trial)];
  EXPECT_NE(best.find("lr = " + best_row["parameters"]["lr"].get<std::string>() + "\n"), std::string::npos) << best;
  EXPECT_EQ(best.find("\ndata = "), std::string::npos) << best;
  EXPECT_EQ(best.find(scratch.path().string()), std::string::npos) << best;
  EXPECT_EQ(from_ini(best).training.optimizer.learning_rate,
            std::stod(best_row["parameters"]["lr"].get<std::string>()));

  // The same search again resumes (nothing to run); another search in its directory is refused.
  EXPECT_EQ(tune(search_run, search, environment, *world, torch::kCPU, Messages::silent()).best_trial,
            found.best_trial);
  search.trials = 5;
  EXPECT_TRUE(tune(search_run, search, environment, *world, torch::kCPU, Messages::silent()).refused);
}

}  // namespace
