// Grad-CAM and Grad-CAM++ on networks whose answer is known.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <tuple>

#include "brainmri/explain/gradcam.hpp"

using namespace brainmri;
using brainmri::explain::CamMethod;

namespace {

// Logits are ±(mean of the activations), and the activations are the image itself, average-pooled
// by `pool`: the evidence for class 0 is exactly where the image is bright, and class 1 has none.
class Probe : public models::Classifier {
 public:
  explicit Probe(int pool) : Classifier(models::ModelOptions{}), pool_(pool) {
    sign_ = register_parameter("sign", torch::tensor({1.0f, -1.0f}));
  }
  std::string model_name() const override { return "probe"; }
  std::string input_normalization() const override { return "none"; }
  std::vector<std::string> explainable_layers() const override { return {"pool"}; }
  models::FeaturesAndLogits forward_with_features(const torch::Tensor& images) override {
    const auto features = pool_ > 1 ? torch::avg_pool2d(images, pool_) : images * 1.0;
    const auto evidence = features.mean({1, 2, 3});
    return {features, torch::stack({evidence * sign_[0], evidence * sign_[1]}, 1)};
  }

 private:
  int pool_;
  torch::Tensor sign_;
};

}  // namespace

TEST(GradCam, OnALinearProbeTheMapIsTheNormalizedEvidence) {
  Probe probe(1);
  const auto images = torch::rand({3, 1, 16, 16}) + 0.01;
  for (const auto method : {CamMethod::GradCam, CamMethod::GradCamPlusPlus}) {
    SCOPED_TRACE(explain::to_string(method));
    const auto cam = explain::class_activation_maps(probe, images, torch::zeros({3}, torch::kInt64), method);
    ASSERT_EQ(cam.maps.sizes(), (std::vector<std::int64_t>{3, 16, 16}));
    const auto expected = images.squeeze(1) / images.flatten(1).amax(1).view({-1, 1, 1});
    EXPECT_TRUE(torch::allclose(cam.maps, expected, 1e-5, 1e-6)) << (cam.maps - expected).abs().max();
    // Class 1's evidence is negative everywhere: after the ReLU nothing is left, and a flat map stays 0.
    const auto none = explain::class_activation_maps(probe, images, torch::ones({3}, torch::kInt64), method);
    EXPECT_EQ(none.maps.abs().max().item<float>(), 0.0f);
  }
  // Without target classes, each image's predicted class is explained (here class 0).
  EXPECT_TRUE(explain::class_activation_maps(probe, images).classes.eq(0).all().item<bool>());
}

TEST(GradCam, ACoarseMapIsUpsampledAndPeaksOnTheBrightBlob) {
  Probe probe(4);  // 32x32 input, 8x8 activations
  auto images = torch::full({2, 1, 32, 32}, 0.05);
  images.index_put_({0, 0, torch::indexing::Slice(4, 12), torch::indexing::Slice(20, 28)}, 1.0);  // top right
  images.index_put_({1, 0, torch::indexing::Slice(22, 30), torch::indexing::Slice(2, 10)}, 1.0);  // bottom left
  const auto cam = explain::class_activation_maps(probe, images, torch::zeros({2}, torch::kInt64));
  ASSERT_EQ(cam.maps.sizes(), (std::vector<std::int64_t>{2, 32, 32}));
  for (int i = 0; i < 2; ++i) {
    const auto peak = cam.maps[i].argmax().item<std::int64_t>();
    const auto row = peak / 32, column = peak % 32;
    EXPECT_NEAR(cam.maps[i].max().item<float>(), 1.0f, 1e-6);
    EXPECT_GE(cam.maps[i].min().item<float>(), 0.0f);
    if (i == 0) {
      EXPECT_TRUE(row >= 4 && row < 12 && column >= 20 && column < 28) << row << "," << column;
    } else {
      EXPECT_TRUE(row >= 22 && row < 30 && column >= 2 && column < 10) << row << "," << column;
    }
  }
  // A batch gives each image the map it gets alone.
  const auto alone = explain::class_activation_maps(probe, images.narrow(0, 1, 1), torch::zeros({1}, torch::kInt64));
  EXPECT_TRUE(torch::allclose(alone.maps[0], cam.maps[1], 1e-6, 1e-6));
}

TEST(GradCam, WorksOnAFrozenMobileNetAndLeavesItsModeAsItWas) {
  models::ModelOptions options;
  options.image_size = 64;
  options.width_multiplier = 0.35;
  auto model = models::create_model("mobilenet_v2", options);
  model->set_trainable_backbone_groups(0);  // frozen backbone: its parameters need no gradient
  model->train();
  const auto images = torch::rand({4, 1, 64, 64});
  for (const auto method : {CamMethod::GradCam, CamMethod::GradCamPlusPlus}) {
    const auto cam = explain::class_activation_maps(*model, images, std::nullopt, method);
    ASSERT_EQ(cam.maps.sizes(), (std::vector<std::int64_t>{4, 64, 64}));
    EXPECT_TRUE(torch::isfinite(cam.maps).all().item<bool>());
    EXPECT_GE(cam.maps.min().item<float>(), 0.0f);
    EXPECT_LE(cam.maps.max().item<float>(), 1.0f + 1e-6f);
    EXPECT_TRUE(torch::allclose(cam.probabilities.sum(1), torch::ones({4}), 1e-5, 1e-5));
  }
  EXPECT_TRUE(model->is_training());
  for (const auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined());  // no gradient left on the weights
}

// Behind global average pooling the gradient of the class score is the same at every position of
// the pooled map, so HiResCAM's position-wise product equals Grad-CAM's mean-gradient weighting.
TEST(GradCam, HiResCamEqualsGradCamBehindGlobalAveragePooling) {
  models::ModelOptions options;
  options.image_size = 64;
  options.width_multiplier = 0.35;
  torch::manual_seed(5);
  auto model = models::create_model("mobilenet_v2", options);
  const auto images = torch::rand({3, 1, 64, 64});
  const auto plain = explain::class_activation_maps(*model, images, std::nullopt, CamMethod::GradCam);
  const auto high_resolution = explain::class_activation_maps(*model, images, std::nullopt, CamMethod::HiResCam);
  EXPECT_TRUE(torch::allclose(plain.maps, high_resolution.maps, 1e-4, 1e-5));
  // Behind the paper CNN's Flatten + Dense head the two differ.
  auto cnn = models::create_model("baseline_cnn", options);
  EXPECT_FALSE(torch::allclose(explain::class_activation_maps(*cnn, images, std::nullopt, CamMethod::GradCam).maps,
                               explain::class_activation_maps(*cnn, images, std::nullopt, CamMethod::HiResCam).maps,
                               1e-3, 1e-3));
}

TEST(GradCam, ExplainsAnyNamedLayerAndRejectsUnknownOnes) {
  models::ModelOptions options;
  options.image_size = 64;
  options.width_multiplier = 0.35;
  auto mobilenet = models::create_model("mobilenet_v2", options);
  const auto layers = mobilenet->explainable_layers();
  ASSERT_EQ(layers.size(), 19u);
  EXPECT_EQ(layers.front(), "Conv1");
  EXPECT_EQ(layers[1], "expanded_conv");
  EXPECT_EQ(layers.back(), "Conv_1");
  EXPECT_EQ(mobilenet->explained_layer(), "Conv_1");
  const auto images = torch::rand({2, 1, 64, 64});
  torch::NoGradGuard no_gradients;
  mobilenet->eval();
  const auto logits = mobilenet->forward(images);
  // Spatial size and channels of the selected layer; the logits do not depend on the choice.
  for (const auto& [layer, channels, side] : std::vector<std::tuple<std::string, int, int>>{
           {"Conv1", 16, 32}, {"block_5", 16, 8}, {"block_12", 32, 4}, {"Conv_1", 1280, 2}}) {
    mobilenet->set_explained_layer(layer);
    const auto out = mobilenet->forward_with_features(images);
    EXPECT_EQ(out.features.sizes(), (std::vector<std::int64_t>{2, channels, side, side})) << layer;
    EXPECT_TRUE(torch::equal(out.logits, logits)) << layer;
  }
  EXPECT_THROW(mobilenet->set_explained_layer("block_99"), std::invalid_argument);
  mobilenet->set_explained_layer("");
  EXPECT_EQ(mobilenet->explained_layer(), "Conv_1");

  auto cnn = models::create_model("baseline_cnn", options);
  EXPECT_EQ(cnn->explainable_layers(), (std::vector<std::string>{"conv1", "conv2", "conv3"}));
  cnn->set_explained_layer("conv2");
  EXPECT_EQ(cnn->forward_with_features(images).features.sizes(), (std::vector<std::int64_t>{2, 64, 32, 32}));
  try {
    cnn->set_explained_layer("Conv_1");
    FAIL() << "an unknown layer was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("conv1, conv2, conv3"), std::string::npos) << e.what();
  }
}
