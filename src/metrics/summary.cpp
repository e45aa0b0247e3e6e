#include "brainmri/metrics/summary.hpp"

#include <cmath>
#include <stdexcept>

namespace brainmri::metrics {

double t_quantile_95(int degrees_of_freedom) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (degrees_of_freedom < 1) return NAN;
  return degrees_of_freedom <= 30 ? table[degrees_of_freedom - 1] : 1.96;
}

Spread spread(const std::vector<double>& values) {
  if (values.empty()) throw std::invalid_argument("a spread needs at least one value");
  Spread s;
  s.count = static_cast<int>(values.size());
  const auto n = static_cast<double>(values.size());
  for (const auto v : values) s.mean += v / n;
  if (values.size() < 2) {
    s.std_dev = s.ci95_low = s.ci95_high = NAN;
    return s;
  }
  double squares = 0;
  for (const auto v : values) squares += (v - s.mean) * (v - s.mean);
  s.std_dev = std::sqrt(squares / (n - 1));
  const double half_width = t_quantile_95(s.count - 1) * s.std_dev / std::sqrt(n);
  s.ci95_low = s.mean - half_width;
  s.ci95_high = s.mean + half_width;
  return s;
}

}  // namespace brainmri::metrics
