#pragma once
// Can the probabilities be trusted? Calibration of a classifier's probabilities, with the
// definitions of scikit-learn's calibration_curve, brier_score_loss and log_loss:
//
// - Reliability: the scores are put in bins, equal-width ([0, 1/B], (1/B, 2/B], ... — a score on
//   an inner edge goes to the lower bin, as numpy.searchsorted does in calibration_curve) or
//   equal-mass (edges at the scores' percentiles, numpy's linear interpolation); per non-empty bin
//   the mean score, the observed frequency and the count.
// - Top-label: the score is the highest probability, the outcome whether that class is the truth.
//   Classwise: for class c, the probability of c against whether c is the truth.
// - ECE = Σ_b (n_b / N) |frequency_b − mean score_b| over the bins; MCE = the largest gap of a
//   non-empty bin. Classwise ECE: the mean of the classes' ECEs.
// - Brier score (multiclass, Brier 1950): the mean over images of Σ_c (p_c − [c = truth])², in
//   [0, 2]; for each class it is the sum of sklearn's binary brier_score_loss of the classes.
// - NLL: the mean of −log p_truth (p clipped below at DBL_EPSILON, as log_loss clips).
// Edge policy: no images → NaN everywhere, no bins.

#include <span>
#include <vector>

namespace brainmri::metrics {

enum class CalibrationBinning { EqualWidth, EqualMass };

// The bins of the reported ECE and reliability diagrams: 15 equal-width bins, as Guo et al. (2017)
// and most calibration papers use, so that the numbers compare with theirs.
inline constexpr int kCalibrationBins = 15;

struct ReliabilityBin {
  double mean_score = 0;  // the mean confidence of the bin's images
  double frequency = 0;   // how often the outcome happened in the bin (accuracy, for top-label)
  int count = 0;
  double lower = 0, upper = 1;  // the bin's edges (the first starts at 0, the last ends at 1)
};

struct Reliability {
  std::vector<ReliabilityBin> bins;  // the non-empty bins, in increasing score
  double ece = 0;
  double mce = 0;
};

// One score and one 0/1 outcome per image.
Reliability reliability(std::span<const double> scores, std::span<const int> outcomes, int bin_count,
                        CalibrationBinning binning);

// `probabilities` is row-major [n, class_count].
Reliability top_label_reliability(std::span<const int> labels, std::span<const double> probabilities, int class_count,
                                  int bin_count, CalibrationBinning binning);
Reliability class_reliability(std::span<const int> labels, std::span<const double> probabilities, int class_count,
                              int label, int bin_count, CalibrationBinning binning);
double classwise_ece(std::span<const int> labels, std::span<const double> probabilities, int class_count, int bin_count,
                     CalibrationBinning binning);

double brier_score(std::span<const int> labels, std::span<const double> probabilities, int class_count);
double negative_log_likelihood(std::span<const int> labels, std::span<const double> probabilities, int class_count);

}  // namespace brainmri::metrics
