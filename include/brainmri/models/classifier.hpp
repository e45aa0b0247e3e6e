#pragma once
// The interface every network implements, and the registry that builds one by name.
//
// Models take images as the dataset stores them — [N, C, H, W] floats in [0, 1] — and apply their
// own input adaptation (channel replication, ImageNet-style scaling) inside forward(), so a
// checkpoint carries everything needed to classify a new image.

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace brainmri::models {

struct ModelOptions {
  int num_classes = 4;
  int input_channels = 1;  // channels of the stored images
  int image_size = 128;
  double dropout = 0.5;
  int dense_units = 128;
  std::vector<int> filters = {32, 64, 128};  // baseline_cnn: filters of its three conv blocks
  double width_multiplier = 1.0;             // mobilenet_v2: Keras "alpha"
};

struct FeaturesAndLogits {
  torch::Tensor features;  // the explained layer's activations (Grad-CAM's target), [N, C', H', W']
  torch::Tensor logits;    // [N, num_classes]
};

// Modules that train (or freeze) together: backbone blocks in input-to-output order, then "head".
struct ParameterGroup {
  std::string name;
  std::vector<std::shared_ptr<torch::nn::Module>> modules;
  bool is_head = false;
};

class Classifier : public torch::nn::Module {
 public:
  ~Classifier() override = default;

  virtual std::string model_name() const = 0;
  const ModelOptions& options() const { return options_; }
  // Human-readable description of the adaptation forward() applies to [0,1] input.
  virtual std::string input_normalization() const = 0;

  // The logits alone; a model may override it with a faster path that has no explained layer.
  virtual torch::Tensor forward(const torch::Tensor& images) { return forward_with_features(images).logits; }
  virtual FeaturesAndLogits forward_with_features(const torch::Tensor& images) = 0;

  // The layers whose activations forward_with_features can return, input to output; the last is
  // the default (the last convolution of the baseline CNN, Conv_1 of MobileNetV2).
  virtual std::vector<std::string> explainable_layers() const = 0;
  // Selects the layer forward_with_features returns; "" selects the default. Throws
  // std::invalid_argument naming the valid layers for an unknown one.
  void set_explained_layer(const std::string& layer);
  std::string explained_layer() const;

  const std::vector<ParameterGroup>& parameter_groups() const { return groups_; }
  std::vector<std::string> backbone_group_names() const;

  // Trains only the head and the last `count` backbone groups (0: whole backbone frozen;
  // negative or >= the number of groups: everything trains).
  void set_trainable_backbone_groups(int count);
  // Trains the backbone from the group that contains module `layer` (e.g. "block_13_expand" or
  // "block_13") onwards, and the head. Throws std::invalid_argument for an unknown layer.
  void set_trainable_from(const std::string& layer);
  // Frozen batch-norm layers stay in inference mode even in training, as in Keras: their
  // statistics are part of the pretrained weights.
  void train(bool on = true) override;

  // Replaces the computation of batch-norm layers that are in training mode (e.g. by one whose
  // statistics span all ranks: distributed::make_sync_batch_norm); null restores the default.
  using BatchNormFunction = std::function<torch::Tensor(torch::nn::BatchNorm2dImpl&, const torch::Tensor&)>;
  void set_batch_norm_function(BatchNormFunction function) { batch_norm_function_ = std::move(function); }

 protected:
  explicit Classifier(ModelOptions options) : options_(std::move(options)) {}
  void add_group(std::string name, std::vector<std::shared_ptr<torch::nn::Module>> modules, bool is_head = false);
  // Index into explainable_layers() of the layer forward_with_features returns.
  std::size_t explained_layer_index() const;
  // Models call their batch-norm layers through this, so that set_batch_norm_function applies.
  torch::Tensor batch_norm(torch::nn::BatchNorm2d& layer, const torch::Tensor& x) {
    return batch_norm_function_ && layer->is_training() ? batch_norm_function_(*layer, x) : layer->forward(x);
  }
  // Models call their dropout layers through this: Keras's rule (keep where a uniform draw >= the
  // rate, scale by 1 / (1 - rate)), which on a CPU is 4x faster than torch::dropout's Bernoulli
  // sampler (1.6 ms against 10 ms per step for the CNN's 32 x 32,768 features on 2 cores).
  static torch::Tensor dropout(const torch::nn::Dropout& layer, const torch::Tensor& x);

 private:
  void apply_batch_norm_modes();

  ModelOptions options_;
  std::vector<ParameterGroup> groups_;
  BatchNormFunction batch_norm_function_;
  std::string explained_layer_;  // empty: the last of explainable_layers()
};

using ClassifierPtr = std::shared_ptr<Classifier>;

ClassifierPtr create_model(const std::string& name, const ModelOptions& options);

// Stores every 4-D parameter and buffer in channels-last (NHWC) layout, which oneDNN's CPU and
// cuDNN's tensor-core convolutions run faster; inputs should be converted the same way.
void use_channels_last(torch::nn::Module& module);
// A batch [N, C, H, W] in memory in NHWC order, with channels-last strides even where C = 1:
// Tensor::contiguous(ChannelsLast) leaves a one-channel NCHW batch as it is (it counts as both),
// and the convolutions then do not take oneDNN's channels-last path (the paper's CNN trains 30%
// slower on CPU: docs/benchmarks.md).
torch::Tensor as_channels_last(const torch::Tensor& images);
std::vector<std::string> registered_models();

}  // namespace brainmri::models
