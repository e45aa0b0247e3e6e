#pragma once
// What one training stage is asked to do: optimizer, schedule, early stopping, augmentation,
// precision and the GPU fast path. Every choice is an enum named in one table (common/enum_names).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "brainmri/common/enum_names.hpp"
#include "brainmri/common/progress.hpp"
#include "brainmri/distributed/gradient_reducer.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/models/test_time_augmentation.hpp"
#include "brainmri/training/augmentation.hpp"

namespace brainmri::distributed {
class Communicator;
}

namespace brainmri::training {

enum class OptimizerKind { Adam, AdamW, Sgd };
enum class ScheduleKind { Constant, Step, Cosine, Plateau };
enum class Precision { Auto, Fp32, Bf16 };    // auto: bf16 autocast on CUDA, fp32 on CPU
enum class FusedOptimizer { Auto, On, Off };  // auto: on where ATen has the kernel (CPU, CUDA)
enum class CudaGraphMode { Auto, Off };
enum class ClassWeighting { None, Balanced };  // balanced: n / (k * count), as scikit-learn
enum class MonitoredMetric { ValLoss, ValAccuracy, ValMacroF1, ValMacroAuc };

bool lower_is_better(MonitoredMetric metric);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::Adam;
  double learning_rate = 1e-3;
  double weight_decay = 0.0;
  double momentum = 0.9;  // sgd only
};

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::Constant;
  int warmup_epochs = 0;  // linear warm-up from lr / (warmup + 1), for every schedule
  int step_epochs = 10;   // step: multiply by step_gamma every step_epochs
  double step_gamma = 0.1;
  double min_learning_rate = 0.0;  // cosine floor
  int plateau_patience = 3;        // plateau: epochs without improvement of the monitored metric
  double plateau_factor = 0.1;
};

struct EarlyStoppingOptions {
  MonitoredMetric metric = MonitoredMetric::ValMacroF1;
  int patience = 0;          // 0: never stop early
  bool restore_best = true;  // end with the best epoch's weights
};

// A test hook: this process fails at one training step (counted from 0 by each Trainer), to test
// that a job of many ranks ends instead of hanging and that interrupted experiments resume.
struct FaultInjection {
  enum class Kind { Throw, Hang, Exit };
  Kind kind = Kind::Throw;
  std::int64_t step = 0;

  // "KIND:RANK:STEP" (KIND throw, hang or exit): world rank RANK fails at its step STEP. Returns
  // the fault for `world_rank`, nothing for the other ranks; throws ConfigError("inject-fault").
  static std::optional<FaultInjection> for_rank(const std::string& text, int world_rank);
};

struct TrainOptions {
  int epochs = 10;
  // Horizon of the schedules that depend on the run's length (cosine); 0: `epochs`. A search
  // that trains a trial in rungs of growing length sets it to the last rung's epochs, so that a
  // promoted trial follows the same learning-rate curve as one run of that length.
  int schedule_epochs = 0;
  std::int64_t batch_size = 32;
  std::int64_t eval_batch_size = 256;
  // predict(): class probabilities averaged over these views of each image (not used in training).
  models::TestTimeAugmentation test_time_augmentation = models::TestTimeAugmentation::None;
  std::uint64_t seed = 42;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  EarlyStoppingOptions early_stopping;
  double label_smoothing = 0.0;
  ClassWeighting class_weights = ClassWeighting::None;
  double gradient_clip_norm = 0.0;  // 0: no clipping
  bool augment = true;
  AugmentationOptions augmentation;
  Precision precision = Precision::Auto;
  bool channels_last = true;         // NHWC weights and batches: ~30% faster convolutions on CPU
  std::filesystem::path output_dir;  // checkpoints and train_log.jsonl; empty: none written
  std::string stage_name = "train";  // prefix of checkpoint files and log records
  // The run log (evaluation/run_log.hpp): step scalars every this many steps (0: epochs only),
  // on a step axis that continues over the stages: epochs_before = epochs of the earlier stages.
  int log_every_steps = 50;
  int epochs_before = 0;
  // Rank 0's progress within an epoch (common/progress.hpp): a bar on a terminal, else a line
  // every progress_seconds.
  ProgressStyle progress = ProgressStyle::Auto;
  double progress_seconds = 30;
  // Data parallelism: with a communicator of several ranks, each rank trains on its share of
  // every global batch (batch_size per rank), gradients are averaged by the reducer, evaluation is
  // sharded and gathered, and only rank 0 writes files. Null: a single process.
  distributed::Communicator* communicator = nullptr;
  distributed::ReducerOptions reducer;
  bool sync_batch_norm = false;  // batch-norm statistics over the global batch (several ranks only)
  // Steps between checks of the preemption flag (common/preemption.hpp); with several ranks each
  // check is a one-integer all-reduce, so that all stop at the same step. 0: every step on CPU,
  // every 20 on a GPU (where the check waits for the queued work).
  int preemption_check_interval = 0;
  // Fast path: adam/adamw as one fused kernel (auto: on CPUs and CUDA), and on a GPU the whole
  // step captured in a CUDA graph after a warm-up when it can be (CUDA, one rank, fused
  // optimizer, full batches; the log says why not otherwise).
  FusedOptimizer fused_optimizer = FusedOptimizer::Auto;
  CudaGraphMode cuda_graph = CudaGraphMode::Auto;
  std::optional<FaultInjection> fault;  // tests only
  // Written into every checkpoint, so that model.pt can be used alone (models/checkpoint.hpp).
  std::optional<models::ModelCard> model_card;
};

// Throws std::invalid_argument for any option out of range, before anything (a communicator, a
// model) is built.
void validate_train_options(const TrainOptions& options);

}  // namespace brainmri::training

namespace brainmri {
template <>
struct EnumNames<training::OptimizerKind> {
  static constexpr std::string_view what = "optimizer";
  static constexpr std::array names = {std::pair{training::OptimizerKind::Adam, std::string_view("adam")},
                                       std::pair{training::OptimizerKind::AdamW, std::string_view("adamw")},
                                       std::pair{training::OptimizerKind::Sgd, std::string_view("sgd")}};
};
template <>
struct EnumNames<training::ScheduleKind> {
  static constexpr std::string_view what = "schedule";
  static constexpr std::array names = {std::pair{training::ScheduleKind::Constant, std::string_view("constant")},
                                       std::pair{training::ScheduleKind::Step, std::string_view("step")},
                                       std::pair{training::ScheduleKind::Cosine, std::string_view("cosine")},
                                       std::pair{training::ScheduleKind::Plateau, std::string_view("plateau")}};
};
template <>
struct EnumNames<training::Precision> {
  static constexpr std::string_view what = "precision";
  static constexpr std::array names = {std::pair{training::Precision::Auto, std::string_view("auto")},
                                       std::pair{training::Precision::Fp32, std::string_view("fp32")},
                                       std::pair{training::Precision::Bf16, std::string_view("bf16")}};
};
template <>
struct EnumNames<training::FusedOptimizer> {
  static constexpr std::string_view what = "fused optimizer";
  static constexpr std::array names = {std::pair{training::FusedOptimizer::Auto, std::string_view("auto")},
                                       std::pair{training::FusedOptimizer::On, std::string_view("on")},
                                       std::pair{training::FusedOptimizer::Off, std::string_view("off")}};
};
template <>
struct EnumNames<training::CudaGraphMode> {
  static constexpr std::string_view what = "cuda graph";
  static constexpr std::array names = {std::pair{training::CudaGraphMode::Auto, std::string_view("auto")},
                                       std::pair{training::CudaGraphMode::Off, std::string_view("off")}};
};
template <>
struct EnumNames<training::ClassWeighting> {
  static constexpr std::string_view what = "class weights";
  static constexpr std::array names = {std::pair{training::ClassWeighting::None, std::string_view("none")},
                                       std::pair{training::ClassWeighting::Balanced, std::string_view("balanced")}};
};
template <>
struct EnumNames<training::MonitoredMetric> {
  static constexpr std::string_view what = "early-stopping metric";
  static constexpr std::array names = {
      std::pair{training::MonitoredMetric::ValLoss, std::string_view("val_loss")},
      std::pair{training::MonitoredMetric::ValAccuracy, std::string_view("val_accuracy")},
      std::pair{training::MonitoredMetric::ValMacroF1, std::string_view("val_macro_f1")},
      std::pair{training::MonitoredMetric::ValMacroAuc, std::string_view("val_macro_auc")}};
};
}  // namespace brainmri
