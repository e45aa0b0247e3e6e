// Shared plumbing of the training commands (see training_command.hpp).

#include "training_command.hpp"


#include <cmath>
#include <sstream>
#include <set>
#include <optional>
#include <cctype>
#include <algorithm>
#include <numeric>
#include <tuple>
#include <cstdio>
#include <thread>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/models/keras_weights.hpp"
#include "brainmri/models/torchscript_export.hpp"
#include "brainmri/reports/report.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/training/evaluation_files.hpp"
#include "brainmri/version.hpp"

namespace brainmri::cli {

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

models::ClassifierPtr create_model(const po::variables_map& vm, const data::ShardedDataset& dataset) {
  models::ModelOptions model_options;
  model_options.num_classes = static_cast<int>(dataset.class_names().size());
  model_options.input_channels = dataset.channels();
  model_options.image_size = dataset.image_size();
  model_options.dropout = vm["dropout"].as<double>();
  model_options.dense_units = vm["dense-units"].as<int>();
  model_options.filters = parse_int_list(vm["filters"].as<std::string>());
  model_options.width_multiplier = vm["width"].as<double>();
  auto model = models::create_model(vm["model"].as<std::string>(), model_options);
  const int trainable = vm["trainable-blocks"].as<int>();
  if (trainable < -1) throw UsageError("--trainable-blocks must be -1 (all), 0 (frozen backbone) or more");
  return model;
}

void check_job_options(const po::variables_map& vm, const distributed::MpiEnvironment& environment) {
  const int ranks_per_job = vm["ranks-per-job"].as<int>();
  if (ranks_per_job < 1 || environment.size() % ranks_per_job != 0) {
    throw UsageError("--ranks-per-job " + std::to_string(ranks_per_job) + " must divide the " +
                     std::to_string(environment.size()) + " ranks");
  }
  if (vm["max-retries"].as<int>() < 0) throw UsageError("--max-retries must be >= 0");
}

std::vector<int> selected_folds(const std::string& wanted, const data::ShardedDataset& dataset) {
  const int fold_count = dataset.manifest().folds.fold_count;
  if (fold_count < 2) {
    throw UsageError(dataset.directory().string() + " has no fold assignment; pack it with brainmri-prep --folds K");
  }
  std::vector<int> folds;
  if (wanted == "all") {
    for (int k = 0; k < fold_count; ++k) folds.push_back(k);
    return folds;
  }
  folds = parse_int_list(wanted);
  if (std::set<int>(folds.begin(), folds.end()).size() != folds.size()) throw UsageError("--folds names a fold twice: " + wanted);
  for (const int k : folds) {
    if (k < 0 || k >= fold_count) {
      throw UsageError("--folds names fold " + std::to_string(k) + ", outside 0.." + std::to_string(fold_count - 1));
    }
  }
  return folds;
}

void write_run_report(const fs::path& run_directory, const po::variables_map& vm, const torch::Device& device,
                      bool check_explanations) {
  if (!vm["report"].as<bool>()) return;
  std::string why;
  reports::ReportOptions options;
  options.explanation_check = check_explanations && vm["explanation-check"].as<bool>();
  options.device = device;
  options.figures = reports::plotting_available(&why);
  const bool figures = options.figures;
  try {
    const auto run = reports::read_run(run_directory);
    reports::write_report(run, run_directory / "report", options);
    std::cout << "Report: " << (fs::absolute(run_directory) / "report" / "index.html").string() << "\n";
    if (!figures) {
      std::cout << "  (tables only: " << why << "; for the figures run `brainmri report " << run_directory.string()
                << "` where PLplot is installed)\n";
    }
  } catch (const std::exception& e) {
    say_error("brainmri: the report of " + run_directory.string() + " could not be written: " + e.what() +
              "\nEverything it needs is saved; run `brainmri report " + run_directory.string() + "` to retry.");
  }
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
    ("memory-limit-mb", po::value<int>()->default_value(4096), "auto loader: stream when the selected pixels exceed this")
    ("preemption-signal", po::value<std::string>()->default_value("USR1"), "on this signal every rank stops at the next step, writes a checkpoint and exits 75 (the slurm/ scripts requeue; rerunning continues exactly): USR1, USR2, TERM, INT or none")
    ("preemption-check-steps", po::value<int>()->default_value(0), "steps between checks for the preemption signal (0: every step on CPU, every 20 on a GPU)");
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
    ("log-all-ranks", po::value<bool>()->default_value(false)->implicit_value(true), "print every rank's console output, prefixed [rank r/n] (default: rank 0 only)")
    ("report", po::value<bool>()->default_value(true), "write the run's report (DIR/report: tables, figures, index.html) at the end, as brainmri report does")
    ("explanation-check", po::value<bool>()->default_value(true), "the report checks its explanation method on the run's architecture (trains a small copy on this run's device; docs/reports.md)");
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
    ("fused-optimizer", po::value<std::string>()->default_value("auto"), "adam/adamw as one fused kernel for all parameters: auto (on CUDA), on or off")
    ("cuda-graph", po::value<std::string>()->default_value("auto"), "capture the whole training step in a CUDA graph after a warm-up: auto (when possible: CUDA, one rank per job, fused optimizer; the log says why not) or off")
    ("augment", po::value<bool>()->default_value(true), "augment training batches")
    ("flip", po::value<bool>()->default_value(true), "random horizontal flip")
    ("rotation", po::value<double>()->default_value(0.08), "random rotation factor (fraction of 360 degrees)")
    ("zoom", po::value<double>()->default_value(0.08), "random zoom factor")
    ("contrast", po::value<double>()->default_value(0.1), "random contrast factor")
    ("bootstrap-seed", po::value<std::uint64_t>()->default_value(7), "seed of the bootstrap confidence intervals");
  po::options_description finetune("Stages (fine-tuning)");
  finetune.add_options()
    ("stage", po::value<std::vector<std::string>>()->composing(),
     "a training stage, repeated for each, in order: 'NAME: KEY=VALUE ...' with keys trainable-blocks, trainable-from, "
     "lr, epochs, patience, schedule, min-lr, warmup-epochs, weight-decay (others: the options above); each stage "
     "starts from the previous stage's best weights. E.g. 'head: trainable-blocks=0 lr=1e-3 epochs=5' then "
     "'top: trainable-blocks=4 lr=1e-5 epochs=10'. Without stages: one stage, plus the finetune-* one below")
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
  o.fused_optimizer = vm["fused-optimizer"].as<std::string>();
  o.cuda_graph = vm["cuda-graph"].as<std::string>();
  o.output_dir = output;
  o.reducer.bucket_bytes = static_cast<std::size_t>(vm["bucket-mb"].as<double>() * (1 << 20));
  o.reducer.first_bucket_bytes = static_cast<std::size_t>(vm["first-bucket-mb"].as<double>() * (1 << 20));
  o.reducer.overlap = vm["overlap"].as<bool>();
  o.reducer.compression = vm["grad-compression"].as<std::string>();
  o.sync_batch_norm = vm["sync-bn"].as<bool>();
  o.preemption_check_interval = vm["preemption-check-steps"].as<int>();
  return o;
}

// One write per message: several ranks share the terminal, and std::cerr writes every << alone.
void say_error(const std::string& message) {
  const std::string line = message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

std::chrono::milliseconds comm_timeout(const po::variables_map& vm) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(vm["comm-timeout"].as<double>() * 1000));
}

distributed::CommunicatorOptions communicator_options(const po::variables_map& vm) { return {comm_timeout(vm)}; }

std::vector<TrainingStage> training_stages(const po::variables_map& vm, const training::TrainOptions& base) {
  std::vector<TrainingStage> stages;
  const bool listed = vm.count("stage") > 0 && !vm["stage"].as<std::vector<std::string>>().empty();
  if (!listed) {
    // The two-option form: one stage, and a fine-tuning stage when finetune-epochs > 0.
    const bool two = vm["finetune-epochs"].as<int>() > 0;
    TrainingStage first{base, vm["trainable-blocks"].as<int>(), ""};
    first.options.stage_name = two ? "stage1" : "train";
    stages.push_back(first);
    if (two) {
      TrainingStage second{base, vm["finetune-trainable-blocks"].as<int>(), vm["finetune-from"].as<std::string>()};
      second.options.stage_name = "finetune";
      second.options.epochs = vm["finetune-epochs"].as<int>();
      second.options.optimizer.learning_rate = vm["finetune-lr"].as<double>();
      stages.push_back(second);
    }
    return stages;
  }
  if (vm["finetune-epochs"].as<int>() > 0) {
    throw UsageError("give the stages either as 'stage = ...' entries or with finetune-epochs, not both");
  }
  std::set<std::string> names;
  for (const auto& text : vm["stage"].as<std::vector<std::string>>()) {
    const auto colon = text.find(':');
    const auto name = text.substr(0, std::min(colon, text.size()));
    const bool good_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (colon == std::string::npos || !good_name) {
      throw UsageError("stage '" + text + "' is not 'NAME: KEY=VALUE ...' (NAME of letters, digits, _ and -)");
    }
    if (!names.insert(name).second) throw UsageError("two stages are named '" + name + "'");
    TrainingStage stage{base, std::nullopt, ""};
    stage.options.stage_name = name;
    if (stages.empty()) stage.trainable_blocks = vm["trainable-blocks"].as<int>();
    std::istringstream words(text.substr(colon + 1));
    for (std::string word; words >> word;) {
      const auto equals = word.find('=');
      const std::string key = word.substr(0, equals), value = equals == std::string::npos ? "" : word.substr(equals + 1);
      if (equals == std::string::npos || value.empty()) throw UsageError("stage '" + text + "': '" + word + "' is not KEY=VALUE");
      try {
        std::size_t used = 0;
        auto number = [&] {
          const double x = std::stod(value, &used);
          if (used != value.size()) throw std::invalid_argument(value);
          return x;
        };
        auto integer = [&] {
          const int x = std::stoi(value, &used);
          if (used != value.size()) throw std::invalid_argument(value);
          return x;
        };
        if (key == "trainable-blocks") stage.trainable_blocks = integer();
        else if (key == "trainable-from") stage.trainable_from = value;
        else if (key == "lr") stage.options.optimizer.learning_rate = number();
        else if (key == "epochs") stage.options.epochs = integer();
        else if (key == "patience") stage.options.early_stopping.patience = integer();
        else if (key == "schedule") stage.options.schedule.name = value;
        else if (key == "min-lr") stage.options.schedule.min_learning_rate = number();
        else if (key == "warmup-epochs") stage.options.schedule.warmup_epochs = integer();
        else if (key == "weight-decay") stage.options.optimizer.weight_decay = number();
        else throw UsageError("stage '" + text + "': unknown key '" + key + "' (trainable-blocks, trainable-from, lr, epochs, "
                              "patience, schedule, min-lr, warmup-epochs, weight-decay)");
      } catch (const std::invalid_argument&) {
        throw UsageError("stage '" + text + "': '" + value + "' is not a valid value for " + key);
      } catch (const std::out_of_range&) {
        throw UsageError("stage '" + text + "': '" + value + "' is out of range for " + key);
      }
    }
    if (stage.trainable_blocks && *stage.trainable_blocks < -1) {
      throw UsageError("stage '" + text + "': trainable-blocks must be -1 (all), 0 (frozen backbone) or more");
    }
    stages.push_back(stage);
  }
  return stages;
}

json train_run(const po::variables_map& vm, training::TrainOptions stage1, const RunPlacement& where,
               distributed::Communicator& communicator, const torch::Device& device,
               const std::function<void(const std::string&)>& say, const std::string& command,
               const std::string& config_text) {
  stage1.communicator = &communicator;
  stage1.output_dir = where.output;
  const bool writer = communicator.rank() == 0;
  torch::manual_seed(stage1.seed);

  const data::ShardedDataset dataset(vm["data"].as<std::string>());
  std::vector<std::int64_t> train_ids, val_ids, test_ids;
  if (where.all_folds) {
    std::vector<int> every_fold(static_cast<std::size_t>(dataset.manifest().folds.fold_count));
    std::iota(every_fold.begin(), every_fold.end(), 0);
    train_ids = dataset.select_folds(every_fold);
    if (train_ids.empty()) throw UsageError(dataset.directory().string() + " has no folds to train a final model on");
  } else {
    std::tie(train_ids, val_ids) = select_samples(dataset, where.val_fold, where.val_split);
    if (train_ids.empty() || val_ids.empty()) throw UsageError("the training or the validation selection is empty");
  }
  if (!where.test_split.empty()) {
    test_ids = dataset.select_split(where.test_split);
    if (test_ids.empty()) throw UsageError("the held-out split '" + where.test_split + "' has no images");
  }

  auto model = create_model(vm, dataset);
  const auto pretrained = vm["pretrained"].as<std::string>();
  if (!pretrained.empty()) {
    const auto report = models::load_keras_weights(*model, pretrained);
    say("Loaded " + std::to_string(report.layers_loaded) + " layers (" + std::to_string(report.tensors_loaded) +
        " tensors) from " + pretrained);
  }
  fs::create_directories(where.output);
  if (writer) {
    write_file_atomically(where.output / "config.ini", "# brainmri " + std::string(kVersion) + " " + command + "\n" + config_text);
  }
  const std::string selection = where.all_folds           ? std::string("none: every fold trains")
                                : where.val_split.empty() ? "fold " + std::to_string(where.val_fold)
                                                          : "split " + where.val_split;
  say("Training " + model->model_name() + " on " + std::to_string(train_ids.size()) + " images, validating on " +
      std::to_string(val_ids.size()) + " (" + selection + ")" +
      (test_ids.empty() ? std::string() : ", testing on " + std::to_string(test_ids.size()) + " (split " + where.test_split + ")") +
      ", device " + device.str() +
      (communicator.size() > 1 ? ", " + std::to_string(communicator.size()) + " ranks (" + communicator.backend() +
                                     "), global batch " + std::to_string(stage1.batch_size * communicator.size())
                               : std::string()));
  const auto memory_limit = static_cast<std::size_t>(vm["memory-limit-mb"].as<int>()) << 20;
  const auto loader_kind = vm["loader"].as<std::string>();
  const auto train_source = training::make_loader(dataset, train_ids, device, loader_kind, memory_limit);
  const auto val_source = val_ids.empty() ? nullptr : training::make_loader(dataset, val_ids, device, loader_kind, memory_limit);

  auto run_stage = [&](const training::TrainOptions& stage_options) {
    auto trainer = std::make_unique<training::Trainer>(model, stage_options, device);
    trainer->on_epoch = [&](const training::EpochRecord& r) { say(format_epoch(r)); };
    trainer->on_note = say;
    if (where.resume && fs::exists(trainer->last_checkpoint())) {
      trainer->resume(trainer->last_checkpoint());
      say("Resumed " + stage_options.stage_name + " from " + trainer->last_checkpoint().string() + " (epoch " +
          std::to_string(trainer->epochs_done() + 1) + ", step " + std::to_string(trainer->steps_into_epoch() + 1) + ")");
    }
    trainer->fit(*train_source, val_source.get());
    return trainer;
  };
  // Without validation there is no best epoch: each stage ends with its last weights.
  const bool keeps_best = stage1.early_stopping.restore_best && val_source != nullptr;
  std::unique_ptr<training::Trainer> trainer;
  fs::path final_checkpoint;
  for (const auto& stage : training_stages(vm, stage1)) {
    if (!stage.trainable_from.empty()) {
      model->set_trainable_from(stage.trainable_from);
    } else if (stage.trainable_blocks) {
      model->set_trainable_backbone_groups(*stage.trainable_blocks);
    }
    trainer = run_stage(stage.options);  // from the previous stage's best (restored) weights
    final_checkpoint = where.output / (stage.options.stage_name + (keeps_best ? "_best.pt" : "_last.pt"));
  }

  const int k = static_cast<int>(dataset.class_names().size());
  const auto summarize = [&](const training::Predictions& predictions) {
    const auto scores = training::score_predictions(predictions, k);
    return json{{"accuracy", scores.accuracy},
                {"macro_f1", scores.macro_f1},
                {"macro_auc", std::isnan(scores.macro_auc) ? json(nullptr) : json(scores.macro_auc)},
                {"loss", scores.loss},
                {"samples", static_cast<int>(predictions.labels.size())}};
  };
  const auto report = [&](const training::Predictions& predictions) {
    const auto predicted = metrics::argmax_rows(predictions.probabilities, k);
    return metrics::format_classification_report(
        metrics::classification_report(metrics::ConfusionMatrix(predictions.labels, predicted, k), dataset.class_names()), 4);
  };
  json outcome = {{"run_directory", where.output.string()}, {"validation_samples", static_cast<int>(val_ids.size())}};
  training::Predictions validation, test;
  if (val_source) {
    validation = trainer->predict(*val_source);
    outcome.update(summarize(validation));
    outcome.erase("samples");
    outcome["report"] = report(validation);
  }
  if (!test_ids.empty()) {
    test = trainer->predict(*training::make_loader(dataset, test_ids, device, loader_kind, memory_limit));
    outcome["test"] = summarize(test);
    outcome["test_report"] = report(test);
  }
  if (!writer) return outcome;
  if (fs::exists(final_checkpoint)) {
    fs::copy_file(final_checkpoint, where.output / "model.pt", fs::copy_options::overwrite_existing);
  }
  json context = {{"command", command},
                  {"dataset", fs::absolute(dataset.directory()).string()},
                  {"selection", selection},
                  {"model", model->model_name()},
                  {"ranks", communicator.size()},
                  {"checkpoint", (where.output / "model.pt").string()}};
  const auto bootstrap_seed = vm["bootstrap-seed"].as<std::uint64_t>();
  if (val_source) training::write_evaluation(where.output / "validation", validation, dataset.class_names(), context, bootstrap_seed);
  if (!test_ids.empty()) {
    context["selection"] = "split " + where.test_split + " (held out)";
    training::write_evaluation(where.output / "test", test, dataset.class_names(), context, bootstrap_seed);
  }
  if (where.export_model) {
    models::export_torchscript(*model, where.output / "model.torchscript.pt");
    say("Exported " + (where.output / "model.torchscript.pt").string() + " (TorchScript: float images [N, " +
        std::to_string(dataset.channels()) + ", " + std::to_string(dataset.image_size()) + ", " +
        std::to_string(dataset.image_size()) + "] in [0, 1] -> logits)");
  }
  return outcome;
}


TrainingSetup prepare_training(int argc, const char* const argv[], const po::options_description& options,
                               const distributed::MpiEnvironment& environment, const std::string& command,
                               const std::function<void(const po::variables_map&)>& extra_checks) {
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
    try {
      for (const auto& stage : training_stages(vm, setup.stage1)) training::validate_train_options(stage.options);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    if (vm["comm-timeout"].as<double>() <= 0) throw UsageError("--comm-timeout must be > 0 seconds");
    if (vm["preemption-check-steps"].as<int>() < 0) throw UsageError("--preemption-check-steps must be >= 0");
    try {
      install_preemption_handler(vm["preemption-signal"].as<std::string>());
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--preemption-signal: ") + e.what());
    }
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

}  // namespace brainmri::cli
