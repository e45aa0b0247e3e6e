// brainmri export's safetensors form: the weights load strictly into the plain-PyTorch twin in
// python/brainmri_models.py, which reproduces the C++ logits (and through ONNX, onnxruntime does).

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "brainmri/models/checkpoint.hpp"
#include "brainmri/models/export.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace brainmri;
using brainmri::testing::ScratchDir;

const std::string kChecker = std::string(BRAINMRI_SOURCE_DIR) + "/tests/export/check_python_twin.py";

bool python_has(const std::string& modules) {
  return brainmri::testing::run_command("python3 -c 'import " + modules + "'").exit_code == 0;
}

// A model with random weights and batch-norm statistics (so that eval mode is not the identity),
// saved as a checkpoint with a card, exported, and its logits on random images written beside it.
fs::path export_with_reference(const fs::path& dir, const std::string& architecture,
                               const models::ModelOptions& options) {
  fs::create_directories(dir);
  torch::manual_seed(11);
  auto model = models::create_model(architecture, options);
  {
    torch::NoGradGuard no_grad;
    for (auto& b : model->named_buffers()) {
      if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0, 0.2);
      if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 1.5);
    }
  }
  models::ModelCard card;
  card.class_names = {"glioma", "meningioma", "notumor", "pituitary"};
  card.preprocessing.image_size = options.image_size;
  card.preprocessing.channels = options.input_channels;
  models::save_model(*model, card, dir / "model.pt");
  models::export_model(dir / "model.pt", models::ExportFormat::Safetensors, dir);

  // One thread: the Python side computes with one, and MobileNetV2's sums differ in the last
  // digits between thread counts.
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  const auto loaded = models::load_model_from_checkpoint(dir / "model.pt", torch::kCPU);
  loaded->eval();
  const auto images = torch::rand({3, options.input_channels, options.image_size, options.image_size});
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = loaded->forward(images);
  }
  torch::set_num_threads(threads);
  models::write_safetensors(dir / "reference.safetensors", {{"images", images}, {"logits", logits}});
  return dir;
}

struct Case {
  std::string architecture;
  models::ModelOptions options;
};

std::vector<Case> cases() {
  models::ModelOptions cnn;
  cnn.image_size = 32;
  cnn.filters = {8, 16};
  cnn.dense_units = 16;
  models::ModelOptions mobilenet;
  mobilenet.image_size = 32;
  mobilenet.width_multiplier = 0.35;
  mobilenet.dense_units = 16;
  return {{"baseline_cnn", cnn}, {"mobilenet_v2", mobilenet}};
}

TEST(Export, SafetensorsHoldEveryParameterAndBufferWithTheMetadata) {
  ScratchDir scratch;
  for (const auto& c : cases()) {
    const auto dir = export_with_reference(scratch / c.architecture, c.architecture, c.options);
    std::ifstream in(dir / "model.safetensors", std::ios::binary);
    std::uint64_t header_size = 0;
    in.read(reinterpret_cast<char*>(&header_size), sizeof(header_size));
    EXPECT_EQ(header_size % 8, 0u);
    std::string header(header_size, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_size));
    const auto parsed = nlohmann::json::parse(header);
    const auto model = models::load_model_from_checkpoint(dir / "model.pt", torch::kCPU);
    EXPECT_EQ(parsed.size(), models::named_tensors(*model).size() + 1) << "every tensor, and __metadata__";
    const auto metadata = nlohmann::json::parse(std::ifstream(dir / "model.json"));
    EXPECT_EQ(metadata["format"], "brainmri-model-1");
    EXPECT_EQ(metadata["architecture"], c.architecture);
    EXPECT_EQ(metadata["class_names"][1], "meningioma");
    EXPECT_EQ(metadata["options"]["image_size"], 32);
  }
}

TEST(Export, PythonTwinReproducesTheLogits) {
  if (!python_has("torch, safetensors"))
    GTEST_SKIP() << "python3 lacks torch or safetensors (scripts/setup.sh --with-test-tools installs them in .venv)";
  ScratchDir scratch;
  for (const auto& c : cases()) {
    const auto dir = export_with_reference(scratch / c.architecture, c.architecture, c.options);
    const auto result = brainmri::testing::run_command("python3 " + brainmri::testing::shell_quote(kChecker) + " " +
                                                       brainmri::testing::shell_quote(dir / "model.safetensors") + " " +
                                                       brainmri::testing::shell_quote(dir / "model.json") + " " +
                                                       brainmri::testing::shell_quote(dir / "reference.safetensors"));
    EXPECT_EQ(result.exit_code, 0) << c.architecture << ":\n" << result.output;
    std::cout << result.output;  // the largest difference, for the log
  }
}

TEST(Export, OnnxRuntimeReproducesTheLogits) {
  if (!python_has("torch, safetensors, onnx, onnxruntime")) GTEST_SKIP() << "python3 lacks onnx or onnxruntime";
  ScratchDir scratch;
  for (const auto& c : cases()) {
    const auto dir = export_with_reference(scratch / c.architecture, c.architecture, c.options);
    const auto result =
        brainmri::testing::run_command("python3 " + brainmri::testing::shell_quote(kChecker) + " " +
                                       brainmri::testing::shell_quote(dir / "model.safetensors") + " " +
                                       brainmri::testing::shell_quote(dir / "model.json") + " " +
                                       brainmri::testing::shell_quote(dir / "reference.safetensors") + " --onnx");
    EXPECT_EQ(result.exit_code, 0) << c.architecture << ":\n" << result.output;
    std::cout << result.output;  // the largest difference, for the log
  }
}

}  // namespace
