#include "brainmri/models/mobilenet_v2.hpp"

#include <cmath>
#include <stdexcept>

namespace brainmri::models {
namespace {

// Keras' BatchNormalization(epsilon=1e-3, momentum=0.999): PyTorch's momentum weighs the new
// batch, Keras' the old average.
torch::nn::BatchNorm2d keras_batch_norm(int channels) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).eps(1e-3).momentum(1.0 - 0.999));
}

torch::nn::Conv2d pointwise(int in, int out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).bias(false));
}

// 'same' padding for stride 1 (3x3: 1 on each side); stride 2 pads explicitly, see keras_stride2_pad.
torch::nn::Conv2d three_by_three(int in, int out, int stride, int groups) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(stride == 1 ? 1 : 0).groups(groups).bias(false));
}

// In place, as torchvision does: hardtanh_ derives its gradient from its output, so autograd can
// overwrite the batch-norm output instead of keeping a second copy of every activation.
torch::Tensor clamp_relu6(torch::Tensor x) { return torch::hardtanh_(x, 0.0, 6.0); }

}  // namespace

int make_divisible(double value, int divisor) {
  int rounded = std::max(divisor, static_cast<int>(value + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * value) rounded += divisor;
  return rounded;
}

torch::Tensor keras_stride2_pad(const torch::Tensor& input) {
  // correct_pad: ((1 - adjust_h, 1), (1 - adjust_w, 1)) with adjust = 1 - size % 2, i.e. an even
  // side pads 0 before and 1 after, an odd side 1 on both. F.pad takes (left, right, top, bottom).
  const auto height = input.size(2);
  const auto width = input.size(3);
  const std::int64_t top = height % 2 == 0 ? 0 : 1;
  const std::int64_t left = width % 2 == 0 ? 0 : 1;
  return torch::constant_pad_nd(input, {left, 1, top, 1}, 0.0);
}

const std::vector<InvertedResidualSpec>& mobilenet_v2_blocks() {
  static const std::vector<InvertedResidualSpec> blocks = {
      {1, 16, 1}, {6, 24, 2}, {6, 24, 1}, {6, 32, 2}, {6, 32, 1},  {6, 32, 1},  {6, 64, 2},  {6, 64, 1},  {6, 64, 1},
      {6, 64, 1}, {6, 96, 1}, {6, 96, 1}, {6, 96, 1}, {6, 160, 2}, {6, 160, 1}, {6, 160, 1}, {6, 320, 1},
  };
  return blocks;
}

MobileNetV2::MobileNetV2(const ModelOptions& options) : Classifier(options) {
  const double alpha = options.width_multiplier;
  if (!(alpha > 0)) throw std::invalid_argument("mobilenet_v2 width multiplier must be positive");
  if (options.image_size < 32) throw std::invalid_argument("mobilenet_v2 needs inputs of at least 32x32");

  const int first_filters = make_divisible(32 * alpha);
  conv1_ = register_module("Conv1", three_by_three(3, first_filters, 2, 1));
  bn_conv1_ = register_module("bn_Conv1", keras_batch_norm(first_filters));
  add_group("Conv1", {conv1_.ptr(), bn_conv1_.ptr()});

  int channels = first_filters;
  const auto& specs = mobilenet_v2_blocks();
  for (std::size_t id = 0; id < specs.size(); ++id) {
    const auto& spec = specs[id];
    Block block;
    block.prefix = id == 0 ? "expanded_conv_" : "block_" + std::to_string(id) + "_";
    block.stride = spec.stride;
    const int output = make_divisible(static_cast<int>(spec.output_channels * alpha));
    const int expanded = channels * spec.expansion;
    std::vector<std::shared_ptr<torch::nn::Module>> modules;
    if (id != 0) {  // Keras' first block has no expansion layer at all
      block.expand = register_module(block.prefix + "expand", pointwise(channels, expanded));
      block.expand_bn = register_module(block.prefix + "expand_BN", keras_batch_norm(expanded));
      modules.insert(modules.end(), {block.expand.ptr(), block.expand_bn.ptr()});
    }
    block.depthwise =
        register_module(block.prefix + "depthwise", three_by_three(expanded, expanded, spec.stride, expanded));
    block.depthwise_bn = register_module(block.prefix + "depthwise_BN", keras_batch_norm(expanded));
    block.project = register_module(block.prefix + "project", pointwise(expanded, output));
    block.project_bn = register_module(block.prefix + "project_BN", keras_batch_norm(output));
    modules.insert(modules.end(),
                   {block.depthwise.ptr(), block.depthwise_bn.ptr(), block.project.ptr(), block.project_bn.ptr()});
    block.residual = channels == output && spec.stride == 1;
    add_group(id == 0 ? "expanded_conv" : "block_" + std::to_string(id), std::move(modules));
    blocks_.push_back(std::move(block));
    channels = output;
  }

  const int last_filters = alpha > 1.0 ? make_divisible(1280 * alpha) : 1280;
  conv_last_ = register_module("Conv_1", pointwise(channels, last_filters));
  conv_last_bn_ = register_module("Conv_1_bn", keras_batch_norm(last_filters));
  add_group("Conv_1", {conv_last_.ptr(), conv_last_bn_.ptr()});

  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout));
  dense_ = register_module("dense", torch::nn::Linear(last_filters, options.dense_units));
  logits_ = register_module("logits", torch::nn::Linear(options.dense_units, options.num_classes));
  add_group("head", {dense_.ptr(), logits_.ptr()}, true);
}

torch::Tensor MobileNetV2::run_block(Block& block, const torch::Tensor& input) {
  torch::Tensor x = input;
  if (block.expand) x = clamp_relu6(batch_norm(block.expand_bn, block.expand->forward(x)));
  if (block.stride == 2) x = keras_stride2_pad(x);
  x = clamp_relu6(batch_norm(block.depthwise_bn, block.depthwise->forward(x)));
  x = batch_norm(block.project_bn, block.project->forward(x));  // linear bottleneck: no activation
  return block.residual ? input + x : x;
}

torch::Tensor MobileNetV2::adapt_input(const torch::Tensor& images) const {
  // -1 rather than the sizes: a TorchScript export (traced) must accept any batch size.
  torch::Tensor rgb = images.size(1) == 1 ? images.expand({-1, 3, -1, -1}) : images;
  return rgb * 2.0 - 1.0;
}

std::vector<std::string> MobileNetV2::explainable_layers() const {
  std::vector<std::string> layers = {"Conv1"};
  for (const auto& block : blocks_) layers.push_back(block.prefix.substr(0, block.prefix.size() - 1));
  layers.push_back("Conv_1");
  return layers;
}

torch::Tensor MobileNetV2::backbone_features(const torch::Tensor& rgb, torch::Tensor* explained, std::size_t index) {
  // The explained activations are not modified in place later (every in-place ReLU acts on a
  // fresh batch-norm output), so they stay valid for autograd.
  torch::Tensor x = clamp_relu6(batch_norm(bn_conv1_, conv1_->forward(keras_stride2_pad(rgb))));
  if (explained && index == 0) *explained = x;
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    x = run_block(blocks_[i], x);
    if (explained && index == i + 1) *explained = x;
  }
  x = clamp_relu6(batch_norm(conv_last_bn_, conv_last_->forward(x)));
  if (explained && index == blocks_.size() + 1) *explained = x;
  return x;
}

FeaturesAndLogits MobileNetV2::forward_with_features(const torch::Tensor& images) {
  torch::Tensor explained;
  const torch::Tensor features = backbone_features(adapt_input(images), &explained, explained_layer_index());
  torch::Tensor x = features.mean({2, 3});
  x = dropout(dropout_, x);
  x = torch::relu(dense_->forward(x));
  return {explained, logits_->forward(x)};
}

}  // namespace brainmri::models
