#include "brainmri/models/export.hpp"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/models/torchscript_export.hpp"

namespace brainmri::models {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string safetensors_dtype(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return "F32";
    case torch::kFloat64: return "F64";
    case torch::kFloat16: return "F16";
    case torch::kBFloat16: return "BF16";
    case torch::kInt64: return "I64";
    case torch::kInt32: return "I32";
    case torch::kUInt8: return "U8";
    case torch::kBool: return "BOOL";
    default: throw std::invalid_argument(std::string("safetensors: no dtype for ") + c10::toString(type));
  }
}

}  // namespace

void write_safetensors(const fs::path& file, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::vector<torch::Tensor> bytes;
  json header = json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (header.contains(name)) throw std::invalid_argument("safetensors: two tensors are named " + name);
    auto cpu = tensor.detach().to(torch::kCPU).contiguous();
    const auto size = static_cast<std::uint64_t>(cpu.numel()) * cpu.element_size();
    header[name] = {{"dtype", safetensors_dtype(cpu.scalar_type())},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + size}}};
    offset += size;
    bytes.push_back(std::move(cpu));
  }
  header["__metadata__"] = {{"format", "pt"}};
  auto text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  replace_file_atomically(file, [&](const fs::path& temporary) {
    std::ofstream out(temporary, std::ios::binary);
    // The format is little-endian; so is every machine brainmri builds for (x86-64, aarch64).
    const std::uint64_t length = text.size();
    out.write(reinterpret_cast<const char*>(&length), sizeof(length));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : bytes)
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    out.close();
    if (!out) throw std::runtime_error("cannot write " + file.string());
  });
}

std::vector<std::pair<std::string, torch::Tensor>> named_tensors(const Classifier& model) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : model.named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) tensors.emplace_back(b.key(), b.value());
  return tensors;
}

json export_metadata(const Classifier& model, const ModelCard& card) {
  auto architecture = architecture_json(model);
  const auto name = architecture.at("model").get<std::string>();
  architecture.erase("model");
  auto metadata = to_json(card);
  metadata["format"] = "brainmri-model-1";
  metadata["architecture"] = name;
  metadata["options"] = architecture;
  metadata["input"] =
      "float32 images [N, channels, image_size, image_size], values in [0, 1] (stored value x normalization_scale)";
  metadata["output"] = "logits [N, classes]; softmax gives the class probabilities";
  return metadata;
}

std::vector<fs::path> export_model(const fs::path& checkpoint, ExportFormat format, const fs::path& directory) {
  auto loaded = load_checkpoint(checkpoint, torch::kCPU);
  loaded.model->eval();
  fs::create_directories(directory);
  std::vector<fs::path> written;
  if (format == ExportFormat::TorchScript || format == ExportFormat::All) {
    written.push_back(directory / "model.torchscript.pt");
    export_torchscript(*loaded.model, written.back());
  }
  if (format == ExportFormat::Safetensors || format == ExportFormat::All) {
    ModelCard card;
    if (loaded.card) {
      card = *loaded.card;
    } else {
      // A checkpoint from before model cards: the input is known, the class names are not.
      card.preprocessing.image_size = loaded.model->options().image_size;
      card.preprocessing.channels = loaded.model->options().input_channels;
      for (int k = 0; k < loaded.model->options().num_classes; ++k)
        card.class_names.push_back("class " + std::to_string(k));
      card.provenance["note"] =
          "exported from a checkpoint without a model card: class names and resizing are defaults";
    }
    card.provenance["checkpoint"] = fs::absolute(checkpoint).string();
    written.push_back(directory / "model.safetensors");
    write_safetensors(written.back(), named_tensors(*loaded.model));
    written.push_back(directory / "model.json");
    write_file_atomically(written.back(), export_metadata(*loaded.model, card).dump(2) + "\n");
  }
  return written;
}

}  // namespace brainmri::models
