// brainmri: train and evaluate brain MRI classifiers on datasets packed by brainmri-prep.

#include <torch/torch.h>

#include <iostream>
#include <memory>
#include <string>

#include "brainmri/common/log.hpp"
#include "brainmri/common/preemption.hpp"
#include "brainmri/experiments/checkpoint_evaluation.hpp"
#include "brainmri/experiments/training_run.hpp"
#include "brainmri/version.hpp"
#include "training_command.hpp"

using namespace brainmri;
using namespace brainmri::cli;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kUsage =
    "Usage: brainmri <command> [options]\n\n"
    "Commands:\n"
    "  train      train a model on a packed dataset (brainmri train --help)\n"
    "  evaluate   evaluate a checkpoint on a split or fold (brainmri evaluate --help)\n"
    "  cv         k-fold cross-validation over the dataset's folds, resumable (brainmri cv --help)\n"
    "  tune       hyperparameter search: grid, random or ASHA, resumable (brainmri tune --help)\n"
    "             cv summarize DIR, tune summarize DIR: the summaries of one run as Slurm array tasks\n"
    "  report     reports, figures and tables from the predictions of runs (brainmri report --help)\n"
    "  export     a trained model as TorchScript or safetensors + JSON for PyTorch/ONNX (brainmri export --help)\n"
    "  predict    classify image files with a trained model, with Grad-CAM overlays (brainmri predict --help)\n"
    "  serve      a web page and JSON API that classify uploaded slices (brainmri serve --help)\n"
    "  version    print the version\n";
}  // namespace

namespace brainmri::cli {

int run_train(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  const auto options = combined("brainmri train", run_option_sections());
  const auto setup = prepare_training(argc, argv, options, environment, "train");
  if (setup.help) {
    if (environment.rank() == 0)
      std::cout << "Usage: brainmri train --data DIR --output DIR [options]\n\n" << options << "\n";
    return kExitOk;
  }
  const auto& config = setup.config;
  // Rank 0's lines, unless --log-all-ranks (the log prefixes each line with its rank).
  const bool speaks = environment.rank() == 0 || config.distribution.log_all_ranks;
  const auto say = [speaks](const std::string& line) {
    if (speaks) logging::info(line);
  };
  return run_or_abort_job(environment, "train", [&] {
    const auto communicator = distributed::make_communicator(environment, config.distribution.backend, setup.device,
                                                             {experiments::communication_timeout(config)});
    const data::ShardedDataset dataset = experiments::open_dataset(config.data);
    const auto outcome = experiments::train_run(config, experiments::RunPlacement::of(config), dataset, *communicator,
                                                setup.device, say, "train", to_ini(experiments::run_options(), config));
    if (communicator->rank() == 0) {
      std::cout << "\nValidation (" << outcome.validation_samples << " images):\n"
                << outcome.validation->report << "\nRun directory: " << config.output.directory.string()
                << " (model.pt, validation/metrics.json, train_log.jsonl)\n";
      experiments::write_run_report(
          config.output.directory, config.output, setup.device,
          [](const std::string& line) { std::cout << line << "\n"; }, say_error);
    }
    return kExitOk;
  });
}

int run_evaluate(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  std::vector<Section> sections = {Section("General")};
  sections.back().options.add_options()("help,h", "show this help and exit")("config", po::value<std::string>(),
                                                                             "INI file with any of these options");
  add_log_level_option(sections.back().options);
  add_options(sections, experiments::checkpoint_evaluation_options());
  const auto options = combined("brainmri evaluate", sections);
  experiments::CheckpointEvaluation request;
  torch::Device device = torch::kCPU;
  bool help = false;
  agree_on_setup(environment, "evaluate", [&] {
    const auto vm =
        parse_with_config(argc, argv, options, nullptr, input_path_names(experiments::checkpoint_evaluation_options()));
    help = vm.count("help") > 0;
    if (help) return;
    apply_options(vm, experiments::checkpoint_evaluation_options(), request);
    experiments::validate(request);
    device = choose_device(request.device, environment);
  });
  if (help) {
    if (environment.rank() == 0) {
      std::cout << "Usage: brainmri evaluate --checkpoint FILE --data DIR [--split NAME | --fold K]\n\n"
                << options << "\n";
    }
    return kExitOk;
  }
  set_threads(request.threads, environment);
  return run_or_abort_job(environment, "evaluate", [&] {
    const auto communicator = distributed::make_communicator(environment, distributed::Backend::Auto, device);
    const auto result = experiments::evaluate_checkpoint(request, *communicator, device);
    if (communicator->rank() == 0) {
      std::cout << result.report;
      if (result.clean && result.contaminated) {
        const auto part = [](const char* name, const evaluation::EvaluationMetrics& m, const char* what) {
          std::cout << name << " part, " << m.samples << " images " << what << ": accuracy " << m.accuracy
                    << ", macro-F1 " << m.macro_average.f1 << "\n";
        };
        std::cout << "\n";
        part("Clean", *result.clean, "(no exact or near copy in the other splits)");
        part("Contaminated", *result.contaminated, "(a copy in the other splits)");
        std::cout << "(each part in its own folder: clean/, contaminated/)\n";
      }
      std::cout << "\nWrote " << (result.output / "predictions.h5").string()
                << ", metrics.json and classification_report.txt\n";
    }
    return kExitOk;
  });
}

}  // namespace brainmri::cli

int main(int argc, char* argv[]) {
  const std::string command = argc > 1 ? argv[1] : "";
  const bool summarize = (command == "cv" || command == "tune") && argc > 2 && std::string(argv[2]) == "summarize";
  std::unique_ptr<distributed::MpiEnvironment> environment;
  try {
    if (summarize) {
      return run_summarize(command, argc - 2, argv + 2);
    }
    if (command == "train" || command == "evaluate" || command == "cv" || command == "tune") {
      // At once, with the default signal: one that arrives while MPI and the data start up must
      // not kill the process. --preemption-signal then picks the one to use.
      if (command != "evaluate") install_preemption_handler("USR1");
      environment = std::make_unique<distributed::MpiEnvironment>(&argc, &argv);
      logging::set_rank(environment->rank(), environment->size());
      if (command == "train") return run_train(argc - 1, argv + 1, *environment);
      if (command == "cv") return run_cv(argc - 1, argv + 1, *environment);
      if (command == "tune") return run_tune(argc - 1, argv + 1, *environment);
      return run_evaluate(argc - 1, argv + 1, *environment);
    }
    if (command == "report") return run_report(argc - 1, argv + 1);
    if (command == "export") return run_export(argc - 1, argv + 1);
#ifdef BRAINMRI_HAVE_IMAGING
    if (command == "predict") return run_predict(argc - 1, argv + 1);
#else
    if (command == "predict") {
      std::cerr << "brainmri predict: this brainmri was built without OpenCV (image decoding); build with "
                   "-DBRAINMRI_WITH_OPENCV=ON\n";
      return kExitFailure;
    }
#endif
#ifdef BRAINMRI_HAVE_SERVE
    if (command == "serve") return run_serve(argc - 1, argv + 1);
#else
    if (command == "serve") {
      std::cerr
          << "brainmri serve: this brainmri was built without it (it needs OpenCV and cpp-httplib: apt-get install "
             "libcpp-httplib-dev, then configure with -DBRAINMRI_WITH_SERVE=ON)\n";
      return kExitFailure;
    }
#endif
    if (command == "version" || command == "--version") {
      std::cout << "brainmri " << kVersion << " (LibTorch " << TORCH_VERSION << ", NCCL backend "
                << (distributed::nccl_available() ? "built" : "not built") << ")\n";
      return kExitOk;
    }
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return kExitOk;
    }
    logging::error(command.empty() ? "brainmri: no command given" : "brainmri: unknown command '" + command + "'");
    std::cerr << kUsage;
    return kExitUsage;
  } catch (const distributed::JobExit& e) {
    return e.code;  // reported already
  } catch (...) {
    // A usage error is the same on every rank: rank 0 reports it. Any other error is this rank's
    // own: it reports it with its rank and ends the whole job (no rank waits for it).
    return distributed::end_with_failure(
        environment.get(), describe_failure(summarize ? command + " summarize" : command)(std::current_exception()),
        say_error);
  }
}
