#pragma once
// A metric summarized over repeated evaluations (the folds of a cross-validation): mean, sample
// standard deviation and the 95% Student-t interval of the mean (on the logit scale for a metric
// bounded by 0 and 1).

#include <utility>
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

// The same for a metric that lives in [0, 1] (accuracy, precision, recall, F1, AUC): mean and std
// of the values as they are, the 95% interval from the Student-t interval of their logits, mapped
// back — inside [0, 1] by construction, and asymmetric near the bounds where a fold varies less.
// A value of exactly 0 or 1 counts as kProportionFloor or 1 − kProportionFloor on the logit scale;
// when every value is the same the interval is that value. Throws std::invalid_argument for no
// values or one outside [0, 1].
inline constexpr double kProportionFloor = 1e-3;
Spread spread_of_proportions(const std::vector<double>& values);

// The Wilson score 95% interval of a proportion (`successes` of `trials`), e.g. one subgroup's
// accuracy: inside [0, 1] and sensible for small counts and for 0 or all successes, where the
// normal approximation is not. {NaN, NaN} for no trials.
std::pair<double, double> wilson_interval_95(int successes, int trials);

// Two-sided 95% Student-t quantile, t(0.975, df), for `degrees_of_freedom` >= 1 (Boost.Math); NaN below.
double t_quantile_95(int degrees_of_freedom);

}  // namespace brainmri::metrics
