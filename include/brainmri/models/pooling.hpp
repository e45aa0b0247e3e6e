#pragma once
// 2x2 max pooling with stride 2, as torch::max_pool2d(x, 2) computes it (same values, same chosen
// position among ties and NaN, same gradients), with a CPU kernel for channels-last float32.
//
// Why a kernel: ATen's CPU max pooling keeps the chosen positions as int64 indices and its backward
// zero-fills the whole input gradient before scattering into it; for the paper's CNN that was ~35
// of a ~155 ms step on 2 cores, against ~13 ms for oneDNN's pooling with one byte per output (what
// TensorFlow uses, and what ATen reaches only through opaque mkldnn tensors). This one records the
// position in 4 bytes (int32 keeps the channel loops vectorizable) and writes each input gradient
// once; fused with the bias and ReLU, the CNN's whole block epilogue is one pass each way.

#include <torch/torch.h>

namespace brainmri::models {

// Falls back to torch::max_pool2d(x, 2) for anything else (CUDA, other dtypes or layouts, odd
// sides) and while tracing for TorchScript, so that exported graphs hold the ATen operator.
torch::Tensor max_pool_2x2(const torch::Tensor& x);

// relu(max_pool_2x2(x) + bias[c]) in one pass: the epilogue of a convolution whose bias and ReLU
// were moved behind the pooling (they commute with the maximum; see BaselineCnn).
torch::Tensor max_pool_2x2_bias_relu(const torch::Tensor& x, const torch::Tensor& bias);

// Whether max_pool_2x2 takes its own CPU kernel for this input (tests use it).
bool max_pool_2x2_uses_kernel(const torch::Tensor& x);

}  // namespace brainmri::models
