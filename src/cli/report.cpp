// brainmri report: reports and comparison tables from the saved predictions of runs
// (docs/reports.md). Needs no GPU and no MPI.

#include "brainmri/reports/report.hpp"

#include <iostream>
#include <nlohmann/json.hpp>

#include "training_command.hpp"

namespace brainmri::cli {

namespace fs = std::filesystem;
using nlohmann::json;

int run_report(int argc, const char* const argv[]) {
  po::options_description options("brainmri report");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("run", po::value<std::vector<std::string>>(), "run directory of brainmri train or brainmri cv (positional, one or more)")
    ("output", po::value<std::string>()->default_value(""), "one run: the report directory (default RUN/report); several: where the comparison goes (default ./report_comparison)")
    ("figures", po::value<bool>()->default_value(true), "draw the figures (false: tables and text only)")
    ("vector", po::value<bool>()->default_value(true), "figures also as SVG and PDF (false: PNG only, e.g. for a repository)")
    ("gradcam", po::value<int>()->default_value(3), "explanation grid: this many most confident correct predictions and errors per class (0: none; needs the run's checkpoints and dataset)")
    ("method", po::value<std::string>()->default_value("hirescam"), "explanation method: hirescam (equals Grad-CAM behind MobileNetV2's global pooling, and localizes on the paper's CNN where Grad-CAM does not), gradcam or gradcam++")
    ("layer", po::value<std::string>()->default_value(""), "explained layer (default: the last convolution: conv3 of the baseline CNN, Conv_1 of MobileNetV2; also conv1, conv2, Conv1, expanded_conv, block_1 ... block_16)")
    ("explanation-check", po::value<bool>()->default_value(true), "run the localization and model-randomization check of the method on the run's architecture (trains a small copy; needs the run's checkpoints and dataset)")
    ("device", po::value<std::string>()->default_value("auto"), "where the explanation check trains: auto (CUDA when available), cpu or cuda");
  // clang-format on
  po::positional_options_description positional;
  positional.add("run", -1);
  const auto vm = parse_with_config(argc, argv, options, &positional);
  if (vm.count("help")) {
    std::cout
        << "Usage: brainmri report RUN [RUN ...] [--output DIR]\n\n"
           "Writes RUN/report/: classification_report.{txt,csv,json} (per fold, pooled out of fold, across folds,\n"
           "held-out test), confusion_matrix and roc_curves (.png, .svg, .pdf), training_curves for a training run,\n"
           "gradcam_grid (HiResCAM by default) with the model-randomization check and the localization check of\n"
           "the explanation method when the run's checkpoints and dataset are here,\n"
           "tables.{md,tex} for a paper and index.html with all of it. With several runs, also a comparison\n"
           "(comparison.{md,tex}, index.html) in --output.\n\n"
        << options << "\n";
    return kExitOk;
  }
  if (!vm.count("run")) throw UsageError("report needs at least one run directory");
  const auto runs = vm["run"].as<std::vector<std::string>>();
  if (vm["gradcam"].as<int>() < 0) throw UsageError("--gradcam must be >= 0");
  reports::ReportOptions report_options;
  report_options.figures = vm["figures"].as<bool>();
  std::string why;
  if (report_options.figures && !reports::plotting_available(&why)) {
    std::cerr << "brainmri report: no figures: " << why << "\n";
    report_options.figures = false;
  }
  report_options.vector_figures = vm["vector"].as<bool>();
  report_options.gradcam_per_kind = vm["gradcam"].as<int>();
  try {
    report_options.cam_method = explain::cam_method_from_string(vm["method"].as<std::string>());
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--method: ") + e.what());
  }
  report_options.cam_layer = vm["layer"].as<std::string>();
  report_options.explanation_check = vm["explanation-check"].as<bool>();
  const auto device = vm["device"].as<std::string>();
  if (device != "auto" && device != "cpu" && device != "cuda")
    throw UsageError("--device must be auto, cpu or cuda, got " + device);
  if (device == "cuda" && !torch::cuda::is_available())
    throw UsageError("--device cuda, but no CUDA device is available");
  report_options.device =
      device == "cpu" || !torch::cuda::is_available() ? torch::Device(torch::kCPU) : torch::Device(torch::kCUDA, 0);
  const std::string output = vm["output"].as<std::string>();
  std::vector<reports::RunContents> contents;
  std::vector<nlohmann::json> headlines;
  std::vector<fs::path> directories;
  for (const auto& run : runs) {
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
