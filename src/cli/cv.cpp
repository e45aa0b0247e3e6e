// brainmri cv: k-fold cross-validation over rank groups (docs/experiments.md).

#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/experiments/journal.hpp"
#include "brainmri/experiments/scheduler.hpp"
#include "brainmri/training/augmentation.hpp"
#include "brainmri/training/evaluation_files.hpp"
#include "brainmri/version.hpp"
#include "training_command.hpp"

namespace brainmri::cli {
namespace {

po::options_description cv_options() {
  auto options = train_options();
  po::options_description cv("Cross-validation (brainmri cv)");
  // clang-format off
  cv.add_options()
    ("folds", po::value<std::string>()->default_value("all"), "validation folds to run: all, or a list such as 0,2,4")
    ("ranks-per-job", po::value<int>()->default_value(1), "ranks that train one fold together (1: one fold per rank/GPU)")
    ("max-retries", po::value<int>()->default_value(2), "times a failed fold is retried before it is marked failed")
    ("test-split", po::value<std::string>()->default_value("auto"), "held-out test split that every fold model (and their ensemble) is evaluated on: auto (the one packed with brainmri-prep --holdout-split, if any), none, or a split name")
    ("final", po::value<bool>()->default_value(false)->implicit_value(true), "also train a final model on every fold (no validation: --epochs of each stage), test it on the held-out split and export it (DIR/final: model.pt, model.torchscript.pt)");
  // clang-format on
  options.add(cv);
  return options;
}

}  // namespace

int run_cv(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  const auto options = cv_options();
  std::vector<int> folds;
  std::string test_split;
  auto setup = prepare_training(argc, argv, options, environment, "cv", [&](const po::variables_map& vm) {
    check_job_options(vm, environment);
    const data::ShardedDataset dataset(vm["data"].as<std::string>());
    folds = selected_folds(vm["folds"].as<std::string>(), dataset);
    test_split = vm["test-split"].as<std::string>();
    if (test_split == "auto") test_split = dataset.manifest().folds.held_out_split;
    if (test_split == "none") test_split.clear();
    if (!test_split.empty()) {
      if (dataset.select_split(test_split).empty()) {
        throw UsageError("--test-split " + test_split + ": " + dataset.directory().string() + " has no such split");
      }
      if (test_split != dataset.manifest().folds.held_out_split) {
        throw UsageError("--test-split " + test_split + " was not held out of the folds when " + dataset.directory().string() +
                         " was packed (its images may be in the folds); repack with brainmri-prep --holdout-split " +
                         test_split);
      }
    }
  });
  if (setup.help) {
    if (environment.rank() == 0) {
      std::cout << "Usage: brainmri cv --data DIR --output DIR [options]\n\n"
                   "Trains one run per validation fold (train on the other folds) as `brainmri train` would, each in\n"
                   "DIR/fold-K, then writes DIR/cv_summary.{json,md} and the pooled out-of-fold evaluation in\n"
                   "DIR/out_of_fold. Under mpirun the folds are shared among groups of --ranks-per-job ranks. Progress\n"
                   "is journaled in DIR/journal.jsonl: the same command resumes an interrupted cross-validation.\n"
                   "With a held-out test split (brainmri-prep --holdout-split), every fold model and their ensemble are\n"
                   "also tested on it (DIR/fold-K/test, DIR/test_ensemble); --final trains one more model on every fold\n"
                   "and exports it (DIR/final). --val-fold, --val-split and --resume of the training options do not\n"
                   "apply here.\n\n"
                << options << "\n";
    }
    return kExitOk;
  }
  const auto& vm = setup.vm;
  const fs::path output = setup.output;
  return abort_job_on_failure(environment, "cv", [&] {
    const auto world = distributed::make_communicator(environment, vm["backend"].as<std::string>(), setup.device,
                                                      communicator_options(vm));
    experiments::JobScheduler scheduler(environment, *world,
                                        {vm["ranks-per-job"].as<int>(), vm["max-retries"].as<int>()});
    std::unique_ptr<experiments::Journal> journal;
    if (world->rank() == 0) {
      fs::create_directories(output);
      write_file_atomically(output / "config.ini", "# brainmri " + std::string(kVersion) + " cv\n" + setup.config_text);
      journal = std::make_unique<experiments::Journal>(output / "journal.jsonl");
    }
    std::vector<std::string> jobs;
    for (const int k : folds) jobs.push_back("fold-" + std::to_string(k));
    const bool final_model = vm["final"].as<bool>();
    if (final_model) jobs.push_back("final");
    if (world->rank() == 0) {
      std::cout << "Cross-validating " << vm["model"].as<std::string>() << " over " << jobs.size() << " folds on "
                << scheduler.group_count() << " group(s) of " << vm["ranks-per-job"].as<int>() << " rank(s)" << std::endl;
    }
    const auto statuses = scheduler.run(jobs, journal.get(), [&](const experiments::JobContext& context) {
      const bool is_final = context.assignment.job == "final";
      const int fold = is_final ? -1 : std::stoi(context.assignment.job.substr(5));
      auto stage1 = setup.stage1;
      // Each fold's seed comes from (experiment seed, fold): rerunning a fold reproduces it.
      stage1.seed = training::augmentation_seed(setup.stage1.seed, -3, fold, 0);
      RunPlacement where;
      where.output = output / context.assignment.job;
      where.val_fold = fold;
      where.resume = context.assignment.resume;
      where.test_split = test_split;
      where.all_folds = is_final;
      where.export_model = is_final;
      const std::string prefix = is_final ? "[final] " : "[fold " + std::to_string(fold) + "] ";
      const bool speaks = context.group.rank() == 0;
      auto outcome = train_run(vm, stage1, where, context.group, setup.device,
                               [&](const std::string& line) {
                                 if (speaks) say_error(prefix + line);  // stderr: one write per line
                               },
                               "cv", setup.config_text);
      outcome.erase("report");
      outcome.erase("test_report");
      return outcome;
    });
    if (world->rank() != 0) return kExitOk;

    // Aggregates, on rank 0: per fold, across folds, and pooled out of fold.
    const data::ShardedDataset dataset(vm["data"].as<std::string>());
    json per_fold = json::array();
    std::vector<double> accuracy, macro_f1, macro_auc;
    training::Predictions pooled;
    double pooled_loss = 0;
    std::vector<std::string> failed;
    std::vector<double> test_accuracy, test_macro_f1, test_macro_auc;
    std::vector<training::Predictions> test_predictions;  // one per fold model, for the ensemble
    for (const auto& job : jobs) {
      const auto& status = statuses.at(job);
      if (status.state != experiments::JobState::Finished) {
        failed.push_back(job + " (" + experiments::to_string(status.state) + ": " + status.error + ")");
        continue;
      }
      if (job == "final") continue;
      per_fold.push_back({{"fold", job}, {"accuracy", status.result["accuracy"]}, {"macro_f1", status.result["macro_f1"]},
                          {"macro_auc", status.result["macro_auc"]}, {"validation_samples", status.result["validation_samples"]},
                          {"attempts", status.attempts}});
      if (status.result.contains("test")) {
        const auto& t = status.result["test"];
        per_fold.back()["test"] = t;
        test_accuracy.push_back(t["accuracy"].get<double>());
        test_macro_f1.push_back(t["macro_f1"].get<double>());
        if (!t["macro_auc"].is_null()) test_macro_auc.push_back(t["macro_auc"].get<double>());
        test_predictions.push_back(training::read_predictions(output / job / "test" / "predictions.h5"));
      }
      accuracy.push_back(status.result["accuracy"].get<double>());
      macro_f1.push_back(status.result["macro_f1"].get<double>());
      if (!status.result["macro_auc"].is_null()) macro_auc.push_back(status.result["macro_auc"].get<double>());
      const auto fold_predictions = training::read_predictions(output / job / "validation" / "predictions.h5");
      pooled.sample_ids.insert(pooled.sample_ids.end(), fold_predictions.sample_ids.begin(), fold_predictions.sample_ids.end());
      pooled.labels.insert(pooled.labels.end(), fold_predictions.labels.begin(), fold_predictions.labels.end());
      pooled.probabilities.insert(pooled.probabilities.end(), fold_predictions.probabilities.begin(),
                                  fold_predictions.probabilities.end());
      pooled_loss += status.result["loss"].get<double>() * static_cast<double>(fold_predictions.labels.size());
    }
    // Every sample of the folds run must have exactly one out-of-fold prediction.
    std::set<std::int64_t> seen(pooled.sample_ids.begin(), pooled.sample_ids.end());
    if (seen.size() != pooled.sample_ids.size()) throw std::runtime_error("a sample has two out-of-fold predictions");
    std::size_t expected = 0;
    for (const int k : folds) {
      const bool finished = statuses.at("fold-" + std::to_string(k)).state == experiments::JobState::Finished;
      if (finished) expected += dataset.validation_samples_for_fold(k).size();
    }
    if (pooled.sample_ids.size() != expected) {
      throw std::runtime_error("out-of-fold predictions cover " + std::to_string(pooled.sample_ids.size()) +
                               " samples, the folds hold " + std::to_string(expected));
    }
    json summary = {{"model", vm["model"].as<std::string>()},
                    {"dataset", fs::absolute(dataset.directory()).string()},
                    {"folds", per_fold},
                    {"accuracy", training::across_folds_json(accuracy)},
                    {"macro_f1", training::across_folds_json(macro_f1)},
                    {"macro_auc", training::across_folds_json(macro_auc)},
                    {"failed", failed},
                    {"ranks", world->size()},
                    {"ranks_per_job", vm["ranks-per-job"].as<int>()}};
    if (!pooled.labels.empty()) {
      pooled.loss = pooled_loss / static_cast<double>(pooled.labels.size());
      const json context = {{"command", "cv"}, {"dataset", summary["dataset"]}, {"selection", "out of fold"},
                            {"model", summary["model"]}};
      training::write_evaluation(output / "out_of_fold", pooled, dataset.class_names(), context,
                                 vm["bootstrap-seed"].as<std::uint64_t>());
      const auto oof = json::parse(std::ifstream(output / "out_of_fold" / "metrics.json"));
      summary["out_of_fold"] = {{"samples", pooled.labels.size()}, {"accuracy", oof["accuracy"]},
                                {"macro_f1", oof["macro_avg"]["f1"]}, {"macro_auc", oof["macro_auc"]}};
    }
    if (!test_predictions.empty()) {
      // The fold models' ensemble: the mean of their class probabilities on each test image.
      training::Predictions ensemble = test_predictions.front();
      const auto models = static_cast<double>(test_predictions.size());
      for (std::size_t m = 1; m < test_predictions.size(); ++m) {
        if (test_predictions[m].sample_ids != ensemble.sample_ids) {
          throw std::runtime_error("the fold models' test predictions are not of the same images");
        }
        for (std::size_t i = 0; i < ensemble.probabilities.size(); ++i) {
          ensemble.probabilities[i] += test_predictions[m].probabilities[i];
        }
      }
      const auto k = dataset.class_names().size();
      ensemble.loss = 0;
      for (std::size_t i = 0; i < ensemble.labels.size(); ++i) {
        for (std::size_t c = 0; c < k; ++c) ensemble.probabilities[i * k + c] /= models;
        ensemble.loss -= std::log(std::max(ensemble.probabilities[i * k + static_cast<std::size_t>(ensemble.labels[i])], 1e-12)) /
                         static_cast<double>(ensemble.labels.size());
      }
      const json context = {{"command", "cv"}, {"dataset", summary["dataset"]},
                            {"selection", "split " + test_split + " (held out), mean of " +
                                              std::to_string(test_predictions.size()) + " fold models"},
                            {"model", summary["model"]}};
      training::write_evaluation(output / "test_ensemble", ensemble, dataset.class_names(), context,
                                 vm["bootstrap-seed"].as<std::uint64_t>());
      const auto m = json::parse(std::ifstream(output / "test_ensemble" / "metrics.json"));
      summary["test"] = {{"split", test_split},
                         {"samples", ensemble.labels.size()},
                         {"fold_models", {{"accuracy", training::across_folds_json(test_accuracy)},
                                          {"macro_f1", training::across_folds_json(test_macro_f1)},
                                          {"macro_auc", training::across_folds_json(test_macro_auc)}}},
                         {"ensemble", {{"accuracy", m["accuracy"]}, {"macro_f1", m["macro_avg"]["f1"]}, {"macro_auc", m["macro_auc"]}}}};
    }
    if (final_model && statuses.at("final").state == experiments::JobState::Finished) {
      const auto& result = statuses.at("final").result;
      summary["final"] = {{"directory", (output / "final").string()},
                          {"checkpoint", (output / "final" / "model.pt").string()},
                          {"torchscript", (output / "final" / "model.torchscript.pt").string()},
                          {"test", result.value("test", json())}};
    }
    write_file_atomically(output / "cv_summary.json", summary.dump(2) + "\n");

    std::ostringstream table;
    char line[256];
    table << "| fold | accuracy | macro-F1 | macro AUC | validation images |\n|---|---:|---:|---:|---:|\n";
    for (const auto& f : per_fold) {
      char auc[32] = "n/a";
      if (!f["macro_auc"].is_null()) std::snprintf(auc, sizeof(auc), "%.4f", f["macro_auc"].get<double>());
      std::snprintf(line, sizeof(line), "| %s | %.4f | %.4f | %s | %d |\n", f["fold"].get<std::string>().c_str(),
                    f["accuracy"].get<double>(), f["macro_f1"].get<double>(), auc, f["validation_samples"].get<int>());
      table << line;
    }
    auto summary_row = [&](const char* name, const json& m) {
      if (m.is_null()) return;
      std::snprintf(line, sizeof(line), "| %s | %.4f ± %.4f [%.4f, %.4f] |\n", name, m["mean"].get<double>(),
                    m["std"].is_null() ? NAN : m["std"].get<double>(), m["ci95_low"].is_null() ? NAN : m["ci95_low"].get<double>(),
                    m["ci95_high"].is_null() ? NAN : m["ci95_high"].get<double>());
      table << line;
    };
    table << "\n| across folds | mean ± std [95% t-interval] |\n|---|---|\n";
    summary_row("accuracy", summary["accuracy"]);
    summary_row("macro-F1", summary["macro_f1"]);
    summary_row("macro AUC", summary["macro_auc"]);
    if (summary.contains("out_of_fold")) {
      std::snprintf(line, sizeof(line), "\nPooled out of fold (%zu images): accuracy %.4f, macro-F1 %.4f\n",
                    pooled.labels.size(), summary["out_of_fold"]["accuracy"].get<double>(),
                    summary["out_of_fold"]["macro_f1"].get<double>());
      table << line;
    }
    if (summary.contains("test")) {
      const auto& t = summary["test"];
      std::snprintf(line, sizeof(line), "\nHeld-out test set (split %s, %zu images, never trained or selected on):\n\n",
                    test_split.c_str(), t["samples"].get<std::size_t>());
      table << line << "| model | accuracy | macro-F1 | macro AUC |\n|---|---|---|---|\n";
      for (const auto& f : per_fold) {
        if (!f.contains("test")) continue;
        const auto& ft = f["test"];
        std::snprintf(line, sizeof(line), "| %s model | %.4f | %.4f | %.4f |\n", f["fold"].get<std::string>().c_str(),
                      ft["accuracy"].get<double>(), ft["macro_f1"].get<double>(),
                      ft["macro_auc"].is_null() ? NAN : ft["macro_auc"].get<double>());
        table << line;
      }
      const auto& fm = t["fold_models"];
      auto spread = [&](const json& m) {
        char text[64];
        std::snprintf(text, sizeof(text), "%.4f ± %.4f", m["mean"].get<double>(), m["std"].is_null() ? NAN : m["std"].get<double>());
        return std::string(text);
      };
      table << "| fold models, mean ± std | " << spread(fm["accuracy"]) << " | " << spread(fm["macro_f1"]) << " | "
            << (fm["macro_auc"].is_null() ? std::string("n/a") : spread(fm["macro_auc"])) << " |\n";
      const auto& e = t["ensemble"];
      std::snprintf(line, sizeof(line), "| ensemble of the fold models | %.4f | %.4f | %.4f |\n", e["accuracy"].get<double>(),
                    e["macro_f1"].get<double>(), e["macro_auc"].is_null() ? NAN : e["macro_auc"].get<double>());
      table << line;
      if (summary.contains("final") && summary["final"]["test"].is_object()) {
        const auto& ft = summary["final"]["test"];
        std::snprintf(line, sizeof(line), "| final model (all folds) | %.4f | %.4f | %.4f |\n", ft["accuracy"].get<double>(),
                      ft["macro_f1"].get<double>(), ft["macro_auc"].is_null() ? NAN : ft["macro_auc"].get<double>());
        table << line;
      }
    }
    if (summary.contains("final")) {
      table << "\nFinal model: " << summary["final"]["checkpoint"].get<std::string>() << " and its TorchScript export "
            << summary["final"]["torchscript"].get<std::string>() << "\n";
    }
    for (const auto& f : failed) table << "\nFAILED: " << f << "\n";
    write_file_atomically(output / "cv_summary.md", table.str());
    std::cout << "\n" << table.str() << "\nCross-validation directory: " << output.string()
              << " (cv_summary.md, cv_summary.json, out_of_fold/, fold-K/, journal.jsonl)\n";
    if (!per_fold.empty() && summary.contains("out_of_fold")) write_run_report(output, vm, setup.device);
    return failed.empty() ? kExitOk : kExitFailure;
  });
}

}  // namespace brainmri::cli
