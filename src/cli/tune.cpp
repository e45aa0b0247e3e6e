// brainmri tune: hyperparameter search (grid, random, ASHA) over rank groups (docs/experiments.md).

#include <iostream>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/experiments/tuning.hpp"
#include "training_command.hpp"

namespace brainmri::cli {

int run_tune(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  const auto options = experiment_options("brainmri tune", experiments::search_options());
  experiments::SearchConfig search;
  auto setup =
      prepare_training(argc, argv, options, environment, "tune", [&](const po::variables_map& vm, const auto& config) {
        apply_options(vm, experiments::search_options(), search);
        experiments::plan_search(config, search, experiments::open_dataset(config.data), environment.size());
        return to_ini(experiments::search_options(), search);
      });
  if (setup.help) {
    if (environment.rank() == 0) {
      std::cout
          << "Usage: brainmri tune --data DIR --output DIR --search 'NAME: KIND ARGS' ... [options]\n\n"
             "Searches training options: each trial is a configuration of `brainmri train` trained on every fold\n"
             "of --folds (its objective is the folds' mean validation score). asha trains all trials for\n"
             "--min-epochs, then continues the best 1 in --reduction-factor from their checkpoints to the next\n"
             "rung, up to --epochs. Jobs (a trial on a fold for a rung) are shared among groups of\n"
             "--ranks-per-job ranks and journaled in DIR/journal.jsonl: the same command resumes. Writes\n"
             "DIR/trials.csv, trials.json, tune_summary.md and best_config.ini (ready for brainmri cv/train with\n"
             "--data). As Slurm array tasks (--array-task K --array-tasks N) each task runs its share of the\n"
             "trials; then `brainmri tune summarize DIR`. --val-fold, --val-split and --resume of the\n"
             "training options do not apply here.\n\n"
          << options << "\n";
    }
    return kExitOk;
  }
  return run_or_abort_job(environment, "tune", [&] {
    const auto world = distributed::make_communicator(environment, setup.config.distribution.backend, setup.device,
                                                      {experiments::communication_timeout(setup.config)});
    const auto result =
        experiments::tune(setup.config, search, environment, *world, setup.device, experiments::Messages::standard());
    if (result.refused) {
      if (world->rank() == 0) say_error("brainmri tune: " + result.refusal);
      throw distributed::JobExit{kExitUsage};
    }
    if (world->rank() != 0) return kExitOk;  // rank 0 alone knows the outcome
    if (result.array_task) return result.unfinished_jobs == 0 ? kExitOk : kExitFailure;
    return result.best_trial >= 0 ? kExitOk : kExitFailure;
  });
}

}  // namespace brainmri::cli
