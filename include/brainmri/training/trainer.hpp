#pragma once
// Training and evaluation of a Classifier, in one process or data-parallel over the ranks of a
// Communicator: optimizers, learning-rate schedules, early stopping, checkpoints that resume
// bit-identically on CPU, and per-epoch logs.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/gradient_reducer.hpp"
#include "brainmri/evaluation/epoch_record.hpp"
#include "brainmri/evaluation/predictions.hpp"
#include "brainmri/evaluation/run_log.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/training/augmentation.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/training/step_graph.hpp"
#include "brainmri/training/train_options.hpp"

namespace brainmri::training {

// The trainer's results are the evaluation layer's types.
using evaluation::EpochRecord;
using evaluation::Predictions;

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
  std::vector<evaluation::EpochRecord> fit(const BatchSource& train, const BatchSource* validation,
                                           int max_epochs_now = 0);
  evaluation::Predictions predict(const BatchSource& loader);

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
  std::function<void(const evaluation::EpochRecord&)> on_epoch;  // console output; called on rank 0 only
  std::function<void(const std::string&)> on_note;               // other messages (rank 0); default: stderr
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
  void write_log(const evaluation::EpochRecord& record, bool validated);
  // The run log's step: steps of the earlier stages and epochs, then `step_in_epoch`.
  std::int64_t logged_step(int epoch, std::size_t step_in_epoch) const;
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
  torch::Tensor graph_images_, graph_labels_, graph_loss_, graph_correct_,
      graph_weights_;  // the graph's static tensors
  bool graph_status_said_ = false;
  std::int64_t steps_done_ = 0;              // this process's steps, for fault injection
  std::unique_ptr<evaluation::RunLog> log_;  // rank 0 with an output directory
  std::size_t steps_per_epoch_ = 0;
  State state_;
};

}  // namespace brainmri::training
