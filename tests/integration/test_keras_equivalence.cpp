// The port against Keras itself: features computed by keras.applications.MobileNetV2 for fixed
// inputs (tools/make_keras_reference.py) must be reproduced to 1e-4 relative error.

#include <gtest/gtest.h>

#include "brainmri/data/hdf5.hpp"
#include "brainmri/models/keras_weights.hpp"
#include "brainmri/models/mobilenet_v2.hpp"

using namespace brainmri::models;
namespace hdf5 = brainmri::hdf5;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = BRAINMRI_KERAS_FIXTURES;
const fs::path kPretrained = BRAINMRI_PRETRAINED_DIR;

torch::Tensor read_tensor(hid_t file, const std::string& path) {
  const auto array = hdf5::read_float_array(file, path);
  std::vector<std::int64_t> shape(array.shape.begin(), array.shape.end());
  return torch::from_blob(const_cast<float*>(array.values.data()), shape, torch::kFloat32).clone();
}

// max |ours - keras| / max |keras| over the whole feature map.
double relative_error(const torch::Tensor& ours, const torch::Tensor& keras) {
  return (ours - keras).abs().max().item<double>() / keras.abs().max().item<double>();
}

torch::Tensor features_nhwc(MobileNetV2& model, const torch::Tensor& input_nhwc) {
  torch::NoGradGuard no_grad;
  const auto images = input_nhwc.permute({0, 3, 1, 2}).contiguous();
  return model.backbone_features(model.adapt_input(images)).permute({0, 2, 3, 1}).contiguous();
}

void check_variant(const std::string& variant, double alpha, const fs::path& weights) {
  const auto reference = hdf5::open_file_readonly(kFixtures / "reference_features.h5");
  for (const std::string input : {"pattern", "mri", "odd"}) {
    const auto image = read_tensor(reference, "inputs/" + input);
    ModelOptions options;
    options.width_multiplier = alpha;
    options.image_size = static_cast<int>(image.size(1));
    MobileNetV2 model(options);
    load_keras_weights(model, weights);
    model.eval();
    const auto ours = features_nhwc(model, image);
    const auto keras = read_tensor(reference, "features/" + variant + "/" + input);
    ASSERT_EQ(ours.sizes(), keras.sizes()) << variant << " " << input;
    EXPECT_GT(keras.abs().max().item<double>(), 0.1) << "degenerate reference " << variant << " " << input;
    const double error = relative_error(ours, keras);
    EXPECT_LT(error, 1e-4) << variant << " input " << input;
    std::cout << "[ keras    ] " << variant << " " << input << ": relative error " << error << "\n";
  }
}

}  // namespace

TEST(KerasEquivalence, RandomWeightsCommittedFixture) {
  check_variant("random_0.35", 0.35, kFixtures / "mobilenet_v2_0.35_random.h5");
}

TEST(KerasEquivalence, RealImageNetWeights) {
  bool any = false;
  for (const auto& [variant, alpha] :
       std::vector<std::pair<std::string, double>>{{"imagenet_0.35", 0.35}, {"imagenet_1.0", 1.0}}) {
    const auto file = kPretrained / "keras" / ("mobilenet_v2_" + variant.substr(9) + "_no_top.h5");
    if (!fs::exists(file)) continue;
    any = true;
    check_variant(variant, alpha, file);
  }
  if (!any) GTEST_SKIP() << "no ImageNet weights under " << kPretrained;
}

TEST(PretrainedFeatures, MirrorImagesAgreeAndDifferentImagesDoNot) {
  const auto file = kPretrained / "keras" / "mobilenet_v2_1.0_no_top.h5";
  if (!fs::exists(file)) GTEST_SKIP() << "no ImageNet weights at " << file;
  MobileNetV2 model(ModelOptions{});
  load_keras_weights(model, file);
  model.eval();
  const auto reference = hdf5::open_file_readonly(kFixtures / "reference_features.h5");
  auto embed = [&](const torch::Tensor& nhwc) { return features_nhwc(model, nhwc).mean({1, 2}).flatten(); };
  const auto mri = read_tensor(reference, "inputs/mri");
  const auto a = embed(mri);
  const auto mirrored = embed(mri.flip({2}));
  const auto other = embed(read_tensor(reference, "inputs/pattern"));
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
  EXPECT_GT(a.std().item<double>(), 1e-3);  // non-trivial features
  const double same = torch::cosine_similarity(a, mirrored, 0).item<double>();
  const double different = torch::cosine_similarity(a, other, 0).item<double>();
  std::cout << "[ features ] cosine(image, mirror) = " << same << ", cosine(image, other) = " << different << "\n";
  EXPECT_GT(same, 0.9);
  EXPECT_LT(different, same - 0.2);
}
