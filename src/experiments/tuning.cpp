#include "brainmri/experiments/tuning.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/config_error.hpp"
#include "brainmri/common/csv.hpp"
#include "brainmri/common/log.hpp"
#include "brainmri/evaluation/run_log.hpp"
#include "brainmri/experiments/journal.hpp"
#include "brainmri/experiments/scheduler.hpp"
#include "brainmri/experiments/search_report.hpp"
#include "brainmri/experiments/training_run.hpp"
#include "brainmri/reports/number_text.hpp"
#include "brainmri/training/augmentation.hpp"
#include "brainmri/version.hpp"

namespace brainmri::experiments {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using reports::fixed;

// A failed job in the tables: its name and the first line of its error.
std::string failure_line(const std::string& job, const JobStatus& status) {
  std::string line = job + ": ";
  line.append(status.error, 0, status.error.find('\n'));
  return line;
}

std::string trial_name(int trial) {
  char text[32];
  std::snprintf(text, sizeof(text), "trial-%04d", trial);
  return text;
}

std::string objective_key(training::MonitoredMetric objective) {
  switch (objective) {
    case training::MonitoredMetric::ValMacroF1: return "macro_f1";
    case training::MonitoredMetric::ValAccuracy: return "accuracy";
    case training::MonitoredMetric::ValMacroAuc: return "macro_auc";
    case training::MonitoredMetric::ValLoss: break;
  }
  throw ConfigError("objective", "must be val_macro_f1, val_accuracy or val_macro_auc (it is maximized), got val_loss");
}

// What identifies a search: a rerun into the same directory must be the same search, or the
// journal's results would be mixed into another.
json plan_record(const SearchConfig& search, const SearchPlan& plan, std::uint64_t seed) {
  json trials = json::array();
  for (const auto& t : plan.trials) {
    json parameters = json::object();
    for (const auto& [name, value] : t) parameters[name] = value;
    trials.push_back(parameters);
  }
  return json{{"algorithm", name_of(search.algorithm)},
              {"objective", name_of(search.objective)},
              {"folds", plan.folds},
              {"rung_epochs", plan.budgets},
              {"reduction_factor", search.reduction_factor},
              {"seed", seed},
              {"search", search.space},
              {"trials", trials}};
}

}  // namespace

SearchPlan plan_search(const RunConfig& config, const SearchConfig& search, const data::ShardedDataset& dataset,
                       int world_size) {
  validate(config);
  validate(search.jobs, world_size);
  check_same_split(search.jobs, config.output.directory);
  SearchPlan plan;
  plan.objective_key = objective_key(search.objective);
  plan.folds = selected_folds(search.jobs.folds, dataset);
  if (search.space.empty()) throw ConfigError("search", "at least one searched option 'NAME: KIND ARGS' is needed");
  std::set<std::string> names;
  for (const auto& text : search.space) {
    try {
      plan.space.push_back(ParameterSpace::parse(text));
    } catch (const std::invalid_argument& e) {
      throw ConfigError("search", e.what());
    }
    const auto& name = plan.space.back().name;
    const auto* option = find_option(run_options(), name);
    if (option == nullptr) throw ConfigError("search", "'" + text + "': '" + name + "' is not a training option");
    if (!option->searchable || option->arity == OptionArity::List || name == "epochs") {
      throw ConfigError("search",
                        "'" + text + "': '" + name + "' cannot be searched" +
                            (name == "epochs" ? " (asha trains in rungs of growing epochs: see min-epochs)" : ""));
    }
    if (!names.insert(name).second) throw ConfigError("search", "'" + name + "' is searched twice");
  }
  const int epochs = config.training.epochs;
  try {
    switch (search.algorithm) {
      case SearchAlgorithm::Grid:
        plan.trials = grid_trials(plan.space, search.grid_points);
        plan.budgets = {epochs};
        break;
      case SearchAlgorithm::Random:
        plan.trials = random_trials(plan.space, search.trials, config.training.seed);
        plan.budgets = {epochs};
        break;
      case SearchAlgorithm::Asha:
        plan.trials = random_trials(plan.space, search.trials, config.training.seed);
        plan.budgets = rung_epochs(search.min_epochs, epochs, search.reduction_factor);
        break;
    }
  } catch (const std::invalid_argument& e) {
    throw ConfigError("algorithm", e.what());
  }
  const bool staged = config.stages.stages.size() > 1;
  if (search.algorithm == SearchAlgorithm::Asha && (config.stages.finetune_epochs > 0 || staged)) {
    throw ConfigError("algorithm",
                      "asha budgets the epochs of a single stage; search the fine-tuning stage with grid or "
                      "random, or with asha on trainable-blocks and lr of one stage");
  }
  // Every trial's configuration is checked now, not after hours of other trials.
  for (std::size_t t = 0; t < plan.trials.size(); ++t) {
    try {
      auto trial = patched(config, plan.trials[t]);
      trial.training.epochs = plan.budgets.back();
      validate(trial);
      create_model(trial.model, dataset);  // architecture options in range
      plan.trial_configs.push_back(std::move(trial));
    } catch (const std::exception& e) {
      throw ConfigError("search",
                        "trial " + std::to_string(t) + " of the search is not a valid configuration: " + e.what());
    }
  }
  return plan;
}

std::string search_ini(const RunConfig& config, const SearchConfig& search) {
  // Every array task writes the same file: its own index is not in it.
  return to_ini(run_options(), config) + to_ini(search_options(), search, {"array-task"});
}

namespace {

SearchResult write_summaries(const RunConfig& config, const SearchConfig& search, const SearchPlan& plan,
                             const SuccessiveHalving& halving, const std::map<std::string, JobStatus>& statuses,
                             const json& ranks, const torch::Device& device, const Messages& messages);

struct TrialTables {
  std::vector<int> ranking;  // trial ids, best first
  int best = -1;             // a trial that completed the last rung, or -1
  json rows;                 // one per trial
  json summary;              // trials.json
};
TrialTables write_trial_tables(const RunConfig& config, const SearchConfig& search, const SearchPlan& plan,
                               const SuccessiveHalving& halving_plan, const std::vector<std::string>& failures,
                               std::size_t jobs, const json& ranks, bool complete);

SuccessiveHalving halving_for(const SearchPlan& plan, const SearchConfig& search) {
  return SuccessiveHalving(static_cast<int>(plan.trials.size()), plan.folds, static_cast<int>(plan.budgets.size()),
                           search.reduction_factor, plan.objective_key);
}

}  // namespace

std::string trial_ini(const RunConfig& trial, const fs::path& portable_directory) {
  if (portable_directory.empty()) return to_ini(run_options(), trial, {"output"});
  return to_ini(run_options(), trial, {"output", "data"}, portable_directory);
}

SearchResult tune(const RunConfig& config, const SearchConfig& search, const distributed::MpiEnvironment& environment,
                  distributed::Communicator& world, const torch::Device& device, const Messages& messages) {
  const data::ShardedDataset dataset = open_dataset(config.data);
  const auto plan = plan_search(config, search, dataset, world.size());
  const fs::path output = config.output.directory;
  const int rungs = static_cast<int>(plan.budgets.size());
  const json record = plan_record(search, plan, config.training.seed);
  SearchResult result;
  std::unique_ptr<Journal> journal;
  std::unique_ptr<SuccessiveHalving> halving;
  if (world.rank() == 0) {
    fs::create_directories(output);
    const fs::path plan_file = output / "search_plan.json";
    if (fs::exists(plan_file)) {
      std::ifstream in(plan_file);
      if (json::parse(in, nullptr, false) != record) {
        result.refusal = output.string() +
                         " holds another search (its search_plan.json differs from this one); "
                         "give a new output directory, or rerun the original search to resume it";
      }
    } else {
      write_file_atomically(plan_file, record.dump(2) + "\n");
    }
    if (result.refusal.empty()) {
      write_file_atomically(output / "config.ini",
                            "# brainmri " + std::string(kVersion) + " tune\n" + search_ini(config, search));
      journal = std::make_unique<Journal>(journal_file(output, search.jobs.array_task));
      halving = std::make_unique<SuccessiveHalving>(halving_for(plan, search));
    }
  }
  broadcast_text(world, result.refusal, 0);
  if (!result.refusal.empty()) {
    result.refused = true;
    return result;
  }
  std::vector<std::string> live_failures;
  SchedulerOptions scheduling;
  scheduling.ranks_per_job = search.jobs.ranks_per_job;
  scheduling.max_retries = search.jobs.max_retries;
  scheduling.on_settled = [&](const JobSettled& event) {  // on rank 0, where the plan lives
    std::string what = plan.objective_key + " " + fixed(result_number(event.status.result, plan.objective_key));
    const auto ranking = halving->ranking();
    if (!ranking.empty()) {
      const auto& best = halving->trials()[static_cast<std::size_t>(ranking.front())];
      if (best.highest_rung >= 0 && !best.failed) {
        what += "; best so far " + trial_name(ranking.front()) + " (rung " + std::to_string(best.highest_rung) + ", " +
                fixed(best.score_by_rung.back()) + ")";
      }
    }
    messages.progress(job_settled_line(event, what));
    if (event.status.state == JobState::Failed) {
      live_failures.push_back(failure_line(event.job, event.status));
    }
    // The tables of the search so far, for whoever watches it (one array task sees its share).
    if (!search.jobs.in_array()) {
      write_trial_tables(config, search, plan, *halving, live_failures, event.known, world.size(), false);
    }
  };
  JobScheduler scheduler(environment, world, scheduling);
  if (world.rank() == 0) {
    std::string budgets;
    for (const int b : plan.budgets) budgets += (budgets.empty() ? "" : ", ") + std::to_string(b);
    messages.result("Searching " + std::to_string(plan.trials.size()) + " trials (" + name_of(search.algorithm) +
                    ", rungs of " + budgets + " epochs) on " + std::to_string(plan.folds.size()) + " fold(s), " +
                    std::to_string(scheduler.group_count()) + " group(s) of " +
                    std::to_string(search.jobs.ranks_per_job) + " rank(s)");
  }

  // An array task runs the trials K, K + N, ...; with several rungs it waits for the other tasks'
  // results of a rung before it promotes, as one job would.
  std::unique_ptr<ArrayShare> share;
  if (halving && search.jobs.in_array()) {
    share = std::make_unique<ArrayShare>(
        *halving, search.jobs.array_task, search.jobs.array_tasks,
        [](const std::string& job) {
          const auto parsed = TrialJob::parse(job);
          return parsed ? parsed->trial : 0;
        },
        output, search.jobs.max_retries, rungs > 1);
  }
  JobPlan* job_plan = share ? static_cast<JobPlan*>(share.get()) : halving.get();
  std::vector<std::string> job_texts;
  for (const auto& trial : plan.trial_configs) job_texts.push_back(trial_ini(trial));
  const auto statuses = scheduler.run(job_plan, journal.get(), [&](const JobContext& context) {
    const auto job = TrialJob::parse(context.assignment.job);
    if (!job || job->trial < 0 || job->trial >= static_cast<int>(plan.trials.size()) || job->rung >= rungs) {
      throw std::runtime_error("unknown job '" + context.assignment.job + "'");
    }
    const auto started = std::chrono::steady_clock::now();
    RunConfig run = plan.trial_configs[static_cast<std::size_t>(job->trial)];
    run.training.epochs = plan.budgets[static_cast<std::size_t>(job->rung)];
    run.training.schedule_epochs = plan.budgets.back();
    // Each job's seed comes from (experiment seed, trial, fold); a promoted trial continues its
    // own run, so every rung of a trial sees the data order of one uninterrupted run.
    run.training.seed = training::augmentation_seed(config.training.seed, -4, job->trial, job->fold);
    // Weights carry over between rungs: a promoted trial resumes from its last checkpoint.
    RunPlacement where;
    where.output = output / "trials" / trial_name(job->trial) / ("fold-" + std::to_string(job->fold));
    where.val_fold = job->fold;
    where.resume = job->rung > 0 || context.assignment.resume;
    char label[64];
    std::snprintf(label, sizeof(label), "[trial-%04d rung %d fold %d]", job->trial, job->rung, job->fold);
    const logging::LogContext log_context(label);
    const bool speaks = context.group.rank() == 0;
    if (speaks && job->rung == 0 && !context.assignment.resume) {
      // TensorBoard's HParams view: the trial's values beside the scalars of its run.
      std::map<std::string, evaluation::TensorBoardWriter::HParamValue> values;
      for (const auto& [name, value] : plan.trials[static_cast<std::size_t>(job->trial)]) {
        try {
          values[name] = option_text::parse<double>(value);
        } catch (const std::invalid_argument&) {
          values[name] = value;
        }
      }
      evaluation::RunLog(where.output).hyperparameters(values, trial_name(job->trial));
    }
    auto outcome = train_run(
                       run, where, dataset, context.group, device,
                       [&](const std::string& line) {
                         if (speaks) messages.progress(line);
                       },
                       "tune", job_texts[static_cast<std::size_t>(job->trial)])
                       .to_json();
    outcome["epochs"] = run.training.epochs;
    outcome["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return outcome;
  });
  if (world.rank() != 0) return result;
  if (search.jobs.in_array()) {
    std::size_t failed = 0;
    for (const auto& [job, status] : statuses) failed += status.state == JobState::Finished ? 0 : 1;
    messages.result("Array task " + std::to_string(search.jobs.array_task) + " of " +
                    std::to_string(search.jobs.array_tasks) + " has run its " + std::to_string(statuses.size()) +
                    " jobs (" + std::to_string(failed) +
                    " not finished). Once every task has: brainmri tune summarize " + output.string());
    result.array_task = true;
    result.unfinished_jobs = static_cast<int>(failed);
    return result;
  }
  return write_summaries(config, search, plan, *halving, statuses, world.size(), device, messages);
}

SearchResult summarize_search(const fs::path& directory, const torch::Device& device, const Messages& messages) {
  RunConfig config;
  SearchConfig search;
  read_experiment_config(directory / "config.ini", config, nullptr, &search);
  config.output.directory = directory;
  const data::ShardedDataset dataset = open_dataset(config.data);
  const auto plan = plan_search(config, search, dataset, search.jobs.ranks_per_job);
  auto halving = halving_for(plan, search);
  const auto statuses = settled_jobs(directory, halving, search.jobs.max_retries, "tune");
  return write_summaries(config, search, plan, halving, statuses, json(), device, messages);
}

namespace {

// trials.json and trials.csv, from the plan's view of every result so far (this run's and the
// journal's). `complete`: the search has ended; else the tables are a snapshot of a running one.
TrialTables write_trial_tables(const RunConfig& config, const SearchConfig& search, const SearchPlan& plan,
                               const SuccessiveHalving& halving_plan, const std::vector<std::string>& failures,
                               std::size_t jobs, const json& ranks, bool complete) {
  TrialTables tables;
  const fs::path output = config.output.directory;
  const int rungs = static_cast<int>(plan.budgets.size());
  const auto* halving = &halving_plan;
  const auto ranking = halving->ranking();
  std::map<int, int> rank_of;
  for (std::size_t i = 0; i < ranking.size(); ++i) rank_of[ranking[i]] = static_cast<int>(i) + 1;
  json rows = json::array();
  std::vector<std::string> header = {"trial", "rank"};
  for (const auto& p : plan.space) header.push_back(p.name);
  for (const auto* column : {"state", "rung", "epochs", "objective"}) header.emplace_back(column);
  for (const int f : plan.folds) header.push_back("fold_" + std::to_string(f));
  header.emplace_back("seconds");
  CsvTable csv(header);
  for (int t = 0; t < static_cast<int>(plan.trials.size()); ++t) {
    const auto& trial = halving->trials()[static_cast<std::size_t>(t)];
    const int rung = trial.highest_rung;
    const std::string state = trial.failed        ? "failed"
                              : rung == rungs - 1 ? "completed"
                              : rung >= 0         ? "stopped"
                                                  : "incomplete";
    double seconds = 0;
    for (const auto& [r, folds] : trial.results) {
      for (const auto& [f, job_result] : folds) seconds += job_result.value("seconds", 0.0);
    }
    json parameters = json::object();
    for (const auto& [name, value] : plan.trials[static_cast<std::size_t>(t)]) parameters[name] = value;
    json fold_scores = json::object();
    if (rung >= 0) {
      for (const auto& [f, job_result] : trial.results.at(rung)) {
        fold_scores[std::to_string(f)] = job_result.value(plan.objective_key, json());
      }
    }
    const int epochs = rung >= 0 ? plan.budgets[static_cast<std::size_t>(rung)] : 0;
    const json objective = rung >= 0 ? json(trial.score_by_rung.back()) : json();
    rows.push_back({{"trial", t},
                    {"rank", rank_of[t]},
                    {"parameters", parameters},
                    {"state", state},
                    {"rung", rung},
                    {"epochs", epochs},
                    {"objective", objective},
                    {"objective_by_rung", trial.score_by_rung},
                    {"fold_scores", fold_scores},
                    {"seconds", seconds},
                    {"directory", (fs::path("trials") / trial_name(t)).string()}});
    std::vector<std::string> cells = {std::to_string(t), std::to_string(rank_of[t])};
    for (const auto& [name, value] : plan.trials[static_cast<std::size_t>(t)]) cells.push_back(value);
    cells.insert(cells.end(), {state, std::to_string(rung), std::to_string(epochs),
                               rung >= 0 ? fixed(trial.score_by_rung.back(), 6) : ""});
    for (const int f : plan.folds) {
      const auto it = fold_scores.find(std::to_string(f));
      cells.push_back(it != fold_scores.end() && it->is_number() ? fixed(it->get<double>(), 6) : "");
    }
    cells.push_back(fixed(seconds, 1));
    csv.row(cells);
  }
  const auto& trials = halving->trials();
  const int best = ranking.empty() || trials[static_cast<std::size_t>(ranking.front())].failed ||
                           trials[static_cast<std::size_t>(ranking.front())].highest_rung != rungs - 1
                       ? -1
                       : ranking.front();
  json summary = plan_record(search, plan, config.training.seed);
  summary.erase("trials");
  summary["model"] = config.model.architecture;
  summary["dataset"] = fs::absolute(config.data.dataset).string();
  summary["ranks"] = ranks;
  summary["array_tasks"] = search.jobs.array_tasks;
  summary["ranks_per_job"] = search.jobs.ranks_per_job;
  summary["jobs"] = jobs;
  summary["complete"] = complete;
  summary["failed_jobs"] = failures;
  summary["best_trial"] = best >= 0 ? json(best) : json();
  summary["trials"] = rows;
  write_file_atomically(output / "trials.json", summary.dump(2) + "\n");
  write_file_atomically(output / "trials.csv", csv.text());
  tables.ranking = ranking;
  tables.best = best;
  tables.rows = std::move(rows);
  tables.summary = std::move(summary);
  return tables;
}

SearchResult write_summaries(const RunConfig& config, const SearchConfig& search, const SearchPlan& plan,
                             const SuccessiveHalving& halving_plan, const std::map<std::string, JobStatus>& statuses,
                             const json& ranks, const torch::Device& device, const Messages& messages) {
  SearchResult result;
  const fs::path output = config.output.directory;
  const int rungs = static_cast<int>(plan.budgets.size());
  const auto* halving = &halving_plan;
  std::vector<std::string> failures;
  for (const auto& [job, status] : statuses) {
    if (status.state == JobState::Failed) failures.push_back(failure_line(job, status));
  }
  const auto tables = write_trial_tables(config, search, plan, halving_plan, failures, statuses.size(), ranks, true);
  const auto& ranking = tables.ranking;
  const auto& rows = tables.rows;
  const int best = tables.best;
  const auto& trials = halving->trials();

  const auto objective_name = name_of(search.objective);
  std::ostringstream md;
  md << "# Hyperparameter search: " << plan.trials.size() << " trials of " << config.model.architecture << " ("
     << name_of(search.algorithm) << ")\n\nObjective: mean " << objective_name << " over fold(s) ";
  for (std::size_t i = 0; i < plan.folds.size(); ++i) md << (i ? ", " : "") << plan.folds[i];
  md << ". Rungs (epochs):";
  for (int r = 0; r < rungs; ++r) {
    int reached = 0;
    for (const auto& t : trials) reached += t.highest_rung >= r ? 1 : 0;
    md << " " << plan.budgets[static_cast<std::size_t>(r)] << " (" << reached << " trials)"
       << (r + 1 < rungs ? "," : ".");
  }
  md << "\n\nSearch space:\n\n";
  for (const auto& text : search.space) md << "- `" << text << "`\n";
  md << "\n| rank | trial |";
  for (const auto& p : plan.space) md << " " << p.name << " |";
  md << " state | epochs | objective |\n|---:|---:|";
  for (std::size_t i = 0; i < plan.space.size(); ++i) md << "---|";
  md << "---|---:|---:|\n";
  for (std::size_t i = 0; i < std::min<std::size_t>(ranking.size(), 10); ++i) {
    const auto& row = rows[static_cast<std::size_t>(ranking[i])];
    md << "| " << i + 1 << " | " << ranking[i] << " |";
    for (const auto& [name, value] : plan.trials[static_cast<std::size_t>(ranking[i])]) md << " " << value << " |";
    md << " " << row["state"].get<std::string>() << " | " << row["epochs"].get<int>() << " | "
       << (row["objective"].is_null() ? std::string("n/a") : fixed(row["objective"].get<double>())) << " |\n";
  }
  if (best >= 0) {
    md << "\nBest: trial " << best << " (" << objective_name << " "
       << fixed(trials[static_cast<std::size_t>(best)].score_by_rung.back()) << "), written to `best_config.ini`.\n";
  } else {
    md << "\nNo trial completed the last rung.\n";
  }
  for (const auto& f : failures) md << "\nFAILED: " << f << "\n";
  write_file_atomically(output / "tune_summary.md", md.str());
  if (best >= 0) {
    std::ostringstream comment;
    comment << "# Best trial (" << best << ") of the search in " << output.filename().string() << ": mean "
            << objective_name << " " << fixed(trials[static_cast<std::size_t>(best)].score_by_rung.back())
            << " over fold(s)";
    for (const int f : plan.folds) comment << " " << f;
    comment << ".\n# brainmri " << kVersion
            << ". Run it with: brainmri cv --config best_config.ini --data DIR --output DIR\n";
    write_file_atomically(output / "best_config.ini",
                          comment.str() + trial_ini(plan.trial_configs[static_cast<std::size_t>(best)], output));
  }
  // (not "\n" + md.str(): g++ 12 warns wrongly of an overflow in that operator+)
  messages.result(std::string(1, '\n') + md.str() + "\nSearch directory: " + output.string() +
                  " (trials.csv, trials.json, tune_summary.md, best_config.ini, trials/, journal.jsonl)");
  if (best >= 0) {  // the best trial's runs, one per objective fold
    for (const int f : plan.folds) {
      // The check concerns the architecture, the same in every fold: once is enough.
      write_run_report(output / "trials" / trial_name(best) / ("fold-" + std::to_string(f)), config.output, device,
                       messages.result, messages.progress, f == plan.folds.front());
    }
  }
  if (config.output.report) {  // after the best trial's reports, which its page links to
    try {
      reports::ReportOptions figures;
      figures.figures = reports::plotting_available();
      write_search_report(output, output / "report", figures);
      messages.result("Search report: " + (fs::absolute(output) / "report" / "index.html").string());
    } catch (const std::exception& e) {
      messages.progress("brainmri: the search report could not be written: " + std::string(e.what()) +
                        "; run `brainmri report " + output.string() + "` to retry");
    }
  }
  result.best_trial = best;
  result.trials = tables.summary;
  return result;
}

}  // namespace

}  // namespace brainmri::experiments
