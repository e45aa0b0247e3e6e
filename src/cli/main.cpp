// brainmri: train and evaluate brain MRI classifiers on datasets packed by brainmri-prep.

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/mpi_environment.hpp"
#include "brainmri/experiments/journal.hpp"
#include "brainmri/experiments/scheduler.hpp"
#include "brainmri/training/augmentation.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/models/keras_weights.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/training/evaluation_files.hpp"
#include "brainmri/training/trainer.hpp"
#include "brainmri/version.hpp"
#include "options.hpp"

namespace fs = std::filesystem;
using namespace brainmri;
using namespace brainmri::cli;
using nlohmann::json;

namespace {

const char* kUsage =
    "Usage: brainmri <command> [options]\n\n"
    "Commands:\n"
    "  train      train a model on a packed dataset (brainmri train --help)\n"
    "  evaluate   evaluate a checkpoint on a split or fold (brainmri evaluate --help)\n"
    "  cv         k-fold cross-validation over the dataset's folds, resumable (brainmri cv --help)\n"
    "  version    print the version\n";

std::vector<int> parse_int_list(const std::string& text) {
  std::vector<int> values;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) {
    try {
      values.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw UsageError("'" + item + "' in '" + text + "' is not an integer");
    }
  }
  return values;
}

// One CUDA device per rank: local rank k uses cuda:k. A launcher that gives each rank a single
// device of its own (CUDA_VISIBLE_DEVICES per task, as Slurm's --gpu-bind does) leaves cuda:0.
torch::Device pick_device(const std::string& name, const distributed::MpiEnvironment& environment) {
  if (name != "auto" && name != "cpu" && name != "cuda") throw UsageError("--device must be auto, cpu or cuda, got " + name);
  if (name == "cpu" || (name == "auto" && !torch::cuda::is_available())) return torch::kCPU;
  if (!torch::cuda::is_available()) throw UsageError("--device cuda, but no CUDA device is available");
  const auto devices = static_cast<int>(torch::cuda::device_count());
  if (environment.local_size() <= devices) {
    return {torch::kCUDA, static_cast<c10::DeviceIndex>(environment.local_rank())};
  }
  if (devices == 1 && std::getenv("CUDA_VISIBLE_DEVICES") != nullptr) return {torch::kCUDA, 0};
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  throw UsageError(std::to_string(environment.local_size()) + " ranks run on this node but only " +
                   std::to_string(devices) + " CUDA device(s) are visible (CUDA_VISIBLE_DEVICES=" +
                   (visible ? visible : "unset") + "); start at most one rank per GPU, or pass --device cpu");
}

// Each rank gets its share of the node's cores, so that ranks do not oversubscribe them.
void set_threads(int requested, const distributed::MpiEnvironment& environment) {
  int threads = requested;
  if (threads <= 0 && environment.size() > 1) {
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, environment.local_size()));
  }
  if (threads > 0) {
    torch::set_num_threads(threads);
    torch::set_num_interop_threads(1);
  }
}

int threads_option(const po::variables_map& vm) {
  const int per_rank = vm["threads-per-rank"].as<int>();
  return per_rank > 0 ? per_rank : vm["threads"].as<int>();
}

// Console output of rank 0 only, unless --log-all-ranks; then every line carries its rank.
class Console {
 public:
  Console(const distributed::MpiEnvironment& environment, bool all_ranks)
      : enabled_(environment.rank() == 0 || all_ranks), prefix_(environment.log_prefix()) {}
  void line(const std::string& text) const {
    if (enabled_) std::cout << prefix_ << text << std::endl;
  }
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  std::string prefix_;
};

// Training and validation sample ids: a validation fold of the manifest's group k-fold (the
// leakage-free default), or a whole split such as Testing.
std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>> select_samples(const data::ShardedDataset& dataset,
                                                                              int val_fold, const std::string& val_split) {
  if (!val_split.empty()) {
    auto validation = dataset.select_split(val_split);
    std::vector<std::int64_t> training;
    const bool has_folds = dataset.manifest().folds.fold_count > 0;
    for (std::int64_t id = 0; id < dataset.size(); ++id) {
      if (dataset.split(id) == val_split) continue;
      // With folds, training images that duplicate held-out ones are excluded.
      if (has_folds && dataset.fold(id) < 0) continue;
      training.push_back(id);
    }
    return {training, validation};
  }
  if (dataset.manifest().folds.fold_count == 0) {
    throw UsageError(dataset.directory().string() +
                     " has no fold assignment; pack it with brainmri-prep --folds K or pass --val-split");
  }
  if (val_fold < 0 || val_fold >= dataset.manifest().folds.fold_count) {
    throw UsageError("--val-fold " + std::to_string(val_fold) + " is outside 0.." +
                     std::to_string(dataset.manifest().folds.fold_count - 1));
  }
  return {dataset.training_samples_for_fold(val_fold), dataset.validation_samples_for_fold(val_fold)};
}

std::string format_epoch(const training::EpochRecord& r) {
  char line[320];
  std::snprintf(line, sizeof(line),
                "[%s] epoch %3d  lr %.2e  loss %.4f  acc %.4f | val loss %.4f  acc %.4f  macro-F1 %.4f  AUC %.4f | "
                "%6.0f img/s  %5.1f s%s",
                r.stage.c_str(), r.epoch, r.learning_rate, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy,
                r.val_macro_f1, r.val_macro_auc, r.images_per_second, r.seconds, r.best ? "  *" : "");
  return line;
}

po::options_description train_options() {
  po::options_description general("General");
  // clang-format off
  general.add_options()
    ("help,h", "show this help and exit")
    ("config", po::value<std::string>(), "INI file with any of these options (key = value); the command line wins")
    ("data", po::value<std::string>(), "dataset directory written by brainmri-prep (required)")
    ("output", po::value<std::string>(), "run directory for checkpoints, logs and metrics (required)")
    ("device", po::value<std::string>()->default_value("auto"), "auto (CUDA when available), cpu or cuda")
    ("threads", po::value<int>()->default_value(0), "same as --threads-per-rank (kept for older configs)")
    ("seed", po::value<std::uint64_t>()->default_value(42), "seed of data order, augmentation, dropout and initialization")
    ("resume", po::value<bool>()->default_value(false)->implicit_value(true), "continue from the run directory's last checkpoints")
    ("val-fold", po::value<int>()->default_value(0), "validation fold of the dataset's group k-fold; the other folds train")
    ("val-split", po::value<std::string>()->default_value(""), "validate on this split (e.g. Testing) instead of a fold")
    ("loader", po::value<std::string>()->default_value("auto"), "memory (whole selection on the device), stream (read ahead from HDF5) or auto")
    ("memory-limit-mb", po::value<int>()->default_value(4096), "auto loader: stream when the selected pixels exceed this");
  po::options_description parallel("Distributed (under mpirun or srun; see docs/distributed.md)");
  parallel.add_options()
    ("backend", po::value<std::string>()->default_value("auto"), "gradient all-reduce: auto (nccl on CUDA, mpi on CPU, local for one process), nccl or mpi")
    ("threads-per-rank", po::value<int>()->default_value(0), "CPU threads of each rank (0: the node's cores / ranks on the node; one process: LibTorch's default)")
    ("comm-timeout", po::value<double>()->default_value(300), "seconds a collective may wait before the job is aborted (warning at half)")
    ("bucket-mb", po::value<double>()->default_value(25), "gradient bucket size in MiB")
    ("first-bucket-mb", po::value<double>()->default_value(1), "size of the first (last layers') bucket in MiB: small, so communication starts early")
    ("overlap", po::value<bool>()->default_value(true), "start each bucket's all-reduce during backward (false: after backward)")
    ("grad-compression", po::value<std::string>()->default_value("none"), "none or bf16 (bf16 on the wire, fp32 additions)")
    ("sync-bn", po::value<bool>()->default_value(false)->implicit_value(true), "batch-norm statistics over the global batch instead of each rank's (for small per-rank batches)")
    ("log-all-ranks", po::value<bool>()->default_value(false)->implicit_value(true), "print every rank's console output, prefixed [rank r/n] (default: rank 0 only)");
  po::options_description model("Model");
  model.add_options()
    ("model", po::value<std::string>()->default_value("baseline_cnn"), "baseline_cnn or mobilenet_v2")
    ("dropout", po::value<double>()->default_value(0.5), "dropout before the dense layer")
    ("dense-units", po::value<int>()->default_value(128), "units of the hidden dense layer of the head")
    ("filters", po::value<std::string>()->default_value("32,64,128"), "baseline_cnn: filters of its conv blocks")
    ("width", po::value<double>()->default_value(1.0), "mobilenet_v2: width multiplier (Keras alpha)")
    ("pretrained", po::value<std::string>()->default_value(""), "mobilenet_v2: Keras HDF5 ImageNet weights of the same width")
    ("trainable-blocks", po::value<int>()->default_value(-1), "backbone groups that train, counted from the top (-1: all, 0: frozen backbone)");
  po::options_description train("Training");
  train.add_options()
    ("epochs", po::value<int>()->default_value(20), "epochs of the first stage")
    ("batch-size", po::value<std::int64_t>()->default_value(32), "training batch size")
    ("eval-batch-size", po::value<std::int64_t>()->default_value(256), "evaluation batch size")
    ("optimizer", po::value<std::string>()->default_value("adam"), "adam, adamw or sgd (momentum)")
    ("lr", po::value<double>()->default_value(1e-3), "learning rate")
    ("weight-decay", po::value<double>()->default_value(0.0), "weight decay")
    ("momentum", po::value<double>()->default_value(0.9), "sgd momentum")
    ("schedule", po::value<std::string>()->default_value("constant"), "constant, step, cosine or plateau")
    ("warmup-epochs", po::value<int>()->default_value(0), "linear learning-rate warm-up epochs")
    ("step-epochs", po::value<int>()->default_value(10), "step schedule: epochs per step")
    ("step-gamma", po::value<double>()->default_value(0.1), "step schedule: factor per step")
    ("min-lr", po::value<double>()->default_value(0.0), "cosine schedule: final learning rate")
    ("plateau-patience", po::value<int>()->default_value(3), "plateau schedule: epochs without improvement before lowering")
    ("plateau-factor", po::value<double>()->default_value(0.1), "plateau schedule: factor")
    ("label-smoothing", po::value<double>()->default_value(0.0), "label smoothing of the cross-entropy")
    ("class-weights", po::value<std::string>()->default_value("none"), "none or balanced")
    ("grad-clip", po::value<double>()->default_value(0.0), "clip the gradient norm to this value (0: off)")
    ("early-stopping-metric", po::value<std::string>()->default_value("val_macro_f1"), "val_loss, val_accuracy, val_macro_f1 or val_macro_auc")
    ("patience", po::value<int>()->default_value(0), "stop after this many epochs without improvement (0: never)")
    ("restore-best", po::value<bool>()->default_value(true), "end each stage with its best epoch's weights")
    ("precision", po::value<std::string>()->default_value("auto"), "auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16")
    ("augment", po::value<bool>()->default_value(true), "augment training batches")
    ("flip", po::value<bool>()->default_value(true), "random horizontal flip")
    ("rotation", po::value<double>()->default_value(0.08), "random rotation factor (fraction of 360 degrees)")
    ("zoom", po::value<double>()->default_value(0.08), "random zoom factor")
    ("contrast", po::value<double>()->default_value(0.1), "random contrast factor")
    ("bootstrap-seed", po::value<std::uint64_t>()->default_value(7), "seed of the bootstrap confidence intervals");
  po::options_description finetune("Fine-tuning (second stage)");
  finetune.add_options()
    ("finetune-epochs", po::value<int>()->default_value(0), "epochs of a second stage from the first stage's best weights (0: none)")
    ("finetune-lr", po::value<double>()->default_value(1e-5), "learning rate of the second stage")
    ("finetune-trainable-blocks", po::value<int>()->default_value(4), "backbone groups that train in the second stage, from the top")
    ("finetune-from", po::value<std::string>()->default_value(""), "or: train the backbone from this layer or block on (e.g. block_13)");
  // clang-format on
  po::options_description all("brainmri train");
  all.add(general).add(parallel).add(model).add(train).add(finetune);
  return all;
}

training::TrainOptions trainer_options(const po::variables_map& vm, const fs::path& output) {
  training::TrainOptions o;
  o.epochs = vm["epochs"].as<int>();
  o.batch_size = vm["batch-size"].as<std::int64_t>();
  o.eval_batch_size = vm["eval-batch-size"].as<std::int64_t>();
  o.seed = vm["seed"].as<std::uint64_t>();
  o.optimizer = {vm["optimizer"].as<std::string>(), vm["lr"].as<double>(), vm["weight-decay"].as<double>(),
                 vm["momentum"].as<double>()};
  o.schedule = {vm["schedule"].as<std::string>(), vm["warmup-epochs"].as<int>(), vm["step-epochs"].as<int>(),
                vm["step-gamma"].as<double>(),    vm["min-lr"].as<double>(),       vm["plateau-patience"].as<int>(),
                vm["plateau-factor"].as<double>()};
  o.early_stopping = {vm["early-stopping-metric"].as<std::string>(), vm["patience"].as<int>(),
                      vm["restore-best"].as<bool>()};
  o.label_smoothing = vm["label-smoothing"].as<double>();
  o.class_weights = vm["class-weights"].as<std::string>();
  o.gradient_clip_norm = vm["grad-clip"].as<double>();
  o.augment = vm["augment"].as<bool>();
  o.augmentation = {vm["flip"].as<bool>(), vm["rotation"].as<double>(), vm["zoom"].as<double>(),
                    vm["contrast"].as<double>()};
  o.precision = vm["precision"].as<std::string>();
  o.output_dir = output;
  o.reducer.bucket_bytes = static_cast<std::size_t>(vm["bucket-mb"].as<double>() * (1 << 20));
  o.reducer.first_bucket_bytes = static_cast<std::size_t>(vm["first-bucket-mb"].as<double>() * (1 << 20));
  o.reducer.overlap = vm["overlap"].as<bool>();
  o.reducer.compression = vm["grad-compression"].as<std::string>();
  o.sync_batch_norm = vm["sync-bn"].as<bool>();
  return o;
}

// Ends a command with an exit code after its message was already printed.
struct QuietExit {
  int code;
};

// Runs the set-up of a command that may fail on some ranks only (a config file missing on one
// node, a node with fewer GPUs), then lets every rank learn whether all succeeded before any of
// them waits in a collective. A rank whose set-up failed prints its own error unless every rank
// failed (then rank 0 alone does); all ranks then exit with the failure's code.
// One write per message: several ranks share the terminal, and std::cerr writes every << alone.
void say_error(const std::string& message) {
  const std::string line = message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

template <typename Setup>
void agree_on_setup(const distributed::MpiEnvironment& environment, const std::string& command, Setup setup) {
  std::exception_ptr failure;
  try {
    setup();
  } catch (...) {
    failure = std::current_exception();
  }
  const int failed = environment.count_failures(failure != nullptr);
  if (environment.size() == 1 || failed == 0) {
    if (failure) std::rethrow_exception(failure);
    return;
  }
  if (!failure) {
    if (environment.rank() == 0) {
      say_error(environment.log_prefix() + "brainmri " + command + ": " + std::to_string(failed) +
                " rank(s) failed to start (their errors are above); stopping every rank");
    }
    throw QuietExit{kExitUsage};
  }
  if (environment.rank() == 0 || failed < environment.size()) {
    try {
      std::rethrow_exception(failure);
    } catch (const UsageError& e) {
      say_error(environment.log_prefix() + "brainmri " + command + ": " + e.what());
      throw QuietExit{kExitUsage};
    } catch (const po::error& e) {
      say_error(environment.log_prefix() + "brainmri " + command + ": " + e.what());
      throw QuietExit{kExitUsage};
    } catch (const std::exception& e) {
      say_error(environment.log_prefix() + "brainmri " + command + ": error: " + e.what());
      throw QuietExit{kExitFailure};
    }
  }
  throw QuietExit{kExitUsage};  // every rank failed alike; rank 0 reported it
}

// Runs the part of a command that holds a communicator. In a job of several ranks, a failure
// other than a usage error (which every rank sees alike) is reported with this rank and ends
// the whole job at once: unwinding first would wait on collectives the other ranks never finish.
template <typename Body>
int abort_job_on_failure(const distributed::MpiEnvironment& environment, const std::string& command, Body body) {
  if (environment.size() == 1) return body();
  try {
    return body();
  } catch (const UsageError&) {
    throw;
  } catch (const po::error&) {
    throw;
  } catch (const c10::Error& e) {
    say_error(environment.log_prefix() + "brainmri " + command + ": error: " + e.what_without_backtrace() + "\n" +
              environment.log_prefix() + "aborting the job");
  } catch (const std::exception& e) {
    say_error(environment.log_prefix() + "brainmri " + command + ": error: " + e.what() + "\n" +
              environment.log_prefix() + "aborting the job");
  }
  environment.abort_job(kExitFailure);
}

std::chrono::milliseconds comm_timeout(const po::variables_map& vm) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(vm["comm-timeout"].as<double>() * 1000));
}

distributed::CommunicatorOptions communicator_options(const po::variables_map& vm) { return {comm_timeout(vm)}; }

// Where one training run goes and what it validates on.
struct RunPlacement {
  fs::path output;
  int val_fold = 0;
  std::string val_split;  // non-empty: validate on this split instead of a fold
  bool resume = false;
};

// One training run as `brainmri train` does it — one or two stages, then the validation files —
// on the ranks of `communicator` (all of them, or one group of a cross-validation). Returns the
// validation summary (every rank gets it); rank 0 of the communicator writes the files.
json train_run(const po::variables_map& vm, training::TrainOptions stage1, const RunPlacement& where,
               distributed::Communicator& communicator, const torch::Device& device,
               const std::function<void(const std::string&)>& say, const std::string& command,
               const std::string& config_text) {
  stage1.communicator = &communicator;
  stage1.output_dir = where.output;
  const bool writer = communicator.rank() == 0;
  torch::manual_seed(stage1.seed);

  const data::ShardedDataset dataset(vm["data"].as<std::string>());
  const auto [train_ids, val_ids] = select_samples(dataset, where.val_fold, where.val_split);
  if (train_ids.empty() || val_ids.empty()) throw UsageError("the training or the validation selection is empty");

  models::ModelOptions model_options;
  model_options.num_classes = static_cast<int>(dataset.class_names().size());
  model_options.input_channels = dataset.channels();
  model_options.image_size = dataset.image_size();
  model_options.dropout = vm["dropout"].as<double>();
  model_options.dense_units = vm["dense-units"].as<int>();
  model_options.filters = parse_int_list(vm["filters"].as<std::string>());
  model_options.width_multiplier = vm["width"].as<double>();
  auto model = models::create_model(vm["model"].as<std::string>(), model_options);
  const auto pretrained = vm["pretrained"].as<std::string>();
  if (!pretrained.empty()) {
    const auto report = models::load_keras_weights(*model, pretrained);
    say("Loaded " + std::to_string(report.layers_loaded) + " layers (" + std::to_string(report.tensors_loaded) +
        " tensors) from " + pretrained);
  }
  model->set_trainable_backbone_groups(vm["trainable-blocks"].as<int>());

  fs::create_directories(where.output);
  if (writer) {
    write_file_atomically(where.output / "config.ini", "# brainmri " + std::string(kVersion) + " " + command + "\n" + config_text);
  }
  const std::string selection = where.val_split.empty() ? "fold " + std::to_string(where.val_fold) : "split " + where.val_split;
  say("Training " + model->model_name() + " on " + std::to_string(train_ids.size()) + " images, validating on " +
      std::to_string(val_ids.size()) + " (" + selection + "), device " + device.str() +
      (communicator.size() > 1 ? ", " + std::to_string(communicator.size()) + " ranks (" + communicator.backend() +
                                     "), global batch " + std::to_string(stage1.batch_size * communicator.size())
                               : std::string()));
  const auto memory_limit = static_cast<std::size_t>(vm["memory-limit-mb"].as<int>()) << 20;
  const auto loader_kind = vm["loader"].as<std::string>();
  const auto train_source = training::make_loader(dataset, train_ids, device, loader_kind, memory_limit);
  const auto val_source = training::make_loader(dataset, val_ids, device, loader_kind, memory_limit);

  auto run_stage = [&](const training::TrainOptions& stage_options) {
    training::Trainer trainer(model, stage_options, device);
    trainer.on_epoch = [&](const training::EpochRecord& r) { say(format_epoch(r)); };
    if (where.resume && fs::exists(trainer.last_checkpoint())) {
      trainer.resume(trainer.last_checkpoint());
      say("Resumed " + stage_options.stage_name + " from " + trainer.last_checkpoint().string());
    }
    trainer.fit(*train_source, val_source.get());
    return trainer.predict(*val_source);
  };
  auto predictions = run_stage(stage1);
  fs::path final_checkpoint =
      where.output / (stage1.stage_name + (stage1.early_stopping.restore_best ? "_best.pt" : "_last.pt"));

  if (vm["finetune-epochs"].as<int>() > 0) {
    const auto from = vm["finetune-from"].as<std::string>();
    if (from.empty()) {
      model->set_trainable_backbone_groups(vm["finetune-trainable-blocks"].as<int>());
    } else {
      model->set_trainable_from(from);
    }
    auto stage2 = stage1;
    stage2.stage_name = "finetune";
    stage2.epochs = vm["finetune-epochs"].as<int>();
    stage2.optimizer.learning_rate = vm["finetune-lr"].as<double>();
    predictions = run_stage(stage2);
    final_checkpoint = where.output / (stage2.early_stopping.restore_best ? "finetune_best.pt" : "finetune_last.pt");
  }

  const int k = static_cast<int>(dataset.class_names().size());
  const auto scores = training::score_predictions(predictions, k);
  const auto predicted = metrics::argmax_rows(predictions.probabilities, k);
  json outcome = {{"accuracy", scores.accuracy},
                  {"macro_f1", scores.macro_f1},
                  {"macro_auc", std::isnan(scores.macro_auc) ? json(nullptr) : json(scores.macro_auc)},
                  {"loss", scores.loss},
                  {"validation_samples", static_cast<int>(predictions.labels.size())},
                  {"run_directory", where.output.string()},
                  {"report", metrics::format_classification_report(
                                 metrics::classification_report(metrics::ConfusionMatrix(predictions.labels, predicted, k),
                                                                dataset.class_names()),
                                 4)}};
  if (!writer) return outcome;
  if (fs::exists(final_checkpoint)) {
    fs::copy_file(final_checkpoint, where.output / "model.pt", fs::copy_options::overwrite_existing);
  }
  const json context = {{"command", command},
                        {"dataset", fs::absolute(dataset.directory()).string()},
                        {"selection", selection},
                        {"model", model->model_name()},
                        {"ranks", communicator.size()},
                        {"checkpoint", (where.output / "model.pt").string()}};
  training::write_evaluation(where.output / "validation", predictions, dataset.class_names(), context,
                             vm["bootstrap-seed"].as<std::uint64_t>());
  return outcome;
}

// The parsed, validated and cross-rank-checked options of a training command (train, cv).
struct TrainingSetup {
  po::variables_map vm;
  training::TrainOptions stage1;
  std::string config_text;
  fs::path output;
  torch::Device device = torch::kCPU;
  bool help = false;
};

TrainingSetup prepare_training(int argc, const char* const argv[], const po::options_description& options,
                               const distributed::MpiEnvironment& environment, const std::string& command,
                               const std::function<void(const po::variables_map&)>& extra_checks = {}) {
  TrainingSetup setup;
  auto& vm = setup.vm;
  agree_on_setup(environment, command, [&] {
    vm = parse_with_config(argc, argv, options);
    if (vm.count("help")) return;
    if (!vm.count("data") || !vm.count("output")) throw UsageError(command + " needs --data and --output");
    const auto loader_kind = vm["loader"].as<std::string>();
    if (loader_kind != "auto" && loader_kind != "memory" && loader_kind != "stream") {
      throw UsageError("--loader must be auto, memory or stream, got " + loader_kind);
    }
    if (vm["memory-limit-mb"].as<int>() < 0) throw UsageError("--memory-limit-mb must be >= 0");
    setup.output = vm["output"].as<std::string>();
    setup.stage1 = trainer_options(vm, setup.output);
    setup.stage1.stage_name = vm["finetune-epochs"].as<int>() > 0 ? "stage1" : "train";
    try {
      training::validate_train_options(setup.stage1);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    if (vm["comm-timeout"].as<double>() <= 0) throw UsageError("--comm-timeout must be > 0 seconds");
    if (vm["bucket-mb"].as<double>() <= 0 || vm["first-bucket-mb"].as<double>() <= 0) {
      throw UsageError("--bucket-mb and --first-bucket-mb must be > 0");
    }
    if (extra_checks) extra_checks(vm);
    setup.config_text = resolved_config(options, vm);
    setup.device = pick_device(vm["device"].as<std::string>(), environment);
  });
  setup.help = vm.count("help") > 0;
  if (setup.help) return setup;
  if (const auto mismatch = environment.compare_across_ranks(setup.config_text); !mismatch.empty()) {
    throw UsageError(mismatch + "\nEvery rank must be started with the same options and config file.");
  }
  set_threads(threads_option(vm), environment);
  return setup;
}

int run_train(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  const auto options = train_options();
  auto setup = prepare_training(argc, argv, options, environment, "train");
  if (setup.help) {
    if (environment.rank() == 0) std::cout << "Usage: brainmri train --data DIR --output DIR [options]\n\n" << options << "\n";
    return kExitOk;
  }
  const auto& vm = setup.vm;
  const auto& output = setup.output;
  const auto& device = setup.device;
  const auto& stage1 = setup.stage1;
  const auto& config_text = setup.config_text;
  const Console console(environment, vm["log-all-ranks"].as<bool>());
  return abort_job_on_failure(environment, "train", [&] {
    const auto communicator = distributed::make_communicator(environment, vm["backend"].as<std::string>(), device,
                                                             communicator_options(vm));
    const RunPlacement where{output, vm["val-fold"].as<int>(), vm["val-split"].as<std::string>(), vm["resume"].as<bool>()};
    const auto outcome = train_run(vm, stage1, where, *communicator, device, [&](const std::string& line) { console.line(line); },
                                   "train", config_text);
    if (communicator->rank() == 0) {
      std::cout << "\n" << environment.log_prefix() << "Validation (" << outcome.at("validation_samples").get<int>()
                << " images):\n" << outcome.at("report").get<std::string>() << "\nRun directory: " << output.string()
                << " (model.pt, validation/metrics.json, train_log.jsonl)\n";
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
    device = pick_device(vm["device"].as<std::string>(), environment);
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
  const auto communicator = distributed::make_communicator(environment, "auto", device);
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
  const auto loader = training::make_loader(dataset, ids, device, "auto", std::size_t{4096} << 20);
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


// --- brainmri cv ---------------------------------------------------------------------------------

// Two-sided 95% Student t quantiles for 1..30 degrees of freedom (beyond: the normal 1.96).
double t_quantile_95(int degrees_of_freedom) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (degrees_of_freedom < 1) return NAN;
  return degrees_of_freedom <= 30 ? table[degrees_of_freedom - 1] : 1.96;
}

json across_folds(const std::vector<double>& values) {
  const auto n = static_cast<double>(values.size());
  if (values.empty()) return nullptr;
  double mean = 0;
  for (const auto v : values) mean += v / n;
  double squares = 0;
  for (const auto v : values) squares += (v - mean) * (v - mean);
  const double std_dev = values.size() > 1 ? std::sqrt(squares / (n - 1)) : NAN;
  const double half_width = values.size() > 1 ? t_quantile_95(static_cast<int>(values.size()) - 1) * std_dev / std::sqrt(n) : NAN;
  auto number = [](double x) { return std::isnan(x) ? json(nullptr) : json(x); };
  return {{"mean", mean}, {"std", number(std_dev)}, {"ci95_low", number(mean - half_width)},
          {"ci95_high", number(mean + half_width)}, {"folds", values.size()}};
}

po::options_description cv_options() {
  auto options = train_options();
  po::options_description cv("Cross-validation (brainmri cv)");
  // clang-format off
  cv.add_options()
    ("folds", po::value<std::string>()->default_value("all"), "validation folds to run: all, or a list such as 0,2,4")
    ("ranks-per-job", po::value<int>()->default_value(1), "ranks that train one fold together (1: one fold per rank/GPU)")
    ("max-retries", po::value<int>()->default_value(2), "times a failed fold is retried before it is marked failed");
  // clang-format on
  options.add(cv);
  return options;
}

int run_cv(int argc, const char* const argv[], const distributed::MpiEnvironment& environment) {
  const auto options = cv_options();
  std::vector<int> folds;
  auto setup = prepare_training(argc, argv, options, environment, "cv", [&](const po::variables_map& vm) {
    if (vm["ranks-per-job"].as<int>() < 1 || environment.size() % vm["ranks-per-job"].as<int>() != 0) {
      throw UsageError("--ranks-per-job " + std::to_string(vm["ranks-per-job"].as<int>()) + " must divide the " +
                       std::to_string(environment.size()) + " ranks");
    }
    if (vm["max-retries"].as<int>() < 0) throw UsageError("--max-retries must be >= 0");
    const data::ShardedDataset dataset(vm["data"].as<std::string>());
    const int fold_count = dataset.manifest().folds.fold_count;
    if (fold_count < 2) {
      throw UsageError(dataset.directory().string() + " has no fold assignment; pack it with brainmri-prep --folds K");
    }
    const auto wanted = vm["folds"].as<std::string>();
    if (wanted == "all") {
      for (int k = 0; k < fold_count; ++k) folds.push_back(k);
    } else {
      folds = parse_int_list(wanted);
      for (const int k : folds) {
        if (k < 0 || k >= fold_count) {
          throw UsageError("--folds names fold " + std::to_string(k) + ", outside 0.." + std::to_string(fold_count - 1));
        }
      }
    }
  });
  if (setup.help) {
    if (environment.rank() == 0) {
      std::cout << "Usage: brainmri cv --data DIR --output DIR [options]\n\n"
                   "Trains one run per validation fold (train on the other folds) as `brainmri train` would, each in\n"
                   "DIR/fold-K, then writes DIR/cv_summary.{json,md} and the pooled out-of-fold evaluation in\n"
                   "DIR/out_of_fold. Under mpirun the folds are shared among groups of --ranks-per-job ranks. Progress\n"
                   "is journaled in DIR/journal.jsonl: the same command resumes an interrupted cross-validation.\n"
                   "--val-fold, --val-split and --resume of the training options do not apply here.\n\n"
                << options << "\n";
    }
    return kExitOk;
  }
  const auto& vm = setup.vm;
  const fs::path output = setup.output;
  return abort_job_on_failure(environment, "cv", [&] {
    const auto world = distributed::make_communicator(environment, vm["backend"].as<std::string>(), setup.device,
                                                      communicator_options(vm));
    experiments::JobScheduler scheduler(environment, *world,
                                        {vm["ranks-per-job"].as<int>(), vm["max-retries"].as<int>()});
    std::unique_ptr<experiments::Journal> journal;
    if (world->rank() == 0) {
      fs::create_directories(output);
      write_file_atomically(output / "config.ini", "# brainmri " + std::string(kVersion) + " cv\n" + setup.config_text);
      journal = std::make_unique<experiments::Journal>(output / "journal.jsonl");
    }
    std::vector<std::string> jobs;
    for (const int k : folds) jobs.push_back("fold-" + std::to_string(k));
    if (world->rank() == 0) {
      std::cout << "Cross-validating " << vm["model"].as<std::string>() << " over " << jobs.size() << " folds on "
                << scheduler.group_count() << " group(s) of " << vm["ranks-per-job"].as<int>() << " rank(s)" << std::endl;
    }
    const auto statuses = scheduler.run(jobs, journal.get(), [&](const experiments::JobContext& context) {
      const int fold = std::stoi(context.assignment.job.substr(5));
      auto stage1 = setup.stage1;
      // Each fold's seed comes from (experiment seed, fold): rerunning a fold reproduces it.
      stage1.seed = training::augmentation_seed(setup.stage1.seed, -3, fold, 0);
      const RunPlacement where{output / context.assignment.job, fold, "", context.assignment.resume};
      const std::string prefix = "[fold " + std::to_string(fold) + "] ";
      const bool speaks = context.group.rank() == 0;
      auto outcome = train_run(vm, stage1, where, context.group, setup.device,
                               [&](const std::string& line) {
                                 if (speaks) say_error(prefix + line);  // stderr: one write per line
                               },
                               "cv", setup.config_text);
      outcome.erase("report");
      return outcome;
    });
    if (world->rank() != 0) return kExitOk;

    // Aggregates, on rank 0: per fold, across folds, and pooled out of fold.
    const data::ShardedDataset dataset(vm["data"].as<std::string>());
    json per_fold = json::array();
    std::vector<double> accuracy, macro_f1, macro_auc;
    training::Predictions pooled;
    double pooled_loss = 0;
    std::vector<std::string> failed;
    for (const auto& job : jobs) {
      const auto& status = statuses.at(job);
      if (status.state != experiments::JobState::Finished) {
        failed.push_back(job + " (" + experiments::to_string(status.state) + ": " + status.error + ")");
        continue;
      }
      per_fold.push_back({{"fold", job}, {"accuracy", status.result["accuracy"]}, {"macro_f1", status.result["macro_f1"]},
                          {"macro_auc", status.result["macro_auc"]}, {"validation_samples", status.result["validation_samples"]},
                          {"attempts", status.attempts}});
      accuracy.push_back(status.result["accuracy"].get<double>());
      macro_f1.push_back(status.result["macro_f1"].get<double>());
      if (!status.result["macro_auc"].is_null()) macro_auc.push_back(status.result["macro_auc"].get<double>());
      const auto fold_predictions = training::read_predictions(output / job / "validation" / "predictions.h5");
      pooled.sample_ids.insert(pooled.sample_ids.end(), fold_predictions.sample_ids.begin(), fold_predictions.sample_ids.end());
      pooled.labels.insert(pooled.labels.end(), fold_predictions.labels.begin(), fold_predictions.labels.end());
      pooled.probabilities.insert(pooled.probabilities.end(), fold_predictions.probabilities.begin(),
                                  fold_predictions.probabilities.end());
      pooled_loss += status.result["loss"].get<double>() * static_cast<double>(fold_predictions.labels.size());
    }
    // Every sample of the folds run must have exactly one out-of-fold prediction.
    std::set<std::int64_t> seen(pooled.sample_ids.begin(), pooled.sample_ids.end());
    if (seen.size() != pooled.sample_ids.size()) throw std::runtime_error("a sample has two out-of-fold predictions");
    std::size_t expected = 0;
    for (const int k : folds) {
      bool finished = statuses.at("fold-" + std::to_string(k)).state == experiments::JobState::Finished;
      if (finished) expected += dataset.validation_samples_for_fold(k).size();
    }
    if (pooled.sample_ids.size() != expected) {
      throw std::runtime_error("out-of-fold predictions cover " + std::to_string(pooled.sample_ids.size()) +
                               " samples, the folds hold " + std::to_string(expected));
    }
    json summary = {{"model", vm["model"].as<std::string>()},
                    {"dataset", fs::absolute(dataset.directory()).string()},
                    {"folds", per_fold},
                    {"accuracy", across_folds(accuracy)},
                    {"macro_f1", across_folds(macro_f1)},
                    {"macro_auc", across_folds(macro_auc)},
                    {"failed", failed},
                    {"ranks", world->size()},
                    {"ranks_per_job", vm["ranks-per-job"].as<int>()}};
    if (!pooled.labels.empty()) {
      pooled.loss = pooled_loss / static_cast<double>(pooled.labels.size());
      const json context = {{"command", "cv"}, {"dataset", summary["dataset"]}, {"selection", "out of fold"},
                            {"model", summary["model"]}};
      training::write_evaluation(output / "out_of_fold", pooled, dataset.class_names(), context,
                                 vm["bootstrap-seed"].as<std::uint64_t>());
      const auto oof = json::parse(std::ifstream(output / "out_of_fold" / "metrics.json"));
      summary["out_of_fold"] = {{"samples", pooled.labels.size()}, {"accuracy", oof["accuracy"]},
                                {"macro_f1", oof["macro_avg"]["f1"]}, {"macro_auc", oof["macro_auc"]}};
    }
    write_file_atomically(output / "cv_summary.json", summary.dump(2) + "\n");

    std::ostringstream table;
    char line[256];
    table << "| fold | accuracy | macro-F1 | macro AUC | validation images |\n|---|---:|---:|---:|---:|\n";
    for (const auto& f : per_fold) {
      char auc[32] = "n/a";
      if (!f["macro_auc"].is_null()) std::snprintf(auc, sizeof(auc), "%.4f", f["macro_auc"].get<double>());
      std::snprintf(line, sizeof(line), "| %s | %.4f | %.4f | %s | %d |\n", f["fold"].get<std::string>().c_str(),
                    f["accuracy"].get<double>(), f["macro_f1"].get<double>(), auc, f["validation_samples"].get<int>());
      table << line;
    }
    auto summary_row = [&](const char* name, const json& m) {
      if (m.is_null()) return;
      std::snprintf(line, sizeof(line), "| %s | %.4f ± %.4f [%.4f, %.4f] |\n", name, m["mean"].get<double>(),
                    m["std"].is_null() ? NAN : m["std"].get<double>(), m["ci95_low"].is_null() ? NAN : m["ci95_low"].get<double>(),
                    m["ci95_high"].is_null() ? NAN : m["ci95_high"].get<double>());
      table << line;
    };
    table << "\n| across folds | mean ± std [95% t-interval] |\n|---|---|\n";
    summary_row("accuracy", summary["accuracy"]);
    summary_row("macro-F1", summary["macro_f1"]);
    summary_row("macro AUC", summary["macro_auc"]);
    if (summary.contains("out_of_fold")) {
      std::snprintf(line, sizeof(line), "\nPooled out of fold (%zu images): accuracy %.4f, macro-F1 %.4f\n",
                    pooled.labels.size(), summary["out_of_fold"]["accuracy"].get<double>(),
                    summary["out_of_fold"]["macro_f1"].get<double>());
      table << line;
    }
    for (const auto& f : failed) table << "\nFAILED: " << f << "\n";
    write_file_atomically(output / "cv_summary.md", table.str());
    std::cout << "\n" << table.str() << "\nCross-validation directory: " << output.string()
              << " (cv_summary.md, cv_summary.json, out_of_fold/, fold-K/, journal.jsonl)\n";
    return failed.empty() ? kExitOk : kExitFailure;
  });
}
}  // namespace

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
    if (command == "train" || command == "evaluate" || command == "cv") {
      environment = std::make_unique<distributed::MpiEnvironment>(&argc, &argv);
      if (command == "train") return run_train(argc - 1, argv + 1, *environment);
      if (command == "cv") return run_cv(argc - 1, argv + 1, *environment);
      return run_evaluate(argc - 1, argv + 1, *environment);
    }
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
  } catch (const po::error& e) {
    return report("brainmri " + command + ": " + e.what() + "\nTry 'brainmri " + command + " --help'.", true);
  } catch (const UsageError& e) {
    return report("brainmri " + command + ": " + e.what() + "\nTry 'brainmri " + command + " --help'.", true);
  } catch (const c10::Error& e) {
    return report("brainmri " + command + ": error: " + e.what_without_backtrace(), false);
  } catch (const std::exception& e) {
    return report("brainmri " + command + ": error: " + e.what(), false);
  }
}
