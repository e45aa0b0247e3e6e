#include "brainmri/experiments/cross_validation.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <set>
#include <sstream>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/config_error.hpp"
#include "brainmri/common/log.hpp"
#include "brainmri/evaluation/evaluation_files.hpp"
#include "brainmri/experiments/journal.hpp"
#include "brainmri/experiments/scheduler.hpp"
#include "brainmri/experiments/training_run.hpp"
#include "brainmri/training/augmentation.hpp"
#include "brainmri/version.hpp"

namespace brainmri::experiments {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using evaluation::number_or_nan;
using evaluation::number_or_null;

// One fold's line in cv_summary.json: the same while the CV runs and at its end.
json fold_entry(const std::string& job, const JobStatus& status) {
  return {{"fold", job},
          {"accuracy", status.result["accuracy"]},
          {"macro_f1", status.result["macro_f1"]},
          {"macro_auc", status.result["macro_auc"]},
          {"validation_samples", status.result["validation_samples"]},
          {"attempts", status.attempts}};
}

// Accuracy, macro-F1 and macro AUC of several models (folds, or fold models on the test set), for
// the across-folds rows; a model without an AUC (a class absent) adds none.
struct ScoresAcrossFolds {
  std::vector<double> accuracy, macro_f1, macro_auc;

  void add(const json& scores) {
    accuracy.push_back(result_number(scores, "accuracy"));
    macro_f1.push_back(result_number(scores, "macro_f1"));
    const double auc = result_number(scores, "macro_auc");
    if (!std::isnan(auc)) macro_auc.push_back(auc);
  }
  void write_into(json& summary) const {
    summary["accuracy"] = evaluation::across_folds_json(accuracy);
    summary["macro_f1"] = evaluation::across_folds_json(macro_f1);
    summary["macro_auc"] = evaluation::across_folds_json(macro_auc);
  }
};

// cv_summary.md
std::string summary_table(const json& summary, const std::string& test_split, std::size_t pooled_samples,
                          const std::vector<std::string>& failed) {
  std::ostringstream table;
  char line[256];
  table << "| fold | accuracy | macro-F1 | macro AUC | validation images |\n|---|---:|---:|---:|---:|\n";
  for (const auto& f : summary["folds"]) {
    char auc[32] = "n/a";
    if (!f["macro_auc"].is_null()) std::snprintf(auc, sizeof(auc), "%.4f", f["macro_auc"].get<double>());
    std::snprintf(line, sizeof(line), "| %s | %.4f | %.4f | %s | %d |\n", f["fold"].get<std::string>().c_str(),
                  f["accuracy"].get<double>(), f["macro_f1"].get<double>(), auc, f["validation_samples"].get<int>());
    table << line;
  }
  auto summary_row = [&](const char* name, const json& m) {
    if (m.is_null()) return;
    std::snprintf(line, sizeof(line), "| %s | %.4f ± %.4f [%.4f, %.4f] |\n", name, m["mean"].get<double>(),
                  number_or_nan(m["std"]), number_or_nan(m["ci95_low"]), number_or_nan(m["ci95_high"]));
    table << line;
  };
  table << "\n| across folds | mean ± std [95% t-interval, logit scale] |\n|---|---|\n";
  summary_row("accuracy", summary["accuracy"]);
  summary_row("macro-F1", summary["macro_f1"]);
  summary_row("macro AUC", summary["macro_auc"]);
  if (summary.contains("out_of_fold")) {
    std::snprintf(line, sizeof(line), "\nPooled out of fold (%zu images): accuracy %.4f, macro-F1 %.4f\n",
                  pooled_samples, summary["out_of_fold"]["accuracy"].get<double>(),
                  summary["out_of_fold"]["macro_f1"].get<double>());
    table << line;
  }
  if (summary.contains("test")) {
    const auto& t = summary["test"];
    std::snprintf(line, sizeof(line), "\nHeld-out test set (split %s, %zu images, never trained or selected on)",
                  test_split.c_str(), t["samples"].get<std::size_t>());
    table << line;
    auto model_row = [&](const std::string& name, const json& scores) {
      if (scores.is_null()) return;
      std::snprintf(line, sizeof(line), "| %s | %.4f | %.4f | %.4f |\n", name.c_str(), scores["accuracy"].get<double>(),
                    scores["macro_f1"].get<double>(), number_or_nan(scores["macro_auc"]));
      table << line;
    };
    auto spread = [&](const json& m) {
      char text[64];
      std::snprintf(text, sizeof(text), "%.4f ± %.4f", m["mean"].get<double>(), number_or_nan(m["std"]));
      return std::string(text);
    };
    // One table per part; `part` empty: every image. `scores_of` finds a part in a model's scores.
    auto part_table = [&](const std::string& part, const json& part_summary) {
      const auto scores_of = [&](const json& scores) -> json {
        if (part.empty()) return scores;
        return scores.is_object() && scores.contains(part) ? scores[part] : json();
      };
      table << "| model | accuracy | macro-F1 | macro AUC |\n|---|---|---|---|\n";
      for (const auto& f : summary["folds"]) {
        if (f.contains("test")) model_row(f["fold"].get<std::string>() + " model", scores_of(f["test"]));
      }
      const auto& fm = part_summary["fold_models"];
      if (fm.is_object() && fm.contains("accuracy") && !fm["accuracy"].is_null()) {
        table << "| fold models, mean ± std | " << spread(fm["accuracy"]) << " | " << spread(fm["macro_f1"]) << " | "
              << (fm["macro_auc"].is_null() ? std::string("n/a") : spread(fm["macro_auc"])) << " |\n";
      }
      model_row("ensemble of the fold models", part_summary["ensemble"]);
      if (summary.contains("final") && summary["final"]["test"].is_object()) {
        model_row("final model (all folds)", scores_of(summary["final"]["test"]));
      }
    };
    if (!t.contains("clean")) {  // written before the held-out split was evaluated in parts
      table << ":\n\n";
      part_table("", t);
    } else {
      const auto clean = t["clean"]["samples"].get<std::size_t>();
      const auto contaminated = t["contaminated"]["samples"].get<std::size_t>();
      std::snprintf(line, sizeof(line),
                    ". %zu images are clean (no exact or near copy among the training images), %zu contaminated "
                    "(held-out policy %s).\n",
                    clean, contaminated, t.value("holdout_policy", std::string("split-test")).c_str());
      table << line;
      if (clean > 0) {
        table << "\nClean part, " << clean << " images (what the model does on images it has not seen):\n\n";
        part_table("clean", t["clean"]);
      }
      if (contaminated > 0) {
        table << "\nContaminated part, " << contaminated << " images (a copy was trained on):\n\n";
        part_table("contaminated", t["contaminated"]);
      }
      table << "\nAll " << t["samples"].get<std::size_t>() << " images:\n\n";
      part_table("", t);
    }
  }
  if (summary.contains("final")) {
    table << "\nFinal model: " << summary["final"]["checkpoint"].get<std::string>() << " and its TorchScript export "
          << summary["final"]["torchscript"].get<std::string>() << "\n";
  }
  for (const auto& f : failed) table << "\nFAILED: " << f << "\n";
  return table.str();
}

}  // namespace

CrossValidationPlan plan_cross_validation(const RunConfig& config, const CrossValidationConfig& cv,
                                          const data::ShardedDataset& dataset, int world_size) {
  validate(config);
  validate(cv.jobs, world_size);
  check_same_split(cv.jobs, config.output.directory);
  CrossValidationPlan plan;
  plan.folds = selected_folds(cv.jobs.folds, dataset);
  plan.test_split = cv.test_split;
  if (plan.test_split == "auto") plan.test_split = dataset.manifest().folds.held_out_split;
  if (plan.test_split == "none") plan.test_split.clear();
  if (!plan.test_split.empty()) {
    if (dataset.select_split(plan.test_split).empty()) {
      throw ConfigError("test-split", plan.test_split + ": " + dataset.directory().string() + " has no such split");
    }
    if (plan.test_split != dataset.manifest().folds.held_out_split) {
      throw ConfigError("test-split", plan.test_split + " was not held out of the folds when " +
                                          dataset.directory().string() +
                                          " was packed (its images may be in the folds); repack with brainmri-prep "
                                          "--holdout-split " +
                                          plan.test_split);
    }
  }
  return plan;
}

std::string cross_validation_ini(const RunConfig& config, const CrossValidationConfig& cv) {
  // Every array task writes the same file: its own index is not in it.
  return to_ini(run_options(), config) + to_ini(cross_validation_options(), cv, {"array-task"});
}

namespace {

std::vector<std::string> job_names(const CrossValidationPlan& plan, const CrossValidationConfig& cv) {
  std::vector<std::string> jobs;
  for (const int k : plan.folds) jobs.push_back("fold-" + std::to_string(k));
  if (cv.final_model) jobs.push_back("final");
  return jobs;
}

CrossValidationResult write_summaries(const RunConfig& config, const CrossValidationConfig& cv,
                                      const CrossValidationPlan& plan, const data::ShardedDataset& dataset,
                                      const std::map<std::string, JobStatus>& statuses, const json& ranks,
                                      const torch::Device& device, const Messages& messages);

}  // namespace

CrossValidationResult cross_validate(const RunConfig& config, const CrossValidationConfig& cv,
                                     const distributed::MpiEnvironment& environment, distributed::Communicator& world,
                                     const torch::Device& device, const Messages& messages) {
  const data::ShardedDataset dataset = open_dataset(config.data);
  const auto plan = plan_cross_validation(config, cv, dataset, world.size());
  const fs::path output = config.output.directory;
  const std::string config_text = cross_validation_ini(config, cv);
  SchedulerOptions scheduling;
  scheduling.ranks_per_job = cv.jobs.ranks_per_job;
  scheduling.max_retries = cv.jobs.max_retries;
  // While it runs: a line per fold, and cv_summary.{json,md} of the folds so far (complete: false;
  // the pooled out-of-fold evaluation and the report come at the end). An array task writes no
  // summary: `brainmri cv summarize` does once all have run.
  json live_folds = json::array();
  ScoresAcrossFolds live_scores;
  std::vector<std::string> live_failed;
  scheduling.on_settled = [&](const JobSettled& event) {
    const auto& r = event.status.result;
    char what[128];
    std::snprintf(what, sizeof(what), "accuracy %.4f, macro-F1 %.4f", result_number(r, "accuracy"),
                  result_number(r, "macro_f1"));
    messages.progress(job_settled_line(event, what));
    if (cv.jobs.in_array()) return;
    if (event.status.state != JobState::Finished) {
      live_failed.push_back(event.job + " (failed: " + event.status.error + ")");
    } else if (event.job != "final") {
      live_folds.push_back(fold_entry(event.job, event.status));
      live_scores.add(r);
    }
    json partial = {{"model", config.model.architecture},
                    {"dataset", fs::absolute(dataset.directory()).string()},
                    {"folds_by", name_of(dataset.folds_by())},
                    {"complete", false},
                    {"jobs_settled", event.settled},
                    {"jobs", event.known},
                    {"folds", live_folds},
                    {"failed", live_failed}};
    live_scores.write_into(partial);
    write_file_atomically(output / "cv_summary.json", partial.dump(2) + "\n");
    write_file_atomically(output / "cv_summary.md",
                          "Running: " + std::to_string(event.settled) + " of " + std::to_string(event.known) +
                              " jobs settled (the pooled out-of-fold evaluation comes at the end).\n\n" +
                              summary_table(partial, "", 0, live_failed));
  };
  JobScheduler scheduler(environment, world, scheduling);
  std::unique_ptr<Journal> journal;
  if (world.rank() == 0) {
    fs::create_directories(output);
    write_file_atomically(output / "config.ini", "# brainmri " + std::string(kVersion) + " cv\n" + config_text);
    journal = std::make_unique<Journal>(journal_file(output, cv.jobs.array_task));
  }
  const auto jobs = job_names(plan, cv);
  FixedJobs all_jobs(jobs);
  // An array task runs jobs K, K + N, ... of the list.
  ArrayShare share(
      all_jobs, std::max(cv.jobs.array_task, 0), cv.jobs.array_tasks,
      [&](const std::string& job) { return static_cast<int>(std::find(jobs.begin(), jobs.end(), job) - jobs.begin()); },
      output, cv.jobs.max_retries, false);
  JobPlan& job_plan = cv.jobs.in_array() ? static_cast<JobPlan&>(share) : all_jobs;
  if (world.rank() == 0) {
    messages.result(
        "Cross-validating " + config.model.architecture + " over " + std::to_string(jobs.size()) + " folds on " +
        std::to_string(scheduler.group_count()) + " group(s) of " + std::to_string(cv.jobs.ranks_per_job) + " rank(s)" +
        (cv.jobs.in_array()
             ? ", as array task " + std::to_string(cv.jobs.array_task) + " of " + std::to_string(cv.jobs.array_tasks)
             : std::string()));
  }
  const auto statuses = scheduler.run(&job_plan, journal.get(), [&](const JobContext& context) {
    const bool is_final = context.assignment.job == "final";
    const int fold = is_final ? -1 : std::stoi(context.assignment.job.substr(5));
    RunConfig run = config;
    // Each fold's seed comes from (experiment seed, fold): rerunning a fold reproduces it.
    run.training.seed = training::augmentation_seed(config.training.seed, -3, fold, 0);
    RunPlacement where;
    where.output = output / context.assignment.job;
    where.val_fold = fold;
    where.resume = context.assignment.resume;
    where.test_split = plan.test_split;
    where.all_folds = is_final;
    where.export_model = is_final;
    const logging::LogContext log_context(is_final ? "[final]" : "[fold " + std::to_string(fold) + "]");
    const bool speaks = context.group.rank() == 0;
    const auto outcome = train_run(
        run, where, dataset, context.group, device,
        [&](const std::string& line) {
          if (speaks) messages.progress(line);
        },
        "cv", config_text);
    return outcome.to_json();
  });
  if (world.rank() != 0) return {};
  if (cv.jobs.in_array()) {
    CrossValidationResult result;
    std::string done;
    for (const auto& [job, status] : statuses) {
      done += (done.empty() ? "" : ", ") + job;
      if (status.state != JobState::Finished) result.failed.push_back(job + " (" + to_string(status.state) + ")");
    }
    messages.result("Array task " + std::to_string(cv.jobs.array_task) + " of " + std::to_string(cv.jobs.array_tasks) +
                    " has run its jobs (" + done + "). Once every task has: brainmri cv summarize " + output.string());
    return result;
  }
  return write_summaries(config, cv, plan, dataset, statuses, world.size(), device, messages);
}

CrossValidationResult summarize_cross_validation(const fs::path& directory, const torch::Device& device,
                                                 const Messages& messages) {
  RunConfig config;
  CrossValidationConfig cv;
  read_experiment_config(directory / "config.ini", config, &cv, nullptr);
  config.output.directory = directory;
  const data::ShardedDataset dataset = open_dataset(config.data);
  const auto plan = plan_cross_validation(config, cv, dataset, cv.jobs.ranks_per_job);
  FixedJobs jobs(job_names(plan, cv));
  const auto statuses = settled_jobs(directory, jobs, cv.jobs.max_retries, "cv");
  return write_summaries(config, cv, plan, dataset, statuses, json(), device, messages);
}

namespace {

CrossValidationResult write_summaries(const RunConfig& config, const CrossValidationConfig& cv,
                                      const CrossValidationPlan& plan, const data::ShardedDataset& dataset,
                                      const std::map<std::string, JobStatus>& statuses, const json& ranks,
                                      const torch::Device& device, const Messages& messages) {
  const fs::path output = config.output.directory;
  const auto jobs = job_names(plan, cv);
  CrossValidationResult result;
  // Aggregates, on rank 0: per fold, across folds, and pooled out of fold.
  json per_fold = json::array();
  ScoresAcrossFolds validation_scores, test_scores;
  std::map<std::string, ScoresAcrossFolds> test_part_scores;  // "clean", "contaminated"
  evaluation::Predictions pooled;
  double pooled_loss = 0;
  // The folds' temperatures and their cross-fitted validation predictions, pooled like `pooled`.
  std::vector<double> fold_temperatures;
  evaluation::Predictions pooled_cross_fitted;
  const int class_count = static_cast<int>(dataset.class_names().size());
  std::vector<evaluation::Predictions> test_predictions;  // one per fold model, for the ensemble
  for (const auto& job : jobs) {
    const auto& status = statuses.at(job);
    if (status.state != JobState::Finished) {
      result.failed.push_back(job + " (" + to_string(status.state) + ": " + status.error + ")");
      continue;
    }
    if (job == "final") continue;
    per_fold.push_back(fold_entry(job, status));
    if (status.result.contains("test")) {
      per_fold.back()["test"] = status.result["test"];
      test_scores.add(status.result["test"]);
      for (const char* part : {"clean", "contaminated"}) {
        if (status.result["test"].contains(part) && !status.result["test"][part].is_null())
          test_part_scores[part].add(status.result["test"][part]);
      }
      test_predictions.push_back(evaluation::read_predictions(output / job / "test" / "predictions.h5"));
    }
    validation_scores.add(status.result);
    const auto fold_predictions = evaluation::read_predictions(output / job / "validation" / "predictions.h5");
    pooled.sample_ids.insert(pooled.sample_ids.end(), fold_predictions.sample_ids.begin(),
                             fold_predictions.sample_ids.end());
    pooled.labels.insert(pooled.labels.end(), fold_predictions.labels.begin(), fold_predictions.labels.end());
    pooled.probabilities.insert(pooled.probabilities.end(), fold_predictions.probabilities.begin(),
                                fold_predictions.probabilities.end());
    pooled_loss += status.result["loss"].get<double>() * static_cast<double>(fold_predictions.labels.size());
    const auto fold_metrics = evaluation::read_metrics(output / job / "validation" / "metrics.json");
    if (fold_metrics.temperature_scaling && !fold_metrics.temperature_scaling->temperatures.empty()) {
      fold_temperatures.push_back(fold_metrics.temperature_scaling->temperatures.front());
      const auto scaled =
          evaluation::cross_fitted_predictions(fold_predictions, class_count, config.output.bootstrap_seed);
      pooled_cross_fitted.probabilities.insert(pooled_cross_fitted.probabilities.end(), scaled.probabilities.begin(),
                                               scaled.probabilities.end());
    }
  }
  // Every sample of the folds run must have exactly one out-of-fold prediction.
  const std::set<std::int64_t> seen(pooled.sample_ids.begin(), pooled.sample_ids.end());
  if (seen.size() != pooled.sample_ids.size()) throw std::runtime_error("a sample has two out-of-fold predictions");
  std::size_t expected = 0;
  for (const int k : plan.folds) {
    if (statuses.at("fold-" + std::to_string(k)).state == JobState::Finished) {
      expected += dataset.validation_samples_for_fold(k).size();
    }
  }
  if (pooled.sample_ids.size() != expected) {
    throw std::runtime_error("out-of-fold predictions cover " + std::to_string(pooled.sample_ids.size()) +
                             " samples, the folds hold " + std::to_string(expected));
  }
  json summary = {{"model", config.model.architecture},
                  {"dataset", fs::absolute(dataset.directory()).string()},
                  {"folds_by", name_of(dataset.folds_by())},
                  {"folds", per_fold},
                  {"failed", result.failed},
                  {"complete", true},
                  {"ranks", ranks},
                  {"ranks_per_job", cv.jobs.ranks_per_job},
                  {"array_tasks", cv.jobs.array_tasks}};
  validation_scores.write_into(summary);
  if (!pooled.labels.empty()) {
    pooled.loss = pooled_loss / static_cast<double>(pooled.labels.size());
    const json context = {
        {"command", "cv"}, {"dataset", summary["dataset"]}, {"selection", "out of fold"}, {"model", summary["model"]}};
    // Temperature scaling when every fold fitted one: each fold's images cross-fitted within it.
    std::optional<evaluation::TemperatureScaling> scaling;
    if (!fold_temperatures.empty() && pooled_cross_fitted.probabilities.size() == pooled.probabilities.size()) {
      pooled_cross_fitted.sample_ids = pooled.sample_ids;
      pooled_cross_fitted.labels = pooled.labels;
      scaling = evaluation::temperature_scaling(pooled, pooled_cross_fitted, class_count, fold_temperatures, false);
    }
    const auto oof = evaluation::write_evaluation(output / "out_of_fold", pooled, dataset.class_names(), context,
                                                  config.output.bootstrap_seed, scaling);
    summary["out_of_fold"] = {{"samples", pooled.labels.size()},
                              {"accuracy", oof.accuracy},
                              {"macro_f1", oof.macro_average.f1},
                              {"macro_auc", number_or_null(oof.macro_auc)},
                              {"ece", number_or_null(oof.calibration.ece)}};
    if (scaling) {
      summary["out_of_fold"]["temperature_scaling"] = {{"temperatures", scaling->temperatures},
                                                       {"ece_after", number_or_null(scaling->after.ece)},
                                                       {"nll_before", number_or_null(scaling->before.nll)},
                                                       {"nll_after", number_or_null(scaling->after.nll)}};
    }
  }
  if (!test_predictions.empty()) {
    const auto ensemble =
        evaluation::average_predictions(test_predictions, static_cast<int>(dataset.class_names().size()));
    const json context = {{"command", "cv"},
                          {"dataset", summary["dataset"]},
                          {"selection", "split " + plan.test_split + " (held out), mean of " +
                                            std::to_string(test_predictions.size()) + " fold models"},
                          {"model", summary["model"]}};
    const auto contaminated = dataset.contaminated(plan.test_split);
    const auto m = evaluation::write_held_out_evaluation(output / "test_ensemble", ensemble, dataset.class_names(),
                                                         context, config.output.bootstrap_seed, contaminated);
    const auto headline = [](const evaluation::EvaluationMetrics& e) {
      return json{
          {"accuracy", e.accuracy}, {"macro_f1", e.macro_average.f1}, {"macro_auc", number_or_null(e.macro_auc)}};
    };
    summary["test"] = {{"split", plan.test_split},
                       {"holdout_policy", name_of(dataset.manifest().folds.holdout_policy)},
                       {"samples", ensemble.labels.size()},
                       {"fold_models", json::object()},
                       {"ensemble", headline(m.all)}};
    test_scores.write_into(summary["test"]["fold_models"]);
    for (const auto& [part, metrics] : {std::pair{"clean", &m.clean}, std::pair{"contaminated", &m.contaminated}}) {
      if (!metrics->has_value()) {
        summary["test"][part] = {{"samples", 0}};
        continue;
      }
      summary["test"][part] = {
          {"samples", (*metrics)->samples}, {"ensemble", headline(**metrics)}, {"fold_models", json::object()}};
      test_part_scores[part].write_into(summary["test"][part]["fold_models"]);
    }
  }
  if (cv.final_model && statuses.at("final").state == JobState::Finished) {
    const auto& final_result = statuses.at("final").result;
    summary["final"] = {{"directory", (output / "final").string()},
                        {"checkpoint", (output / "final" / "model.pt").string()},
                        {"torchscript", (output / "final" / "model.torchscript.pt").string()},
                        {"test", final_result.value("test", json())}};
  }
  write_file_atomically(output / "cv_summary.json", summary.dump(2) + "\n");
  const auto table = summary_table(summary, plan.test_split, pooled.labels.size(), result.failed);
  write_file_atomically(output / "cv_summary.md", table);
  messages.result("\n" + table + "\nCross-validation directory: " + output.string() +
                  " (cv_summary.md, cv_summary.json, out_of_fold/, fold-K/, journal.jsonl)");
  if (!per_fold.empty() && summary.contains("out_of_fold")) {
    write_run_report(output, config.output, device, messages.result, messages.progress);
  }
  result.summary = std::move(summary);
  return result;
}

}  // namespace

}  // namespace brainmri::experiments
