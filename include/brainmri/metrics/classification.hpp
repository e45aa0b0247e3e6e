#pragma once
// Classification metrics with scikit-learn's definitions, so numbers in our reports can be
// checked against the Python tools reviewers use (tests/oracle compares them to 1e-12).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace brainmri::metrics {

// Rows are true classes, columns predicted classes.
class ConfusionMatrix {
 public:
  ConfusionMatrix(std::span<const int> truth, std::span<const int> predicted, int class_count);
  int class_count() const { return class_count_; }
  std::int64_t at(int truth, int predicted) const {
    return counts_[static_cast<std::size_t>(truth) * static_cast<std::size_t>(class_count_) +
                   static_cast<std::size_t>(predicted)];
  }
  std::int64_t total() const { return total_; }
  std::int64_t support(int truth) const;              // row sum
  std::int64_t predicted_count(int predicted) const;  // column sum

 private:
  int class_count_;
  std::int64_t total_ = 0;
  std::vector<std::int64_t> counts_;
};

struct ClassScores {
  double precision = 0;
  double recall = 0;
  double f1 = 0;
  std::int64_t support = 0;
};

// scikit-learn's classification_report over labels 0..k-1 with zero_division=0: a precision,
// recall or F1 whose denominator is zero is 0 (sklearn's default, without its warning). Classes
// absent from both truth and predictions still count in the macro average, as in sklearn when
// `labels` lists every class.
struct ClassificationReport {
  std::vector<std::string> class_names;
  std::vector<ClassScores> per_class;
  double accuracy = 0;
  ClassScores macro_average;
  ClassScores weighted_average;
};

ClassificationReport classification_report(const ConfusionMatrix& matrix, std::vector<std::string> class_names);

// The text layout of sklearn.metrics.classification_report(..., digits=digits).
std::string format_classification_report(const ClassificationReport& report, int digits = 2);

}  // namespace brainmri::metrics

namespace brainmri::metrics {

// Index of the largest value in each row of a row-major [n, class_count] matrix; the first on
// ties, like numpy.argmax.
std::vector<int> argmax_rows(std::span<const double> probabilities, int class_count);

}  // namespace brainmri::metrics
