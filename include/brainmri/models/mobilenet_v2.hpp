#pragma once
// A faithful port of Keras' MobileNetV2 (keras.applications.MobileNetV2, include_top=False) for
// any width multiplier and input size, with the paper's head on top:
// GlobalAveragePooling2D -> Dropout -> Dense(dense_units, ReLU) -> Dense(num_classes).
//
// Keras layer names are the module names ("Conv1", "bn_Conv1", "expanded_conv_depthwise",
// "block_1_expand", ..., "Conv_1", "Conv_1_bn"), so Keras weight files map one to one. What
// differs from torchvision's MobileNetV2, and matters for pretrained weights:
// - stride-2 convolutions on even inputs pad 0 on top/left and 1 on bottom/right (Keras
//   correct_pad + 'valid'), not 1 on every side;
// - batch norm epsilon 1e-3 and momentum 0.999 in Keras' convention (0.001 in PyTorch's);
// - input: the [0,1] grayscale slice is replicated to RGB and scaled to [-1, 1] (x * 2 - 1).

#include "brainmri/models/classifier.hpp"

namespace brainmri::models {

// Keras' _make_divisible: channel counts rounded to a multiple of 8, never below 90% of v.
int make_divisible(double value, int divisor = 8);

// Asymmetric zero padding for a 3x3 stride-2 convolution, as Keras' correct_pad computes it.
torch::Tensor keras_stride2_pad(const torch::Tensor& input);

struct InvertedResidualSpec {
  int expansion;
  int output_channels;  // before the width multiplier
  int stride;
};

// The 17 inverted-residual blocks of MobileNetV2 (block 0 is Keras' "expanded_conv").
const std::vector<InvertedResidualSpec>& mobilenet_v2_blocks();

class MobileNetV2 : public Classifier {
 public:
  explicit MobileNetV2(const ModelOptions& options);
  std::string model_name() const override { return "mobilenet_v2"; }
  std::string input_normalization() const override {
    return "grayscale replicated to 3 channels, then x * 2 - 1 (Keras mobilenet_v2.preprocess_input)";
  }
  FeaturesAndLogits forward_with_features(const torch::Tensor& images) override;
  // "Conv1" (the stem's ReLU output), "expanded_conv", "block_1" ... "block_16" (each block's
  // output, after its residual addition), "Conv_1" (the last 1x1 convolution's ReLU output, Keras'
  // "out_relu"; the default).
  std::vector<std::string> explainable_layers() const override;
  // The backbone alone on already-normalized RGB input in [-1, 1]: the "out_relu" activations.
  // With `explained` set, also the activations of explainable layer number *index* there.
  torch::Tensor backbone_features(const torch::Tensor& rgb_minus_one_to_one, torch::Tensor* explained = nullptr,
                                  std::size_t index = 0);
  // Maps a stored [0,1] image batch to the backbone's input.
  torch::Tensor adapt_input(const torch::Tensor& images) const;

 private:
  struct Block {
    std::string prefix;  // "expanded_conv_" or "block_<i>_"
    int stride;
    bool residual;
    torch::nn::Conv2d expand{nullptr};
    torch::nn::BatchNorm2d expand_bn{nullptr};
    torch::nn::Conv2d depthwise{nullptr};
    torch::nn::BatchNorm2d depthwise_bn{nullptr};
    torch::nn::Conv2d project{nullptr};
    torch::nn::BatchNorm2d project_bn{nullptr};
  };
  torch::Tensor run_block(Block& block, const torch::Tensor& input);

  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn_conv1_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::Conv2d conv_last_{nullptr};
  torch::nn::BatchNorm2d conv_last_bn_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear dense_{nullptr};
  torch::nn::Linear logits_{nullptr};
};

}  // namespace brainmri::models
