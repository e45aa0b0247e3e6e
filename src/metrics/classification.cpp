#include "brainmri/metrics/classification.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace brainmri::metrics {
namespace {

double ratio_or_zero(double numerator, double denominator) { return denominator > 0 ? numerator / denominator : 0.0; }

// Python's "{:>{width}s}": right-aligned text.
std::string right(const std::string& text, int width) {
  return text.size() >= static_cast<std::size_t>(width) ? text : std::string(width - text.size(), ' ') + text;
}

std::string fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
  return buffer;
}

}  // namespace

ConfusionMatrix::ConfusionMatrix(std::span<const int> truth, std::span<const int> predicted, int class_count)
    : class_count_(class_count),
      counts_(static_cast<std::size_t>(class_count) * static_cast<std::size_t>(class_count), 0) {
  if (class_count < 1) throw std::invalid_argument("a confusion matrix needs at least one class");
  if (truth.size() != predicted.size()) throw std::invalid_argument("truth and predictions differ in length");
  for (std::size_t i = 0; i < truth.size(); ++i) {
    if (truth[i] < 0 || truth[i] >= class_count || predicted[i] < 0 || predicted[i] >= class_count) {
      throw std::out_of_range("label out of range at sample " + std::to_string(i));
    }
    ++counts_[static_cast<std::size_t>(truth[i]) * static_cast<std::size_t>(class_count) +
              static_cast<std::size_t>(predicted[i])];
  }
  total_ = static_cast<std::int64_t>(truth.size());
}

std::int64_t ConfusionMatrix::support(int truth) const {
  std::int64_t sum = 0;
  for (int p = 0; p < class_count_; ++p) sum += at(truth, p);
  return sum;
}

std::int64_t ConfusionMatrix::predicted_count(int predicted) const {
  std::int64_t sum = 0;
  for (int t = 0; t < class_count_; ++t) sum += at(t, predicted);
  return sum;
}

ClassificationReport classification_report(const ConfusionMatrix& matrix, std::vector<std::string> class_names) {
  const int k = matrix.class_count();
  if (static_cast<int>(class_names.size()) != k) {
    throw std::invalid_argument("classification report: " + std::to_string(class_names.size()) + " names for " +
                                std::to_string(k) + " classes");
  }
  ClassificationReport report;
  report.class_names = std::move(class_names);
  std::int64_t correct = 0;
  for (int c = 0; c < k; ++c) {
    const auto tp = static_cast<double>(matrix.at(c, c));
    const auto support = matrix.support(c);
    const auto predicted = matrix.predicted_count(c);
    correct += matrix.at(c, c);
    ClassScores s;
    s.support = support;
    s.precision = ratio_or_zero(tp, static_cast<double>(predicted));
    s.recall = ratio_or_zero(tp, static_cast<double>(support));
    // sklearn computes F1 from counts: 2tp / (2tp + fp + fn).
    s.f1 = ratio_or_zero(2 * tp, static_cast<double>(support + predicted));
    report.per_class.push_back(s);
  }
  const auto total = matrix.total();
  report.accuracy = ratio_or_zero(static_cast<double>(correct), static_cast<double>(total));
  for (const auto& s : report.per_class) {
    report.macro_average.precision += s.precision / k;
    report.macro_average.recall += s.recall / k;
    report.macro_average.f1 += s.f1 / k;
    const double weight = ratio_or_zero(static_cast<double>(s.support), static_cast<double>(total));
    report.weighted_average.precision += s.precision * weight;
    report.weighted_average.recall += s.recall * weight;
    report.weighted_average.f1 += s.f1 * weight;
  }
  report.macro_average.support = total;
  report.weighted_average.support = total;
  return report;
}

std::string format_classification_report(const ClassificationReport& report, int digits) {
  // Mirrors sklearn/metrics/_classification.py: a name column as wide as the longest of the
  // class names, "weighted avg" and `digits`, then four columns of width 9.
  const std::string last_heading = "weighted avg";
  int width = static_cast<int>(last_heading.size());
  for (const auto& name : report.class_names) width = std::max(width, static_cast<int>(name.size()));
  width = std::max(width, digits);

  auto row = [&](const std::string& name, const ClassScores& s) {
    return right(name, width) + " " + " " + right(fixed(s.precision, digits), 9) + " " +
           right(fixed(s.recall, digits), 9) + " " + right(fixed(s.f1, digits), 9) + " " +
           right(std::to_string(s.support), 9) + "\n";
  };
  std::string text = right("", width) + " " + " " + right("precision", 9) + " " + right("recall", 9) + " " +
                     right("f1-score", 9) + " " + right("support", 9) + "\n\n";
  for (std::size_t c = 0; c < report.per_class.size(); ++c) text += row(report.class_names[c], report.per_class[c]);
  text += "\n";
  text += right("accuracy", width) + " " + " " + right("", 9) + " " + right("", 9) + " " +
          right(fixed(report.accuracy, digits), 9) + " " + right(std::to_string(report.macro_average.support), 9) +
          "\n";
  text += row("macro avg", report.macro_average);
  text += row(last_heading, report.weighted_average);
  return text;
}

std::vector<int> argmax_rows(std::span<const double> probabilities, int class_count) {
  if (class_count < 1 || probabilities.size() % static_cast<std::size_t>(class_count) != 0) {
    throw std::invalid_argument("probabilities are not a [n, " + std::to_string(class_count) + "] matrix");
  }
  const std::size_t n = probabilities.size() / static_cast<std::size_t>(class_count);
  std::vector<int> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto row =
        probabilities.subspan(i * static_cast<std::size_t>(class_count), static_cast<std::size_t>(class_count));
    labels[i] = static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
  }
  return labels;
}

}  // namespace brainmri::metrics
