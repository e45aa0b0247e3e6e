#pragma once
// Single-process training and evaluation of a Classifier: optimizers, learning-rate schedules,
// early stopping, checkpoints that resume bit-identically on CPU, and per-epoch logs.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/gradient_reducer.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/training/augmentation.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/training/step_graph.hpp"

namespace brainmri::training {

struct OptimizerOptions {
  std::string name = "adam";  // adam | adamw | sgd (with momentum)
  double learning_rate = 1e-3;
  double weight_decay = 0.0;
  double momentum = 0.9;  // sgd only
};

struct ScheduleOptions {
  std::string name = "constant";  // constant | step | cosine | plateau
  int warmup_epochs = 0;          // linear warm-up from lr / (warmup + 1), for every schedule
  int step_epochs = 10;           // step: multiply by step_gamma every step_epochs
  double step_gamma = 0.1;
  double min_learning_rate = 0.0;  // cosine floor
  int plateau_patience = 3;        // plateau: epochs without improvement of the monitored metric
  double plateau_factor = 0.1;
};

struct EarlyStoppingOptions {
  std::string metric = "val_macro_f1";  // val_loss | val_accuracy | val_macro_f1 | val_macro_auc
  int patience = 0;                      // 0: never stop early
  bool restore_best = true;              // end with the best epoch's weights
};

struct TrainOptions {
  int epochs = 10;
  // Horizon of the schedules that depend on the run's length (cosine); 0: `epochs`. A search
  // that trains a trial in rungs of growing length sets it to the last rung's epochs, so that a
  // promoted trial follows the same learning-rate curve as one run of that length.
  int schedule_epochs = 0;
  std::int64_t batch_size = 32;
  std::int64_t eval_batch_size = 256;
  std::uint64_t seed = 42;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  EarlyStoppingOptions early_stopping;
  double label_smoothing = 0.0;
  std::string class_weights = "none";  // none | balanced (n / (k * count), as sklearn)
  double gradient_clip_norm = 0.0;     // 0: no clipping
  bool augment = true;
  AugmentationOptions augmentation;
  std::string precision = "auto";  // auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
  bool channels_last = true;       // NHWC weights and batches: ~30% faster convolutions on CPU
  std::filesystem::path output_dir;  // checkpoints and train_log.jsonl; empty: none written
  std::string stage_name = "train";  // prefix of checkpoint files and log records
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
  // GPU fast path. fused_optimizer: adam/adamw as one fused kernel (auto: on CUDA). cuda_graph:
  // auto captures the whole step in a CUDA graph after a warm-up when it can (CUDA, one rank,
  // fused optimizer, full batches) and says why not otherwise; off never does.
  std::string fused_optimizer = "auto";  // auto | on | off
  std::string cuda_graph = "auto";       // auto | off
};

// Throws std::invalid_argument for any option out of range or unknown name, before anything
// (a communicator, a model) is built.
void validate_train_options(const TrainOptions& options);

struct EpochRecord {
  std::string stage;
  int epoch = 0;  // 1-based
  double learning_rate = 0;
  double train_loss = 0;
  double train_accuracy = 0;
  double val_loss = 0;
  double val_accuracy = 0;
  double val_macro_f1 = 0;
  double val_macro_auc = 0;
  double images_per_second = 0;
  double seconds = 0;
  bool best = false;
};

struct Predictions {
  std::vector<std::int64_t> sample_ids;
  std::vector<int> labels;
  std::vector<double> probabilities;  // row-major [n, classes]
  double loss = 0;                    // mean cross-entropy, no smoothing
};

struct ValidationScores {
  double loss = 0;
  double accuracy = 0;
  double macro_f1 = 0;
  double macro_auc = 0;
};
ValidationScores score_predictions(const Predictions& predictions, int class_count);

class Trainer {
 public:
  Trainer(models::ClassifierPtr model, TrainOptions options, torch::Device device);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains up to options.epochs (or until early stopping) and returns one record per epoch run by
  // this call; `max_epochs_now` > 0 returns after that many epochs, as an interrupted run would,
  // leaving the rest to resume(). `validation` may be null (no early stopping, no best-model
  // selection).
  std::vector<EpochRecord> fit(const BatchSource& train, const BatchSource* validation, int max_epochs_now = 0);
  Predictions predict(const BatchSource& loader);

  // Continues from a checkpoint written by fit(): weights, optimizer, schedule and early-stopping
  // state, epoch, and — for one written when preemption stopped an epoch — the step within the
  // epoch and each rank's running loss and accuracy sums, so the epoch ends as if never stopped.
  // Throws std::runtime_error if it belongs to another model, stage or number of ranks.
  //
  // fit() checks for preemption at step boundaries; when any rank was signalled, every rank
  // stops at the same step, rank 0 writes last_checkpoint(), and fit() throws
  // PreemptionRequested.
  void resume(const std::filesystem::path& checkpoint);
  std::filesystem::path last_checkpoint() const;
  // Where training stands: epochs completed, and steps into the next one (a preempted epoch).
  int epochs_done() const { return state_.epochs_done; }
  int steps_into_epoch() const { return state_.steps_into_epoch; }
  std::filesystem::path best_checkpoint() const;

  models::Classifier& model() { return *model_; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  std::function<void(const EpochRecord&)> on_epoch;  // console output; called on rank 0 only
  std::function<void(const std::string&)> on_note;   // other messages (rank 0); default: stderr
  // Why the training step is not captured in a CUDA graph ("" when it is).
  const std::string& graph_status() const { return graph_reason_; }

 private:
  struct State {
    int epochs_done = 0;
    double learning_rate = 0;
    double best_metric = 0;
    int best_epoch = 0;
    int epochs_without_improvement = 0;
    double plateau_best = 0;
    int plateau_bad_epochs = 0;
    bool stopped_early = false;
    // Within an epoch stopped by preemption: the steps done and, per rank, loss sum, correct, seen.
    int steps_into_epoch = 0;
    std::vector<double> partial_sums;
  };

  void build_optimizer();
  double scheduled_learning_rate(int epoch) const;
  void set_learning_rate(double lr);
  bool improved(double value, double reference) const;
  torch::Tensor loss_weights(const BatchSource& train) const;
  void save_checkpoint(const std::filesystem::path& path) const;
  void write_log(const EpochRecord& record) const;
  bool use_bf16() const;
  bool distributed() const { return world_size_ > 1; }
  void inject_fault_if_requested(std::int64_t global_step) const;
  bool preemption_agreed(std::size_t step, std::size_t first_step) const;
  // One step on a batch: returns the (detached) loss and the number of correct predictions, both
  // on the device. `in_place_zero`: as a captured step must (gradients zeroed, not freed; no host
  // synchronisation).
  std::pair<torch::Tensor, torch::Tensor> train_step(const torch::Tensor& images, const torch::Tensor& labels,
                                                     const torch::Tensor& weights, int epoch, bool in_place_zero);
  void clip_gradients(bool without_host_sync);
  std::string why_not_graphed() const;
  void note(const std::string& message) const;
  static constexpr int kGraphWarmupSteps = 3;

  models::ClassifierPtr model_;
  TrainOptions options_;
  torch::Device device_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  BatchAugmenter augmenter_;
  int rank_ = 0;
  int world_size_ = 1;
  std::unique_ptr<distributed::GradientReducer> reducer_;
  std::string graph_reason_;  // why the step is not graphed; "" when it is
  bool graph_failed_ = false;
  std::unique_ptr<StepGraph> step_graph_;
  torch::Tensor graph_images_, graph_labels_, graph_loss_, graph_correct_, graph_weights_;  // the graph's static tensors
  bool graph_status_said_ = false;
  std::int64_t steps_done_ = 0;  // this process's steps, for fault injection
  State state_;
};

// Reads a checkpoint written by Trainer and rebuilds its model.
models::ClassifierPtr load_model_from_checkpoint(const std::filesystem::path& checkpoint, torch::Device device);
std::string model_config_json(const models::Classifier& model);

}  // namespace brainmri::training
