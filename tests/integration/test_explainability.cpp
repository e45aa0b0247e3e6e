// Checks of the explanations themselves: a map must point at the evidence, and must change when
// the model's weights are randomized.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/explain/gradcam.hpp"
#include "brainmri/explain/localization_check.hpp"
#include "brainmri/models/classifier.hpp"
#include "packer.hpp"
#include "test_support.hpp"

using namespace brainmri;
using namespace brainmri::testing;

TEST(SpearmanCorrelation, MatchesHandComputedValuesWithTies) {
  const auto a = torch::tensor({1.0, 2.0, 3.0, 4.0});
  EXPECT_NEAR(explain::spearman_correlation(a, a * 10 + 3), 1.0, 1e-12);
  EXPECT_NEAR(explain::spearman_correlation(a, -a), -1.0, 1e-12);
  // Ranks (0.5, 0.5, 2) and (0, 1, 2): 1.5 / sqrt(1.5 * 2).
  EXPECT_NEAR(explain::spearman_correlation(torch::tensor({1.0, 1.0, 2.0}), torch::tensor({1.0, 2.0, 3.0})),
              1.5 / std::sqrt(3.0), 1e-12);
  EXPECT_TRUE(
      std::isnan(explain::spearman_correlation(torch::ones({5}), a.narrow(0, 0, 4).repeat({2}).narrow(0, 0, 5))));
}

// The localization check (explain/localization_check) with the paper's CNN, scaled down, on real
// MRI slices from the bundled sample: the network must learn the discs, and the method of record
// (HiResCAM) must both localize them and change when the weights are randomized.
TEST(LocalizationCheck, HiResCamPeaksInsideTheDecisiveDiscAndChangesWhenWeightsAreRandomized) {
  ScratchDir scratch;
  prep::PackOptions pack;
  pack.output = scratch / "packed";
  pack.discovery.roots = {BRAINMRI_SAMPLE_DIR};
  pack.preprocess.size = 64;
  prep::pack_dataset(pack);
  const data::ShardedDataset sample(pack.output);
  const auto backgrounds = sample.load(sample.all()).images;  // [154, 1, 64, 64]

  models::ModelOptions architecture;
  architecture.image_size = 64;
  architecture.filters = {16, 32, 32};
  architecture.dense_units = 32;
  architecture.dropout = 0.2;
  explain::LocalizationCheckOptions options;
  options.methods = {explain::CamMethod::HiResCam, explain::CamMethod::GradCam, explain::CamMethod::GradCamPlusPlus};
  const auto result = explain::localization_check("baseline_cnn", architecture, backgrounds, options);
  EXPECT_EQ(result.layer, "conv3");
  EXPECT_DOUBLE_EQ(result.disc_radius, 7.0);
  EXPECT_DOUBLE_EQ(result.peak_tolerance, 2.0);  // conv3 maps 64 pixels onto 16 cells
  ASSERT_TRUE(result.learned()) << "the network did not learn the discs: accuracy " << result.accuracy;
  EXPECT_GE(result.correct_disc_predictions, 90);
  ASSERT_EQ(result.methods.size(), 3u);
  for (const auto& check : result.methods) {
    std::cout << explain::to_string(check.method) << ": localization " << check.localization
              << ", randomization Spearman " << check.randomization_spearman << "\n";
    RecordProperty("localization_" + explain::to_string(check.method), std::to_string(check.localization));
    RecordProperty("randomization_spearman_" + explain::to_string(check.method),
                   std::to_string(check.randomization_spearman));
  }
  const auto& high_resolution = result.methods[0];
  const auto& plain = result.methods[1];
  const auto& plus_plus = result.methods[2];
  EXPECT_TRUE(high_resolution.passed()) << "HiResCAM: localization " << high_resolution.localization
                                        << ", randomization Spearman " << high_resolution.randomization_spearman;
  // Plain Grad-CAM averages each channel's gradient over the map, which the paper's Flatten +
  // Dense head makes position-dependent: measured 0.73 (one disc class of four explained by
  // evidence elsewhere). It must still do far better than chance (a disc covers ~4% of the image)
  // and change with the weights.
  EXPECT_GE(plain.localization, 0.5);
  EXPECT_LT(plain.randomization_spearman, 0.5) << "Grad-CAM barely changed when the weights were randomized";
  // Grad-CAM++ localizes, but fails the randomization check here (measured 0.87): its maps follow
  // the bright disc whatever the weights, so its localization is partly the input's doing.
  EXPECT_GE(plus_plus.localization, 0.9);

  // Deterministic for a seed: the report's numbers can be reproduced.
  options.methods = {explain::CamMethod::HiResCam};
  const auto again = explain::localization_check("baseline_cnn", architecture, backgrounds, options);
  EXPECT_EQ(again.accuracy, result.accuracy);
  EXPECT_EQ(again.methods[0].localization, high_resolution.localization);
}
