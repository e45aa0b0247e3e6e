// brainmri cv summarize DIR / brainmri tune summarize DIR: the summaries of an experiment that
// ran as Slurm array tasks, once every task has run (docs/cluster.md).

#include <iostream>

#include "brainmri/experiments/cross_validation.hpp"
#include "brainmri/experiments/tuning.hpp"
#include "training_command.hpp"

namespace brainmri::cli {

int run_summarize(const std::string& command, int argc, const char* const argv[]) {
  po::options_description options("brainmri " + command + " summarize");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("directory", po::value<std::string>(), "the experiment directory (positional)")
    ("device", po::value<std::string>()->default_value("auto"), "where the report's explanation check trains: auto, cpu or cuda");
  // clang-format on
  add_log_level_option(options);
  po::positional_options_description positional;
  positional.add("directory", 1);
  const auto vm = parse_with_config(argc, argv, options, &positional);
  if (vm.count("help")) {
    std::cout << "Usage: brainmri " << command << " summarize DIR\n\n"
              << "Writes what brainmri " << command << " writes at its end ("
              << (command == "cv"
                      ? "cv_summary.{json,md}, out_of_fold/,\ntest_ensemble/, the report"
                      : "trials.csv, trials.json, tune_summary.md,\nbest_config.ini, the best trial's reports")
              << ") from DIR/config.ini and the journals of every array task\n(sbatch --array: each task ran "
                 "its share with --array-task K --array-tasks N). Refuses while a\njob is not finished, naming it.\n\n"
              << options << "\n";
    return kExitOk;
  }
  if (!vm.count("directory")) throw UsageError(command + " summarize needs the experiment directory");
  const std::filesystem::path directory = vm["directory"].as<std::string>();
  const auto device = choose_device(parse_choice<distributed::DeviceChoice>("device", vm["device"].as<std::string>()));
  if (command == "cv")
    return experiments::summarize_cross_validation(directory, device).succeeded() ? kExitOk : kExitFailure;
  return experiments::summarize_search(directory, device).best_trial >= 0 ? kExitOk : kExitFailure;
}

}  // namespace brainmri::cli
