#pragma once
// Percentile bootstrap confidence intervals for the headline metrics of an evaluation.

#include <cstdint>
#include <span>
#include <vector>

namespace brainmri::metrics {

struct Interval {
  double estimate = 0;     // on the full evaluation set
  double low = 0;          // percentile (1 - level) / 2 of the resampled values
  double high = 0;         // percentile (1 + level) / 2
  int resamples_used = 0;  // resamples in which the metric was defined
};

struct BootstrapOptions {
  int resamples = 1000;
  double level = 0.95;
  std::uint64_t seed = 0;
};

struct BootstrapIntervals {
  Interval accuracy;
  Interval macro_f1;
  Interval macro_auc;
  Interval top_label_ece;  // kCalibrationBins equal-width bins (calibration.hpp)
  std::vector<Interval> auc_per_class;
};

// Resamples the evaluation set with replacement (seeded: the same inputs and seed give the same
// intervals). A resample in which a class has no positive or no negative sample leaves that
// class's AUC (and the macro AUC it would enter) out for that resample only.
BootstrapIntervals bootstrap_intervals(std::span<const int> truth, std::span<const double> probabilities,
                                       int class_count, const BootstrapOptions& options = {});

// Two models' metrics on the same images, A − B, with the paired bootstrap: every resample draws
// the same images for both models, so what the two share (hard images, label noise) cancels and
// the interval is that of the difference, not of either model.
struct PairedBootstrapIntervals {
  Interval accuracy;
  Interval macro_f1;
  Interval macro_auc;
  std::vector<Interval> auc_per_class;
};
// Throws std::invalid_argument when the two probability sets differ in shape.
PairedBootstrapIntervals paired_bootstrap_differences(std::span<const int> truth,
                                                      std::span<const double> probabilities_a,
                                                      std::span<const double> probabilities_b, int class_count,
                                                      const BootstrapOptions& options = {});

// numpy.percentile's default (linear interpolation between closest ranks); `values` is sorted.
double percentile_of_sorted(std::span<const double> values, double percent);

}  // namespace brainmri::metrics
