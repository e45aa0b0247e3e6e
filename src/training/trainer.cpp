#include "brainmri/training/trainer.hpp"

#include <ATen/autocast_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/heap.hpp"
#include "brainmri/common/log.hpp"
#include "brainmri/common/option_table.hpp"
#include "brainmri/common/preemption.hpp"
#include "brainmri/distributed/sync_batch_norm.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/roc.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/training/fused_adam.hpp"

namespace brainmri::training {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kTrainerStateKey = "brainmri_trainer_state";
constexpr const char* kOptimizerKey = "brainmri_optimizer";

// bf16 autocast for the forward pass on CUDA; a no-op otherwise.
class AutocastScope {
 public:
  explicit AutocastScope(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;
  ~AutocastScope() {
    if (!enabled_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }

 private:
  bool enabled_;
};

double metric_value(const evaluation::EpochRecord& r, MonitoredMetric metric) {
  switch (metric) {
    case MonitoredMetric::ValLoss: return r.val_loss;
    case MonitoredMetric::ValAccuracy: return r.val_accuracy;
    case MonitoredMetric::ValMacroF1: return r.val_macro_f1;
    case MonitoredMetric::ValMacroAuc: return r.val_macro_auc;
  }
  throw std::logic_error("unknown monitored metric");
}

void atomic_save(torch::serialize::OutputArchive& archive, const fs::path& path) {
  replace_file_atomically(path, [&](const fs::path& temporary) { archive.save_to(temporary.string()); });
}

}  // namespace

bool lower_is_better(MonitoredMetric metric) { return metric == MonitoredMetric::ValLoss; }

void validate_train_options(const TrainOptions& o) {
  if (o.epochs < 0 || o.batch_size < 1 || o.eval_batch_size < 1) {
    throw std::invalid_argument("epochs must be >= 0 and batch sizes >= 1");
  }
  if (o.schedule_epochs < 0) throw std::invalid_argument("the schedule's horizon must be >= 0 epochs");
  if (o.log_every_steps < 0 || o.epochs_before < 0)
    throw std::invalid_argument("log steps and epochs before must be >= 0");
  if (!(o.optimizer.learning_rate > 0)) throw std::invalid_argument("the learning rate must be > 0");
  if (o.optimizer.weight_decay < 0) throw std::invalid_argument("weight decay must be >= 0");
  if (o.optimizer.momentum < 0 || o.optimizer.momentum >= 1) throw std::invalid_argument("momentum must be in [0, 1)");
  if (o.label_smoothing < 0 || o.label_smoothing >= 1) throw std::invalid_argument("label smoothing must be in [0, 1)");
  if (o.gradient_clip_norm < 0) throw std::invalid_argument("the gradient clipping norm must be >= 0 (0: off)");
}

Trainer::Trainer(models::ClassifierPtr model, TrainOptions options, torch::Device device)
    : model_(std::move(model)), options_(std::move(options)), device_(device), augmenter_(options_.augmentation) {
  validate_train_options(options_);
  if (options_.communicator != nullptr) {
    rank_ = options_.communicator->rank();
    world_size_ = options_.communicator->size();
  }
  model_->to(device_);
  if (options_.channels_last) models::use_channels_last(*model_);
  // On a CPU the step's activations live in the heap: keep them there from step to step.
  if (device_.is_cpu()) keep_freed_memory_for_reuse();
  // cuDNN times its convolution algorithms once per shape and keeps the fastest.
  if (device_.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  build_optimizer();
  graph_reason_ = why_not_graphed();
  if (distributed()) {
    // Replicas must agree before the first step: same architecture everywhere, then rank 0's
    // initial (or pretrained) weights and batch-norm statistics on every rank.
    distributed::verify_identical_replicas(*model_, *options_.communicator);
    distributed::broadcast_model_state(*model_, *options_.communicator);
    reducer_ =
        std::make_unique<distributed::GradientReducer>(model_->parameters(), *options_.communicator, options_.reducer);
    if (options_.sync_batch_norm)
      model_->set_batch_norm_function(distributed::make_sync_batch_norm(*options_.communicator));
  }
  state_.learning_rate = options_.optimizer.learning_rate;
  state_.best_metric = lower_is_better(options_.early_stopping.metric) ? INFINITY : -INFINITY;
  state_.plateau_best = state_.best_metric;
  if (!options_.output_dir.empty()) fs::create_directories(options_.output_dir);
  if (!options_.output_dir.empty() && rank_ == 0) log_ = std::make_unique<evaluation::RunLog>(options_.output_dir);
}

Trainer::~Trainer() {
  // The model outlives this trainer (the next stage trains it again); its batch norm must not
  // keep calling into this stage's communicator settings.
  if (reducer_ && options_.sync_batch_norm) model_->set_batch_norm_function(nullptr);
}

bool Trainer::use_bf16() const {
  return options_.precision == Precision::Bf16 || (options_.precision == Precision::Auto && device_.is_cuda());
}

void Trainer::build_optimizer() {
  std::vector<torch::Tensor> trainable;
  for (const auto& p : model_->parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  if (trainable.empty()) throw std::invalid_argument("the model has no trainable parameters");
  const auto& o = options_.optimizer;
  const bool adam = o.kind == OptimizerKind::Adam || o.kind == OptimizerKind::AdamW;
  // ATen's fused Adam kernel exists for CPUs and CUDA; on a CPU it is one pass over the moments
  // instead of five (the paper's CNN: 4.2M parameters, ~5% of its CPU step saved).
  const bool fused =
      adam && (options_.fused_optimizer == FusedOptimizer::On ||
               (options_.fused_optimizer == FusedOptimizer::Auto && (device_.is_cuda() || device_.is_cpu())));
  if (fused) {
    // AdamOptions with AdamW's default-free weight decay: the kernel applies it coupled (adam) or
    // decoupled (adamw).
    optimizer_ =
        std::make_unique<FusedAdam>(trainable, torch::optim::AdamOptions(o.learning_rate).weight_decay(o.weight_decay),
                                    o.kind == OptimizerKind::AdamW);
  } else if (o.kind == OptimizerKind::Adam) {
    optimizer_ = std::make_unique<torch::optim::Adam>(
        trainable, torch::optim::AdamOptions(o.learning_rate).weight_decay(o.weight_decay));
  } else if (o.kind == OptimizerKind::AdamW) {
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        trainable, torch::optim::AdamWOptions(o.learning_rate).weight_decay(o.weight_decay));
  } else {
    optimizer_ = std::make_unique<torch::optim::SGD>(
        trainable, torch::optim::SGDOptions(o.learning_rate).momentum(o.momentum).weight_decay(o.weight_decay));
  }
}

double Trainer::scheduled_learning_rate(int epoch) const {
  const auto& s = options_.schedule;
  const double base = options_.optimizer.learning_rate;
  double lr = base;
  switch (s.kind) {
    case ScheduleKind::Constant: lr = base; break;
    case ScheduleKind::Step: lr = base * std::pow(s.step_gamma, (epoch - 1) / std::max(1, s.step_epochs)); break;
    case ScheduleKind::Cosine: {
      const int horizon = options_.schedule_epochs > 0 ? options_.schedule_epochs : options_.epochs;
      const int span = std::max(1, horizon - s.warmup_epochs);
      const double progress = std::clamp(static_cast<double>(epoch - 1 - s.warmup_epochs) / span, 0.0, 1.0);
      lr = s.min_learning_rate + (base - s.min_learning_rate) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
      break;
    }
    case ScheduleKind::Plateau:
      lr = state_.learning_rate;  // lowered in fit() when the metric stalls
      break;
  }
  if (epoch <= s.warmup_epochs) lr = lr * epoch / (s.warmup_epochs + 1);
  return lr;
}

void Trainer::set_learning_rate(double lr) {
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  if (auto* fused = dynamic_cast<FusedAdam*>(optimizer_.get())) fused->sync_learning_rate();
}

std::string Trainer::why_not_graphed() const {
  if (options_.cuda_graph == CudaGraphMode::Off) return "the CUDA graph is switched off";
  if (!device_.is_cuda()) return "not on a CUDA device";
  if (distributed()) return "several ranks: the bucketed all-reduce is not captured yet";
  if (dynamic_cast<FusedAdam*>(optimizer_.get()) == nullptr) return "the optimizer is not the fused Adam/AdamW";
  if (options_.fault) return "fault injection is on";
  return StepGraph::unavailable_reason();
}

bool Trainer::improved(double value, double reference) const {
  return lower_is_better(options_.early_stopping.metric) ? value < reference : value > reference;
}

torch::Tensor Trainer::loss_weights(const BatchSource& train) const {
  if (options_.class_weights == ClassWeighting::None) return {};
  const int k = model_->options().num_classes;
  const auto counts = train.class_counts(k);
  std::vector<float> weights;
  for (const auto count : counts) {
    weights.push_back(count > 0 ? static_cast<float>(train.size()) / static_cast<float>(k * count) : 0.0f);
  }
  return torch::tensor(weights).to(device_);
}

std::vector<evaluation::EpochRecord> Trainer::fit(const BatchSource& train, const BatchSource* validation,
                                                  int max_epochs_now) {
  const auto weights = loss_weights(train);
  const int k = model_->options().num_classes;
  std::vector<evaluation::EpochRecord> records;
  if (train.size() < world_size_) {
    throw std::invalid_argument("the training selection has " + std::to_string(train.size()) +
                                " samples, fewer than the " + std::to_string(world_size_) + " ranks");
  }
  // Every rank must run the same number of steps: the incomplete last global batch is dropped
  // whenever there is a complete one.
  const bool drop_last = train.size() >= options_.batch_size * world_size_;
  const int last_epoch =
      max_epochs_now > 0 ? std::min(options_.epochs, state_.epochs_done + max_epochs_now) : options_.epochs;
  if (device_.is_cuda() && !graph_status_said_) {
    note(graph_reason_.empty()
             ? "training step: captured in a CUDA graph after " + std::to_string(kGraphWarmupSteps) + " eager steps"
             : "training step: eager (" + graph_reason_ + ")");
    graph_status_said_ = true;
  }
  for (int epoch = state_.epochs_done + 1; epoch <= last_epoch && !state_.stopped_early; ++epoch) {
    const auto started = std::chrono::steady_clock::now();
    const double lr = scheduled_learning_rate(epoch);
    set_learning_rate(lr);
    model_->train();

    auto plan = train.plan_epoch(options_.seed, epoch, options_.batch_size, true, drop_last, rank_, world_size_);
    // A checkpoint written mid-epoch (preemption) continues at its step with its running sums.
    const auto first_step = static_cast<std::size_t>(state_.steps_into_epoch);
    double loss_sum = 0;
    std::int64_t correct = 0, seen = 0;
    if (first_step > 0) {
      const auto slot = static_cast<std::size_t>(3 * rank_);
      loss_sum = state_.partial_sums.at(slot);
      correct = static_cast<std::int64_t>(state_.partial_sums.at(slot + 1));
      seen = static_cast<std::int64_t>(state_.partial_sums.at(slot + 2));
      state_.steps_into_epoch = 0;
      state_.partial_sums.clear();
    }
    // Accumulated on the device: reading the loss back every step would stall the GPU queue.
    auto loss_total = torch::full({}, loss_sum, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
    auto correct_total = torch::full({}, correct, torch::TensorOptions().dtype(torch::kInt64).device(device_));
    bool graphable = graph_reason_.empty() && drop_last && !graph_failed_;
    const auto all_steps = plan.batches.size();
    steps_per_epoch_ = all_steps;
    if (log_ && (first_step > 0 || epoch > 1) && epoch == state_.epochs_done + 1 && records.empty()) {
      log_->resumed_at(logged_step(epoch, first_step));  // this process continues an earlier one
    }
    plan.batches.erase(plan.batches.begin(),
                       plan.batches.begin() + static_cast<std::ptrdiff_t>(std::min(first_step, all_steps)));
    train.begin(plan);
    std::optional<ProgressMeter> meter;
    if (rank_ == 0 && options_.progress != ProgressStyle::None) {
      const auto images_per_step = options_.batch_size * world_size_;
      meter.emplace(
          "[" + options_.stage_name + "] epoch " + std::to_string(epoch) + "/" + std::to_string(options_.epochs),
          static_cast<std::int64_t>(all_steps) * images_per_step, "img", options_.progress, options_.progress_seconds,
          [this](const std::string& text, bool in_place) {
            if (!in_place) return note(text);
            std::fprintf(stderr, "\r%s\033[K", text.c_str());
            std::fflush(stderr);
          },
          static_cast<std::int64_t>(first_step) * images_per_step);
    }
    for (std::size_t step = first_step; step < all_steps; ++step) {
      if (preemption_agreed(step, first_step)) {
        // Every rank's running sums, each in its own slots (a sum of zeros elsewhere is exact).
        auto sums = torch::zeros({3 * world_size_}, torch::kFloat64);
        sums[3 * rank_] = loss_total.item<double>();
        sums[3 * rank_ + 1] = static_cast<double>(correct_total.item<std::int64_t>());
        sums[3 * rank_ + 2] = static_cast<double>(seen);
        if (distributed())
          options_.communicator->allreduce(sums, distributed::ReduceOp::Sum, "running sums at preemption");
        state_.steps_into_epoch = static_cast<int>(step);
        state_.partial_sums.assign(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
        if (!options_.output_dir.empty() && rank_ == 0) save_checkpoint(last_checkpoint());
        if (distributed()) options_.communicator->barrier("checkpoint written for preemption");
        throw PreemptionRequested();
      }
      // Dropout draws from the global generator: seeded per step, so a run resumed at any step
      // draws what the uninterrupted run drew (a replayed graph reads the generator's state too).
      torch::manual_seed(augmentation_seed(options_.seed, rank_, epoch, -2 - static_cast<std::int64_t>(step)));
      auto [images, labels] = train.gather(plan.batches[step - first_step]);
      if (options_.augment && options_.augmentation.enabled()) {
        images =
            augmenter_.apply(images, augmentation_seed(options_.seed, rank_, epoch, static_cast<std::int64_t>(step)));
      }
      if (options_.channels_last) images = models::as_channels_last(images);
      inject_fault_if_requested(steps_done_++);
      const auto batch = labels.size(0);
      torch::Tensor step_loss, step_correct;
      if (graphable && batch == options_.batch_size) {
        if (!step_graph_) {
          graph_images_ = torch::empty_like(images);
          graph_labels_ = torch::empty_like(labels);
          graph_loss_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
          graph_correct_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device_));
          graph_weights_ = weights;  // the graph keeps reading this tensor
          step_graph_ = std::make_unique<StepGraph>([this, epoch] {
            const auto [captured_loss, captured_correct] =
                train_step(graph_images_, graph_labels_, graph_weights_, epoch, /*in_place_zero=*/true);
            graph_loss_.copy_(captured_loss);
            graph_correct_.copy_(captured_correct);
          });
        }
        graph_images_.copy_(images);
        graph_labels_.copy_(labels);
        if (!step_graph_->run(kGraphWarmupSteps)) {
          note("CUDA graph capture failed, training eagerly from here: " + step_graph_->failure());
          graph_failed_ = true;
          graphable = false;
        }
        step_loss = graph_loss_;
        step_correct = graph_correct_;
      } else {
        std::tie(step_loss, step_correct) = train_step(images, labels, weights, epoch, /*in_place_zero=*/false);
      }
      loss_total.add_(step_loss.to(torch::kFloat64) * static_cast<double>(batch));
      correct_total.add_(step_correct);
      seen += batch;
      if (meter) meter->advance(batch * world_size_);
      const auto done = logged_step(epoch, step + 1);
      if (options_.log_every_steps > 0 && done % options_.log_every_steps == 0 &&
          (log_ || (rank_ == 0 && logging::enabled(LogLevel::Debug)))) {
        // Reads the loss back: a GPU waits for its queue here, once every log_every_steps steps.
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        const double running_loss = loss_total.item<double>() / static_cast<double>(seen);
        const double images_per_second = seconds > 0 ? static_cast<double>(seen * world_size_) / seconds : 0;
        if (log_) log_->step(done, running_loss, lr, images_per_second);
        char line[160];
        std::snprintf(line, sizeof(line), "[%s] epoch %d step %zu/%zu  lr %.2e  running loss %.4f  %.0f img/s",
                      options_.stage_name.c_str(), epoch, step + 1, all_steps, lr, running_loss, images_per_second);
        if (rank_ == 0) logging::debug(line);
      }
    }
    if (meter) meter->finish();
    loss_sum = loss_total.item<double>();
    correct = correct_total.item<std::int64_t>();

    if (distributed()) {
      // Training loss and accuracy over the whole global batch stream, as one process would see it.
      auto totals = torch::tensor({loss_sum, static_cast<double>(correct), static_cast<double>(seen)}, torch::kFloat64);
      options_.communicator->allreduce(totals, distributed::ReduceOp::Sum,
                                       "epoch " + std::to_string(epoch) + " totals");
      // MPI does not promise bit-identical reduction results on every rank; decisions made from
      // these values (early stopping, learning-rate plateaus) must not differ between ranks.
      options_.communicator->broadcast(totals, 0, "epoch totals from rank 0");
      loss_sum = totals[0].item<double>();
      correct = static_cast<std::int64_t>(totals[1].item<double>());
      seen = static_cast<std::int64_t>(totals[2].item<double>());
    }
    evaluation::EpochRecord record;
    record.stage = options_.stage_name;
    record.epoch = epoch;
    record.learning_rate = lr;
    record.train_loss = seen ? loss_sum / static_cast<double>(seen) : 0;
    record.train_accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0;
    const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    record.images_per_second = train_seconds > 0 ? static_cast<double>(seen) / train_seconds : 0;

    if (validation != nullptr && validation->size() > 0) {
      const auto scores = evaluation::score_predictions(predict(*validation), k);
      record.val_loss = scores.loss;
      record.val_accuracy = scores.accuracy;
      record.val_macro_f1 = scores.macro_f1;
      record.val_macro_auc = scores.macro_auc;
      const double value = metric_value(record, options_.early_stopping.metric);
      if (improved(value, state_.best_metric)) {
        state_.best_metric = value;
        state_.best_epoch = epoch;
        state_.epochs_without_improvement = 0;
        record.best = true;
        if (!options_.output_dir.empty() && rank_ == 0) save_checkpoint(best_checkpoint());
      } else {
        ++state_.epochs_without_improvement;
      }
      if (options_.schedule.kind == ScheduleKind::Plateau) {
        if (improved(value, state_.plateau_best)) {
          state_.plateau_best = value;
          state_.plateau_bad_epochs = 0;
        } else if (++state_.plateau_bad_epochs >= options_.schedule.plateau_patience) {
          state_.learning_rate *= options_.schedule.plateau_factor;
          state_.plateau_bad_epochs = 0;
        }
      }
      if (options_.early_stopping.patience > 0 &&
          state_.epochs_without_improvement >= options_.early_stopping.patience) {
        state_.stopped_early = true;
      }
    }
    record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    state_.epochs_done = epoch;
    if (!options_.output_dir.empty() && rank_ == 0) {
      save_checkpoint(last_checkpoint());
      write_log(record, validation != nullptr && validation->size() > 0);
    }
    if (on_epoch && rank_ == 0) on_epoch(record);
    records.push_back(record);
  }

  const bool finished = state_.stopped_early || state_.epochs_done >= options_.epochs;
  if (finished && validation != nullptr && options_.early_stopping.restore_best && state_.best_epoch > 0 &&
      state_.best_epoch != state_.epochs_done && !options_.output_dir.empty()) {
    if (distributed()) options_.communicator->barrier("before restoring the best epoch");  // rank 0 wrote it
    torch::serialize::InputArchive archive;
    archive.load_from(best_checkpoint().string(), device_);
    model_->load(archive);
  }
  return records;
}

std::pair<torch::Tensor, torch::Tensor> Trainer::train_step(const torch::Tensor& images, const torch::Tensor& labels,
                                                            const torch::Tensor& weights, int epoch,
                                                            bool in_place_zero) {
  // A captured step must keep its gradient tensors: zeroed, not freed.
  optimizer_->zero_grad(/*set_to_none=*/!in_place_zero);
  torch::Tensor logits;
  {
    AutocastScope autocast(use_bf16());
    logits = model_->forward(images);
  }
  logits = logits.to(torch::kFloat32);
  auto loss_options = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(options_.label_smoothing);
  if (weights.defined()) loss_options.weight(weights);
  const auto loss = torch::nn::functional::cross_entropy(logits, labels, loss_options);
  if (reducer_) reducer_->prepare(options_.stage_name + " epoch " + std::to_string(epoch));
  loss.backward();
  if (reducer_) reducer_->finish();
  if (options_.gradient_clip_norm > 0) clip_gradients(in_place_zero);
  optimizer_->step();
  return {loss.detach(), logits.argmax(1).eq(labels).sum()};
}

void Trainer::clip_gradients(bool without_host_sync) {
  if (!without_host_sync) {
    torch::nn::utils::clip_grad_norm_(model_->parameters(), options_.gradient_clip_norm);
    return;
  }
  // The same arithmetic as clip_grad_norm_, with the decision "scale or not" made on the device.
  std::vector<torch::Tensor> grads;
  for (const auto& p : model_->parameters()) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return;
  std::vector<torch::Tensor> norms;
  for (const auto& g : grads) norms.push_back(g.norm(2).to(torch::kFloat32));
  const auto total = torch::stack(norms).norm(2);
  const auto coefficient = (options_.gradient_clip_norm / (total + 1e-6)).clamp_max(1.0);
  for (auto& g : grads) g.mul_(coefficient.to(g.dtype()));
}

void Trainer::note(const std::string& message) const {
  if (rank_ != 0) return;
  if (on_note) {
    on_note(message);
  } else {
    logging::info(message);
  }
}

evaluation::Predictions Trainer::predict(const BatchSource& loader) {
  torch::NoGradGuard no_grad;
  model_->eval();
  const int k = model_->options().num_classes;
  // Each rank evaluates a disjoint strided share of the samples, without padding: the gathered
  // predictions are exactly the evaluation set, once each.
  const auto plan = loader.plan_epoch(0, 0, options_.eval_batch_size, false, false, rank_, world_size_);
  loader.begin(plan);
  double loss_sum = 0;
  std::vector<std::int64_t> positions_seen;
  std::vector<torch::Tensor> probability_batches, label_batches;
  for (const auto& positions : plan.batches) {
    auto [images, labels] = loader.gather(positions);
    if (options_.channels_last) images = models::as_channels_last(images);
    const auto logits_of = [&](const torch::Tensor& view) {
      AutocastScope autocast(use_bf16());
      return model_->forward(view).to(torch::kFloat32);
    };
    torch::Tensor probabilities;
    if (options_.test_time_augmentation == models::TestTimeAugmentation::None) {
      const auto logits = logits_of(images);
      loss_sum += torch::nn::functional::cross_entropy(
                      logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .item<double>();
      probabilities = torch::softmax(logits, 1);
    } else {
      // The loss of the averaged probabilities: no logits are left to take it from.
      probabilities = models::test_time_probabilities(logits_of, images, options_.test_time_augmentation);
      loss_sum -= probabilities.gather(1, labels.view({-1, 1})).clamp_min(1e-12).log().sum().item<double>();
    }
    probability_batches.push_back(probabilities.to(torch::kFloat64).cpu());
    label_batches.push_back(labels.cpu());
    positions_seen.insert(positions_seen.end(), positions.begin(), positions.end());
  }
  auto probabilities =
      probability_batches.empty() ? torch::zeros({0, k}, torch::kFloat64) : torch::cat(probability_batches);
  auto labels = label_batches.empty() ? torch::zeros({0}, torch::kInt64) : torch::cat(label_batches);
  auto positions = torch::tensor(positions_seen, torch::kInt64);
  if (distributed()) {
    auto& communicator = *options_.communicator;
    probabilities = communicator.allgatherv(probabilities, "evaluation probabilities").cpu();
    labels = communicator.allgatherv(labels, "evaluation labels").cpu();
    positions = communicator.allgatherv(positions, "evaluation positions").cpu();
    auto total = torch::tensor({loss_sum}, torch::kFloat64);
    communicator.allreduce(total, distributed::ReduceOp::Sum, "evaluation loss");
    communicator.broadcast(total, 0, "evaluation loss from rank 0");  // the same value everywhere
    loss_sum = total.item<double>();
    // Back into the loader's order, so that every rank (and a single process) sees the same list.
    const auto order = positions.argsort();
    probabilities = probabilities.index_select(0, order);
    labels = labels.index_select(0, order);
    positions = positions.index_select(0, order);
  }
  probabilities = probabilities.contiguous();
  evaluation::Predictions out;
  out.probabilities.assign(probabilities.data_ptr<double>(), probabilities.data_ptr<double>() + probabilities.numel());
  const auto* label_data = labels.data_ptr<std::int64_t>();
  const auto* position_data = positions.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    out.labels.push_back(static_cast<int>(label_data[i]));
    out.sample_ids.push_back(loader.sample_ids()[static_cast<std::size_t>(position_data[i])]);
  }
  out.loss = out.labels.empty() ? 0 : loss_sum / static_cast<double>(out.labels.size());
  return out;
}

std::optional<FaultInjection> FaultInjection::for_rank(const std::string& text, int world_rank) {
  const auto first = text.find(':'), second = text.rfind(':');
  if (first == std::string::npos || first == second) {
    throw ConfigError("inject-fault", "must be <throw|hang|exit>:<rank>:<step>, got " + text);
  }
  const auto kind = text.substr(0, first);
  FaultInjection fault;
  if (kind == "throw") {
    fault.kind = Kind::Throw;
  } else if (kind == "hang") {
    fault.kind = Kind::Hang;
  } else if (kind == "exit") {
    fault.kind = Kind::Exit;
  } else {
    throw ConfigError("inject-fault", "kind must be throw, hang or exit, got " + kind);
  }
  try {
    const int rank = option_text::parse<int>(text.substr(first + 1, second - first - 1));
    fault.step = option_text::parse<std::int64_t>(text.substr(second + 1));
    if (rank != world_rank) return std::nullopt;
  } catch (const std::invalid_argument& e) {
    throw ConfigError("inject-fault", e.what());
  }
  return fault;
}

void Trainer::inject_fault_if_requested(std::int64_t global_step) const {
  if (!options_.fault || options_.fault->step != global_step) return;
  switch (options_.fault->kind) {
    case FaultInjection::Kind::Throw:
      throw std::runtime_error("injected failure (at training step " + std::to_string(global_step) + ")");
    case FaultInjection::Kind::Exit: std::_Exit(17);
    case FaultInjection::Kind::Hang:
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

fs::path Trainer::last_checkpoint() const { return options_.output_dir / (options_.stage_name + "_last.pt"); }
fs::path Trainer::best_checkpoint() const { return options_.output_dir / (options_.stage_name + "_best.pt"); }

void Trainer::save_checkpoint(const fs::path& path) const {
  torch::serialize::OutputArchive archive;
  model_->save(archive);
  torch::serialize::OutputArchive optimizer_archive;
  optimizer_->save(optimizer_archive);
  archive.write(kOptimizerKey, optimizer_archive);
  models::write_architecture(archive, *model_);
  if (options_.model_card) models::write_model_card(archive, *options_.model_card);
  const json state = {{"stage", options_.stage_name},
                      {"epochs_done", state_.epochs_done},
                      {"learning_rate", state_.learning_rate},
                      {"best_metric", state_.best_metric},
                      {"best_epoch", state_.best_epoch},
                      {"epochs_without_improvement", state_.epochs_without_improvement},
                      {"plateau_best", state_.plateau_best},
                      {"plateau_bad_epochs", state_.plateau_bad_epochs},
                      {"stopped_early", state_.stopped_early},
                      {"steps_into_epoch", state_.steps_into_epoch},
                      {"partial_sums", state_.partial_sums},
                      {"ranks", world_size_},
                      {"seed", options_.seed}};
  archive.write(kTrainerStateKey, c10::IValue(state.dump()));
  const auto started = std::chrono::steady_clock::now();
  atomic_save(archive, path);
  if (logging::enabled(LogLevel::Debug)) {
    char line[64];
    std::snprintf(line, sizeof(line), " in %.3f s",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    logging::debug("wrote checkpoint " + path.string() + line);
  }
}

void Trainer::resume(const fs::path& checkpoint) {
  torch::serialize::InputArchive archive;
  archive.load_from(checkpoint.string(), device_);
  c10::IValue state_value;
  const auto config = models::read_architecture(archive);
  if (!config || !archive.try_read(kTrainerStateKey, state_value)) {
    throw std::runtime_error(checkpoint.string() + " is not a brainmri training checkpoint");
  }
  const auto ours = models::architecture_json(*model_);
  if (*config != ours) {
    throw std::runtime_error(checkpoint.string() + " holds a " + config->value("model", "?") + " model " +
                             config->dump() + " but this run builds " + ours.dump());
  }
  const auto state = json::parse(state_value.toStringRef());
  if (state.at("stage").get<std::string>() != options_.stage_name) {
    throw std::runtime_error(checkpoint.string() + " is from stage '" + state.at("stage").get<std::string>() +
                             "', not '" + options_.stage_name + "'");
  }
  model_->load(archive);
  torch::serialize::InputArchive optimizer_archive;
  archive.read(kOptimizerKey, optimizer_archive);
  optimizer_->load(optimizer_archive);
  state_.epochs_done = state.at("epochs_done");
  state_.learning_rate = state.at("learning_rate");
  state_.best_metric = state.at("best_metric").is_null() ? state_.best_metric : state.at("best_metric").get<double>();
  state_.best_epoch = state.at("best_epoch");
  state_.epochs_without_improvement = state.at("epochs_without_improvement");
  state_.plateau_best =
      state.at("plateau_best").is_null() ? state_.plateau_best : state.at("plateau_best").get<double>();
  state_.plateau_bad_epochs = state.at("plateau_bad_epochs");
  state_.stopped_early = state.at("stopped_early");
  state_.steps_into_epoch = state.value("steps_into_epoch", 0);
  state_.partial_sums = state.value("partial_sums", std::vector<double>());
  if (state_.steps_into_epoch > 0 && state.value("ranks", 1) != world_size_) {
    throw std::runtime_error(
        checkpoint.string() + " stopped in the middle of an epoch of " + std::to_string(state.value("ranks", 1)) +
        " ranks; continue it with that many ranks (this run has " + std::to_string(world_size_) + ")");
  }
}

bool Trainer::preemption_agreed(std::size_t step, std::size_t first_step) const {
  int interval = options_.preemption_check_interval;
  if (interval <= 0) interval = device_.is_cuda() ? 20 : 1;
  // Not at the step a run resumed at: it would stop again before doing anything.
  if (step == first_step && first_step > 0) return false;
  if (step % static_cast<std::size_t>(interval) != 0) return false;
  if (!distributed()) return preemption_requested();
  auto flag = torch::tensor({preemption_requested() ? 1 : 0}, torch::kInt32);
  options_.communicator->allreduce(flag, distributed::ReduceOp::Sum, "preemption check");
  return flag.item<int>() > 0;
}

void Trainer::write_log(const evaluation::EpochRecord& r, bool validated) {
  log_->epoch(r, logged_step(r.epoch, steps_per_epoch_), validated);
}

std::int64_t Trainer::logged_step(int epoch, std::size_t step_in_epoch) const {
  return static_cast<std::int64_t>(options_.epochs_before + epoch - 1) * static_cast<std::int64_t>(steps_per_epoch_) +
         static_cast<std::int64_t>(step_in_epoch);
}

}  // namespace brainmri::training
