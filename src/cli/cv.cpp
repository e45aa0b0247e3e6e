// brainmri cv: k-fold cross-validation over rank groups (docs/experiments.md).

#include <iostream>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/experiments/cross_validation.hpp"
#include "training_command.hpp"

namespace brainmri::cli {

int run_cv(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  const auto options = experiment_options("brainmri cv", experiments::cross_validation_options());
  experiments::CrossValidationConfig cv;
  auto setup =
      prepare_training(argc, argv, options, environment, "cv", [&](const po::variables_map& vm, const auto& config) {
        apply_options(vm, experiments::cross_validation_options(), cv);
        experiments::plan_cross_validation(config, cv, experiments::open_dataset(config.data), environment.size());
        return to_ini(experiments::cross_validation_options(), cv);
      });
  if (setup.help) {
    if (environment.rank() == 0) {
      std::cout
          << "Usage: brainmri cv --data DIR --output DIR [options]\n\n"
             "Trains one run per validation fold (train on the other folds) as `brainmri train` would, each in\n"
             "DIR/fold-K, then writes DIR/cv_summary.{json,md} and the pooled out-of-fold evaluation in\n"
             "DIR/out_of_fold. Under mpirun the folds are shared among groups of --ranks-per-job ranks. Progress\n"
             "is journaled in DIR/journal.jsonl: the same command resumes an interrupted cross-validation.\n"
             "With a held-out test split (brainmri-prep --holdout-split), every fold model and their ensemble are\n"
             "also tested on it (DIR/fold-K/test, DIR/test_ensemble); --final trains one more model on every fold\n"
             "and exports it (DIR/final). As Slurm array tasks (--array-task K --array-tasks N, which\n"
             "slurm/lib.sh sets) each task runs its share of the folds; then `brainmri cv summarize DIR`.\n"
             "--val-fold, --val-split and --resume of the training options do not apply here.\n\n"
          << options << "\n";
    }
    return kExitOk;
  }
  return run_or_abort_job(environment, "cv", [&] {
    const auto world = distributed::make_communicator(environment, setup.config.distribution.backend, setup.device,
                                                      {experiments::communication_timeout(setup.config)});
    const auto result = experiments::cross_validate(setup.config, cv, environment, *world, setup.device,
                                                    experiments::Messages::standard());
    return result.succeeded() ? kExitOk : kExitFailure;
  });
}

}  // namespace brainmri::cli
