// brainmri report: reports and comparison tables from the saved predictions of runs
// (docs/reports.md). Needs no GPU and no MPI.

#include "brainmri/reports/report.hpp"

#include <iostream>
#include <nlohmann/json.hpp>

#include "brainmri/common/log.hpp"
#include "brainmri/experiments/search_report.hpp"
#include "training_command.hpp"

namespace brainmri::cli {

namespace fs = std::filesystem;

int run_report(int argc, const char* const argv[]) {
  std::vector<Section> sections = {Section("brainmri report")};
  // clang-format off
  sections.back().options.add_options()
    ("help,h", "show this help and exit")
    ("run", po::value<std::vector<std::string>>(), "run directory of brainmri train or brainmri cv (positional, one or more)")
    ("output", po::value<std::string>()->default_value(""), "one run: the report directory (default RUN/report); several: where the comparison goes (default ./report_comparison)")
    ("device", po::value<std::string>()->default_value("auto"), "where the explanation check trains: auto (CUDA when available), cpu or cuda");
  // clang-format on
  add_log_level_option(sections.back().options);
  add_options(sections, reports::report_options());
  const auto options = combined("brainmri report", sections);
  po::positional_options_description positional;
  positional.add("run", -1);
  const auto vm = parse_with_config(argc, argv, options, &positional);
  if (vm.count("help")) {
    std::cout
        << "Usage: brainmri report RUN [RUN ...] [--output DIR]\n       brainmri report SEARCH_DIR [--output DIR]\n\n"
           "Writes RUN/report/: classification_report.{txt,csv,json} (per fold, pooled out of fold, across folds,\n"
           "held-out test), confusion_matrix, roc_curves and reliability_diagram (.png, .svg, .pdf), the\n"
           "calibration (ECE, MCE, Brier score, NLL; with temperature scaling before -> after, also in the\n"
           "reliability diagram), training_curves (each fold's for a CV), where it fails (accuracy, recall and ECE\n"
           "by subgroup of the source images: table, and the figure subgroup_accuracy),\n"
           "gradcam_grid (HiResCAM by default) with the model-randomization check and the localization check of\n"
           "the explanation method when the run's checkpoints and dataset are here,\n"
           "tables.{md,tex} for a paper (with an ECE column) and index.html with all of it. With several runs, also a "
           "comparison\n"
           "(comparison.{md,tex,json}, index.html) in --output, with paired tests of every pair on the images\n"
           "both evaluated: McNemar (accuracy), DeLong with Holm (each class's AUC), paired bootstrap intervals\n"
           "of every difference, and the Nadeau-Bengio corrected t-test over the folds of two CVs; a pair on\n"
           "different images is not tested and says why.\n\n"
           "A search directory (brainmri tune) gets its own report: search_history, search_parallel_coordinates,\n"
           "search_rungs (ASHA), search_importance, search_report.md and index.html (docs/reports.md).\n\n"
        << options << "\n";
    return kExitOk;
  }
  if (!vm.count("run")) throw UsageError("report needs at least one run directory");
  const auto runs = vm["run"].as<std::vector<std::string>>();
  reports::ReportOptions report_options;
  apply_options(vm, reports::report_options(), report_options);
  reports::validate(report_options);
  std::string why;
  if (report_options.figures && !reports::plotting_available(&why)) {
    logging::warning("brainmri report: no figures: " + why);
    report_options.figures = false;
  }
  report_options.device =
      choose_device(parse_choice<distributed::DeviceChoice>("device", vm["device"].as<std::string>()));
  const std::string output = vm["output"].as<std::string>();
  std::vector<reports::RunContents> contents;
  std::vector<nlohmann::json> headlines;
  std::vector<fs::path> directories;
  for (const auto& run : runs) {
    if (fs::exists(fs::path(run) / "trials.json")) {  // a search: its own report, not comparable to runs
      if (runs.size() > 1) throw UsageError(run + " is a search (brainmri tune): report it alone");
      const fs::path directory = output.empty() ? fs::path(run) / "report" : fs::path(output);
      experiments::write_search_report(run, directory, report_options);
      std::cout << "Search report of " << run << ": " << (fs::absolute(directory) / "index.html").string() << "\n";
      return kExitOk;
    }
    contents.push_back(reports::read_run(run));
    directories.push_back(runs.size() == 1 && !output.empty() ? fs::path(output) : fs::path(run) / "report");
    headlines.push_back(reports::write_report(contents.back(), directories.back(), report_options));
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
