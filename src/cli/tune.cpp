// brainmri tune: hyperparameter search (grid, random, ASHA) over rank groups (docs/experiments.md).

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/experiments/journal.hpp"
#include "brainmri/experiments/scheduler.hpp"
#include "brainmri/experiments/search.hpp"
#include "brainmri/training/augmentation.hpp"
#include "brainmri/version.hpp"
#include "training_command.hpp"

namespace brainmri::cli {
namespace {

using experiments::ParameterSpace;
using experiments::TrialJob;
using experiments::TrialParameters;

po::options_description tune_options() {
  auto options = train_options();
  po::options_description search("Search (brainmri tune)");
  // clang-format off
  search.add_options()
    ("search", po::value<std::vector<std::string>>()->composing(),
     "a searched training option, repeated for each: 'NAME: loguniform LOW HIGH', 'NAME: uniform LOW HIGH', "
     "'NAME: int LOW HIGH' or 'NAME: choice A B ...' (e.g. 'lr: loguniform 1e-5 1e-2')")
    ("algorithm", po::value<std::string>()->default_value("asha"), "grid, random or asha (successive halving in rungs of growing epochs)")
    ("trials", po::value<int>()->default_value(24), "random and asha: number of trials")
    ("grid-points", po::value<int>()->default_value(3), "grid: values of each numeric parameter")
    ("min-epochs", po::value<int>()->default_value(1), "asha: epochs of the first rung (--epochs is the last rung's)")
    ("reduction-factor", po::value<int>()->default_value(3), "asha: 1 in this many trials of a rung goes on to the next")
    ("objective", po::value<std::string>()->default_value("val_macro_f1"), "val_macro_f1, val_accuracy or val_macro_auc: the mean over --folds is maximized")
    ("folds", po::value<std::string>()->default_value("all"), "validation folds each trial trains on (its objective is their mean): all, or a list such as 0 for speed")
    ("ranks-per-job", po::value<int>()->default_value(1), "ranks that train one job (a trial on a fold) together")
    ("max-retries", po::value<int>()->default_value(2), "times a failed job is retried before its trial is marked failed");
  // clang-format on
  options.add(search);
  return options;
}

// Options a trial may not change: where data and results live, how the job is run, the seed.
const std::set<std::string> kNotSearchable = {"help", "config", "data", "output", "device", "seed", "resume", "val-fold",
                                              "val-split", "backend", "threads", "threads-per-rank", "comm-timeout",
                                              "log-all-ranks", "bootstrap-seed", "report"};

// The trial's complete configuration: the search's own, with the trial's values.
std::string trial_config(const std::string& base, const TrialParameters& parameters, int epochs) {
  std::map<std::string, std::string> values(parameters.begin(), parameters.end());
  values["epochs"] = std::to_string(epochs);
  std::ostringstream out;
  std::istringstream in(base);
  std::set<std::string> written;
  for (std::string line; std::getline(in, line);) {
    const auto equals = line.find(" = ");
    const std::string key = equals == std::string::npos ? "" : line.substr(0, equals);
    if (key == "output") continue;  // each trial has its own; a config to rerun gets a new one
    if (values.count(key) > 0) {
      out << key << " = " << values[key] << "\n";
      written.insert(key);
    } else {
      out << line << "\n";
    }
  }
  for (const auto& [key, value] : values) {
    if (written.count(key) == 0) out << key << " = " << value << "\n";
  }
  return out.str();
}

po::variables_map parse_trial_config(const std::string& text, const po::options_description& options) {
  po::variables_map vm;
  std::istringstream in(text);
  po::store(po::parse_config_file(in, options), vm);
  po::notify(vm);
  return vm;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string fixed(double value, int digits = 4) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", digits, value);
  return text;
}

std::string trial_name(int trial) {
  char text[32];
  std::snprintf(text, sizeof(text), "trial-%04d", trial);
  return text;
}

struct SearchSetup {
  std::vector<ParameterSpace> space;
  std::vector<TrialParameters> trials;
  std::vector<std::string> trial_texts;  // the configuration of each trial (last rung's epochs)
  std::vector<po::variables_map> trial_variables;
  std::vector<int> budgets;  // epochs per rung
  std::vector<int> folds;
  std::string objective;     // key of a job result
};

}  // namespace

int run_tune(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  const auto options = tune_options();
  const auto trial_options = train_options();
  SearchSetup search;
  auto setup = prepare_training(argc, argv, options, environment, "tune", [&](const po::variables_map& vm) {
    check_job_options(vm, environment);
    const auto objective = vm["objective"].as<std::string>();
    const std::map<std::string, std::string> objectives = {
        {"val_macro_f1", "macro_f1"}, {"val_accuracy", "accuracy"}, {"val_macro_auc", "macro_auc"}};
    if (objectives.count(objective) == 0) {
      throw UsageError("--objective must be val_macro_f1, val_accuracy or val_macro_auc, got " + objective);
    }
    search.objective = objectives.at(objective);

    const data::ShardedDataset dataset(vm["data"].as<std::string>());
    search.folds = selected_folds(vm["folds"].as<std::string>(), dataset);

    if (!vm.count("search")) throw UsageError("tune needs at least one --search 'NAME: KIND ARGS' (see --help)");
    std::set<std::string> names;
    for (const auto& text : vm["search"].as<std::vector<std::string>>()) {
      try {
        search.space.push_back(ParameterSpace::parse(text));
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
      const auto& name = search.space.back().name;
      if (trial_options.find_nothrow(name, false) == nullptr) {
        throw UsageError("search '" + text + "': '" + name + "' is not a training option (see brainmri train --help)");
      }
      if (kNotSearchable.count(name) > 0 || name == "epochs") {
        throw UsageError("search '" + text + "': '" + name + "' cannot be searched" +
                         (name == "epochs" ? " (asha trains in rungs of growing epochs: see --min-epochs)" : ""));
      }
      if (!names.insert(name).second) throw UsageError("'" + name + "' is searched twice");
    }

    const auto algorithm = vm["algorithm"].as<std::string>();
    const int epochs = vm["epochs"].as<int>();
    try {
      if (algorithm == "grid") {
        search.trials = experiments::grid_trials(search.space, vm["grid-points"].as<int>());
        search.budgets = {epochs};
      } else if (algorithm == "random") {
        search.trials = experiments::random_trials(search.space, vm["trials"].as<int>(), vm["seed"].as<std::uint64_t>());
        search.budgets = {epochs};
      } else if (algorithm == "asha") {
        search.trials = experiments::random_trials(search.space, vm["trials"].as<int>(), vm["seed"].as<std::uint64_t>());
        search.budgets = experiments::rung_epochs(vm["min-epochs"].as<int>(), epochs, vm["reduction-factor"].as<int>());
      } else {
        throw UsageError("--algorithm must be grid, random or asha, got " + algorithm);
      }
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    const bool staged = vm.count("stage") > 0 && vm["stage"].as<std::vector<std::string>>().size() > 1;
    if (algorithm == "asha" && (vm["finetune-epochs"].as<int>() > 0 || staged)) {
      throw UsageError("asha budgets the epochs of a single stage; search the fine-tuning stage with grid or random, or "
                       "with asha on trainable-blocks and lr of one stage");
    }

    // Every trial's configuration is checked now, not after hours of other trials.
    const auto base = resolved_config(trial_options, vm);
    for (std::size_t t = 0; t < search.trials.size(); ++t) {
      auto text = trial_config(base, search.trials[t], search.budgets.back());
      try {
        auto trial_vm = parse_trial_config(text, trial_options);
        for (const auto& stage : training_stages(trial_vm, trainer_options(trial_vm, ""))) {
          training::validate_train_options(stage.options);
        }
        create_model(trial_vm, dataset);  // architecture options in range
        search.trial_variables.push_back(std::move(trial_vm));
      } catch (const std::exception& e) {
        throw UsageError("trial " + std::to_string(t) + " of the search is not a valid configuration: " + e.what());
      }
      search.trial_texts.push_back(std::move(text));
    }
  });
  if (setup.help) {
    if (environment.rank() == 0) {
      std::cout << "Usage: brainmri tune --data DIR --output DIR --search 'NAME: KIND ARGS' ... [options]\n\n"
                   "Searches training options: each trial is a configuration of `brainmri train` trained on every fold\n"
                   "of --folds (its objective is the folds' mean validation score). asha trains all trials for\n"
                   "--min-epochs, then continues the best 1 in --reduction-factor from their checkpoints to the next\n"
                   "rung, up to --epochs. Jobs (a trial on a fold for a rung) are shared among groups of\n"
                   "--ranks-per-job ranks and journaled in DIR/journal.jsonl: the same command resumes. Writes\n"
                   "DIR/trials.csv, trials.json, tune_summary.md and best_config.ini (ready for brainmri cv/train).\n"
                   "--val-fold, --val-split and --resume of the training options do not apply here.\n\n"
                << options << "\n";
    }
    return kExitOk;
  }
  const auto& vm = setup.vm;
  const fs::path output = setup.output;
  const int rungs = static_cast<int>(search.budgets.size());
  const json plan_record = [&] {
    json trials = json::array();
    for (const auto& t : search.trials) {
      json parameters = json::object();
      for (const auto& [name, value] : t) parameters[name] = value;
      trials.push_back(parameters);
    }
    json space = json::array();
    for (const auto& text : vm["search"].as<std::vector<std::string>>()) space.push_back(text);
    return json{{"algorithm", vm["algorithm"].as<std::string>()}, {"objective", vm["objective"].as<std::string>()},
                {"folds", search.folds}, {"rung_epochs", search.budgets},
                {"reduction_factor", vm["reduction-factor"].as<int>()}, {"seed", vm["seed"].as<std::uint64_t>()},
                {"search", space}, {"trials", trials}};
  }();

  return abort_job_on_failure(environment, "tune", [&] {
    const auto world = distributed::make_communicator(environment, vm["backend"].as<std::string>(), setup.device,
                                                      communicator_options(vm));
    std::unique_ptr<experiments::Journal> journal;
    std::unique_ptr<experiments::SuccessiveHalving> plan;
    std::string refusal;
    if (world->rank() == 0) {
      fs::create_directories(output);
      // A rerun must be the same search, or the journal's results would be mixed into another.
      const fs::path plan_file = output / "search_plan.json";
      if (fs::exists(plan_file)) {
        std::ifstream in(plan_file);
        json earlier = json::parse(in, nullptr, false);
        if (earlier != plan_record) {
          refusal = output.string() + " holds another search (its search_plan.json differs from this command's); "
                                      "give a new --output, or rerun the original command to resume it";
        }
      } else {
        write_file_atomically(plan_file, plan_record.dump(2) + "\n");
      }
      if (refusal.empty()) {
        write_file_atomically(output / "config.ini", "# brainmri " + std::string(kVersion) + " tune\n" + setup.config_text);
        journal = std::make_unique<experiments::Journal>(output / "journal.jsonl");
        plan = std::make_unique<experiments::SuccessiveHalving>(static_cast<int>(search.trials.size()), search.folds, rungs,
                                                                vm["reduction-factor"].as<int>(), search.objective);
      }
    }
    experiments::broadcast_text(*world, refusal, 0);
    if (!refusal.empty()) {
      if (world->rank() == 0) say_error("brainmri tune: " + refusal);
      throw QuietExit{kExitUsage};
    }
    experiments::JobScheduler scheduler(environment, *world, {vm["ranks-per-job"].as<int>(), vm["max-retries"].as<int>()});
    if (world->rank() == 0) {
      std::string budgets;
      for (const int b : search.budgets) budgets += (budgets.empty() ? "" : ", ") + std::to_string(b);
      std::cout << "Searching " << search.trials.size() << " trials (" << vm["algorithm"].as<std::string>()
                << ", rungs of " << budgets << " epochs) on " << search.folds.size() << " fold(s), "
                << scheduler.group_count() << " group(s) of " << vm["ranks-per-job"].as<int>() << " rank(s)" << std::endl;
    }

    const auto statuses = scheduler.run(plan.get(), journal.get(), [&](const experiments::JobContext& context) {
      const auto job = TrialJob::parse(context.assignment.job);
      if (!job || job->trial < 0 || job->trial >= static_cast<int>(search.trials.size()) || job->rung >= rungs) {
        throw std::runtime_error("unknown job '" + context.assignment.job + "'");
      }
      const auto started = std::chrono::steady_clock::now();
      const auto& trial_vm = search.trial_variables[job->trial];
      const fs::path directory = output / "trials" / trial_name(job->trial) / ("fold-" + std::to_string(job->fold));
      auto stage1 = trainer_options(trial_vm, directory);
      stage1.epochs = search.budgets[job->rung];
      stage1.schedule_epochs = search.budgets.back();
      // Each job's seed comes from (experiment seed, trial, fold); a promoted trial continues its
      // own run, so every rung of a trial sees the data order of one uninterrupted run.
      stage1.seed = training::augmentation_seed(setup.stage1.seed, -4, job->trial, job->fold);
      // Weights carry over between rungs: a promoted trial resumes from its last checkpoint.
      RunPlacement where;
      where.output = directory;
      where.val_fold = job->fold;
      where.resume = job->rung > 0 || context.assignment.resume;
      char prefix_text[64];  // (snprintf: GCC 12 warns falsely on this chain of string +)
      std::snprintf(prefix_text, sizeof(prefix_text), "[trial-%04d rung %d fold %d] ", job->trial, job->rung, job->fold);
      const std::string prefix = prefix_text;
      const bool speaks = context.group.rank() == 0;
      auto outcome = train_run(trial_vm, stage1, where, context.group, setup.device,
                               [&](const std::string& line) {
                                 if (speaks) say_error(prefix + line);
                               },
                               "tune", search.trial_texts[job->trial]);
      outcome.erase("report");
      outcome["epochs"] = stage1.epochs;
      outcome["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      return outcome;
    });
    if (world->rank() != 0) return kExitOk;

    // The trials table, from the plan's view of every result (this run's and the journal's).
    const auto ranking = plan->ranking();
    std::map<int, int> rank_of;
    for (std::size_t i = 0; i < ranking.size(); ++i) rank_of[ranking[i]] = static_cast<int>(i) + 1;
    json rows = json::array();
    std::ostringstream csv;
    csv << "trial,rank";
    for (const auto& p : search.space) csv << "," << csv_field(p.name);
    csv << ",state,rung,epochs,objective";
    for (const int f : search.folds) csv << ",fold_" << f;
    csv << ",seconds\n";
    std::vector<std::string> failures;
    for (int t = 0; t < static_cast<int>(search.trials.size()); ++t) {
      const auto& trial = plan->trials()[t];
      const int rung = trial.highest_rung;
      const std::string state = trial.failed ? "failed"
                                : rung == rungs - 1 ? "completed"
                                : rung >= 0         ? "stopped"
                                                    : "incomplete";
      double seconds = 0;
      for (const auto& [r, folds] : trial.results) {
        for (const auto& [f, result] : folds) seconds += result.value("seconds", 0.0);
      }
      json parameters = json::object();
      for (const auto& [name, value] : search.trials[t]) parameters[name] = value;
      json fold_scores = json::object();
      if (rung >= 0) {
        for (const auto& [f, result] : trial.results.at(rung)) fold_scores[std::to_string(f)] = result.value(search.objective, json());
      }
      const json objective = rung >= 0 ? json(trial.score_by_rung.back()) : json();
      rows.push_back({{"trial", t}, {"rank", rank_of[t]}, {"parameters", parameters}, {"state", state}, {"rung", rung},
                      {"epochs", rung >= 0 ? search.budgets[rung] : 0}, {"objective", objective},
                      {"objective_by_rung", trial.score_by_rung}, {"fold_scores", fold_scores}, {"seconds", seconds},
                      {"directory", (fs::path("trials") / trial_name(t)).string()}});
      csv << t << "," << rank_of[t];
      for (const auto& [name, value] : search.trials[t]) csv << "," << csv_field(value);
      csv << "," << state << "," << rung << "," << (rung >= 0 ? search.budgets[rung] : 0) << ","
          << (rung >= 0 ? fixed(trial.score_by_rung.back(), 6) : "");
      for (const int f : search.folds) {
        const auto it = fold_scores.find(std::to_string(f));
        csv << "," << (it != fold_scores.end() && it->is_number() ? fixed(it->get<double>(), 6) : "");
      }
      csv << "," << fixed(seconds, 1) << "\n";
    }
    for (const auto& [job, status] : statuses) {
      if (status.state == experiments::JobState::Failed) {
        failures.push_back(job + ": " + status.error.substr(0, status.error.find('\n')));
      }
    }
    const int best = ranking.empty() || plan->trials()[ranking.front()].failed ||
                             plan->trials()[ranking.front()].highest_rung != rungs - 1
                         ? -1
                         : ranking.front();
    json summary = plan_record;
    summary.erase("trials");
    summary["model"] = vm["model"].as<std::string>();
    summary["dataset"] = fs::absolute(vm["data"].as<std::string>()).string();
    summary["ranks"] = world->size();
    summary["ranks_per_job"] = vm["ranks-per-job"].as<int>();
    summary["jobs"] = statuses.size();
    summary["failed_jobs"] = failures;
    summary["best_trial"] = best >= 0 ? json(best) : json();
    summary["trials"] = rows;
    write_file_atomically(output / "trials.json", summary.dump(2) + "\n");
    write_file_atomically(output / "trials.csv", csv.str());

    std::ostringstream md;
    md << "# Hyperparameter search: " << search.trials.size() << " trials of " << vm["model"].as<std::string>() << " ("
       << vm["algorithm"].as<std::string>() << ")\n\nObjective: mean " << vm["objective"].as<std::string>() << " over fold(s) ";
    for (std::size_t i = 0; i < search.folds.size(); ++i) md << (i ? ", " : "") << search.folds[i];
    md << ". Rungs (epochs):";
    for (int r = 0; r < rungs; ++r) {
      int reached = 0;
      for (const auto& t : plan->trials()) reached += t.highest_rung >= r ? 1 : 0;
      md << " " << search.budgets[r] << " (" << reached << " trials)" << (r + 1 < rungs ? "," : ".");
    }
    md << "\n\nSearch space:\n\n";
    for (const auto& text : vm["search"].as<std::vector<std::string>>()) md << "- `" << text << "`\n";
    md << "\n| rank | trial |";
    for (const auto& p : search.space) md << " " << p.name << " |";
    md << " state | epochs | objective |\n|---:|---:|";
    for (std::size_t i = 0; i < search.space.size(); ++i) md << "---|";
    md << "---|---:|---:|\n";
    for (std::size_t i = 0; i < std::min<std::size_t>(ranking.size(), 10); ++i) {
      const auto& row = rows[ranking[i]];
      md << "| " << i + 1 << " | " << ranking[i] << " |";
      for (const auto& [name, value] : search.trials[ranking[i]]) md << " " << value << " |";
      md << " " << row["state"].get<std::string>() << " | " << row["epochs"].get<int>() << " | "
         << (row["objective"].is_null() ? std::string("n/a") : fixed(row["objective"].get<double>())) << " |\n";
    }
    if (best >= 0) {
      md << "\nBest: trial " << best << " (" << vm["objective"].as<std::string>() << " "
         << fixed(plan->trials()[best].score_by_rung.back()) << "), written to `best_config.ini`.\n";
    } else {
      md << "\nNo trial completed the last rung.\n";
    }
    for (const auto& f : failures) md << "\nFAILED: " << f << "\n";
    write_file_atomically(output / "tune_summary.md", md.str());
    if (best >= 0) {
      std::ostringstream header;
      header << "# Best trial (" << best << ") of the search in " << fs::absolute(output).string() << ": mean "
             << vm["objective"].as<std::string>() << " " << fixed(plan->trials()[best].score_by_rung.back())
             << " over fold(s)";
      for (const int f : search.folds) header << " " << f;
      header << ".\n# brainmri " << kVersion << ". Run it with: brainmri cv --config best_config.ini --output DIR\n";
      write_file_atomically(output / "best_config.ini", header.str() + search.trial_texts[best]);
    }
    std::cout << "\n" << md.str() << "\nSearch directory: " << output.string()
              << " (trials.csv, trials.json, tune_summary.md, best_config.ini, trials/, journal.jsonl)\n";
    if (best >= 0) {  // the best trial's runs, one per objective fold
      for (const int f : search.folds) {
        // The check concerns the architecture, the same in every fold: once is enough.
        write_run_report(output / "trials" / trial_name(best) / ("fold-" + std::to_string(f)), vm, setup.device,
                         f == search.folds.front());
      }
    }
    return best >= 0 ? kExitOk : kExitFailure;
  });
}

}  // namespace brainmri::cli
