// 2x2/stride-2 max pooling (optionally + bias, ReLU) for channels-last float32 CPU tensors; see
// pooling.hpp for why.

#include "brainmri/models/pooling.hpp"

#include <ATen/Parallel.h>
#include <torch/csrc/jit/frontend/tracer.h>

#include <algorithm>
#include <bit>
#include <cstdint>

namespace brainmri::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Per output value, which of the window's four inputs (row by row) is the maximum, or
// kClipped when the ReLU after it gave 0 (then no input gets a gradient).
constexpr std::int32_t kClipped = 4;

// A position replaces the running maximum when it is larger or NaN, scanning the window row by
// row: ATen's rule, so that ties and NaN pick the same position (and gradient) as max_pool2d.
inline bool replaces(float value, float best) { return value > best || value != value; }

struct Shape {
  std::int64_t batch, channels, height, width;
  std::int64_t out_height() const { return height / 2; }
  std::int64_t out_width() const { return width / 2; }
  std::int64_t out_rows() const { return batch * out_height(); }  // the unit of parallel work
};

Shape shape_of(const torch::Tensor& input) { return {input.size(0), input.size(1), input.size(2), input.size(3)}; }

// Output rows (n, oh) in parallel; within a row, channels are innermost and contiguous, and the
// channel loops are written so that the compiler vectorizes them (__restrict: nothing overlaps).
// WithBias: relu(maximum + bias[c]); a template parameter, as a branch in the loop stops the
// vectorization.
template <bool WithBias>
void pool_forward(const Shape& s, const float* input, const float* bias, float* output, std::int32_t* chosen) {
  const std::int64_t channels = s.channels;
  at::parallel_for(0, s.out_rows(), 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t n = row / s.out_height(), oh = row % s.out_height();
      const float* top = input + ((n * s.height + 2 * oh) * s.width) * channels;
      const float* bottom = top + s.width * channels;
      for (std::int64_t ow = 0; ow < s.out_width(); ++ow) {
        const float* __restrict top_left = top + 2 * ow * channels;
        const float* __restrict top_right = top_left + channels;
        const float* __restrict bottom_left = bottom + 2 * ow * channels;
        const float* __restrict bottom_right = bottom_left + channels;
        float* __restrict out = output + (row * s.out_width() + ow) * channels;
        std::int32_t* __restrict which = chosen + (row * s.out_width() + ow) * channels;
        for (std::int64_t c = 0; c < channels; ++c) {
          float best = top_left[c];
          std::int32_t at = 0;
          const float candidates[3] = {top_right[c], bottom_left[c], bottom_right[c]};
          for (std::int32_t k = 0; k < 3; ++k) {
            const bool take = replaces(candidates[k], best);
            best = take ? candidates[k] : best;
            at = take ? k + 1 : at;
          }
          if constexpr (WithBias) {
            best += bias[c];
            const bool clipped = best <= 0.0F;  // NaN passes, as through torch::relu
            best = clipped ? 0.0F : best;
            at = clipped ? kClipped : at;
          }
          out[c] = best;
          which[c] = at;
        }
      }
    }
  });
}

// Every input gradient is written once: the output gradient where the window chose it, else +0.
// With `bias_rows` (out_rows x channels), each row's bias-gradient sums are stored there, to be
// added up in a fixed order (the same bits for any thread count).
template <bool WithBias>
void pool_backward(const Shape& s, const float* grad_output, const std::int32_t* chosen, float* grad_input,
                   float* bias_rows) {
  const std::int64_t channels = s.channels;
  at::parallel_for(0, s.out_rows(), 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t n = row / s.out_height(), oh = row % s.out_height();
      float* top = grad_input + ((n * s.height + 2 * oh) * s.width) * channels;
      float* bottom = top + s.width * channels;
      float* __restrict row_sum = WithBias ? bias_rows + row * channels : nullptr;
      if constexpr (WithBias) std::fill(row_sum, row_sum + channels, 0.0F);
      for (std::int64_t ow = 0; ow < s.out_width(); ++ow) {
        float* __restrict top_left = top + 2 * ow * channels;
        float* __restrict top_right = top_left + channels;
        float* __restrict bottom_left = bottom + 2 * ow * channels;
        float* __restrict bottom_right = bottom_left + channels;
        const float* __restrict g = grad_output + (row * s.out_width() + ow) * channels;
        const std::int32_t* __restrict which = chosen + (row * s.out_width() + ow) * channels;
        for (std::int64_t c = 0; c < channels; ++c) {
          // The gradient's bits where chosen, +0.0 elsewhere, as all-ones/zero masks: branch-free
          // (the compiler does not if-convert four conditional stores) and exact for NaN.
          const auto bits = std::bit_cast<std::int32_t>(g[c]);
          const std::int32_t at = which[c];
          top_left[c] = std::bit_cast<float>(bits & -static_cast<std::int32_t>(at == 0));
          top_right[c] = std::bit_cast<float>(bits & -static_cast<std::int32_t>(at == 1));
          bottom_left[c] = std::bit_cast<float>(bits & -static_cast<std::int32_t>(at == 2));
          bottom_right[c] = std::bit_cast<float>(bits & -static_cast<std::int32_t>(at == 3));
        }
        if constexpr (WithBias) {
          for (std::int64_t c = 0; c < channels; ++c)
            row_sum[c] += std::bit_cast<float>(std::bit_cast<std::int32_t>(g[c]) &
                                               -static_cast<std::int32_t>(which[c] != kClipped));
        }
      }
    }
  });
}

// The autograd node's two halves, for both Functions below; `bias` undefined: the plain maximum.
torch::Tensor pool_forward_saving(AutogradContext* context, const torch::Tensor& input, const torch::Tensor& bias) {
  const Shape s = shape_of(input);
  auto output = torch::empty({s.batch, s.channels, s.out_height(), s.out_width()},
                             input.options().memory_format(torch::MemoryFormat::ChannelsLast));
  auto chosen =
      torch::empty({s.batch, s.out_height(), s.out_width(), s.channels}, input.options().dtype(torch::kInt32));
  if (bias.defined()) {
    const auto bias_values = bias.contiguous();
    pool_forward<true>(s, input.const_data_ptr<float>(), bias_values.const_data_ptr<float>(),
                       output.mutable_data_ptr<float>(), chosen.mutable_data_ptr<std::int32_t>());
  } else {
    pool_forward<false>(s, input.const_data_ptr<float>(), nullptr, output.mutable_data_ptr<float>(),
                        chosen.mutable_data_ptr<std::int32_t>());
  }
  context->save_for_backward({chosen});
  context->saved_data["input_shape"] = input.sizes().vec();
  return output;
}

// The input gradient, and the bias gradient when `bias_gradient`.
tensor_list pool_backward_saved(AutogradContext* context, const torch::Tensor& grad, bool bias_gradient) {
  const auto chosen = context->get_saved_variables()[0];
  const auto input_shape = context->saved_data["input_shape"].toIntVector();
  const auto grad_output = grad.contiguous(torch::MemoryFormat::ChannelsLast);
  auto grad_input = torch::empty(input_shape, grad_output.options().memory_format(torch::MemoryFormat::ChannelsLast));
  const Shape s{input_shape[0], input_shape[1], input_shape[2], input_shape[3]};
  if (!bias_gradient) {
    pool_backward<false>(s, grad_output.const_data_ptr<float>(), chosen.const_data_ptr<std::int32_t>(),
                         grad_input.mutable_data_ptr<float>(), nullptr);
    return {grad_input, torch::Tensor()};
  }
  auto bias_rows = torch::empty({s.out_rows(), s.channels}, grad_output.options());
  pool_backward<true>(s, grad_output.const_data_ptr<float>(), chosen.const_data_ptr<std::int32_t>(),
                      grad_input.mutable_data_ptr<float>(), bias_rows.mutable_data_ptr<float>());
  return {grad_input, bias_rows.sum(0)};
}

struct MaxPool2x2 : torch::autograd::Function<MaxPool2x2> {
  static torch::Tensor forward(AutogradContext* context, const torch::Tensor& input) {
    return pool_forward_saving(context, input, torch::Tensor());
  }
  static tensor_list backward(AutogradContext* context, tensor_list grad_outputs) {
    return {pool_backward_saved(context, grad_outputs[0], false)[0]};
  }
};

struct MaxPool2x2BiasRelu : torch::autograd::Function<MaxPool2x2BiasRelu> {
  static torch::Tensor forward(AutogradContext* context, const torch::Tensor& input, const torch::Tensor& bias) {
    return pool_forward_saving(context, input, bias);
  }
  static tensor_list backward(AutogradContext* context, tensor_list grad_outputs) {
    // Without a bias gradient the clipped positions still get none: the codes say kClipped.
    return pool_backward_saved(context, grad_outputs[0], context->needs_input_grad(1));
  }
};

}  // namespace

bool max_pool_2x2_uses_kernel(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 4 && x.layout() == torch::kStrided &&
         x.size(2) >= 2 && x.size(3) >= 2 && x.size(2) % 2 == 0 && x.size(3) % 2 == 0 &&
         x.is_contiguous(torch::MemoryFormat::ChannelsLast) && !torch::jit::tracer::isTracing();
}

torch::Tensor max_pool_2x2(const torch::Tensor& x) {
  if (!max_pool_2x2_uses_kernel(x)) return torch::max_pool2d(x, 2);
  return MaxPool2x2::apply(x);
}

torch::Tensor max_pool_2x2_bias_relu(const torch::Tensor& x, const torch::Tensor& bias) {
  if (!max_pool_2x2_uses_kernel(x) || bias.scalar_type() != torch::kFloat || !bias.device().is_cpu())
    return torch::relu(torch::max_pool2d(x, 2) + bias.view({1, -1, 1, 1}));
  return MaxPool2x2BiasRelu::apply(x, bias);
}

}  // namespace brainmri::models
