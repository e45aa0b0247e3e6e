// brainmri: train and evaluate brain MRI classifiers on datasets packed by brainmri-prep.

#include <torch/torch.h>

#include <iostream>
#include <memory>
#include <string>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/training/evaluation_files.hpp"
#include "brainmri/version.hpp"
#include "brainmri/experiments/training_run.hpp"
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
    "  report     reports, figures and tables from the predictions of runs (brainmri report --help)\n"
    "  predict    classify image files with a trained model, with Grad-CAM overlays (brainmri predict --help)\n"
    "  serve      a web page and JSON API that classify uploaded slices (brainmri serve --help)\n"
    "  version    print the version\n";
}  // namespace

namespace brainmri::cli {

int run_train(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  const auto options = combined("brainmri train", run_option_sections());
  const auto setup = prepare_training(argc, argv, options, environment, "train");
  if (setup.help) {
    if (environment.rank() == 0) std::cout << "Usage: brainmri train --data DIR --output DIR [options]\n\n" << options << "\n";
    return kExitOk;
  }
  const auto& config = setup.config;
  // Rank 0's console only, unless --log-all-ranks; then every line carries its rank.
  const bool speaks = environment.rank() == 0 || config.distribution.log_all_ranks;
  const auto say = [&](const std::string& line) {
    if (speaks) std::cout << environment.log_prefix() << line << std::endl;
  };
  return abort_job_on_failure(environment, "train", [&] {
    const auto communicator = distributed::make_communicator(environment, config.distribution.backend, setup.device,
                                                             {experiments::communication_timeout(config)});
    const data::ShardedDataset dataset(config.data.dataset);
    const auto outcome = experiments::train_run(config, experiments::RunPlacement::of(config), dataset, *communicator,
                                                setup.device, say, "train", to_ini(experiments::run_options(), config));
    if (communicator->rank() == 0) {
      std::cout << "\n" << environment.log_prefix() << "Validation (" << outcome.validation_samples << " images):\n"
                << outcome.validation->report << "\nRun directory: " << config.output.directory.string()
                << " (model.pt, validation/metrics.json, train_log.jsonl)\n";
      experiments::write_run_report(config.output.directory, config.output, setup.device,
                                    [](const std::string& line) { std::cout << line << "\n"; }, say_error);
    }
    return kExitOk;
  });
}

int run_evaluate(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  po::options_description options("brainmri evaluate");
  // clang-format off
  options.add_options()
    ("help,h", "show this help and exit")
    ("config", po::value<std::string>(), "INI file with any of these options")
    ("checkpoint", po::value<std::string>(), "model.pt or any checkpoint written by brainmri train (required)")
    ("data", po::value<std::string>(), "dataset directory written by brainmri-prep (required)")
    ("split", po::value<std::string>()->default_value(""), "evaluate this split (e.g. Testing)")
    ("fold", po::value<int>()->default_value(-1), "or: evaluate this fold of the dataset's k-fold")
    ("output", po::value<std::string>()->default_value(""), "where to write predictions.h5, metrics.json and classification_report.txt (default: next to the checkpoint)")
    ("device", po::value<std::string>()->default_value("auto"), "auto, cpu or cuda")
    ("threads", po::value<int>()->default_value(0), "CPU threads for LibTorch (0: its default)")
    ("batch-size", po::value<std::int64_t>()->default_value(256), "evaluation batch size")
    ("bootstrap-seed", po::value<std::uint64_t>()->default_value(7), "seed of the bootstrap confidence intervals");
  // clang-format on
  po::variables_map vm;
  torch::Device device = torch::kCPU;
  agree_on_setup(environment, "evaluate", [&] {
    vm = parse_with_config(argc, argv, options);
    if (vm.count("help")) return;
    if (!vm.count("checkpoint") || !vm.count("data")) throw UsageError("evaluate needs --checkpoint and --data");
    if (!vm["split"].as<std::string>().empty() && vm["fold"].as<int>() >= 0) {
      throw UsageError("give --split or --fold, not both");
    }
    distributed::DeviceChoice choice{};
    try {
      choice = parse_enum<distributed::DeviceChoice>(vm["device"].as<std::string>());
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--device: ") + e.what());
    }
    device = distributed::pick_device(choice, environment);
  });
  if (vm.count("help")) {
    if (environment.rank() == 0) {
      std::cout << "Usage: brainmri evaluate --checkpoint FILE --data DIR [--split NAME | --fold K]\n\n" << options << "\n";
    }
    return kExitOk;
  }
  const auto split = vm["split"].as<std::string>();
  const int fold = vm["fold"].as<int>();
  set_threads(vm["threads"].as<int>(), environment);
  return abort_job_on_failure(environment, "evaluate", [&] {
  const auto communicator = distributed::make_communicator(environment, distributed::Backend::Auto, device);
  const fs::path checkpoint = vm["checkpoint"].as<std::string>();
  auto model = training::load_model_from_checkpoint(checkpoint, device);
  const data::ShardedDataset dataset(vm["data"].as<std::string>());
  const auto& m = model->options();
  if (m.image_size != dataset.image_size() || m.input_channels != dataset.channels() ||
      m.num_classes != static_cast<int>(dataset.class_names().size())) {
    throw std::runtime_error("checkpoint " + checkpoint.string() + " expects " + std::to_string(m.image_size) + "x" +
                             std::to_string(m.image_size) + "x" + std::to_string(m.input_channels) + " images and " +
                             std::to_string(m.num_classes) + " classes, but " + dataset.directory().string() + " has " +
                             std::to_string(dataset.image_size()) + "x" + std::to_string(dataset.image_size()) + "x" +
                             std::to_string(dataset.channels()) + " and " +
                             std::to_string(dataset.class_names().size()) + " classes; repack or pick another checkpoint");
  }
  std::vector<std::int64_t> ids;
  std::string selection;
  if (!split.empty()) {
    ids = dataset.select_split(split);
    selection = "split-" + split;
  } else if (fold >= 0) {
    ids = dataset.validation_samples_for_fold(fold);
    selection = "fold-" + std::to_string(fold);
  } else {
    ids = dataset.all();
    selection = "all";
  }
  if (ids.empty()) throw UsageError("the selection " + selection + " is empty");
  const fs::path output =
      vm["output"].as<std::string>().empty() ? checkpoint.parent_path() / ("eval-" + selection) : fs::path(vm["output"].as<std::string>());

  training::TrainOptions eval_options;
  eval_options.epochs = 0;
  eval_options.eval_batch_size = vm["batch-size"].as<std::int64_t>();
  eval_options.communicator = communicator.get();  // under mpirun the ranks share the evaluation
  training::Trainer trainer(model, eval_options, device);
  const auto loader = training::make_loader(dataset, ids, device, training::LoaderKind::Auto, std::size_t{4096} << 20);
  const auto predictions = trainer.predict(*loader);
  if (environment.rank() != 0) return kExitOk;
  const json context = {{"command", "evaluate"},
                        {"checkpoint", fs::absolute(checkpoint).string()},
                        {"dataset", fs::absolute(dataset.directory()).string()},
                        {"selection", selection},
                        {"model", model->model_name()}};
  training::write_evaluation(output, predictions, dataset.class_names(), context, vm["bootstrap-seed"].as<std::uint64_t>());
  const int k = static_cast<int>(dataset.class_names().size());
  const auto predicted = metrics::argmax_rows(predictions.probabilities, k);
  std::cout << metrics::format_classification_report(
                   metrics::classification_report(metrics::ConfusionMatrix(predictions.labels, predicted, k),
                                                  dataset.class_names()),
                   4)
            << "\nWrote " << (output / "predictions.h5").string() << ", metrics.json and classification_report.txt\n";
  return kExitOk;
  });
}

}  // namespace brainmri::cli

int main(int argc, char* argv[]) {
  const std::string command = argc > 1 ? argv[1] : "";
  std::unique_ptr<distributed::MpiEnvironment> environment;
  // Usage errors are the same on every rank (each parses the same options): rank 0 alone reports
  // them and every rank exits 2. Any other error is this rank's own: it reports with its rank and
  // ends the whole job, so no other rank waits for it in a collective.
  auto report = [&](const std::string& text, bool usage) {
    const bool several = environment && environment->size() > 1;
    if (!several || !usage || environment->rank() == 0) {
      say_error((environment ? environment->log_prefix() : std::string()) + text);
    }
    if (several && !usage) {
      say_error(environment->log_prefix() + "aborting the job");
      environment->abort_job(kExitFailure);
    }
    return usage ? kExitUsage : kExitFailure;
  };
  try {
    if (command == "train" || command == "evaluate" || command == "cv" || command == "tune") {
      // At once, with the default signal: one that arrives while MPI and the data start up must
      // not kill the process. --preemption-signal then picks the one to use.
      if (command != "evaluate") install_preemption_handler("USR1");
      environment = std::make_unique<distributed::MpiEnvironment>(&argc, &argv);
      if (command == "train") return run_train(argc - 1, argv + 1, *environment);
      if (command == "cv") return run_cv(argc - 1, argv + 1, *environment);
      if (command == "tune") return run_tune(argc - 1, argv + 1, *environment);
      return run_evaluate(argc - 1, argv + 1, *environment);
    }
    if (command == "report") return run_report(argc - 1, argv + 1);
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
      std::cerr << "brainmri serve: this brainmri was built without it (it needs OpenCV and cpp-httplib: apt-get install "
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
    std::cerr << (command.empty() ? "brainmri: no command given\n" : "brainmri: unknown command '" + command + "'\n")
              << kUsage;
    return kExitUsage;
  } catch (const QuietExit& e) {
    return e.code;
  } catch (const PreemptionRequested& e) {
    // Every rank agreed to stop at the same step; rank 0 speaks for them.
    if (!environment || environment->rank() == 0) {
      say_error("brainmri " + command + ": " + e.what() + " (exit code " + std::to_string(kExitPreempted) + ")");
    }
    return kExitPreempted;
  } catch (const po::error& e) {
    return report("brainmri " + command + ": " + e.what() + "\nTry 'brainmri " + command + " --help'.", true);
  } catch (const ConfigError& e) {
    return report("brainmri " + command + ": " + usage_error(e).what() + "\nTry 'brainmri " + command + " --help'.", true);
  } catch (const UsageError& e) {
    return report("brainmri " + command + ": " + e.what() + "\nTry 'brainmri " + command + " --help'.", true);
  } catch (const c10::Error& e) {
    return report("brainmri " + command + ": error: " + e.what_without_backtrace(), false);
  } catch (const std::exception& e) {
    return report("brainmri " + command + ": error: " + e.what(), false);
  }
}
