#include "brainmri/distributed/sync_batch_norm.hpp"

#include <cstdint>

namespace brainmri::distributed {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const std::vector<std::int64_t> kReduceDims = {0, 2, 3};

torch::Tensor per_channel(const torch::Tensor& v) { return v.view({1, -1, 1, 1}); }

class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  // Statistics in fp32 whatever the input's dtype (bf16 under autocast).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, const torch::Tensor& weight,
                               const torch::Tensor& bias, torch::nn::BatchNorm2dImpl* layer,
                               Communicator* communicator) {
    const auto x = input.to(torch::kFloat32);
    const double local_count = static_cast<double>(x.numel() / x.size(1));
    // Each rank contributes its own mean and sum of squared deviations from it, in fp64; they
    // are merged exactly (Chan et al.), avoiding the cancellation of E[x^2] - E[x]^2 when the
    // activations have a large mean.
    const auto local_mean = x.mean(kReduceDims, false, torch::kFloat64);
    const auto local_m2 = (x.to(torch::kFloat64) - per_channel(local_mean)).square().sum(kReduceDims);
    const auto channels = x.size(1);
    auto contribution = torch::cat({local_mean * local_count, local_m2, local_mean.square() * local_count,
                                    torch::full({1}, local_count, local_mean.options())});
    communicator->allreduce(contribution, ReduceOp::Sum, "sync batch norm statistics");
    const double count = contribution[3 * channels].item<double>();
    const auto mean64 = contribution.narrow(0, 0, channels) / count;
    // Total M2 = sum of local M2 + sum n_r * mean_r^2 - count * mean^2.
    const auto m2 = contribution.narrow(0, channels, channels) + contribution.narrow(0, 2 * channels, channels) -
                    mean64.square() * count;
    const auto variance64 = (m2 / count).clamp_min(0);
    const auto mean = mean64.to(torch::kFloat32);
    const auto variance = variance64.to(torch::kFloat32);
    const double eps = layer->options.eps();
    const auto inverse_std = (variance + eps).rsqrt();
    {
      torch::NoGradGuard no_grad;
      layer->num_batches_tracked.add_(1);
      // No momentum: a cumulative average, as torch::nn::BatchNorm2d does.
      const double momentum = layer->options.momentum().has_value()
                                  ? *layer->options.momentum()
                                  : 1.0 / static_cast<double>(layer->num_batches_tracked.item<std::int64_t>());
      layer->running_mean.mul_(1 - momentum).add_(mean.to(layer->running_mean.dtype()), momentum);
      layer->running_var.mul_(1 - momentum)
          .add_((variance64 * (count / std::max(1.0, count - 1))).to(layer->running_var.dtype()), momentum);
    }
    auto normalized = (x - per_channel(mean)) * per_channel(inverse_std);
    ctx->save_for_backward({normalized, weight, inverse_std});
    ctx->saved_data["count"] = count;
    ctx->saved_data["communicator"] = static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(communicator));
    ctx->saved_data["dtype"] = static_cast<std::int64_t>(input.scalar_type());
    return (normalized * per_channel(weight) + per_channel(bias)).to(input.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& normalized = saved[0];
    const auto& weight = saved[1];
    const auto& inverse_std = saved[2];
    const double count = ctx->saved_data["count"].toDouble();
    auto* communicator =
        reinterpret_cast<Communicator*>(static_cast<std::intptr_t>(ctx->saved_data["communicator"].toInt()));
    const auto dy = outputs[0].to(torch::kFloat32);
    const auto channels = dy.size(1);
    const auto local_dy = dy.sum(kReduceDims);
    const auto local_dy_xhat = (dy * normalized).sum(kReduceDims);
    auto sums = torch::cat({local_dy, local_dy_xhat});
    communicator->allreduce(sums, ReduceOp::Sum, "sync batch norm gradients");
    const auto mean_dy = sums.narrow(0, 0, channels) / count;
    const auto mean_dy_xhat = sums.narrow(0, channels, channels) / count;
    auto grad_input =
        per_channel(weight * inverse_std) * (dy - per_channel(mean_dy) - normalized * per_channel(mean_dy_xhat));
    const auto input_dtype = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
    // Weight and bias gradients of this rank's samples; the reducer averages them across ranks.
    return {grad_input.to(input_dtype), local_dy_xhat, local_dy, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor sync_batch_norm(torch::nn::BatchNorm2dImpl& layer, const torch::Tensor& input,
                              Communicator& communicator) {
  if (!layer.options.affine() || !layer.options.track_running_stats()) {
    throw std::invalid_argument("sync_batch_norm supports affine batch norm with running statistics");
  }
  return SyncBatchNormFunction::apply(input, layer.weight, layer.bias, &layer, &communicator);
}

models::Classifier::BatchNormFunction make_sync_batch_norm(Communicator& communicator) {
  return [&communicator](torch::nn::BatchNorm2dImpl& layer, const torch::Tensor& input) {
    return sync_batch_norm(layer, input, communicator);
  };
}

}  // namespace brainmri::distributed
