// Models: shapes and parameter counts, Keras padding, freezing, and the Keras weight loader on
// small files written here in Keras' HDF5 layout.

#include <gtest/gtest.h>

#include "brainmri/data/hdf5.hpp"
#include "brainmri/models/baseline_cnn.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/models/keras_weights.hpp"
#include "brainmri/models/mobilenet_v2.hpp"
#include "test_support.hpp"

using namespace brainmri::models;
namespace hdf5 = brainmri::hdf5;
using brainmri::testing::ScratchDir;

namespace {

std::int64_t parameter_count(torch::nn::Module& module) {
  std::int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

std::int64_t backbone_parameter_count(Classifier& model) {
  std::int64_t total = 0;
  for (const auto& group : model.parameter_groups()) {
    if (group.is_head) continue;
    for (const auto& module : group.modules) {
      for (const auto& p : module->parameters()) total += p.numel();
      for (const auto& b : module->buffers()) {
        if (b.dim() == 1 && b.dtype() == torch::kFloat32) total += b.numel();  // BN moving statistics
      }
    }
  }
  return total;
}

ModelOptions mobilenet_options(double alpha, int size = 128) {
  ModelOptions o;
  o.width_multiplier = alpha;
  o.image_size = size;
  return o;
}

// Writes one Keras-layout layer: group <layer> with attribute weight_names (fixed-length
// strings, as Keras 2 writes them) and datasets <layer>/<layer>/<name>:0.
void write_keras_layer(hid_t file, const std::string& layer,
                       const std::vector<std::pair<std::string, torch::Tensor>>& weights) {
  hdf5::Handle group(H5Gcreate2(file, layer.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  std::vector<std::string> names;
  for (const auto& [name, tensor] : weights) {
    const auto full = layer + "/" + name + ":0";
    names.push_back(full);
    const auto contiguous = tensor.contiguous();
    std::vector<hsize_t> shape(contiguous.sizes().begin(), contiguous.sizes().end());
    hdf5::write_float_array(
        group, full, shape,
        std::vector<float>(contiguous.data_ptr<float>(), contiguous.data_ptr<float>() + contiguous.numel()));
  }
  std::size_t width = 1;
  for (const auto& n : names) width = std::max(width, n.size());
  hdf5::Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, width);
  const hsize_t count = names.size();
  hdf5::Handle space(count ? H5Screate_simple(1, &count, nullptr) : H5Screate(H5S_NULL), H5Sclose);
  hdf5::Handle attribute(H5Acreate2(group, "weight_names", type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::vector<char> packed(names.size() * width, '\0');
  for (std::size_t i = 0; i < names.size(); ++i)
    std::copy(names[i].begin(), names[i].end(), packed.begin() + static_cast<std::ptrdiff_t>(i * width));
  if (count) H5Awrite(attribute, type, packed.data());
}

void write_layer_names(hid_t file, const std::vector<std::string>& layers) {
  std::size_t width = 1;
  for (const auto& n : layers) width = std::max(width, n.size());
  hdf5::Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, width);
  const hsize_t count = layers.size();
  hdf5::Handle space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  hdf5::Handle attribute(H5Acreate2(file, "layer_names", type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::vector<char> packed(layers.size() * width, '\0');
  for (std::size_t i = 0; i < layers.size(); ++i)
    std::copy(layers[i].begin(), layers[i].end(), packed.begin() + static_cast<std::ptrdiff_t>(i * width));
  H5Awrite(attribute, type, packed.data());
}

// Exports `model`'s backbone in Keras' layout and conventions (HWIO kernels, gamma/beta/...).
void export_as_keras(MobileNetV2& model, const std::filesystem::path& path, const std::string& drop_layer = "",
                     bool with_classifier = false) {
  auto file = hdf5::create_file(path);
  std::vector<std::string> layers;
  for (const auto& item : model.named_modules("", false)) {
    const auto& name = item.key();
    if (name.empty() || name == drop_layer || name == "dense" || name == "logits" || name == "dropout") continue;
    if (auto* conv = item.value()->as<torch::nn::Conv2d>()) {
      const bool depthwise = conv->options.groups() > 1;
      write_keras_layer(file, name,
                        {{depthwise ? "depthwise_kernel" : "kernel",
                          depthwise ? conv->weight.permute({2, 3, 0, 1}) : conv->weight.permute({2, 3, 1, 0})}});
    } else if (auto* bn = item.value()->as<torch::nn::BatchNorm2d>()) {
      write_keras_layer(file, name,
                        {{"gamma", bn->weight.detach()},
                         {"beta", bn->bias.detach()},
                         {"moving_mean", bn->running_mean},
                         {"moving_variance", bn->running_var}});
    } else {
      continue;
    }
    layers.push_back(name);
    if (name == "Conv1") {  // a weightless layer, as Keras files list them
      write_keras_layer(file, "Conv1_relu", {});
      layers.push_back("Conv1_relu");
    }
  }
  if (with_classifier) {
    write_keras_layer(file, "Logits", {{"kernel", torch::randn({1280, 1000})}, {"bias", torch::zeros({1000})}});
    layers.push_back("Logits");
  }
  write_layer_names(file, layers);
}

void randomize_statistics(MobileNetV2& model, int seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (const auto& item : model.named_modules("", false)) {
    if (auto* bn = item.value()->as<torch::nn::BatchNorm2d>()) {
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0, 0.1);
      bn->running_mean.normal_(0, 0.1);
      bn->running_var.uniform_(0.5, 1.5);
    }
  }
}

}  // namespace

TEST(ModelRegistry, BuildsByNameAndRejectsUnknownNames) {
  EXPECT_EQ(registered_models(), (std::vector<std::string>{"baseline_cnn", "mobilenet_v2"}));
  EXPECT_EQ(create_model("baseline_cnn", {})->model_name(), "baseline_cnn");
  try {
    create_model("resnet", {});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("baseline_cnn, mobilenet_v2"), std::string::npos);
  }
}

TEST(BaselineCnn, ShapesAndParameterCountOfThePaperNetwork) {
  auto model = create_model("baseline_cnn", {});
  model->eval();
  const auto out = model->forward_with_features(torch::rand({2, 1, 128, 128}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<std::int64_t>{2, 4}));
  EXPECT_EQ(out.features.sizes(), (std::vector<std::int64_t>{2, 128, 32, 32}));  // the last conv, before pooling
  // conv 320 + 18,496 + 73,856; dense 128*16*16*128 + 128; logits 516
  EXPECT_EQ(parameter_count(*model), 320 + 18496 + 73856 + 4194432 + 516);
  EXPECT_EQ(model->backbone_group_names(), (std::vector<std::string>{"block_1", "block_2", "block_3"}));
}

TEST(MobileNetV2, ParameterCountsMatchKerasForEveryWidth) {
  // keras.applications.MobileNetV2(alpha=a, include_top=False).count_params(), Keras 3.15.
  const std::vector<std::pair<double, std::int64_t>> expected = {{0.35, 410208}, {0.5, 706224},  {0.75, 1382064},
                                                                 {1.0, 2257984}, {1.3, 3766048}, {1.4, 4363712}};
  for (const auto& [alpha, count] : expected) {
    MobileNetV2 model(mobilenet_options(alpha));
    EXPECT_EQ(backbone_parameter_count(model), count) << "alpha " << alpha;
  }
}

TEST(MobileNetV2, OutputShapesForEvenAndOddInputs) {
  MobileNetV2 model(mobilenet_options(0.35));
  model.eval();
  const auto even = model.forward_with_features(torch::rand({1, 1, 128, 128}));
  EXPECT_EQ(even.features.sizes(), (std::vector<std::int64_t>{1, 1280, 4, 4}));
  EXPECT_EQ(even.logits.sizes(), (std::vector<std::int64_t>{1, 4}));
  const auto odd = model.forward_with_features(torch::rand({1, 1, 97, 97}));
  EXPECT_EQ(odd.features.sizes(), (std::vector<std::int64_t>{1, 1280, 4, 4}));
}

TEST(KerasPadding, PadsOnlyBottomRightOnEvenSidesAndBothOnOdd) {
  const auto even = keras_stride2_pad(torch::ones({1, 1, 4, 6}));
  EXPECT_EQ(even.sizes(), (std::vector<std::int64_t>{1, 1, 5, 7}));
  EXPECT_EQ(even[0][0][0][0].item<float>(), 1.0f);  // nothing added on top/left
  EXPECT_EQ(even[0][0][4][0].item<float>(), 0.0f);  // one zero row at the bottom
  EXPECT_EQ(even[0][0][0][6].item<float>(), 0.0f);  // one zero column on the right
  const auto odd = keras_stride2_pad(torch::ones({1, 1, 5, 5}));
  EXPECT_EQ(odd.sizes(), (std::vector<std::int64_t>{1, 1, 7, 7}));
  EXPECT_EQ(odd[0][0][0][0].item<float>(), 0.0f);
}

TEST(KerasPadding, GradientMatchesFiniteDifferences) {
  // The padded stride-2 convolution path, in double precision, against central differences.
  torch::manual_seed(3);
  auto input = torch::randn({1, 2, 6, 6}, torch::kFloat64).requires_grad_(true);
  const auto weight = torch::randn({3, 2, 3, 3}, torch::kFloat64);
  auto f = [&](const torch::Tensor& x) { return torch::conv2d(keras_stride2_pad(x), weight, {}, 2).pow(2).sum(); };
  f(input).backward();
  const auto analytic = input.grad().clone();
  const double h = 1e-6;
  auto flat = input.detach().clone().view(-1);
  double worst = 0;
  for (std::int64_t i = 0; i < flat.numel(); ++i) {
    auto plus = flat.clone();
    auto minus = flat.clone();
    plus[i] += h;
    minus[i] -= h;
    const double numeric = (f(plus.view_as(input)).item<double>() - f(minus.view_as(input)).item<double>()) / (2 * h);
    worst = std::max(worst, std::abs(numeric - analytic.view(-1)[i].item<double>()));
  }
  EXPECT_LT(worst, 1e-6);
}

TEST(Freezing, FrozenBackboneTrainsOnlyTheHeadAndKeepsItsBatchNormInInference) {
  MobileNetV2 model(mobilenet_options(0.35));
  model.set_trainable_backbone_groups(0);
  model.train();
  for (const auto& item : model.named_parameters()) {
    const bool head = item.key().starts_with("dense") || item.key().starts_with("logits");
    EXPECT_EQ(item.value().requires_grad(), head) << item.key();
  }
  for (const auto& item : model.named_modules("", false)) {
    if (item.value()->as<torch::nn::BatchNorm2d>()) {
      EXPECT_FALSE(item.value()->is_training()) << item.key();
    }
  }
  EXPECT_TRUE(model.named_modules("", false)["dense"]->is_training());

  model.set_trainable_from("block_13_expand");  // blocks 13-16 and Conv_1 train
  model.train();
  const auto modules = model.named_modules("", false);
  EXPECT_TRUE(modules["block_13_expand_BN"]->is_training());
  EXPECT_TRUE(modules["Conv_1_bn"]->is_training());
  EXPECT_FALSE(modules["block_12_project_BN"]->is_training());
  EXPECT_FALSE(model.named_parameters()["block_12_project.weight"].requires_grad());
  EXPECT_TRUE(model.named_parameters()["block_14_depthwise.weight"].requires_grad());
  EXPECT_THROW(model.set_trainable_from("block_99"), std::invalid_argument);

  model.set_trainable_backbone_groups(-1);
  for (const auto& p : model.parameters()) EXPECT_TRUE(p.requires_grad());
}

TEST(KerasWeights, RoundTripThroughAFileInKerasLayout) {
  ScratchDir scratch;
  MobileNetV2 source(mobilenet_options(0.35));
  randomize_statistics(source, 1);
  export_as_keras(source, scratch / "weights.h5", "", true);

  MobileNetV2 target(mobilenet_options(0.35));
  const auto report = load_keras_weights(target, scratch / "weights.h5");
  EXPECT_EQ(report.skipped_layers, (std::vector<std::string>{"Logits"}));
  EXPECT_EQ(report.layers_loaded, 104);  // every conv and batch-norm layer of the backbone
  source.eval();
  target.eval();
  const auto input = torch::rand({1, 3, 96, 96}) * 2 - 1;
  EXPECT_TRUE(torch::allclose(source.backbone_features(input), target.backbone_features(input), 1e-6, 1e-6));
}

TEST(KerasWeights, MissingLayersAndOtherWidthsAreErrorsNamingTheLayer) {
  ScratchDir scratch;
  MobileNetV2 source(mobilenet_options(0.35));
  export_as_keras(source, scratch / "missing.h5", "block_5_project_BN");
  MobileNetV2 target(mobilenet_options(0.35));
  try {
    load_keras_weights(target, scratch / "missing.h5");
    FAIL();
  } catch (const WeightsError& e) {
    EXPECT_NE(std::string(e.what()).find("'block_5_project_BN' has no weights in the file"), std::string::npos)
        << e.what();
  }

  export_as_keras(source, scratch / "narrow.h5");
  MobileNetV2 wide(mobilenet_options(1.0));
  try {
    load_keras_weights(wide, scratch / "narrow.h5");
    FAIL();
  } catch (const WeightsError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'Conv1'"), std::string::npos) << message;
    EXPECT_NE(message.find("[16, 3, 3, 3]"), std::string::npos) << message;
    EXPECT_NE(message.find("[32, 3, 3, 3]"), std::string::npos) << message;
    EXPECT_NE(message.find("width multiplier"), std::string::npos) << message;
  }

  BaselineCnn baseline({});
  EXPECT_THROW(load_keras_weights(baseline, scratch / "narrow.h5"), WeightsError);
  EXPECT_THROW(load_keras_weights(wide, scratch / "absent.h5"), WeightsError);
}

TEST(MobileNetV2, InPlaceActivationsGiveTheTrueGradient) {
  // hardtanh_ overwrites batch-norm outputs; the gradient autograd returns must still be the
  // derivative of the loss. Checked in double precision against a central difference along a
  // random direction, in training mode (batch statistics), without dropout.
  torch::manual_seed(4);
  auto options = mobilenet_options(0.35, 32);
  options.dropout = 0.0;
  MobileNetV2 model(options);
  model.to(torch::kFloat64);
  model.train();
  const auto images = torch::rand({4, 1, 32, 32}, torch::kFloat64);
  const auto labels = torch::tensor({0, 1, 2, 3});
  auto loss = [&] { return torch::nn::functional::cross_entropy(model.forward(images), labels); };
  loss().backward();
  auto weight = model.named_parameters()["block_2_expand.weight"];
  const auto direction = torch::randn_like(weight);
  const double analytic = (weight.grad() * direction).sum().item<double>();
  // Batch norm over tiny batches makes the loss rough at larger steps; 1e-7 is in the linear range.
  const double h = 1e-7;
  double values[2];
  {
    torch::NoGradGuard no_grad;
    for (int sign = 0; sign < 2; ++sign) {
      weight.add_(direction, sign == 0 ? h : -2 * h);
      values[sign] = loss().item<double>();
    }
    weight.add_(direction, h);
  }
  const double numeric = (values[0] - values[1]) / (2 * h);
  EXPECT_GT(std::abs(analytic), 1e-6);
  EXPECT_NEAR(numeric, analytic, 1e-5 * std::abs(analytic));
}

// --- TorchScript export -----------------------------------------------------------------------

#include <torch/script.h>

#include "brainmri/models/torchscript_export.hpp"

TEST(TorchScriptExport, TheLoadedModuleGivesTheModelsLogits) {
  for (const std::string name : {"baseline_cnn", "mobilenet_v2"}) {
    SCOPED_TRACE(name);
    brainmri::models::ModelOptions options;
    options.image_size = 64;
    options.width_multiplier = 0.35;
    options.filters = {8, 16};
    auto model = brainmri::models::create_model(name, options);
    model->train();
    // A few training steps, so batch-norm statistics are not the initial ones.
    torch::optim::SGD sgd(model->parameters(), 0.01);
    for (int i = 0; i < 2; ++i) {
      sgd.zero_grad();
      torch::nn::functional::cross_entropy(model->forward(torch::rand({4, 1, 64, 64})), torch::tensor({0, 1, 2, 3}))
          .backward();
      sgd.step();
    }
    const auto file = std::filesystem::temp_directory_path() / ("brainmri-export-" + name + ".pt");
    brainmri::models::export_torchscript(*model, file);
    EXPECT_TRUE(model->is_training());  // left as it was
    auto loaded = torch::jit::load(file.string());
    const auto images = torch::rand({3, 1, 64, 64});
    model->eval();
    torch::NoGradGuard no_grad;
    const auto expected = model->forward(images);
    const auto got = loaded.forward({images}).toTensor();
    EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-5)) << (got - expected).abs().max();
    // A batch size other than the traced one works too.
    EXPECT_EQ(loaded.forward({torch::rand({5, 1, 64, 64})}).toTensor().sizes(), (std::vector<std::int64_t>{5, 4}));
    std::filesystem::remove(file);
  }
}
