// scikit-learn as the oracle: 200 random cases with ties, absent classes and tiny sets (reports,
// ROC, calibration: reliability bins, ECE, MCE, Brier score, NLL; DeLong, McNemar, Holm); every
// number must match to 1e-12 and the report text character for character.

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "brainmri/metrics/calibration.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/roc.hpp"
#include "brainmri/metrics/significance.hpp"
#include "brainmri/metrics/temperature.hpp"
#include "test_support.hpp"

using namespace brainmri::metrics;
using brainmri::testing::ScratchDir;
using nlohmann::json;

namespace {

constexpr double kTolerance = 1e-12;

void expect_close_or_both_undefined(const json& expected, double actual, const std::string& what) {
  if (expected.is_null()) {
    EXPECT_TRUE(std::isnan(actual)) << what << ": sklearn has no value, we have " << actual;
  } else {
    EXPECT_NEAR(actual, expected.get<double>(), kTolerance) << what;
  }
}

void expect_curve(const json& expected, const RocCurve& actual, const std::string& what) {
  ASSERT_EQ(expected["fpr"].size(), actual.false_positive_rate.size()) << what;
  for (std::size_t i = 0; i < actual.false_positive_rate.size(); ++i) {
    expect_close_or_both_undefined(expected["fpr"][i], actual.false_positive_rate[i], what + " fpr");
    expect_close_or_both_undefined(expected["tpr"][i], actual.true_positive_rate[i], what + " tpr");
    if (i == 0) {
      EXPECT_TRUE(std::isinf(actual.thresholds[0])) << what;
    } else {
      EXPECT_NEAR(actual.thresholds[i], expected["thresholds"][i].get<double>(), kTolerance) << what;
    }
  }
}

// When no prediction at all is correct, sklearn takes a "pathological case" branch in
// multilabel_confusion_matrix that makes the supports floats, printed "2.0". Supports are
// counts; we print them as integers and compare after the same normalization.
std::string integer_supports(const std::string& text) {
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    const auto space = line.find_last_of(' ');
    if (space != std::string::npos && line.size() > 2 && line.ends_with(".0")) {
      const std::string number = line.substr(space + 1, line.size() - space - 3);
      line = line.substr(0, space + 1 - (9 - (line.size() - space - 1))) + std::string(9 - number.size(), ' ') + number;
    }
    out += line;
    if (end < text.size()) out += '\n';
    start = end + 1;
  }
  return out;
}

void expect_reliability(const json& expected, const Reliability& actual, const std::string& what) {
  const auto frequency = expected["frequency"].get<std::vector<double>>();
  ASSERT_EQ(actual.bins.size(), frequency.size()) << what;
  for (std::size_t b = 0; b < frequency.size(); ++b) {
    EXPECT_NEAR(actual.bins[b].frequency, frequency[b], kTolerance) << what << " bin " << b;
    EXPECT_NEAR(actual.bins[b].mean_score, expected["mean_score"][b].get<double>(), kTolerance) << what << " bin " << b;
    EXPECT_EQ(actual.bins[b].count, expected["count"][b].get<int>()) << what << " bin " << b;
  }
  EXPECT_NEAR(actual.ece, expected["ece"].get<double>(), kTolerance) << what << " ECE";
  EXPECT_NEAR(actual.mce, expected["mce"].get<double>(), kTolerance) << what << " MCE";
}

}  // namespace

TEST(MetricsOracle, EqualsScikitLearnOnRandomCases) {
  ScratchDir scratch;
  const auto result = brainmri::testing::run_command(
      "python3 " + brainmri::testing::shell_quote(std::string(BRAINMRI_ORACLE_SCRIPT)) + " " +
      brainmri::testing::shell_quote(scratch / "cases.json") + " --cases 200 --seed 1");
  if (result.exit_code == 77 || result.exit_code == 127) GTEST_SKIP() << "python3 with scikit-learn is not installed";
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::ifstream in(scratch / "cases.json");
  const json cases = json::parse(in)["cases"];
  ASSERT_EQ(cases.size(), 200u);

  int index = 0;
  int temperatures_compared = 0;
  for (const auto& c : cases) {
    const std::string where = "case " + std::to_string(index++);
    const int k = c["class_count"].get<int>();
    const auto truth = c["truth"].get<std::vector<int>>();
    const auto probabilities = c["probabilities"].get<std::vector<double>>();
    const auto names = c["names"].get<std::vector<std::string>>();
    const auto& expected = c["expected"];

    const auto predicted = argmax_rows(probabilities, k);
    const auto report = classification_report(ConfusionMatrix(truth, predicted, k), names);
    EXPECT_EQ(format_classification_report(report, 2), integer_supports(expected["report_text_2"].get<std::string>()))
        << where;
    EXPECT_EQ(format_classification_report(report, 4), integer_supports(expected["report_text_4"].get<std::string>()))
        << where;
    const auto& numbers = expected["report"];
    for (int label = 0; label < k; ++label) {
      const auto& row = numbers[names[static_cast<std::size_t>(label)]];
      const auto& ours = report.per_class[static_cast<std::size_t>(label)];
      EXPECT_NEAR(ours.precision, row["precision"].get<double>(), kTolerance) << where;
      EXPECT_NEAR(ours.recall, row["recall"].get<double>(), kTolerance) << where;
      EXPECT_NEAR(ours.f1, row["f1-score"].get<double>(), kTolerance) << where;
      EXPECT_EQ(ours.support, row["support"].get<std::int64_t>()) << where;
    }
    EXPECT_NEAR(report.accuracy, numbers["accuracy"].get<double>(), kTolerance) << where;
    EXPECT_NEAR(report.macro_average.f1, numbers["macro avg"]["f1-score"].get<double>(), kTolerance) << where;
    EXPECT_NEAR(report.macro_average.precision, numbers["macro avg"]["precision"].get<double>(), kTolerance) << where;
    EXPECT_NEAR(report.weighted_average.recall, numbers["weighted avg"]["recall"].get<double>(), kTolerance) << where;
    EXPECT_NEAR(report.weighted_average.f1, numbers["weighted avg"]["f1-score"].get<double>(), kTolerance) << where;

    const auto roc = one_vs_rest_roc(truth, probabilities, k);
    for (int label = 0; label < k; ++label) {
      const auto l = static_cast<std::size_t>(label);
      expect_curve(expected["roc"][l], roc.per_class[l], where + " class " + std::to_string(label));
      expect_close_or_both_undefined(expected["auc_per_class"][l], roc.auc_per_class[l], where + " AUC");
    }
    expect_close_or_both_undefined(expected["macro_auc"], roc.macro_auc, where + " macro AUC");
    expect_close_or_both_undefined(expected["micro_auc"], roc.micro_auc, where + " micro AUC");

    // Calibration: calibration_curve's bins (with counts and ECE/MCE computed in the oracle from
    // their definition), brier_score_loss summed over the classes, log_loss.
    const auto& calibration = c["calibration"];
    for (const auto& [key, binning] : {std::pair{std::string("uniform"), CalibrationBinning::EqualWidth},
                                       std::pair{std::string("quantile"), CalibrationBinning::EqualMass}}) {
      for (const int bins : {5, 10}) {
        const auto& expected_bins = calibration[key + "_" + std::to_string(bins)];
        const std::string here = where + " " + key + " " + std::to_string(bins) + " bins";
        expect_reliability(expected_bins["top"], top_label_reliability(truth, probabilities, k, bins, binning),
                           here + " top-label");
        double classwise = 0;
        for (int label = 0; label < k; ++label) {
          const auto& expected_class = expected_bins["classes"][static_cast<std::size_t>(label)];
          expect_reliability(expected_class, class_reliability(truth, probabilities, k, label, bins, binning),
                             here + " class " + std::to_string(label));
          classwise += expected_class["ece"].get<double>() / k;
        }
        EXPECT_NEAR(classwise_ece(truth, probabilities, k, bins, binning), classwise, kTolerance) << here;
      }
    }
    EXPECT_NEAR(brier_score(truth, probabilities, k), calibration["brier"].get<double>(), kTolerance) << where;
    if (calibration.contains("nll")) {
      EXPECT_NEAR(negative_log_likelihood(truth, probabilities, k), calibration["nll"].get<double>(), kTolerance)
          << where;
    }

    // Temperature scaling: the formula at T = 1.7 to rounding, and the fitted temperature as good
    // as scipy's: an NLL no higher than its minimum (and the same T where the minimum is inside
    // the bounds and sharp enough to pin it down).
    const auto& temperature = c["temperature"];
    const auto scaled = apply_temperature(probabilities, k, 1.7);
    const auto expected_scaled = temperature["scaled_at_1_7"].get<std::vector<double>>();
    for (std::size_t i = 0; i < scaled.size(); ++i) ASSERT_NEAR(scaled[i], expected_scaled[i], 1e-12) << where;
    const double fitted = fit_temperature(probabilities, truth, k);
    const auto nll_at = [&](double t) {
      return negative_log_likelihood(truth, apply_temperature(probabilities, k, t), k);
    };
    EXPECT_LE(nll_at(fitted), temperature["nll"].get<double>() + 1e-6) << where << " T " << fitted;
    const double scipy_t = temperature["temperature"].get<double>();
    if (scipy_t > 0.06 && scipy_t < 19 && nll_at(scipy_t * 1.01) - nll_at(scipy_t) > 1e-7) {
      EXPECT_NEAR(fitted, scipy_t, 1e-3 * scipy_t) << where;
      ++temperatures_compared;
    }

    // Significance against a second model's scores of the same images: DeLong per class against
    // the oracle's implementation written from Sun & Xu (and its AUCs against sklearn's), McNemar's
    // exact test and Holm's correction against statsmodels.
    const auto& significance = c["significance"];
    const auto probabilities_b = significance["probabilities_b"].get<std::vector<double>>();
    for (int label = 0; label < k; ++label) {
      const auto& expected_test = significance["delong"][static_cast<std::size_t>(label)];
      std::vector<int> positive(truth.size());
      std::vector<double> a(truth.size()), b(truth.size());
      for (std::size_t i = 0; i < truth.size(); ++i) {
        positive[i] = truth[i] == label ? 1 : 0;
        a[i] = probabilities[i * static_cast<std::size_t>(k) + static_cast<std::size_t>(label)];
        b[i] = probabilities_b[i * static_cast<std::size_t>(k) + static_cast<std::size_t>(label)];
      }
      const auto test = delong_test(positive, a, b);
      const std::string here = where + " DeLong class " + std::to_string(label);
      if (expected_test.is_null()) {
        EXPECT_TRUE(std::isnan(test.p_value)) << here;
        continue;
      }
      EXPECT_NEAR(test.auc_a, expected_test["auc_a"].get<double>(), kTolerance) << here;
      EXPECT_NEAR(test.auc_b, expected_test["auc_b"].get<double>(), kTolerance) << here;
      if (expected_test.contains("sklearn_auc_a")) {
        EXPECT_NEAR(test.auc_a, expected_test["sklearn_auc_a"].get<double>(), kTolerance) << here;
        EXPECT_NEAR(test.auc_b, expected_test["sklearn_auc_b"].get<double>(), kTolerance) << here;
      }
      expect_close_or_both_undefined(expected_test["p_value"], test.p_value, here + " p");
      if (expected_test.contains("z")) {
        EXPECT_NEAR(test.z, expected_test["z"].get<double>(), 1e-9) << here;
      }
    }
    if (significance.contains("mcnemar_p")) {
      const auto test = mcnemar_exact_test(truth, argmax_rows(probabilities, k), argmax_rows(probabilities_b, k));
      EXPECT_NEAR(test.p_value, significance["mcnemar_p"].get<double>(), kTolerance) << where << " McNemar";
    }
    if (significance.contains("holm")) {
      const auto input = significance["holm_input"].get<std::vector<double>>();
      const auto adjusted = holm_adjusted(input);
      const auto expected_holm = significance["holm"].get<std::vector<double>>();
      ASSERT_EQ(adjusted.size(), expected_holm.size()) << where;
      for (std::size_t i = 0; i < adjusted.size(); ++i)
        EXPECT_NEAR(adjusted[i], expected_holm[i], kTolerance) << where << " Holm " << i;
    }
    if (testing::Test::HasFailure()) break;  // one broken case is enough to read
  }
  EXPECT_GT(temperatures_compared, 30) << "too few cases with an interior, well-defined optimal temperature";
}
