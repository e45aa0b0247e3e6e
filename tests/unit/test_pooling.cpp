// The CPU pooling kernel (models/pooling) against ATen's max_pool2d, and the baseline CNN's fast
// path (bias and ReLU behind the pooling) against its explained-layer path.

#include <gtest/gtest.h>

#include "brainmri/models/baseline_cnn.hpp"
#include "brainmri/models/pooling.hpp"

using namespace brainmri::models;

namespace {

// Values on a coarse grid, so that windows hold ties (ATen's first-maximum rule must be kept).
torch::Tensor tied_input(std::vector<std::int64_t> shape, std::uint64_t seed) {
  torch::manual_seed(static_cast<std::int64_t>(seed));
  return torch::randint(-3, 4, shape).to(torch::kFloat).div(2).contiguous(torch::MemoryFormat::ChannelsLast);
}

struct Gradients {
  torch::Tensor output, input_gradient, bias_gradient;
};

// Output and gradients of sum(output * weights) for a random weighting of the output.
template <typename Pool>
Gradients run(const torch::Tensor& input, const torch::Tensor& bias, Pool pool) {
  auto x = input.detach().clone(torch::MemoryFormat::ChannelsLast).requires_grad_(true);
  auto b = bias.defined() ? bias.detach().clone().requires_grad_(true) : torch::Tensor();
  const auto output = pool(x, b);
  torch::manual_seed(7);
  (output * torch::randn(output.sizes())).sum().backward();
  return {output.detach(), x.grad(), b.defined() ? b.grad() : torch::Tensor()};
}

}  // namespace

TEST(MaxPool2x2, SameValuesAndGradientsAsAtenIncludingTies) {
  for (const auto& shape : std::vector<std::vector<std::int64_t>>{{2, 5, 8, 6}, {3, 1, 4, 4}, {1, 64, 2, 2}}) {
    const auto input = tied_input(shape, 1);
    ASSERT_TRUE(max_pool_2x2_uses_kernel(input));
    const auto ours = run(input, {}, [](const auto& x, const auto&) { return max_pool_2x2(x); });
    const auto aten = run(input, {}, [](const auto& x, const auto&) { return torch::max_pool2d(x, 2); });
    EXPECT_TRUE(torch::equal(ours.output, aten.output));
    EXPECT_TRUE(torch::equal(ours.input_gradient, aten.input_gradient));
  }
}

TEST(MaxPool2x2, NanWinsItsWindowAsInAten) {
  auto input = tied_input({1, 3, 4, 4}, 2);
  input.index_put_({0, 1, 1, 0}, std::numeric_limits<float>::quiet_NaN());
  input.index_put_({0, 2, 2, 3}, std::numeric_limits<float>::quiet_NaN());
  const auto ours = run(input, {}, [](const auto& x, const auto&) { return max_pool_2x2(x); });
  const auto aten = run(input, {}, [](const auto& x, const auto&) { return torch::max_pool2d(x, 2); });
  EXPECT_TRUE(torch::equal(ours.output.isnan(), aten.output.isnan()));
  EXPECT_TRUE(torch::equal(ours.output.nan_to_num(), aten.output.nan_to_num()));
  EXPECT_TRUE(torch::equal(ours.input_gradient, aten.input_gradient));
}

TEST(MaxPool2x2, BiasAndReluFusedAsTheUnfusedOps) {
  const auto input = tied_input({4, 6, 6, 8}, 3);
  const auto bias = torch::tensor({-1.0F, -0.5F, 0.0F, 0.25F, 0.5F, 1.0F});
  const auto ours = run(input, bias, [](const auto& x, const auto& b) { return max_pool_2x2_bias_relu(x, b); });
  const auto aten = run(input, bias, [](const auto& x, const auto& b) {
    return torch::relu(torch::max_pool2d(x, 2) + b.view({1, -1, 1, 1}));
  });
  EXPECT_TRUE(torch::equal(ours.output, aten.output));
  EXPECT_TRUE(torch::equal(ours.input_gradient, aten.input_gradient));
  EXPECT_TRUE(torch::allclose(ours.bias_gradient, aten.bias_gradient, 1e-5, 1e-5));  // summed in another order
}

TEST(MaxPool2x2, BiasGradientHasTheSameBitsForAnyThreadCount) {
  const auto input = tied_input({8, 16, 16, 16}, 4);
  const auto bias = torch::randn({16});
  const int threads = torch::get_num_threads();
  std::vector<torch::Tensor> gradients;
  for (const int count : {1, 2, 3}) {
    torch::set_num_threads(count);
    gradients.push_back(
        run(input, bias, [](const auto& x, const auto& b) { return max_pool_2x2_bias_relu(x, b); }).bias_gradient);
  }
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(gradients[0], gradients[1]));
  EXPECT_TRUE(torch::equal(gradients[0], gradients[2]));
}

TEST(MaxPool2x2, OtherInputsFallBackToAten) {
  const auto odd = tied_input({1, 2, 5, 4}, 5);
  const auto nchw = tied_input({1, 3, 4, 4}, 6).contiguous();
  const auto doubles = tied_input({1, 2, 4, 4}, 7).to(torch::kDouble);
  for (const auto& input : {odd, nchw, doubles}) {
    EXPECT_FALSE(max_pool_2x2_uses_kernel(input));
    EXPECT_TRUE(torch::equal(max_pool_2x2(input), torch::max_pool2d(input, 2)));
  }
}

TEST(BaselineCnn, FastPathGivesTheLogitsAndGradientsOfTheExplainedPath) {
  ModelOptions options;
  options.image_size = 32;
  auto model = create_model("baseline_cnn", options);
  model->train();
  use_channels_last(*model);
  const auto images = as_channels_last(torch::rand({4, 1, 32, 32}));
  const auto labels = torch::tensor({0, 1, 2, 3});
  auto loss_and_gradients = [&](const std::string& explained_layer) {
    model->zero_grad();
    torch::manual_seed(3);  // the same dropout mask
    torch::Tensor logits;
    if (explained_layer.empty()) {
      logits = model->forward(images);
    } else {
      model->set_explained_layer(explained_layer);
      logits = model->forward_with_features(images).logits;
    }
    torch::nn::functional::cross_entropy(logits, labels).backward();
    std::vector<torch::Tensor> gradients{logits.detach()};
    for (const auto& p : model->parameters()) gradients.push_back(p.grad().clone());
    return gradients;
  };
  const auto fast = loss_and_gradients("");
  for (const std::string layer : {"conv1", "conv2", "conv3"}) {  // each block once on the explained path
    const auto explained = loss_and_gradients(layer);
    ASSERT_EQ(fast.size(), explained.size());
    for (std::size_t i = 0; i < fast.size(); ++i) {
      // oneDNN adds a convolution's bias in its own order; everything else is the same arithmetic.
      EXPECT_TRUE(torch::allclose(fast[i], explained[i], 1e-4, 1e-5)) << layer << ", tensor " << i;
    }
  }
}
