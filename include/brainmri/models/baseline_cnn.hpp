#pragma once
// The paper's baseline: three [Conv 3x3 'same' + ReLU + MaxPool 2x2] blocks, Flatten, Dropout,
// Dense + ReLU, Dense(num_classes). Input is used as stored ([0,1], any channel count).

#include "brainmri/models/classifier.hpp"

namespace brainmri::models {

class BaselineCnn : public Classifier {
 public:
  explicit BaselineCnn(const ModelOptions& options);
  std::string model_name() const override { return "baseline_cnn"; }
  std::string input_normalization() const override { return "none: [0,1] pixels as stored"; }
  torch::Tensor forward(const torch::Tensor& images) override { return run(images, false).logits; }
  FeaturesAndLogits forward_with_features(const torch::Tensor& images) override { return run(images, true); }
  // "conv1", "conv2", ...: each convolution's ReLU output, before its pooling.
  std::vector<std::string> explainable_layers() const override;

 private:
  FeaturesAndLogits run(const torch::Tensor& images, bool with_features);

  std::vector<torch::nn::Conv2d> convolutions_;
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear dense_{nullptr};
  torch::nn::Linear logits_{nullptr};
};

}  // namespace brainmri::models
