#pragma once
// A metric summarized over repeated evaluations (the folds of a cross-validation): mean, sample
// standard deviation and the 95% Student-t interval of the mean.

#include <vector>

namespace brainmri::metrics {

struct Spread {
  double mean = 0;
  double std_dev = 0;   // NaN for fewer than 2 values
  double ci95_low = 0;  // mean ± t(0.975, n-1) · s / √n; NaN for fewer than 2 values
  double ci95_high = 0;
  int count = 0;
};

// Throws std::invalid_argument for no values.
Spread spread(const std::vector<double>& values);

// Two-sided 95% Student-t quantile, t(0.975, df), for `degrees_of_freedom` >= 1 (Boost.Math); NaN below.
double t_quantile_95(int degrees_of_freedom);

}  // namespace brainmri::metrics
