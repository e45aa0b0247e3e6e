// brainmri report: reports and comparison tables from the saved predictions of runs
// (docs/reports.md). Needs no GPU and no MPI.

#include <iostream>

#include "brainmri/reports/report.hpp"
#include "training_command.hpp"

namespace brainmri::cli {

int run_report(int argc, const char* const argv[]) {
  po::options_description options("brainmri report");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("run", po::value<std::vector<std::string>>(), "run directory of brainmri train or brainmri cv (positional, one or more)")
    ("output", po::value<std::string>()->default_value(""), "one run: the report directory (default RUN/report); several: where the comparison goes (default ./report_comparison)")
    ("figures", po::value<bool>()->default_value(true), "draw the figures (false: tables and text only)")
    ("vector", po::value<bool>()->default_value(true), "figures also as SVG and PDF (false: PNG only, e.g. for a repository)")
    ("gradcam", po::value<int>()->default_value(3), "Grad-CAM grid: this many most confident correct predictions and errors per class (0: none; needs the run's checkpoints and dataset)");
  // clang-format on
  po::positional_options_description positional;
  positional.add("run", -1);
  const auto vm = parse_with_config(argc, argv, options, &positional);
  if (vm.count("help")) {
    std::cout << "Usage: brainmri report RUN [RUN ...] [--output DIR]\n\n"
                 "Writes RUN/report/: classification_report.{txt,csv,json} (per fold, pooled out of fold, across folds,\n"
                 "held-out test), confusion_matrix and roc_curves (.png, .svg, .pdf), training_curves for a training run,\n"
                 "gradcam_grid with the model-randomization check when the run's checkpoints and dataset are here,\n"
                 "tables.{md,tex} for a paper and index.html with all of it. With several runs, also a comparison\n"
                 "(comparison.{md,tex}, index.html) in --output.\n\n"
              << options << "\n";
    return kExitOk;
  }
  if (!vm.count("run")) throw UsageError("report needs at least one run directory");
  const auto runs = vm["run"].as<std::vector<std::string>>();
  if (vm["gradcam"].as<int>() < 0) throw UsageError("--gradcam must be >= 0");
  std::string why;
  bool figures = vm["figures"].as<bool>();
  if (figures && !reports::plotting_available(&why)) {
    std::cerr << "brainmri report: no figures: " << why << "\n";
    figures = false;
  }
  const std::string output = vm["output"].as<std::string>();
  std::vector<reports::RunContents> contents;
  std::vector<nlohmann::json> headlines;
  std::vector<fs::path> directories;
  for (const auto& run : runs) {
    contents.push_back(reports::read_run(run));
    directories.push_back(runs.size() == 1 && !output.empty() ? fs::path(output) : fs::path(run) / "report");
    headlines.push_back(reports::write_report(contents.back(), directories.back(), figures, vm["vector"].as<bool>(),
                                              vm["gradcam"].as<int>()));
    std::cout << "Report of " << run << ": " << (fs::absolute(directories.back()) / "index.html").string() << "\n";
  }
  if (runs.size() > 1) {
    const fs::path comparison = output.empty() ? fs::path("report_comparison") : fs::path(output);
    reports::write_comparison(contents, headlines, directories, comparison);
    std::cout << "Comparison: " << (fs::absolute(comparison) / "index.html").string() << "\n";
  }
  return kExitOk;
}

}  // namespace brainmri::cli
