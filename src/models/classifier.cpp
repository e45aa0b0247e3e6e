#include "brainmri/models/classifier.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "brainmri/models/baseline_cnn.hpp"
#include "brainmri/models/mobilenet_v2.hpp"

namespace brainmri::models {
namespace {

using Factory = std::function<ClassifierPtr(const ModelOptions&)>;

const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> factories = {
      {"baseline_cnn", [](const ModelOptions& o) { return std::make_shared<BaselineCnn>(o); }},
      {"mobilenet_v2", [](const ModelOptions& o) { return std::make_shared<MobileNetV2>(o); }},
  };
  return factories;
}

void set_requires_grad(const ParameterGroup& group, bool trainable) {
  for (const auto& module : group.modules) {
    for (auto& parameter : module->parameters()) parameter.set_requires_grad(trainable);
  }
}

bool is_trainable(const ParameterGroup& group) {
  for (const auto& module : group.modules) {
    for (const auto& parameter : module->parameters()) {
      if (parameter.requires_grad()) return true;
    }
  }
  return false;
}

}  // namespace

ClassifierPtr create_model(const std::string& name, const ModelOptions& options) {
  const auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& entry : registry()) known += (known.empty() ? "" : ", ") + entry.first;
    throw std::invalid_argument("unknown model '" + name + "' (known: " + known + ")");
  }
  if (options.num_classes < 2) throw std::invalid_argument("a classifier needs at least 2 classes");
  if (options.dropout < 0 || options.dropout >= 1) throw std::invalid_argument("dropout must be in [0, 1)");
  if (options.dense_units < 1) throw std::invalid_argument("the dense layer needs at least 1 unit");
  if (options.input_channels != 1 && options.input_channels != 3) {
    throw std::invalid_argument("input channels must be 1 or 3, got " + std::to_string(options.input_channels));
  }
  return it->second(options);
}

std::vector<std::string> registered_models() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
  return names;
}

torch::Tensor as_channels_last(const torch::Tensor& images) {
  if (images.dim() != 4) return images;
  const auto sizes = images.sizes();
  const std::vector<std::int64_t> nhwc_strides = {sizes[1] * sizes[2] * sizes[3], 1, sizes[3] * sizes[1], sizes[1]};
  if (images.strides() == c10::IntArrayRef(nhwc_strides)) return images;
  return torch::empty(sizes, images.options().memory_format(torch::MemoryFormat::ChannelsLast)).copy_(images);
}

void use_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& parameter : module.parameters()) {
    if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

void Classifier::add_group(std::string name, std::vector<std::shared_ptr<torch::nn::Module>> modules, bool is_head) {
  groups_.push_back({std::move(name), std::move(modules), is_head});
}

std::vector<std::string> Classifier::backbone_group_names() const {
  std::vector<std::string> names;
  for (const auto& group : groups_) {
    if (!group.is_head) names.push_back(group.name);
  }
  return names;
}

void Classifier::set_trainable_backbone_groups(int count) {
  const auto backbone = static_cast<int>(backbone_group_names().size());
  const int first_trainable = count < 0 || count >= backbone ? 0 : backbone - count;
  int index = 0;
  for (const auto& group : groups_) {
    set_requires_grad(group, group.is_head || index >= first_trainable);
    if (!group.is_head) ++index;
  }
  apply_batch_norm_modes();
}

void Classifier::set_trainable_from(const std::string& layer) {
  int found = -1;
  int index = 0;
  for (const auto& group : groups_) {
    if (group.is_head) continue;
    bool match = group.name == layer;
    for (const auto& item : named_modules("", false)) {
      if (item.key() != layer) continue;
      match = match || std::any_of(group.modules.begin(), group.modules.end(),
                                   [&](const auto& m) { return m.get() == item.value().get(); });
    }
    if (match && found < 0) found = index;
    ++index;
  }
  if (found < 0) throw std::invalid_argument("no backbone layer or block named '" + layer + "' in " + model_name());
  set_trainable_backbone_groups(index - found);
}

void Classifier::set_explained_layer(const std::string& layer) {
  const auto layers = explainable_layers();
  if (!layer.empty() && std::find(layers.begin(), layers.end(), layer) == layers.end()) {
    std::string valid;
    for (const auto& name : layers) valid += (valid.empty() ? "" : ", ") + name;
    throw std::invalid_argument("no explainable layer named '" + layer + "' in " + model_name() + " (valid: " + valid +
                                ")");
  }
  explained_layer_ = layer;
}

std::string Classifier::explained_layer() const {
  return explained_layer_.empty() ? explainable_layers().back() : explained_layer_;
}

std::size_t Classifier::explained_layer_index() const {
  const auto layers = explainable_layers();
  if (explained_layer_.empty()) return layers.size() - 1;
  return static_cast<std::size_t>(std::find(layers.begin(), layers.end(), explained_layer_) - layers.begin());
}

torch::Tensor Classifier::dropout(const torch::nn::Dropout& layer, const torch::Tensor& x) {
  const double rate = layer->options.p();
  if (!layer->is_training() || rate == 0) return x;
  const auto keep = torch::empty_like(x).uniform_().ge_(rate).mul_(1.0 / (1.0 - rate));
  return x * keep;
}

void Classifier::train(bool on) {
  torch::nn::Module::train(on);
  apply_batch_norm_modes();
}

void Classifier::apply_batch_norm_modes() {
  if (!is_training()) return;
  for (const auto& group : groups_) {
    if (is_trainable(group)) continue;
    for (const auto& module : group.modules) {
      if (module->as<torch::nn::BatchNorm2d>() != nullptr) module->eval();
    }
  }
}

}  // namespace brainmri::models
