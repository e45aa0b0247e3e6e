#include "brainmri/metrics/bootstrap.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

#include "brainmri/metrics/calibration.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/roc.hpp"

namespace brainmri::metrics {

double percentile_of_sorted(std::span<const double> values, double percent) {
  if (values.empty()) return std::nan("");
  const double rank = percent / 100.0 * static_cast<double>(values.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(rank));
  const auto above = std::min(below + 1, values.size() - 1);
  const double fraction = rank - static_cast<double>(below);
  return values[below] + (values[above] - values[below]) * fraction;
}

namespace {

struct Scores {
  double accuracy;
  double macro_f1;
  double macro_auc;
  std::vector<double> auc_per_class;
  double top_label_ece;
};

Scores score(std::span<const int> truth, std::span<const int> predicted, std::span<const double> probabilities,
             int class_count) {
  const ConfusionMatrix matrix(truth, predicted, class_count);
  const auto report = classification_report(matrix, std::vector<std::string>(static_cast<std::size_t>(class_count)));
  const auto roc = one_vs_rest_roc(truth, probabilities, class_count);
  // The macro AUC of a resample is defined only when every class's AUC is.
  const bool all_defined = roc.classes_in_macro == class_count;
  const double ece =
      top_label_reliability(truth, probabilities, class_count, kCalibrationBins, CalibrationBinning::EqualWidth).ece;
  return {report.accuracy, report.macro_average.f1, all_defined ? roc.macro_auc : kUndefined, roc.auc_per_class, ece};
}

Interval interval(double estimate, std::vector<double> values, double level) {
  std::erase_if(values, [](double v) { return std::isnan(v); });
  std::sort(values.begin(), values.end());
  const double tail = (1.0 - level) / 2.0 * 100.0;
  return {estimate, percentile_of_sorted(values, tail), percentile_of_sorted(values, 100.0 - tail),
          static_cast<int>(values.size())};
}

}  // namespace

BootstrapIntervals bootstrap_intervals(std::span<const int> truth, std::span<const double> probabilities,
                                       int class_count, const BootstrapOptions& options) {
  if (options.resamples < 1 || options.level <= 0 || options.level >= 1) {
    throw std::invalid_argument("bootstrap needs resamples >= 1 and 0 < level < 1");
  }
  const std::size_t n = truth.size();
  const auto k = static_cast<std::size_t>(class_count);
  const auto predicted = argmax_rows(probabilities, class_count);
  const Scores full = score(truth, predicted, probabilities, class_count);

  std::vector<double> accuracy, macro_f1, macro_auc, ece;
  std::vector<std::vector<double>> auc(k);
  std::mt19937_64 random(options.seed);
  std::uniform_int_distribution<std::size_t> pick(0, n == 0 ? 0 : n - 1);
  std::vector<int> sample_truth(n), sample_predicted(n);
  std::vector<double> sample_probabilities(n * k);
  for (int r = 0; r < options.resamples && n > 0; ++r) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = pick(random);
      sample_truth[i] = truth[j];
      sample_predicted[i] = predicted[j];
      std::copy_n(probabilities.begin() + static_cast<std::ptrdiff_t>(j * k), k,
                  sample_probabilities.begin() + static_cast<std::ptrdiff_t>(i * k));
    }
    const Scores s = score(sample_truth, sample_predicted, sample_probabilities, class_count);
    accuracy.push_back(s.accuracy);
    macro_f1.push_back(s.macro_f1);
    macro_auc.push_back(s.macro_auc);
    ece.push_back(s.top_label_ece);
    for (std::size_t c = 0; c < k; ++c) auc[c].push_back(s.auc_per_class[c]);
  }

  BootstrapIntervals result;
  result.accuracy = interval(full.accuracy, accuracy, options.level);
  result.macro_f1 = interval(full.macro_f1, macro_f1, options.level);
  result.macro_auc = interval(full.macro_auc, macro_auc, options.level);
  result.top_label_ece = interval(full.top_label_ece, ece, options.level);
  for (std::size_t c = 0; c < k; ++c)
    result.auc_per_class.push_back(interval(full.auc_per_class[c], auc[c], options.level));
  return result;
}

PairedBootstrapIntervals paired_bootstrap_differences(std::span<const int> truth,
                                                      std::span<const double> probabilities_a,
                                                      std::span<const double> probabilities_b, int class_count,
                                                      const BootstrapOptions& options) {
  if (options.resamples < 1 || options.level <= 0 || options.level >= 1) {
    throw std::invalid_argument("bootstrap needs resamples >= 1 and 0 < level < 1");
  }
  const std::size_t n = truth.size();
  const auto k = static_cast<std::size_t>(class_count);
  if (probabilities_a.size() != n * k || probabilities_b.size() != n * k) {
    throw std::invalid_argument(
        "paired bootstrap: both models need [images, classes] probabilities of the same images");
  }
  const auto predicted_a = argmax_rows(probabilities_a, class_count);
  const auto predicted_b = argmax_rows(probabilities_b, class_count);
  const Scores full_a = score(truth, predicted_a, probabilities_a, class_count);
  const Scores full_b = score(truth, predicted_b, probabilities_b, class_count);

  std::vector<double> accuracy, macro_f1, macro_auc;
  std::vector<std::vector<double>> auc(k);
  std::mt19937_64 random(options.seed);
  std::uniform_int_distribution<std::size_t> pick(0, n == 0 ? 0 : n - 1);
  std::vector<int> sample_truth(n), sample_a(n), sample_b(n);
  std::vector<double> sample_pa(n * k), sample_pb(n * k);
  for (int r = 0; r < options.resamples && n > 0; ++r) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = pick(random);
      sample_truth[i] = truth[j];
      sample_a[i] = predicted_a[j];
      sample_b[i] = predicted_b[j];
      std::copy_n(probabilities_a.begin() + static_cast<std::ptrdiff_t>(j * k), k,
                  sample_pa.begin() + static_cast<std::ptrdiff_t>(i * k));
      std::copy_n(probabilities_b.begin() + static_cast<std::ptrdiff_t>(j * k), k,
                  sample_pb.begin() + static_cast<std::ptrdiff_t>(i * k));
    }
    const Scores a = score(sample_truth, sample_a, sample_pa, class_count);
    const Scores b = score(sample_truth, sample_b, sample_pb, class_count);
    accuracy.push_back(a.accuracy - b.accuracy);
    macro_f1.push_back(a.macro_f1 - b.macro_f1);
    macro_auc.push_back(a.macro_auc - b.macro_auc);  // NaN when either is undefined: left out
    for (std::size_t c = 0; c < k; ++c) auc[c].push_back(a.auc_per_class[c] - b.auc_per_class[c]);
  }
  PairedBootstrapIntervals result;
  result.accuracy = interval(full_a.accuracy - full_b.accuracy, accuracy, options.level);
  result.macro_f1 = interval(full_a.macro_f1 - full_b.macro_f1, macro_f1, options.level);
  result.macro_auc = interval(full_a.macro_auc - full_b.macro_auc, macro_auc, options.level);
  for (std::size_t c = 0; c < k; ++c) {
    result.auc_per_class.push_back(interval(full_a.auc_per_class[c] - full_b.auc_per_class[c], auc[c], options.level));
  }
  return result;
}

}  // namespace brainmri::metrics
