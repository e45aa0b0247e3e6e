#pragma once
// ROC curves and AUC with scikit-learn's semantics (roc_curve with drop_intermediate=True,
// auc by the trapezoidal rule, one-vs-rest for several classes).

#include <limits>
#include <span>
#include <vector>

namespace brainmri::metrics {

struct RocCurve {
  std::vector<double> false_positive_rate;
  std::vector<double> true_positive_rate;
  std::vector<double> thresholds;  // decreasing; the first is +infinity (the (0,0) point)
};

// Binary curve for `positive` (1) vs other (0) labels. Scores are sorted decreasingly; tied
// scores form one threshold; collinear intermediate points are dropped. With no positive (or no
// negative) sample, the true (false) positive rates are NaN, as in sklearn.
RocCurve roc_curve(std::span<const int> is_positive, std::span<const double> scores, bool drop_intermediate = true);

// Trapezoidal area under the curve; NaN when either rate is undefined.
double area_under_curve(const RocCurve& curve);

inline constexpr double kUndefined = std::numeric_limits<double>::quiet_NaN();

struct OneVsRestRoc {
  std::vector<RocCurve> per_class;
  // NaN for a class with no positive or no negative sample in `truth` (sklearn would raise).
  std::vector<double> auc_per_class;
  // Mean of the defined per-class AUCs (NaN if none is defined); equals sklearn's
  // roc_auc_score(multi_class="ovr", average="macro") whenever every class is present.
  double macro_auc = kUndefined;
  int classes_in_macro = 0;
  RocCurve micro;  // all (sample, class) pairs pooled, as sklearn's average="micro"
  double micro_auc = kUndefined;
};

// `probabilities` is row-major [n, class_count].
OneVsRestRoc one_vs_rest_roc(std::span<const int> truth, std::span<const double> probabilities, int class_count);

}  // namespace brainmri::metrics
