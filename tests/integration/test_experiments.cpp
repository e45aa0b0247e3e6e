// The experiments as a library: a RunConfig built in C++ (no argv, no config file) runs a
// cross-validation and a search, which leave the same files as `brainmri cv` and `brainmri tune`.

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/evaluation/evaluation_files.hpp"
#include "brainmri/experiments/cross_validation.hpp"
#include "brainmri/experiments/search_report.hpp"
#include "brainmri/experiments/tuning.hpp"
#include "brainmri/reports/subgroups.hpp"
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

// A successive-halving search's trials.json, made by hand: 9 trials, rungs of 1, 3 and 9 epochs;
// the objective at rung 0 is 0.9 - dropout; the learning rate and the dense units (a choice) vary
// apart from it. Trials 0, 3 and 6 are promoted, trial 0 twice; trial 8 failed at rung 0.
json made_up_search() {
  json trials = json::array();
  const char* units[] = {"32", "64", "128"};
  for (int t = 0; t < 9; ++t) {
    const double dropout = 0.1 + 0.05 * ((t * 4) % 9);  // a permutation of 0.1 .. 0.5
    const double lr = std::pow(10.0, -2 - 0.25 * t);
    const double rung0 = 0.9 - dropout;
    json by_rung = t == 8 ? json::array() : json::array({rung0});
    if (t % 3 == 0) by_rung.push_back(rung0 + 0.05);
    if (t == 0) by_rung.push_back(rung0 + 0.08);
    const int rung = static_cast<int>(by_rung.size()) - 1;
    char lr_text[32], dropout_text[32];
    std::snprintf(lr_text, sizeof(lr_text), "%g", lr);
    std::snprintf(dropout_text, sizeof(dropout_text), "%g", dropout);
    trials.push_back({{"trial", t},
                      {"rank", t + 1},
                      {"parameters", {{"lr", lr_text}, {"dropout", dropout_text}, {"dense-units", units[t % 3]}}},
                      {"state", t == 8      ? "failed"
                                : rung == 2 ? "completed"
                                            : "stopped"},
                      {"rung", rung},
                      {"objective", by_rung.empty() ? json() : by_rung.back()},
                      {"objective_by_rung", by_rung}});
  }
  return {{"algorithm", "asha"},
          {"model", "baseline_cnn"},
          {"objective", "val_macro_f1"},
          {"rung_epochs", {1, 3, 9}},
          {"reduction_factor", 3},
          {"folds", {0}},
          {"best_trial", 0},
          {"search", {"lr: loguniform 1e-5 1e-2", "dropout: uniform 0.1 0.5", "dense-units: choice 32 64 128"}},
          {"trials", trials}};
}

TEST(SearchReport, ImportanceRanksWhatTheObjectiveFollowsAndEveryFigureAndLinkIsThere) {
  ScratchDir scratch;
  const json table = made_up_search();
  std::ofstream(scratch / "trials.json") << table.dump(2);

  const auto importance = parameter_importance(table);
  ASSERT_EQ(importance.size(), 3u);
  EXPECT_EQ(importance[0].name, "lr");
  EXPECT_EQ(importance[0].measure, "spearman");
  EXPECT_EQ(importance[1].name, "dropout");
  EXPECT_NEAR(importance[1].value, -1.0, 1e-12);  // the objective at rung 0 is 0.9 - dropout
  EXPECT_EQ(importance[1].trials, 8);             // the failed trial has no score
  EXPECT_EQ(importance[2].measure, "eta");
  EXPECT_GE(importance[2].value, 0.0);
  EXPECT_LT(importance[2].value, 0.9);

  const auto written = write_search_report(scratch.path(), scratch / "report");
  EXPECT_NEAR(written["importance"][1]["value"].get<double>(), -1.0, 1e-12);
  const auto html = slurp(scratch / "report" / "index.html");
  EXPECT_NE(html.find("dense-units"), std::string::npos);
  EXPECT_NE(slurp(scratch / "report" / "search_report.md").find("| dropout | Spearman ρ | -1.000 | 8 |"),
            std::string::npos);
  if (!reports::plotting_available()) GTEST_SKIP() << "no PLplot: the tables only";
  for (const auto* stem : {"search_history", "search_parallel_coordinates", "search_rungs", "search_importance"}) {
    for (const auto* extension : {".png", ".svg", ".pdf"}) {
      EXPECT_TRUE(fs::exists(scratch / "report" / (std::string(stem) + extension))) << stem << extension;
    }
    EXPECT_NE(html.find(std::string("src=\"") + stem + ".png\""), std::string::npos) << stem;
  }
  EXPECT_EQ(written["figures"], 4);
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

TEST(Subgroups, FileNameFamiliesDropTheNumberAndTheExtension) {
  EXPECT_EQ(brainmri::reports::file_name_family("Training/glioma/Tr-gl_0010.jpg"), "Tr-gl_");
  EXPECT_EQ(brainmri::reports::file_name_family("Tr-glTr_0003.jpg"), "Tr-glTr_");
  EXPECT_EQ(brainmri::reports::file_name_family("notumor/image(12).png"), "image(12)");
  EXPECT_EQ(brainmri::reports::file_name_family("a/0042.png"), "(digits only)");
}
