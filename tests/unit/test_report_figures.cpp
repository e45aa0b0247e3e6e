// Report figures: the ROC interpolation behind the cross-validated mean curve, and that every
// figure is written in each format.

#include <gtest/gtest.h>

#include <filesystem>

#include "brainmri/reports/figures.hpp"

using namespace brainmri::reports;
namespace fs = std::filesystem;

TEST(InterpolateTpr, FollowsTheCurveLinearlyAndTakesTheHighestRateAtTies) {
  // (0,0) (0,0.5) (0.5,0.5) (0.5,1) (1,1): a vertical jump at 0 and at 0.5.
  const std::vector<double> fpr = {0, 0, 0.5, 0.5, 1}, tpr = {0, 0.5, 0.5, 1, 1};
  const auto got = interpolate_tpr(fpr, tpr, {0.0, 0.25, 0.5, 0.75, 1.0});
  EXPECT_DOUBLE_EQ(got[0], 0.0);  // curves start at the origin
  EXPECT_DOUBLE_EQ(got[1], 0.5);
  EXPECT_DOUBLE_EQ(got[2], 1.0);  // at a tie, the top of the jump (as numpy.interp)
  EXPECT_DOUBLE_EQ(got[3], 1.0);
  EXPECT_DOUBLE_EQ(got[4], 1.0);
  // A diagonal is itself.
  const auto diagonal = interpolate_tpr({0, 1}, {0, 1}, {0.0, 0.3, 0.9});
  EXPECT_DOUBLE_EQ(diagonal[1], 0.3);
  EXPECT_DOUBLE_EQ(diagonal[2], 0.9);
}

TEST(Figures, EachIsWrittenAsPngSvgAndPdf) {
  std::string why;
  if (!plotting_available(&why)) GTEST_SKIP() << why;
  const auto dir = fs::temp_directory_path() / "brainmri-figures-test";
  fs::remove_all(dir);
  const std::vector<std::string> classes = {"a", "b", "c"};
  const std::vector<int> labels = {0, 1, 2, 0, 1, 2};
  const std::vector<double> p = {0.8, 0.1, 0.1, 0.2, 0.7, 0.1, 0.1, 0.3, 0.6,
                                 0.5, 0.4, 0.1, 0.3, 0.3, 0.4, 0.2, 0.2, 0.6};
  plot_confusion_matrix(brainmri::metrics::ConfusionMatrix(labels, std::vector<int>{0, 1, 2, 0, 2, 2}, 3), classes, "t",
                        dir / "confusion");
  plot_roc_curves(labels, p, classes, "t", dir / "roc");
  plot_cross_validated_roc({{labels, p}, {labels, p}}, classes, "t", dir / "cv_roc");
  plot_training_curves({{.stage = "s1",
                         .train_loss = 1.0,
                         .train_accuracy = 0.5,
                         .val_loss = 1.1,
                         .val_accuracy = 0.4,
                         .val_macro_f1 = 0.3},
                        {.stage = "s2",
                         .train_loss = 0.8,
                         .train_accuracy = 0.6,
                         .val_loss = 0.9,
                         .val_accuracy = 0.5,
                         .val_macro_f1 = 0.4}},
                       "t", dir / "curves");
  for (const char* stem : {"confusion", "roc", "cv_roc", "curves"}) {
    for (const char* extension : {".png", ".svg", ".pdf"}) {
      EXPECT_TRUE(fs::exists(dir / (std::string(stem) + extension))) << stem << extension;
      EXPECT_FALSE(fs::exists(dir / (std::string(stem) + extension + ".tmp"))) << stem << extension;
    }
  }
  fs::remove_all(dir);
}
