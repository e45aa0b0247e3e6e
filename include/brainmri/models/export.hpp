#pragma once
// A trained model for use outside brainmri (`brainmri export`):
// - torchscript: model.torchscript.pt, a module torch.jit.load runs (torchscript_export.hpp);
// - safetensors: model.safetensors, the weights under the names of the plain-PyTorch definition
//   in python/brainmri_models.py, and model.json, the architecture, classes and preprocessing
//   that python/brainmri_models.py builds the module from — the way to torch.export and ONNX
//   (tools/export_onnx.py).

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "brainmri/common/enum_names.hpp"
#include "brainmri/models/checkpoint.hpp"

namespace brainmri::models {

enum class ExportFormat { TorchScript, Safetensors, All };

// A safetensors file (https://huggingface.co/docs/safetensors): little-endian 64-bit header
// length, the JSON header (dtype, shape and byte range of each tensor), then the tensors'
// bytes. Tensors are written contiguous, on the CPU, in the order given.
void write_safetensors(const std::filesystem::path& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

// Every parameter and buffer of the model by its module path ("conv1.weight",
// "bn_Conv1.running_mean"), in registration order.
std::vector<std::pair<std::string, torch::Tensor>> named_tensors(const Classifier& model);

// model.json: {"format": "brainmri-model-1", "architecture", "options", "class_names",
// "preprocessing", "explained_layer", "provenance"}.
nlohmann::json export_metadata(const Classifier& model, const ModelCard& card);

// Writes the chosen formats of the checkpoint's model into `directory` (created); returns the
// files written. Throws std::runtime_error naming the checkpoint when it cannot be read.
std::vector<std::filesystem::path> export_model(const std::filesystem::path& checkpoint, ExportFormat format,
                                                const std::filesystem::path& directory);

}  // namespace brainmri::models

namespace brainmri {
template <>
struct EnumNames<models::ExportFormat> {
  static constexpr std::string_view what = "format";
  static constexpr std::array names = {std::pair{models::ExportFormat::TorchScript, std::string_view("torchscript")},
                                       std::pair{models::ExportFormat::Safetensors, std::string_view("safetensors")},
                                       std::pair{models::ExportFormat::All, std::string_view("all")}};
};
}  // namespace brainmri
