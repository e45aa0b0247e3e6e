#include "brainmri/metrics/roc.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace brainmri::metrics {

RocCurve roc_curve(std::span<const int> is_positive, std::span<const double> scores, bool drop_intermediate) {
  if (is_positive.size() != scores.size()) throw std::invalid_argument("roc_curve: labels and scores differ in length");
  const std::size_t n = scores.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });

  // One point per distinct score: cumulative true and false positives at that threshold.
  std::vector<double> tps, fps, thresholds;
  double true_positives = 0;
  for (std::size_t rank = 0; rank < n; ++rank) {
    true_positives += is_positive[order[rank]] != 0 ? 1.0 : 0.0;
    const bool last_of_tie = rank + 1 == n || scores[order[rank + 1]] != scores[order[rank]];
    if (!last_of_tie) continue;
    tps.push_back(true_positives);
    fps.push_back(static_cast<double>(rank + 1) - true_positives);
    thresholds.push_back(scores[order[rank]]);
  }

  // Drop points collinear with their neighbours (zero second difference in both counts): they
  // never change the curve or its area.
  if (drop_intermediate && fps.size() > 2) {
    std::vector<double> kept_tps, kept_fps, kept_thresholds;
    for (std::size_t i = 0; i < fps.size(); ++i) {
      const bool corner = i == 0 || i + 1 == fps.size() || fps[i + 1] - 2 * fps[i] + fps[i - 1] != 0 ||
                          tps[i + 1] - 2 * tps[i] + tps[i - 1] != 0;
      if (!corner) continue;
      kept_tps.push_back(tps[i]);
      kept_fps.push_back(fps[i]);
      kept_thresholds.push_back(thresholds[i]);
    }
    tps = std::move(kept_tps);
    fps = std::move(kept_fps);
    thresholds = std::move(kept_thresholds);
  }

  RocCurve curve;
  const double total_positives = tps.empty() ? 0 : tps.back();
  const double total_negatives = fps.empty() ? 0 : fps.back();
  curve.thresholds.push_back(std::numeric_limits<double>::infinity());
  curve.false_positive_rate.push_back(total_negatives > 0 ? 0.0 : kUndefined);
  curve.true_positive_rate.push_back(total_positives > 0 ? 0.0 : kUndefined);
  for (std::size_t i = 0; i < tps.size(); ++i) {
    curve.thresholds.push_back(thresholds[i]);
    curve.false_positive_rate.push_back(total_negatives > 0 ? fps[i] / total_negatives : kUndefined);
    curve.true_positive_rate.push_back(total_positives > 0 ? tps[i] / total_positives : kUndefined);
  }
  return curve;
}

double area_under_curve(const RocCurve& curve) {
  const auto& x = curve.false_positive_rate;
  const auto& y = curve.true_positive_rate;
  double area = 0;
  for (std::size_t i = 1; i < x.size(); ++i) area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0;
  return area;  // NaN propagates from undefined rates
}

OneVsRestRoc one_vs_rest_roc(std::span<const int> truth, std::span<const double> probabilities, int class_count) {
  const std::size_t n = truth.size();
  const auto k = static_cast<std::size_t>(class_count);
  if (class_count < 2 || probabilities.size() != n * k) {
    throw std::invalid_argument("one_vs_rest_roc: probabilities must be [" + std::to_string(n) + ", " +
                                std::to_string(class_count) + "] with at least 2 classes");
  }
  OneVsRestRoc result;
  std::vector<int> positive(n);
  std::vector<double> column(n);
  double auc_sum = 0;
  for (std::size_t c = 0; c < k; ++c) {
    std::size_t positives = 0;
    for (std::size_t i = 0; i < n; ++i) {
      positive[i] = truth[i] == static_cast<int>(c) ? 1 : 0;
      positives += static_cast<std::size_t>(positive[i]);
      column[i] = probabilities[i * k + c];
    }
    result.per_class.push_back(roc_curve(positive, column));
    const bool defined = positives > 0 && positives < n;
    result.auc_per_class.push_back(defined ? area_under_curve(result.per_class.back()) : kUndefined);
    if (defined) {
      auc_sum += result.auc_per_class.back();
      ++result.classes_in_macro;
    }
  }
  if (result.classes_in_macro > 0) result.macro_auc = auc_sum / result.classes_in_macro;

  std::vector<int> pooled_positive(n * k);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t c = 0; c < k; ++c) pooled_positive[i * k + c] = truth[i] == static_cast<int>(c) ? 1 : 0;
  }
  result.micro = roc_curve(pooled_positive, probabilities);
  if (n > 0) result.micro_auc = area_under_curve(result.micro);
  return result;
}

}  // namespace brainmri::metrics
