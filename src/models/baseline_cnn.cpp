#include "brainmri/models/baseline_cnn.hpp"

#include <stdexcept>

#include "brainmri/models/pooling.hpp"

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

FeaturesAndLogits BaselineCnn::run(const torch::Tensor& images, bool with_features) {
  const auto explained = with_features ? explained_layer_index() : convolutions_.size();
  torch::Tensor x = images;
  torch::Tensor features;
  for (std::size_t i = 0; i < convolutions_.size(); ++i) {
    auto& conv = convolutions_[i];
    if (i == explained) {
      features = torch::relu(conv->forward(x));  // Grad-CAM explains the activation itself
      x = max_pool_2x2(features);
    } else {
      // The same values in a quarter of the work: the per-channel bias and the ReLU commute with
      // the 2x2 maximum (max(a, b) + c == max(a + c, b + c) and relu(max(a, b)) == max(relu(a),
      // relu(b)) in floating point too, as rounding is monotonic), so both run on the pooled
      // values. Gradients go to the same positions (the maximum's; only where rounding makes
      // a + c == b + c for a != b does the larger, not the first, get it), the bias gradient being
      // summed over a quarter of the values.
      const auto unbiased = torch::conv2d(x, conv->weight, /*bias=*/{}, /*stride=*/1, /*padding=*/1);
      x = max_pool_2x2_bias_relu(unbiased, conv->bias);
    }
  }
  x = dropout(dropout_, x.flatten(1));
  x = torch::relu(dense_->forward(x));
  return {features, logits_->forward(x)};
}

}  // namespace brainmri::models
