#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "brainmri/metrics/bootstrap.hpp"
#include "brainmri/metrics/calibration.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/correlation.hpp"
#include "brainmri/metrics/roc.hpp"
#include "brainmri/metrics/significance.hpp"
#include "brainmri/metrics/summary.hpp"
#include "brainmri/metrics/temperature.hpp"

using namespace brainmri::metrics;

TEST(ConfusionMatrix, CountsRowsAsTruthAndColumnsAsPredictions) {
  const std::vector<int> truth = {0, 0, 1, 2, 2, 2};
  const std::vector<int> predicted = {0, 1, 1, 2, 0, 2};
  const ConfusionMatrix m(truth, predicted, 3);
  EXPECT_EQ(m.at(0, 0), 1);
  EXPECT_EQ(m.at(0, 1), 1);
  EXPECT_EQ(m.at(2, 0), 1);
  EXPECT_EQ(m.support(2), 3);
  EXPECT_EQ(m.predicted_count(0), 2);
  EXPECT_THROW(ConfusionMatrix(truth, std::vector<int>{0}, 3), std::invalid_argument);
  EXPECT_THROW(ConfusionMatrix(std::vector<int>{3}, std::vector<int>{0}, 3), std::out_of_range);
}

TEST(ClassificationReport, ZeroDivisionGivesZeroAndAbsentClassesCountInTheMacroAverage) {
  // Class 2 never occurs and is never predicted; class 1 is never predicted.
  const std::vector<int> truth = {0, 0, 1};
  const std::vector<int> predicted = {0, 0, 0};
  const auto report = classification_report(ConfusionMatrix(truth, predicted, 3), {"a", "b", "c"});
  EXPECT_DOUBLE_EQ(report.per_class[1].precision, 0.0);
  EXPECT_DOUBLE_EQ(report.per_class[2].f1, 0.0);
  EXPECT_DOUBLE_EQ(report.per_class[0].precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(report.accuracy, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(report.macro_average.recall, 1.0 / 3.0);
  EXPECT_NE(format_classification_report(report).find("weighted avg"), std::string::npos);
}

TEST(RocCurve, PerfectRandomAndTiedScores) {
  const std::vector<int> positive = {1, 1, 0, 0};
  const auto perfect = roc_curve(positive, std::vector<double>{0.9, 0.8, 0.2, 0.1});
  EXPECT_DOUBLE_EQ(area_under_curve(perfect), 1.0);
  EXPECT_TRUE(std::isinf(perfect.thresholds.front()));
  const auto inverted = roc_curve(positive, std::vector<double>{0.1, 0.2, 0.8, 0.9});
  EXPECT_DOUBLE_EQ(area_under_curve(inverted), 0.0);
  const auto tied = roc_curve(positive, std::vector<double>{0.5, 0.5, 0.5, 0.5});
  EXPECT_EQ(tied.thresholds.size(), 2u);  // (0,0) and one threshold for the whole tie
  EXPECT_DOUBLE_EQ(area_under_curve(tied), 0.5);
  const auto no_negatives = roc_curve(std::vector<int>{1, 1}, std::vector<double>{0.3, 0.4});
  EXPECT_TRUE(std::isnan(area_under_curve(no_negatives)));
}

TEST(OneVsRest, AbsentClassIsUndefinedAndLeftOutOfTheMacroAverage) {
  const std::vector<int> truth = {0, 1, 0, 1};
  const std::vector<double> probabilities = {0.8, 0.1, 0.1, 0.2, 0.7, 0.1, 0.6, 0.3, 0.1, 0.3, 0.6, 0.1};
  const auto roc = one_vs_rest_roc(truth, probabilities, 3);
  EXPECT_DOUBLE_EQ(roc.auc_per_class[0], 1.0);
  EXPECT_DOUBLE_EQ(roc.auc_per_class[1], 1.0);
  EXPECT_TRUE(std::isnan(roc.auc_per_class[2]));
  EXPECT_EQ(roc.classes_in_macro, 2);
  EXPECT_DOUBLE_EQ(roc.macro_auc, 1.0);
}

TEST(Bootstrap, SeededIntervalsAreReproducibleAndContainTheEstimate) {
  std::vector<int> truth;
  std::vector<double> probabilities;
  for (int i = 0; i < 200; ++i) {
    const int label = i % 3;
    truth.push_back(label);
    for (int c = 0; c < 3; ++c) probabilities.push_back(c == label ? 0.5 + 0.002 * (i % 50) : 0.25 - 0.001 * (i % 50));
    if (i % 7 == 0) std::swap(probabilities[probabilities.size() - 1], probabilities[probabilities.size() - 3]);
  }
  const BootstrapOptions options{300, 0.95, 17};
  const auto a = bootstrap_intervals(truth, probabilities, 3, options);
  const auto b = bootstrap_intervals(truth, probabilities, 3, options);
  EXPECT_EQ(a.accuracy.low, b.accuracy.low);
  EXPECT_EQ(a.macro_auc.high, b.macro_auc.high);
  EXPECT_LE(a.accuracy.low, a.accuracy.estimate);
  EXPECT_GE(a.accuracy.high, a.accuracy.estimate);
  EXPECT_LT(a.accuracy.low, a.accuracy.high);
  EXPECT_EQ(a.accuracy.resamples_used, 300);
  const auto c = bootstrap_intervals(truth, probabilities, 3, {300, 0.95, 18});
  EXPECT_NE(a.accuracy.low + a.accuracy.high, c.accuracy.low + c.accuracy.high + 1.0);  // runs with another seed
  EXPECT_TRUE(a.accuracy.low != c.accuracy.low || a.accuracy.high != c.accuracy.high ||
              a.macro_f1.low != c.macro_f1.low);
}

TEST(Bootstrap, PercentileMatchesNumpyLinearInterpolation) {
  const std::vector<double> values = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile_of_sorted(values, 50), 2.5);  // numpy.percentile([1,2,3,4], 50)
  EXPECT_DOUBLE_EQ(percentile_of_sorted(values, 2.5), 1.075);
  EXPECT_DOUBLE_EQ(percentile_of_sorted(values, 100), 4);
}

TEST(Spread, StudentTIntervalUsesTheExactQuantileAtAnyDegreesOfFreedom) {
  // Reference values of t(0.975, df) (R: qt(0.975, df)).
  EXPECT_NEAR(brainmri::metrics::t_quantile_95(1), 12.706204736, 1e-8);
  EXPECT_NEAR(brainmri::metrics::t_quantile_95(4), 2.776445105, 1e-8);
  EXPECT_NEAR(brainmri::metrics::t_quantile_95(40), 2.021075390, 1e-8);  // not the normal 1.96
  EXPECT_NEAR(brainmri::metrics::t_quantile_95(1000), 1.962339081, 1e-8);
  EXPECT_TRUE(std::isnan(brainmri::metrics::t_quantile_95(0)));
  const auto s = brainmri::metrics::spread({1.0, 2.0, 3.0});
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.std_dev, 1.0);
  EXPECT_NEAR(s.ci95_low, 2.0 - 4.302652730 / std::sqrt(3.0), 1e-8);
  EXPECT_NEAR(s.ci95_high, 2.0 + 4.302652730 / std::sqrt(3.0), 1e-8);
  EXPECT_TRUE(std::isnan(brainmri::metrics::spread({0.5}).std_dev));
}

// Across-fold intervals of metrics in [0, 1] stay inside it: the Student-t interval on the logit
// scale (expected values: NumPy and scipy.stats.t on the clipped logits, written in the comment's
// way). The plain t-interval of {0, 0, 0.25, 0.33, 0.25} would be [-0.0265, 0.3585].
TEST(Spread, ProportionsGetALogitScaleIntervalInsideZeroAndOne) {
  using brainmri::metrics::spread_of_proportions;
  const auto middle = spread_of_proportions({0.2, 0.4, 0.6});
  EXPECT_NEAR(middle.mean, 0.4, 1e-15);
  EXPECT_NEAR(middle.std_dev, 0.2, 1e-15);  // mean and std of the values as they are
  EXPECT_NEAR(middle.ci95_low, 0.06351132070530519, 1e-12);
  EXPECT_NEAR(middle.ci95_high, 0.8540496735618203, 1e-12);
  const auto near_zero = spread_of_proportions({0, 0, 0.25, 0.33, 0.25});
  EXPECT_NEAR(near_zero.ci95_low, 0.0006187545898767067, 1e-12);
  EXPECT_NEAR(near_zero.ci95_high, 0.668102452200229, 1e-12);
  const auto near_one = spread_of_proportions({1, 1, 0.99, 1, 1});
  EXPECT_NEAR(near_one.ci95_low, 0.9942956315162742, 1e-12);
  EXPECT_NEAR(near_one.ci95_high, 0.9995598933583, 1e-12);
  EXPECT_LE(near_one.ci95_high, 1.0);
  const auto all_one = spread_of_proportions({1, 1, 1});
  EXPECT_EQ(all_one.ci95_low, 1.0);
  EXPECT_EQ(all_one.ci95_high, 1.0);
  EXPECT_TRUE(std::isnan(spread_of_proportions({0.5}).ci95_low));
  EXPECT_THROW(spread_of_proportions({0.5, 1.2}), std::invalid_argument);
}

// A subgroup's accuracy interval: the expected values are statsmodels' proportion_confint(...,
// method="wilson") (0.14), including the bounds at 0 and all successes.
TEST(Spread, WilsonIntervalMatchesStatsmodels) {
  using brainmri::metrics::wilson_interval_95;
  const auto check = [](int successes, int trials, double low, double high) {
    const auto [l, h] = wilson_interval_95(successes, trials);
    EXPECT_NEAR(l, low, 1e-12) << successes << "/" << trials;
    EXPECT_NEAR(h, high, 1e-12) << successes << "/" << trials;
  };
  check(8, 10, 0.49016247153664183, 0.9433178485456247);
  check(0, 7, 0.0, 0.3543304350666875);
  check(20, 20, 0.8388748419471804, 1.0);
  check(917, 1000, 0.8982635048659464, 0.9325449785571007);
  EXPECT_TRUE(std::isnan(wilson_interval_95(0, 0).first));
}

// Spearman's ρ and the correlation ratio η (a search's parameter importance). The expected values
// are scipy.stats.spearmanr's (1.11) and NumPy's for η written from its definition.
TEST(Correlation, SpearmanMatchesScipyWithTiesAndEtaMatchesItsDefinition) {
  using brainmri::metrics::average_ranks;
  using brainmri::metrics::correlation_ratio;
  using brainmri::metrics::spearman_correlation;
  EXPECT_EQ(average_ranks({0.3, 0.1, 0.3, 0.2}), (std::vector<double>{3.5, 1, 3.5, 2}));
  EXPECT_NEAR(spearman_correlation({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 0.8207826816681233, 1e-12);
  EXPECT_NEAR(spearman_correlation({0.1, 0.1, 0.3, 0.2, 0.5, 0.4}, {1, 3, 2, 2, 5, 4}), 0.7352941176470588, 1e-12);
  EXPECT_NEAR(spearman_correlation({1, 2, 3}, {3, 2, 1}), -1.0, 1e-12);
  EXPECT_TRUE(std::isnan(spearman_correlation({1, 1, 1}, {1, 2, 3})));  // a constant side
  EXPECT_TRUE(std::isnan(spearman_correlation({1, 2}, {1, 2})));        // too few pairs
  EXPECT_THROW(spearman_correlation({1, 2, 3}, {1, 2}), std::invalid_argument);
  EXPECT_NEAR(correlation_ratio({0, 0, 0, 1, 1, 1}, {0.5, 0.7, 0.6, 0.9, 0.8, 0.95}), 0.8898206684033636, 1e-12);
  EXPECT_NEAR(correlation_ratio({4, 4, 9, 9}, {1, 1, 2, 2}), 1.0, 1e-12);  // the group decides everything
  EXPECT_TRUE(std::isnan(correlation_ratio({0, 0, 0}, {1, 2, 3})));        // one group
}

// Calibration's edge policies (the values themselves: MetricsOracle against scikit-learn).
TEST(Calibration, EdgesAndAPerfectlyCalibratedCase) {
  using namespace brainmri::metrics;
  const auto none = top_label_reliability({}, {}, 3, 10, CalibrationBinning::EqualWidth);
  EXPECT_TRUE(none.bins.empty());
  EXPECT_TRUE(std::isnan(none.ece));
  EXPECT_TRUE(std::isnan(brier_score({}, {}, 3)));
  const std::vector<int> two = {0, 1};
  const std::vector<double> too_few = {0.5, 0.5};
  EXPECT_THROW(brier_score(two, too_few, 2), std::invalid_argument);  // 2 images need 4 values
  // Four images at 0.75 of which three are right, four at 0.5 of which two: calibrated, ECE 0.
  const std::vector<int> labels = {0, 0, 0, 1, 0, 0, 1, 1};
  const std::vector<double> p = {0.75, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75, 0.25,
                                 0.5,  0.5,  0.5,  0.5,  0.5,  0.5,  0.5,  0.5};
  const auto top = top_label_reliability(labels, p, 2, 10, CalibrationBinning::EqualWidth);
  ASSERT_EQ(top.bins.size(), 2u);
  EXPECT_NEAR(top.ece, 0.0, 1e-15);
  EXPECT_NEAR(top.bins[1].frequency, 0.75, 1e-15);
  EXPECT_EQ(top.bins[1].count, 4);
  // Brier: (0.25² · 2) for each of the three right, (0.75² · 2) for the wrong one, 0.5 for each of
  // the other four; NLL: the mean of −log 0.75 (3×), −log 0.25 and −log 0.5 (4×).
  EXPECT_NEAR(brier_score(labels, p, 2), (3 * 0.125 + 1.125 + 4 * 0.5) / 8, 1e-15);
  EXPECT_NEAR(negative_log_likelihood(labels, p, 2), -(3 * std::log(0.75) + std::log(0.25) + 4 * std::log(0.5)) / 8,
              1e-15);
}

// The corrected resampled t-test by hand (scipy.stats.t for the p-value): five folds whose
// differences are 0.02, 0.01, 0.03, 0, 0.04 with n_test/n_train = 1/4. The plain paired t-test
// would say p = 0.047; the correction for overlapping training sets says 0.13.
TEST(Significance, CorrectedTTestByHandHolmSkipsUndefinedAndMcNemarOfAgreeingModels) {
  using namespace brainmri::metrics;
  const std::vector<double> differences = {0.02, 0.01, 0.03, 0.0, 0.04};
  const auto t = corrected_resampled_t_test(differences, 0.25);
  EXPECT_NEAR(t.mean_difference, 0.02, 1e-15);
  EXPECT_NEAR(t.t, 1.8856180831641267, 1e-12);
  EXPECT_EQ(t.degrees_of_freedom, 4);
  EXPECT_NEAR(t.p_value, 0.1324189222202493, 1e-12);
  const std::vector<double> one = {0.02};
  EXPECT_TRUE(std::isnan(corrected_resampled_t_test(one, 0.25).p_value));
  // Holm: NaN stays NaN and is not counted (statsmodels: [0.03, 0.06, 0.06] for 0.01, 0.04, 0.03).
  const std::vector<double> p = {0.01, NAN, 0.04, 0.03};
  const auto adjusted = holm_adjusted(p);
  EXPECT_NEAR(adjusted[0], 0.03, 1e-15);
  EXPECT_TRUE(std::isnan(adjusted[1]));
  EXPECT_NEAR(adjusted[2], 0.06, 1e-15);
  EXPECT_NEAR(adjusted[3], 0.06, 1e-15);
  // Two models right and wrong on the same images: nothing to test, p = 1.
  const std::vector<int> truth = {0, 1, 2, 1}, same = {0, 1, 1, 1};
  const auto mcnemar = mcnemar_exact_test(truth, same, same);
  EXPECT_EQ(mcnemar.only_a_right + mcnemar.only_b_right, 0);
  EXPECT_EQ(mcnemar.p_value, 1.0);
}

// A model three times too confident: labels drawn from softmax(z), probabilities softmax(3z).
// Temperature scaling finds T near 3 on either half, and the cross-fitted probabilities are
// calibrated where the model's were not.
TEST(TemperatureScaling, RecoversTheOverconfidenceOfASyntheticModel) {
  constexpr int k = 4;
  constexpr std::size_t n = 4000;
  std::mt19937_64 random(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> overconfident(n * k);
  std::vector<int> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    double z[k], truth[k], sum_truth = 0, sum_over = 0;
    for (int c = 0; c < k; ++c) {
      z[c] = normal(random);
      sum_truth += truth[c] = std::exp(z[c]);
      sum_over += overconfident[i * k + c] = std::exp(3 * z[c]);
    }
    double u = std::uniform_real_distribution<double>(0, sum_truth)(random);
    labels[i] = k - 1;
    for (int c = 0; c < k; ++c) {
      if ((u -= truth[c]) < 0) {
        labels[i] = c;
        break;
      }
    }
    for (int c = 0; c < k; ++c) overconfident[i * k + c] /= sum_over;
  }
  const double fitted = fit_temperature(overconfident, labels, k);
  EXPECT_NEAR(fitted, 3.0, 0.3);
  // Scaling by T and then by 1/T gives the probabilities back.
  const auto scaled = apply_temperature(overconfident, k, fitted);
  const auto back = apply_temperature(scaled, k, 1.0 / fitted);
  for (std::size_t i = 0; i < back.size(); i += 97) EXPECT_NEAR(back[i], overconfident[i], 1e-9);

  double halves[2];
  const auto cross_fitted = cross_fitted_temperature_scaling(overconfident, labels, k, 11, halves);
  EXPECT_NEAR(halves[0], 3.0, 0.4);
  EXPECT_NEAR(halves[1], 3.0, 0.4);
  EXPECT_NE(halves[0], halves[1]);  // fitted on different images
  const auto ece = [&](const std::vector<double>& p) {
    return top_label_reliability(labels, p, k, kCalibrationBins, CalibrationBinning::EqualWidth).ece;
  };
  EXPECT_GT(ece(overconfident), 0.1);
  EXPECT_LT(ece(cross_fitted), 0.03);
  EXPECT_LT(negative_log_likelihood(labels, cross_fitted, k), negative_log_likelihood(labels, overconfident, k));
  double again[2];
  EXPECT_EQ(cross_fitted_temperature_scaling(overconfident, labels, k, 11, again), cross_fitted);
  EXPECT_THROW(apply_temperature(overconfident, k, 0.0), std::invalid_argument);
  EXPECT_THROW(fit_temperature(overconfident, std::vector<int>(n, k), k), std::invalid_argument);
}

// The paired bootstrap draws the same images for both models: a model against itself differs by
// exactly 0, and two models that agree on most images get an interval of their difference much
// narrower than what their separate intervals suggest.
TEST(PairedBootstrap, DifferencesOfTwoModelsOnTheSameImages) {
  constexpr int k = 3;
  constexpr std::size_t n = 600;
  std::mt19937_64 random(3);
  std::vector<int> truth(n);
  std::vector<double> a(n * k), b(n * k);
  for (std::size_t i = 0; i < n; ++i) {
    truth[i] = static_cast<int>(random() % k);
    double sum = 0;
    for (int c = 0; c < k; ++c)
      sum += a[i * k + c] = std::uniform_real_distribution<double>(0, 1)(random) + (c == truth[i] ? 0.6 : 0);
    for (int c = 0; c < k; ++c) a[i * k + c] /= sum;
    for (int c = 0; c < k; ++c) b[i * k + c] = a[i * k + c];
    if (i % 25 == 0)
      std::rotate(b.begin() + static_cast<std::ptrdiff_t>(i * k), b.begin() + static_cast<std::ptrdiff_t>(i * k + 1),
                  b.begin() + static_cast<std::ptrdiff_t>((i + 1) * k));
  }
  const BootstrapOptions options{400, 0.95, 9};
  const auto same = paired_bootstrap_differences(truth, a, a, k, options);
  EXPECT_EQ(same.accuracy.estimate, 0.0);
  EXPECT_EQ(same.accuracy.low, 0.0);
  EXPECT_EQ(same.accuracy.high, 0.0);
  EXPECT_EQ(same.macro_auc.high, 0.0);

  const auto paired = paired_bootstrap_differences(truth, a, b, k, options);
  const auto alone_a = bootstrap_intervals(truth, a, k, options);
  const auto alone_b = bootstrap_intervals(truth, b, k, options);
  EXPECT_NEAR(paired.accuracy.estimate, alone_a.accuracy.estimate - alone_b.accuracy.estimate, 1e-15);
  EXPECT_LE(paired.accuracy.low, paired.accuracy.estimate);
  EXPECT_GE(paired.accuracy.high, paired.accuracy.estimate);
  const double paired_width = paired.accuracy.high - paired.accuracy.low;
  const double separate_width =
      (alone_a.accuracy.high - alone_a.accuracy.low) + (alone_b.accuracy.high - alone_b.accuracy.low);
  EXPECT_LT(paired_width, 0.5 * separate_width) << "the pairing must cancel what both models share";
  EXPECT_GT(paired.accuracy.low, 0.0)
      << "24 images changed for the worse in B: A is better, and the paired interval sees it";
  EXPECT_EQ(paired.auc_per_class.size(), static_cast<std::size_t>(k));
  EXPECT_THROW(paired_bootstrap_differences(truth, a, std::vector<double>(3), k, options), std::invalid_argument);
}
