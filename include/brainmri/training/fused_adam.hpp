#pragma once
// Adam and AdamW with one fused kernel for every parameter (ATen's _fused_adam_/_fused_adamw_, what
// PyTorch's `fused=True` runs), instead of a handful of kernels per parameter tensor.
//
// It is also what makes the optimizer step capturable in a CUDA graph: the step counts and the
// learning rate live in tensors on the parameters' device, so a replayed step reads the current
// values instead of the ones the capture saw. The learning rate is copied into its tensor by
// sync_learning_rate(), which the trainer calls outside the graph whenever it changes the rate.
//
// The state is torch::optim::Adam's (AdamParamState, AdamOptions), so checkpoints of the two are
// interchangeable; the host-side step counts are brought up to date before save().

#include <torch/torch.h>

#include <vector>

namespace brainmri::training {

class FusedAdam : public torch::optim::Adam {
 public:
  // `decoupled_weight_decay`: AdamW (weight decay applied to the weights) instead of Adam (added to
  // the gradient, as L2).
  FusedAdam(const std::vector<torch::Tensor>& parameters, torch::optim::AdamOptions options,
            bool decoupled_weight_decay);

  torch::Tensor step(LossClosure closure = nullptr) override;
  // Copies param_groups()[0]'s learning rate into the tensor the kernel reads. Not inside a capture.
  void sync_learning_rate();
  // Creates the per-parameter state (zero moments, step 0) without stepping, so that a CUDA graph
  // capture sees every tensor it will use already allocated.
  void initialize_state();

  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

 private:
  void adopt_host_state();  // device step tensors from the host-side state (after load)

  bool decoupled_;
  std::vector<torch::Tensor> parameters_;
  std::vector<torch::Tensor> steps_;  // float32 scalars on each parameter's device
  torch::Tensor learning_rate_;       // float64 scalar on the parameters' device
  double synced_learning_rate_ = -1;
};

}  // namespace brainmri::training
