#include "brainmri/models/keras_weights.hpp"

#include <map>
#include <set>
#include <sstream>

#include "brainmri/data/hdf5.hpp"

namespace brainmri::models {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

// "block_1_expand/kernel:0" (Keras 2) or "block_1_expand/kernel" (Keras 3) -> "kernel"
std::string variable_name(const std::string& weight_name) {
  auto name = weight_name.substr(weight_name.find_last_of('/') + 1);
  if (const auto colon = name.find(':'); colon != std::string::npos) name.resize(colon);
  return name;
}

// The Keras array as a tensor in PyTorch's layout for the target parameter.
torch::Tensor to_torch_layout(const hdf5::FloatArray& array, const std::string& variable, bool depthwise) {
  std::vector<std::int64_t> shape(array.shape.begin(), array.shape.end());
  auto tensor = torch::from_blob(const_cast<float*>(array.values.data()), shape, torch::kFloat32).clone();
  if (variable == "kernel" && tensor.dim() == 4) return tensor.permute({3, 2, 0, 1}).contiguous();    // HWIO -> OIHW
  if (variable == "depthwise_kernel" && depthwise) return tensor.permute({2, 3, 0, 1}).contiguous();  // HWC1 -> C1HW
  if (variable == "kernel" && tensor.dim() == 2) return tensor.t().contiguous();                      // Dense: IO -> OI
  return tensor;
}

const std::set<std::string> kKerasClassifierLayers = {"Logits", "predictions"};

}  // namespace

KerasLoadReport load_keras_weights(Classifier& model, const std::filesystem::path& file_path) {
  auto fail = [&](const std::string& what) -> WeightsError { return WeightsError(file_path.string() + ": " + what); };
  hdf5::Handle file;
  try {
    file = hdf5::open_file_readonly(file_path);
  } catch (const hdf5::Hdf5Error& e) {
    throw WeightsError(e.what());
  }

  std::map<std::string, std::shared_ptr<torch::nn::Module>> modules;
  for (const auto& item : model.named_modules("", false)) modules[item.key()] = item.value();
  std::set<std::string> head_modules;
  for (const auto& group : model.parameter_groups()) {
    if (!group.is_head) continue;
    for (const auto& [name, module] : modules) {
      for (const auto& m : group.modules) {
        if (m.get() == module.get()) head_modules.insert(name);
      }
    }
  }

  KerasLoadReport report;
  std::set<std::string> loaded;
  torch::NoGradGuard no_grad;
  try {
    // Files written by Keras' save_weights keep the weights under a "model_weights" group
    // when saved with the whole model; weight-only files have the layers at the root.
    hdf5::Handle root = hdf5::has_dataset(file, "model_weights") ? hdf5::open_group(file, "model_weights")
                                                                 : hdf5::open_group(file, "/");
    if (!hdf5::has_attribute(root, "layer_names")) {
      throw fail("no 'layer_names' attribute: not a Keras HDF5 weights file");
    }
    for (const auto& layer : hdf5::read_string_list_attribute(root, "layer_names")) {
      const auto group = hdf5::open_group(root, layer);
      const auto weight_names = hdf5::read_string_list_attribute(group, "weight_names");
      if (weight_names.empty()) continue;  // padding, activation, add: nothing to load
      if (kKerasClassifierLayers.contains(layer)) {
        report.skipped_layers.push_back(layer);
        continue;
      }
      const auto it = modules.find(layer);
      if (it == modules.end() || head_modules.contains(layer)) {
        throw fail("layer '" + layer + "' has weights in the file but the " + model.model_name() +
                   " model has no such layer; is this a weights file for another architecture?");
      }
      auto& module = *it->second;
      const bool is_conv = module.as<torch::nn::Conv2d>() != nullptr;
      const bool is_depthwise = is_conv && module.as<torch::nn::Conv2d>()->options.groups() > 1;
      std::map<std::string, torch::Tensor> targets;
      if (auto* bn = module.as<torch::nn::BatchNorm2d>()) {
        targets = {{"gamma", bn->weight},
                   {"beta", bn->bias},
                   {"moving_mean", bn->running_mean},
                   {"moving_variance", bn->running_var}};
      } else if (auto* conv = module.as<torch::nn::Conv2d>()) {
        targets = {{is_depthwise ? "depthwise_kernel" : "kernel", conv->weight}};
        if (conv->bias.defined()) targets["bias"] = conv->bias;
      } else if (auto* dense = module.as<torch::nn::Linear>()) {
        targets = {{"kernel", dense->weight}, {"bias", dense->bias}};
      } else {
        throw fail("layer '" + layer + "' maps to a module of a kind the Keras loader does not know");
      }
      if (weight_names.size() != targets.size()) {
        throw fail("layer '" + layer + "' has " + std::to_string(weight_names.size()) +
                   " weights in the file, the model expects " + std::to_string(targets.size()));
      }
      for (const auto& weight_name : weight_names) {
        auto variable = variable_name(weight_name);
        // Keras 2 names a depthwise kernel "depthwise_kernel", Keras 3 just "kernel".
        if (is_depthwise && variable == "kernel") variable = "depthwise_kernel";
        const auto target = targets.find(variable);
        if (target == targets.end()) throw fail("layer '" + layer + "': unexpected weight '" + weight_name + "'");
        const auto array = hdf5::read_float_array(group, weight_name);
        const auto value = to_torch_layout(array, variable, is_depthwise);
        if (value.sizes() != target->second.sizes()) {
          throw fail("layer '" + layer + "' weight '" + variable + "': file has " + shape_text(value.sizes().vec()) +
                     " (in PyTorch layout), the model expects " + shape_text(target->second.sizes().vec()) +
                     "; the file is probably for another width multiplier or input channel count");
        }
        target->second.copy_(value);
        ++report.tensors_loaded;
      }
      loaded.insert(layer);
      ++report.layers_loaded;
    }
  } catch (const hdf5::Hdf5Error& e) {
    throw fail(std::string("malformed Keras weights: ") + e.what());
  }

  for (const auto& [name, module] : modules) {
    if (name.empty() || head_modules.contains(name) || loaded.contains(name)) continue;
    if (module->parameters(false).empty() && module->buffers(false).empty()) continue;
    if (module->as<torch::nn::Dropout>() != nullptr) continue;
    throw fail("the model's layer '" + name + "' has no weights in the file");
  }
  return report;
}

}  // namespace brainmri::models
