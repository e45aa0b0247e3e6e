#include "brainmri/metrics/summary.hpp"

#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <stdexcept>

namespace brainmri::metrics {

double t_quantile_95(int degrees_of_freedom) {
  if (degrees_of_freedom < 1) return NAN;
  const boost::math::students_t distribution(static_cast<double>(degrees_of_freedom));
  return boost::math::quantile(distribution, 0.975);
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
