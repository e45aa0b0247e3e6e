#pragma once
// Batch normalization whose training statistics span the whole global batch: every rank's
// per-channel sum, sum of squares and count are all-reduced in the forward pass, and the two
// per-channel sums the input gradient needs in the backward pass. For small per-rank batches,
// where each rank's own statistics are too noisy. Weight and bias gradients stay local sums,
// averaged by the GradientReducer like every other gradient; running statistics are updated from
// the global mean and (unbiased) variance, so they stay identical on every rank.

#include <torch/torch.h>

#include "brainmri/distributed/communicator.hpp"
#include "brainmri/models/classifier.hpp"

namespace brainmri::distributed {

// y = batch_norm(x) over N, H, W of all ranks' inputs; `layer` supplies weight, bias, eps,
// momentum and the running statistics it updates. Collective: every rank calls it in the same
// order (every layer of every forward).
torch::Tensor sync_batch_norm(torch::nn::BatchNorm2dImpl& layer, const torch::Tensor& input,
                              Communicator& communicator);

// For Classifier::set_batch_norm_function.
models::Classifier::BatchNormFunction make_sync_batch_norm(Communicator& communicator);

}  // namespace brainmri::distributed
