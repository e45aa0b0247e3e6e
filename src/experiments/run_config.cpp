#include "brainmri/experiments/run_config.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>
#include <string>

#include "brainmri/common/ini.hpp"
#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/experiments/search.hpp"

namespace brainmri::experiments {
namespace {

constexpr const char* kGeneral = "General";
constexpr const char* kDistributed = "Distributed (under mpirun or srun; see docs/distributed.md)";
constexpr const char* kModel = "Model";
constexpr const char* kTraining = "Training";
constexpr const char* kStages = "Stages (fine-tuning)";
constexpr bool kFixed = false;  // not searchable: where data and results live, how the job runs

template <typename Field>
Option<RunConfig> run_option(const char* name, const char* group, const char* help, Field field,
                             bool searchable = true) {
  return bind_option<RunConfig>(name, group, help, field, searchable);
}

// A size in MiB on the command line, bytes in the reducer.
Option<RunConfig> mebibytes_option(const char* name, const char* help,
                                   std::size_t distributed::ReducerOptions::*field) {
  return bind_scaled_option<RunConfig>(
      name, kDistributed, help, [field](auto& c) -> auto& { return c.training.reducer.*field; }, 1 << 20, 1 << 20);
}

std::vector<Option<RunConfig>> make_run_options() {
  // clang-format off
  return {
    as_input_path(run_option("data", kGeneral, "dataset directory written by brainmri-prep (required; in a config file, relative to the file)", [](auto& c) -> auto& { return c.data.dataset; }, kFixed)),
    run_option("output", kGeneral, "run directory for checkpoints, logs and metrics (required)", [](auto& c) -> auto& { return c.output.directory; }, kFixed),
    run_option("device", kGeneral, "auto (CUDA when available), cpu or cuda", [](auto& c) -> auto& { return c.runtime.device; }, kFixed),
    run_option("threads", kGeneral, "same as --threads-per-rank (kept for older configs)", [](auto& c) -> auto& { return c.distribution.threads; }, kFixed),
    run_option("seed", kGeneral, "seed of data order, augmentation, dropout and initialization", [](auto& c) -> auto& { return c.training.seed; }, kFixed),
    as_flag(run_option("resume", kGeneral, "continue from the run directory's last checkpoints", [](auto& c) -> auto& { return c.output.resume; }, kFixed)),
    run_option("val-fold", kGeneral, "validation fold of the dataset's group k-fold; the other folds train", [](auto& c) -> auto& { return c.data.val_fold; }, kFixed),
    run_option("folds-by", kGeneral, "what keeps images together in one fold: group (exact and near copies: the leakage-free folds brainmri-prep packed), exact-groups (only byte-identical copies) or random (none: copies cross folds, as in most published splits; for leakage studies)", [](auto& c) -> auto& { return c.data.folds_by; }, kFixed),
    run_option("val-split", kGeneral, "validate on this split (e.g. Testing) instead of a fold", [](auto& c) -> auto& { return c.data.val_split; }, kFixed),
    run_option("loader", kGeneral, "memory (whole selection on the device), stream (read ahead from HDF5) or auto", [](auto& c) -> auto& { return c.data.loader; }),
    run_option("memory-limit-mb", kGeneral, "auto loader: stream when the selected pixels exceed this", [](auto& c) -> auto& { return c.data.memory_limit_mb; }),
    run_option("preemption-signal", kGeneral, "on this signal every rank stops at the next step, writes a checkpoint and exits 75 (the slurm/ scripts requeue; rerunning continues exactly): USR1, USR2, TERM, INT or none", [](auto& c) -> auto& { return c.runtime.preemption_signal; }, kFixed),
    run_option("progress", kGeneral, "progress within an epoch: auto (a bar on a terminal, else a line every --progress-seconds), bar, lines or none", [](auto& c) -> auto& { return c.training.progress; }, kFixed),
    run_option("progress-seconds", kGeneral, "seconds between progress lines (Slurm logs, pipes)", [](auto& c) -> auto& { return c.training.progress_seconds; }, kFixed),
    run_option("log-every-steps", kGeneral, "TensorBoard events (RUN/events.out.tfevents.*): the running loss, learning rate and images/s every this many steps, besides every epoch's metrics; 0: epochs only", [](auto& c) -> auto& { return c.training.log_every_steps; }, kFixed),
    run_option("preemption-check-steps", kGeneral, "steps between checks for the preemption signal (0: every step on CPU, every 20 on a GPU)", [](auto& c) -> auto& { return c.training.preemption_check_interval; }, kFixed),

    run_option("backend", kDistributed, "gradient all-reduce: auto (nccl on CUDA, mpi on CPU, local for one process), nccl or mpi", [](auto& c) -> auto& { return c.distribution.backend; }, kFixed),
    run_option("threads-per-rank", kDistributed, "CPU threads of each rank (0: the node's cores / ranks on the node; one process: LibTorch's default)", [](auto& c) -> auto& { return c.distribution.threads_per_rank; }, kFixed),
    run_option("comm-timeout", kDistributed, "seconds a collective may wait before the job is aborted (warning at half)", [](auto& c) -> auto& { return c.distribution.comm_timeout_seconds; }, kFixed),
    mebibytes_option("bucket-mb", "gradient bucket size in MiB", &distributed::ReducerOptions::bucket_bytes),
    mebibytes_option("first-bucket-mb", "size of the first (last layers') bucket in MiB: small, so communication starts early", &distributed::ReducerOptions::first_bucket_bytes),
    run_option("overlap", kDistributed, "start each bucket's all-reduce during backward (false: after backward)", [](auto& c) -> auto& { return c.training.reducer.overlap; }),
    run_option("grad-compression", kDistributed, "none or bf16 (bf16 on the wire, fp32 additions)", [](auto& c) -> auto& { return c.training.reducer.compression; }),
    as_flag(run_option("sync-bn", kDistributed, "batch-norm statistics over the global batch instead of each rank's (for small per-rank batches)", [](auto& c) -> auto& { return c.training.sync_batch_norm; })),
    as_flag(run_option("log-all-ranks", kDistributed, "every rank logs its progress (each line names its rank); default: rank 0 only, and warnings and errors from any rank", [](auto& c) -> auto& { return c.distribution.log_all_ranks; }, kFixed)),
    run_option("report", kDistributed, "write the run's report (DIR/report: tables, figures, index.html) at the end, as brainmri report does", [](auto& c) -> auto& { return c.output.report; }, kFixed),
    run_option("explanation-check", kDistributed, "the report checks its explanation method on the run's architecture (trains a small copy on this run's device; docs/reports.md)", [](auto& c) -> auto& { return c.output.explanation_check; }),

    run_option("model", kModel, "baseline_cnn or mobilenet_v2", [](auto& c) -> auto& { return c.model.architecture; }),
    run_option("dropout", kModel, "dropout before the dense layer", [](auto& c) -> auto& { return c.model.dropout; }),
    run_option("dense-units", kModel, "units of the hidden dense layer of the head", [](auto& c) -> auto& { return c.model.dense_units; }),
    run_option("filters", kModel, "baseline_cnn: filters of its conv blocks", [](auto& c) -> auto& { return c.model.filters; }),
    run_option("width", kModel, "mobilenet_v2: width multiplier (Keras alpha)", [](auto& c) -> auto& { return c.model.width; }),
    as_input_path(run_option("pretrained", kModel, "mobilenet_v2: Keras HDF5 ImageNet weights of the same width (in a config file, relative to the file)", [](auto& c) -> auto& { return c.model.pretrained; })),
    run_option("trainable-blocks", kModel, "backbone groups that train, counted from the top (-1: all, 0: frozen backbone)", [](auto& c) -> auto& { return c.model.trainable_blocks; }),

    run_option("epochs", kTraining, "epochs of the first stage", [](auto& c) -> auto& { return c.training.epochs; }),
    run_option("batch-size", kTraining, "training batch size", [](auto& c) -> auto& { return c.training.batch_size; }),
    run_option("eval-batch-size", kTraining, "evaluation batch size", [](auto& c) -> auto& { return c.training.eval_batch_size; }),
    run_option("optimizer", kTraining, "adam, adamw or sgd (momentum)", [](auto& c) -> auto& { return c.training.optimizer.kind; }),
    run_option("lr", kTraining, "learning rate", [](auto& c) -> auto& { return c.training.optimizer.learning_rate; }),
    run_option("weight-decay", kTraining, "weight decay", [](auto& c) -> auto& { return c.training.optimizer.weight_decay; }),
    run_option("momentum", kTraining, "sgd momentum", [](auto& c) -> auto& { return c.training.optimizer.momentum; }),
    run_option("schedule", kTraining, "constant, step, cosine or plateau", [](auto& c) -> auto& { return c.training.schedule.kind; }),
    run_option("warmup-epochs", kTraining, "linear learning-rate warm-up epochs", [](auto& c) -> auto& { return c.training.schedule.warmup_epochs; }),
    run_option("step-epochs", kTraining, "step schedule: epochs per step", [](auto& c) -> auto& { return c.training.schedule.step_epochs; }),
    run_option("step-gamma", kTraining, "step schedule: factor per step", [](auto& c) -> auto& { return c.training.schedule.step_gamma; }),
    run_option("min-lr", kTraining, "cosine schedule: final learning rate", [](auto& c) -> auto& { return c.training.schedule.min_learning_rate; }),
    run_option("plateau-patience", kTraining, "plateau schedule: epochs without improvement before lowering", [](auto& c) -> auto& { return c.training.schedule.plateau_patience; }),
    run_option("plateau-factor", kTraining, "plateau schedule: factor", [](auto& c) -> auto& { return c.training.schedule.plateau_factor; }),
    run_option("label-smoothing", kTraining, "label smoothing of the cross-entropy", [](auto& c) -> auto& { return c.training.label_smoothing; }),
    run_option("class-weights", kTraining, "none or balanced", [](auto& c) -> auto& { return c.training.class_weights; }),
    run_option("grad-clip", kTraining, "clip the gradient norm to this value (0: off)", [](auto& c) -> auto& { return c.training.gradient_clip_norm; }),
    run_option("early-stopping-metric", kTraining, "val_loss, val_accuracy, val_macro_f1 or val_macro_auc", [](auto& c) -> auto& { return c.training.early_stopping.metric; }),
    run_option("patience", kTraining, "stop after this many epochs without improvement (0: never)", [](auto& c) -> auto& { return c.training.early_stopping.patience; }),
    run_option("restore-best", kTraining, "end each stage with its best epoch's weights", [](auto& c) -> auto& { return c.training.early_stopping.restore_best; }),
    run_option("precision", kTraining, "auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16", [](auto& c) -> auto& { return c.training.precision; }),
    run_option("fused-optimizer", kTraining, "adam/adamw as one fused kernel for all parameters: auto (on for CPUs and CUDA), on or off", [](auto& c) -> auto& { return c.training.fused_optimizer; }),
    run_option("cuda-graph", kTraining, "capture the whole training step in a CUDA graph after a warm-up: auto (when possible: CUDA, one rank per job, fused optimizer; the log says why not) or off", [](auto& c) -> auto& { return c.training.cuda_graph; }),
    run_option("augment", kTraining, "augment training batches", [](auto& c) -> auto& { return c.training.augment; }),
    run_option("flip", kTraining, "random horizontal flip", [](auto& c) -> auto& { return c.training.augmentation.horizontal_flip; }),
    run_option("rotation", kTraining, "random rotation factor (fraction of 360 degrees)", [](auto& c) -> auto& { return c.training.augmentation.rotation; }),
    run_option("zoom", kTraining, "random zoom factor", [](auto& c) -> auto& { return c.training.augmentation.zoom; }),
    run_option("contrast", kTraining, "random contrast factor", [](auto& c) -> auto& { return c.training.augmentation.contrast; }),
    run_option("calibration", kTraining, "temperature: fit one temperature on the validation predictions (their calibration after it is cross-fitted: each half scaled by the other half's temperature), store it in model.pt and apply it to the held-out tests; none: probabilities as the network gives them", [](auto& c) -> auto& { return c.output.calibration; }, kFixed),
    run_option("tta", kTraining, "test-time augmentation of the held-out tests: none, flip (mean of the image and its mirror image) or flip+rot (also each turned by +-10 degrees: 6 views); validation and early stopping never use it", [](auto& c) -> auto& { return c.output.test_time_augmentation; }, kFixed),
    run_option("bootstrap-seed", kTraining, "seed of the bootstrap confidence intervals", [](auto& c) -> auto& { return c.output.bootstrap_seed; }, kFixed),

    bind_list_option<RunConfig>("stage", kStages,
        "a training stage, repeated for each, in order: 'NAME: KEY=VALUE ...' with keys trainable-blocks, trainable-from, "
        "lr, epochs, patience, schedule, min-lr, warmup-epochs, weight-decay (others: the options above); each stage "
        "starts from the previous stage's best weights. E.g. 'head: trainable-blocks=0 lr=1e-3 epochs=5' then "
        "'top: trainable-blocks=4 lr=1e-5 epochs=10'. Without stages: one stage, plus the finetune-* one below",
        [](auto& c) -> auto& { return c.stages.stages; }),
    run_option("finetune-epochs", kStages, "epochs of a second stage from the first stage's best weights (0: none)", [](auto& c) -> auto& { return c.stages.finetune_epochs; }),
    run_option("finetune-lr", kStages, "learning rate of the second stage", [](auto& c) -> auto& { return c.stages.finetune_lr; }),
    run_option("finetune-trainable-blocks", kStages, "backbone groups that train in the second stage, from the top", [](auto& c) -> auto& { return c.stages.finetune_trainable_blocks; }),
    run_option("finetune-from", kStages, "or: train the backbone from this layer or block on (e.g. block_13)", [](auto& c) -> auto& { return c.stages.finetune_from; }),
  };
  // clang-format on
}

void require(bool condition, const char* option, const std::string& problem) {
  if (!condition) throw ConfigError(option, problem);
}

// The stage keys and what they set.
void apply_stage_key(TrainingStage& stage, const std::string& text, const std::string& key, const std::string& value) {
  try {
    if (key == "trainable-blocks")
      stage.trainable_blocks = option_text::parse<int>(value);
    else if (key == "trainable-from")
      stage.trainable_from = value;
    else if (key == "lr")
      stage.options.optimizer.learning_rate = option_text::parse<double>(value);
    else if (key == "epochs")
      stage.options.epochs = option_text::parse<int>(value);
    else if (key == "patience")
      stage.options.early_stopping.patience = option_text::parse<int>(value);
    else if (key == "schedule")
      stage.options.schedule.kind = parse_enum<training::ScheduleKind>(value);
    else if (key == "min-lr")
      stage.options.schedule.min_learning_rate = option_text::parse<double>(value);
    else if (key == "warmup-epochs")
      stage.options.schedule.warmup_epochs = option_text::parse<int>(value);
    else if (key == "weight-decay")
      stage.options.optimizer.weight_decay = option_text::parse<double>(value);
    else
      throw ConfigError("stage", "'" + text + "': unknown key '" + key +
                                     "' (trainable-blocks, trainable-from, lr, epochs, "
                                     "patience, schedule, min-lr, warmup-epochs, weight-decay)");
  } catch (const ConfigError&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw ConfigError("stage", "'" + text + "': " + key + ": " + e.what());
  }
}

}  // namespace

const std::vector<Option<RunConfig>>& run_options() {
  static const auto table = make_run_options();
  return table;
}

std::vector<TrainingStage> training_stages(const RunConfig& config) {
  std::vector<TrainingStage> stages;
  const auto& plan = config.stages;
  if (plan.stages.empty()) {
    // The two-option form: one stage, and a fine-tuning stage when finetune_epochs > 0.
    const bool two = plan.finetune_epochs > 0;
    TrainingStage first{config.training, config.model.trainable_blocks, ""};
    first.options.stage_name = two ? "stage1" : "train";
    stages.push_back(first);
    if (two) {
      TrainingStage second{config.training, plan.finetune_trainable_blocks, plan.finetune_from};
      second.options.stage_name = "finetune";
      second.options.epochs = plan.finetune_epochs;
      second.options.optimizer.learning_rate = plan.finetune_lr;
      stages.push_back(second);
    }
    return stages;
  }
  if (plan.finetune_epochs > 0) {
    throw ConfigError("stage", "give the stages either as 'stage = ...' entries or with finetune-epochs, not both");
  }
  std::set<std::string> names;
  for (const auto& text : plan.stages) {
    const auto colon = text.find(':');
    const auto name = text.substr(0, std::min(colon, text.size()));
    const bool good_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (colon == std::string::npos || !good_name) {
      throw ConfigError("stage", "'" + text + "' is not 'NAME: KEY=VALUE ...' (NAME of letters, digits, _ and -)");
    }
    if (!names.insert(name).second) throw ConfigError("stage", "two stages are named '" + name + "'");
    TrainingStage stage{config.training, std::nullopt, ""};
    stage.options.stage_name = name;
    if (stages.empty()) stage.trainable_blocks = config.model.trainable_blocks;
    std::istringstream words(text.substr(colon + 1));
    for (std::string word; words >> word;) {
      const auto equals = word.find('=');
      const std::string key = word.substr(0, equals),
                        value = equals == std::string::npos ? "" : word.substr(equals + 1);
      if (equals == std::string::npos || value.empty())
        throw ConfigError("stage", "'" + text + "': '" + word + "' is not KEY=VALUE");
      apply_stage_key(stage, text, key, value);
    }
    if (stage.trainable_blocks && *stage.trainable_blocks < -1) {
      throw ConfigError("stage", "'" + text + "': trainable-blocks must be -1 (all), 0 (frozen backbone) or more");
    }
    stages.push_back(stage);
  }
  return stages;
}

void validate(const RunConfig& config) {
  require(!config.data.dataset.empty(), "data", "a dataset directory is required");
  require(!config.output.directory.empty(), "output", "a run directory is required");
  require(config.training.log_every_steps >= 0, "log-every-steps", "must be >= 0");
  require(config.training.progress_seconds > 0, "progress-seconds", "must be > 0");
  require(config.data.memory_limit_mb >= 0, "memory-limit-mb", "must be >= 0");
  require(config.model.trainable_blocks >= -1, "trainable-blocks", "must be -1 (all), 0 (frozen backbone) or more");
  require(config.distribution.comm_timeout_seconds > 0, "comm-timeout", "must be > 0 seconds");
  require(config.training.preemption_check_interval >= 0, "preemption-check-steps", "must be >= 0");
  for (const auto& stage : training_stages(config)) {
    try {
      training::validate_train_options(stage.options);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(config.stages.stages.empty() ? "training" : "stage", e.what());
    }
  }
}

RunConfig patched(const RunConfig& base, const std::vector<std::pair<std::string, std::string>>& values) {
  RunConfig config = base;
  for (const auto& [name, value] : values) {
    const auto* option = find_option(run_options(), name);
    if (option == nullptr) throw ConfigError(name, "is not a training option");
    if (!option->searchable || option->arity == OptionArity::List) throw ConfigError(name, "cannot be searched");
    option->set(config, value);
  }
  return config;
}

data::ShardedDataset open_dataset(const DataSelection& selection) {
  return data::ShardedDataset(selection.dataset, selection.folds_by);
}

std::vector<int> selected_folds(const std::string& wanted, const data::ShardedDataset& dataset) {
  const int fold_count = dataset.manifest().folds.fold_count;
  if (fold_count < 2) {
    throw ConfigError("folds",
                      dataset.directory().string() + " has no fold assignment; pack it with brainmri-prep --folds K");
  }
  std::vector<int> folds;
  if (wanted == "all") {
    for (int k = 0; k < fold_count; ++k) folds.push_back(k);
    return folds;
  }
  try {
    folds = option_text::parse<std::vector<int>>(wanted);
  } catch (const std::invalid_argument& e) {
    throw ConfigError("folds", std::string(e.what()) + " in '" + wanted + "'");
  }
  if (std::set<int>(folds.begin(), folds.end()).size() != folds.size())
    throw ConfigError("folds", "names a fold twice: " + wanted);
  for (const int k : folds) {
    if (k < 0 || k >= fold_count) {
      throw ConfigError("folds", "names fold " + std::to_string(k) + ", outside 0.." + std::to_string(fold_count - 1));
    }
  }
  return folds;
}

void check_same_split(const JobOptions& options, const std::filesystem::path& output) {
  const auto file = output / "config.ini";
  if (!std::filesystem::exists(file)) return;
  int before = 1;  // written before array jobs existed, or by one job
  for (const auto& entry : read_ini(file)) {
    if (entry.key == "array-tasks") before = option_text::parse<int>(entry.value);
  }
  if (before == options.array_tasks) return;
  throw ConfigError("array-tasks",
                    output.string() + " was run as " + std::to_string(before) +
                        " array task(s) (its config.ini), this as " + std::to_string(options.array_tasks) +
                        ": each task's journal holds its own share, so a different split would rerun finished "
                        "jobs. Continue it as it began (" +
                        (before == 1 ? std::string("one job") : "--array-tasks " + std::to_string(before)) +
                        "), summarize it, or give a new --output");
}

void validate(const JobOptions& options, int world_size) {
  if (options.ranks_per_job < 1 || world_size % options.ranks_per_job != 0) {
    throw ConfigError("ranks-per-job", std::to_string(options.ranks_per_job) + " must divide the " +
                                           std::to_string(world_size) + " ranks");
  }
  require(options.max_retries >= 0, "max-retries", "must be >= 0");
  require(options.array_tasks >= 1, "array-tasks", "must be >= 1");
  require(options.array_task >= -1 && options.array_task < options.array_tasks, "array-task",
          "must be -1 (no array) or 0.." + std::to_string(options.array_tasks - 1) + " (--array-tasks " +
              std::to_string(options.array_tasks) + "), got " + std::to_string(options.array_task));
}

const std::vector<Option<CrossValidationConfig>>& cross_validation_options() {
  constexpr const char* kGroup = "Cross-validation (brainmri cv)";
  using C = CrossValidationConfig;
  // clang-format off
  static const std::vector<Option<C>> table = {
    bind_option<C>("folds", kGroup, "validation folds to run: all, or a list such as 0,2,4", [](auto& c) -> auto& { return c.jobs.folds; }),
    bind_option<C>("ranks-per-job", kGroup, "ranks that train one fold together (1: one fold per rank/GPU)", [](auto& c) -> auto& { return c.jobs.ranks_per_job; }),
    bind_option<C>("max-retries", kGroup, "times a failed fold is retried before it is marked failed", [](auto& c) -> auto& { return c.jobs.max_retries; }),
    bind_option<C>("test-split", kGroup, "held-out test split that every fold model (and their ensemble) is evaluated on: auto (the one packed with brainmri-prep --holdout-split, if any), none, or a split name", [](auto& c) -> auto& { return c.test_split; }),
    bind_option<C>("array-task", kGroup, "Slurm array jobs: this task's index (0-based) among --array-tasks that share the folds (task K runs the jobs K, K+N, ...; slurm/lib.sh sets it from SLURM_ARRAY_TASK_ID); -1: no array", [](auto& c) -> auto& { return c.jobs.array_task; }),
    bind_option<C>("array-tasks", kGroup, "Slurm array jobs: how many tasks share the experiment (then brainmri cv summarize DIR writes the summary)", [](auto& c) -> auto& { return c.jobs.array_tasks; }),
    as_flag(bind_option<C>("final", kGroup, "also train a final model on every fold (no validation: --epochs of each stage), test it on the held-out split and export it (DIR/final: model.pt, model.torchscript.pt)", [](auto& c) -> auto& { return c.final_model; })),
  };
  // clang-format on
  return table;
}

const std::vector<Option<SearchConfig>>& search_options() {
  constexpr const char* kGroup = "Search (brainmri tune)";
  using C = SearchConfig;
  // clang-format off
  static const std::vector<Option<C>> table = {
    bind_list_option<C>("search", kGroup, "a searched training option, repeated for each: 'NAME: loguniform LOW HIGH', 'NAME: uniform LOW HIGH', "
                                          "'NAME: int LOW HIGH' or 'NAME: choice A B ...' (e.g. 'lr: loguniform 1e-5 1e-2')", [](auto& c) -> auto& { return c.space; }),
    bind_option<C>("algorithm", kGroup, "grid, random or asha (successive halving in rungs of growing epochs)", [](auto& c) -> auto& { return c.algorithm; }),
    bind_option<C>("trials", kGroup, "random and asha: number of trials", [](auto& c) -> auto& { return c.trials; }),
    bind_option<C>("grid-points", kGroup, "grid: values of each numeric parameter", [](auto& c) -> auto& { return c.grid_points; }),
    bind_option<C>("min-epochs", kGroup, "asha: epochs of the first rung (--epochs is the last rung's)", [](auto& c) -> auto& { return c.min_epochs; }),
    bind_option<C>("reduction-factor", kGroup, "asha: 1 in this many trials of a rung goes on to the next", [](auto& c) -> auto& { return c.reduction_factor; }),
    bind_option<C>("objective", kGroup, "val_macro_f1, val_accuracy or val_macro_auc: the mean over --folds is maximized", [](auto& c) -> auto& { return c.objective; }),
    bind_option<C>("folds", kGroup, "validation folds each trial trains on (its objective is their mean): all, or a list such as 0 for speed", [](auto& c) -> auto& { return c.jobs.folds; }),
    bind_option<C>("ranks-per-job", kGroup, "ranks that train one job (a trial on a fold) together", [](auto& c) -> auto& { return c.jobs.ranks_per_job; }),
    bind_option<C>("max-retries", kGroup, "times a failed job is retried before its trial is marked failed", [](auto& c) -> auto& { return c.jobs.max_retries; }),
    bind_option<C>("array-task", kGroup, "Slurm array jobs: this task's index (0-based) among --array-tasks that share the trials (task K runs trials K, K+N, ...; slurm/lib.sh sets it); -1: no array", [](auto& c) -> auto& { return c.jobs.array_task; }),
    bind_option<C>("array-tasks", kGroup, "Slurm array jobs: how many tasks share the search (asha: all must run at once; then brainmri tune summarize DIR)", [](auto& c) -> auto& { return c.jobs.array_tasks; }),
  };
  // clang-format on
  return table;
}

void read_experiment_config(const std::filesystem::path& file, RunConfig& config, CrossValidationConfig* cv,
                            SearchConfig* search) {
  std::vector<IniEntry> entries;
  try {
    entries = read_ini(file);
  } catch (const std::exception& e) {
    throw ConfigError("config", std::string(e.what()) + " (is it the directory of a brainmri cv or tune?)");
  }
  const auto at = [&](const IniEntry& entry) { return file.string() + ":" + std::to_string(entry.line) + ": "; };
  for (const auto& entry : entries) {
    try {
      auto value = entry.value;
      const auto resolve = [&](const auto* option) {
        if (option != nullptr && option->input_path && !value.empty() && std::filesystem::path(value).is_relative()) {
          value = (file.parent_path() / value).lexically_normal().string();
        }
        return option;
      };
      if (const auto* option = resolve(find_option(run_options(), entry.key))) {
        option->set(config, value);
      } else if (const auto* cv_option = cv ? find_option(cross_validation_options(), entry.key) : nullptr) {
        cv_option->set(*cv, value);
      } else if (const auto* search_option = search ? find_option(search_options(), entry.key) : nullptr) {
        search_option->set(*search, value);
      } else {
        throw ConfigError(entry.key, "not an option of this experiment");
      }
    } catch (const ConfigError& e) {
      throw ConfigError(e.option(), at(entry) + e.what());
    }
  }
}

}  // namespace brainmri::experiments
