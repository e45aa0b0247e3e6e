#include "brainmri/models/baseline_cnn.hpp"

#include <stdexcept>

namespace brainmri::models {

BaselineCnn::BaselineCnn(const ModelOptions& options) : Classifier(options) {
  if (options.filters.empty()) throw std::invalid_argument("baseline_cnn needs at least one conv block");
  int channels = options.input_channels;
  int side = options.image_size;
  for (std::size_t i = 0; i < options.filters.size(); ++i) {
    auto conv =
        register_module("conv" + std::to_string(i + 1),
                        torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, options.filters[i], 3).padding(1)));
    convolutions_.push_back(conv);
    add_group("block_" + std::to_string(i + 1), {conv});
    channels = options.filters[i];
    side /= 2;
  }
  if (side < 1)
    throw std::invalid_argument("image size " + std::to_string(options.image_size) + " is too small for " +
                                std::to_string(options.filters.size()) + " pooling steps");
  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout));
  dense_ = register_module("dense",
                           torch::nn::Linear(static_cast<std::int64_t>(channels) * side * side, options.dense_units));
  logits_ = register_module("logits", torch::nn::Linear(options.dense_units, options.num_classes));
  add_group("head", {dense_.ptr(), logits_.ptr()}, true);
}

std::vector<std::string> BaselineCnn::explainable_layers() const {
  std::vector<std::string> layers;
  for (std::size_t i = 0; i < convolutions_.size(); ++i) layers.push_back("conv" + std::to_string(i + 1));
  return layers;
}

FeaturesAndLogits BaselineCnn::forward_with_features(const torch::Tensor& images) {
  const auto explained = explained_layer_index();
  torch::Tensor x = images;
  torch::Tensor features;
  for (std::size_t i = 0; i < convolutions_.size(); ++i) {
    const auto activation = torch::relu(convolutions_[i]->forward(x));
    if (i == explained) features = activation;
    x = torch::max_pool2d(activation, 2);
  }
  x = dropout_->forward(x.flatten(1));
  x = torch::relu(dense_->forward(x));
  return {features, logits_->forward(x)};
}

}  // namespace brainmri::models
