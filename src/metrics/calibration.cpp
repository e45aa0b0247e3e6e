#include "brainmri/metrics/calibration.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <stdexcept>

#include "brainmri/metrics/bootstrap.hpp"
#include "brainmri/metrics/classification.hpp"

namespace brainmri::metrics {
namespace {

void check_shape(std::span<const int> labels, std::span<const double> probabilities, int class_count) {
  if (class_count < 1 || probabilities.size() != labels.size() * static_cast<std::size_t>(class_count)) {
    throw std::invalid_argument("calibration: " + std::to_string(probabilities.size()) + " probabilities for " +
                                std::to_string(labels.size()) + " images of " + std::to_string(class_count) +
                                " classes");
  }
}

// The inner edges of the bins (bin_count − 1 of them).
std::vector<double> inner_edges(std::span<const double> scores, int bin_count, CalibrationBinning binning) {
  std::vector<double> edges;
  if (binning == CalibrationBinning::EqualWidth) {
    // As numpy.linspace(0, 1, B + 1) makes them (b · (1/B), not b / B: 3 · 0.1 is above 0.3).
    for (int b = 1; b < bin_count; ++b) edges.push_back(static_cast<double>(b) * (1.0 / bin_count));
    return edges;
  }
  std::vector<double> sorted(scores.begin(), scores.end());
  std::sort(sorted.begin(), sorted.end());
  for (int b = 1; b < bin_count; ++b) {
    edges.push_back(percentile_of_sorted(sorted, 100.0 * static_cast<double>(b) / bin_count));
  }
  return edges;
}

}  // namespace

Reliability reliability(std::span<const double> scores, std::span<const int> outcomes, int bin_count,
                        CalibrationBinning binning) {
  if (scores.size() != outcomes.size()) throw std::invalid_argument("reliability: scores and outcomes differ in size");
  if (bin_count < 1) throw std::invalid_argument("reliability: needs at least one bin");
  Reliability r;
  if (scores.empty()) {
    r.ece = r.mce = NAN;
    return r;
  }
  const auto edges = inner_edges(scores, bin_count, binning);
  std::vector<double> score_sums(static_cast<std::size_t>(bin_count)), outcome_sums(score_sums.size());
  std::vector<int> counts(score_sums.size());
  for (std::size_t i = 0; i < scores.size(); ++i) {
    // numpy.searchsorted(edges, score, side="left"): the number of edges below the score.
    const auto bin = static_cast<std::size_t>(std::lower_bound(edges.begin(), edges.end(), scores[i]) - edges.begin());
    score_sums[bin] += scores[i];
    outcome_sums[bin] += outcomes[i];
    ++counts[bin];
  }
  const auto n = static_cast<double>(scores.size());
  for (std::size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] == 0) continue;
    const ReliabilityBin bin{score_sums[b] / counts[b], outcome_sums[b] / counts[b], counts[b],
                             b == 0 ? 0.0 : edges[b - 1], b == edges.size() ? 1.0 : edges[b]};
    const double gap = std::abs(bin.frequency - bin.mean_score);
    r.ece += counts[b] / n * gap;
    r.mce = std::max(r.mce, gap);
    r.bins.push_back(bin);
  }
  return r;
}

Reliability top_label_reliability(std::span<const int> labels, std::span<const double> probabilities, int class_count,
                                  int bin_count, CalibrationBinning binning) {
  check_shape(labels, probabilities, class_count);
  const auto predicted = argmax_rows(probabilities, class_count);
  std::vector<double> confidence(labels.size());
  std::vector<int> correct(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    confidence[i] = probabilities[i * static_cast<std::size_t>(class_count) + static_cast<std::size_t>(predicted[i])];
    correct[i] = predicted[i] == labels[i] ? 1 : 0;
  }
  return reliability(confidence, correct, bin_count, binning);
}

Reliability class_reliability(std::span<const int> labels, std::span<const double> probabilities, int class_count,
                              int label, int bin_count, CalibrationBinning binning) {
  check_shape(labels, probabilities, class_count);
  std::vector<double> score(labels.size());
  std::vector<int> outcome(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    score[i] = probabilities[i * static_cast<std::size_t>(class_count) + static_cast<std::size_t>(label)];
    outcome[i] = labels[i] == label ? 1 : 0;
  }
  return reliability(score, outcome, bin_count, binning);
}

double classwise_ece(std::span<const int> labels, std::span<const double> probabilities, int class_count, int bin_count,
                     CalibrationBinning binning) {
  if (labels.empty()) return NAN;
  double sum = 0;
  for (int c = 0; c < class_count; ++c) {
    sum += class_reliability(labels, probabilities, class_count, c, bin_count, binning).ece;
  }
  return sum / class_count;
}

double brier_score(std::span<const int> labels, std::span<const double> probabilities, int class_count) {
  check_shape(labels, probabilities, class_count);
  if (labels.empty()) return NAN;
  double sum = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    for (int c = 0; c < class_count; ++c) {
      const double target = labels[i] == c ? 1.0 : 0.0;
      const double p = probabilities[i * static_cast<std::size_t>(class_count) + static_cast<std::size_t>(c)];
      sum += (p - target) * (p - target);
    }
  }
  return sum / static_cast<double>(labels.size());
}

double negative_log_likelihood(std::span<const int> labels, std::span<const double> probabilities, int class_count) {
  check_shape(labels, probabilities, class_count);
  if (labels.empty()) return NAN;
  double sum = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const double p = probabilities[i * static_cast<std::size_t>(class_count) + static_cast<std::size_t>(labels[i])];
    sum -= std::log(std::max(p, DBL_EPSILON));
  }
  return sum / static_cast<double>(labels.size());
}

}  // namespace brainmri::metrics
