#include "brainmri/training/fused_adam.hpp"

#include <stdexcept>

namespace brainmri::training {

FusedAdam::FusedAdam(const std::vector<torch::Tensor>& parameters, torch::optim::AdamOptions options,
                     bool decoupled_weight_decay)
    : torch::optim::Adam(parameters, options), decoupled_(decoupled_weight_decay), parameters_(parameters) {
  if (options.amsgrad()) throw std::invalid_argument("FusedAdam: amsgrad is not supported");
  if (parameters_.empty()) throw std::invalid_argument("FusedAdam: no parameters");
  const auto device = parameters_.front().device();
  for (const auto& p : parameters_) {
    if (p.device() != device) throw std::invalid_argument("FusedAdam: every parameter must be on one device");
  }
  learning_rate_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  sync_learning_rate();
}

void FusedAdam::sync_learning_rate() {
  const double lr = static_cast<const torch::optim::AdamOptions&>(param_groups().front().options()).lr();
  if (lr == synced_learning_rate_) return;
  learning_rate_.fill_(lr);
  synced_learning_rate_ = lr;
}

void FusedAdam::initialize_state() {
  if (!steps_.empty()) return;
  for (const auto& p : parameters_) {
    auto& slot = state_[p.unsafeGetTensorImpl()];
    if (!slot) {
      auto fresh = std::make_unique<torch::optim::AdamParamState>();
      fresh->step(0);
      fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      slot = std::move(fresh);
    }
  }
  adopt_host_state();
}

void FusedAdam::adopt_host_state() {
  steps_.clear();
  for (const auto& p : parameters_) {
    const auto& s = static_cast<torch::optim::AdamParamState&>(*state_.at(p.unsafeGetTensorImpl()));
    steps_.push_back(torch::full({}, static_cast<double>(s.step()),
                                 torch::TensorOptions().dtype(torch::kFloat32).device(p.device())));
  }
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable_grad(true);
    loss = closure();
  }
  initialize_state();
  sync_learning_rate();
  std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const auto& p = parameters_[i];
    if (!p.grad().defined()) continue;
    auto& s = static_cast<torch::optim::AdamParamState&>(*state_.at(p.unsafeGetTensorImpl()));
    params.push_back(p);
    grads.push_back(p.grad());
    exp_avgs.push_back(s.exp_avg());
    exp_avg_sqs.push_back(s.exp_avg_sq());
    steps.push_back(steps_[i]);
  }
  if (params.empty()) return loss;
  // As PyTorch's fused path: the counts are incremented by the caller, on the device.
  torch::_foreach_add_(steps, 1);
  const auto& options = static_cast<const torch::optim::AdamOptions&>(param_groups().front().options());
  const auto [beta1, beta2] = options.betas();
  if (decoupled_) {
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, {}, steps, learning_rate_, beta1, beta2,
                      options.weight_decay(), options.eps(), false, false);
  } else {
    at::_fused_adam_(params, grads, exp_avgs, exp_avg_sqs, {}, steps, learning_rate_, beta1, beta2,
                     options.weight_decay(), options.eps(), false, false);
  }
  return loss;
}

void FusedAdam::save(torch::serialize::OutputArchive& archive) const {
  // The host-side counts went stale while the device ones counted (or a graph replayed the step).
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    auto& s = static_cast<torch::optim::AdamParamState&>(*state_.at(parameters_[i].unsafeGetTensorImpl()));
    s.step(static_cast<std::int64_t>(steps_[i].item<float>()));
  }
  torch::optim::Adam::save(archive);
}

void FusedAdam::load(torch::serialize::InputArchive& archive) {
  torch::optim::Adam::load(archive);
  synced_learning_rate_ = -1;
  sync_learning_rate();
  steps_.clear();
  initialize_state();
}

}  // namespace brainmri::training
