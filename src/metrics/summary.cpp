#include "brainmri/metrics/summary.hpp"

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <stdexcept>

namespace brainmri::metrics {

double t_quantile_95(int degrees_of_freedom) {
  if (degrees_of_freedom < 1) return NAN;
  const boost::math::students_t distribution(static_cast<double>(degrees_of_freedom));
  return boost::math::quantile(distribution, 0.975);
}

std::pair<double, double> wilson_interval_95(int successes, int trials) {
  if (trials <= 0) return {NAN, NAN};
  const double z = 1.959963984540054;  // the standard normal's 0.975 quantile
  const double n = trials, p = static_cast<double>(successes) / n, z2 = z * z;
  const double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const double half_width = z / (1 + z2 / n) * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return {std::max(0.0, centre - half_width), std::min(1.0, centre + half_width)};
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

Spread spread_of_proportions(const std::vector<double>& values) {
  Spread s = spread(values);
  for (const double v : values) {
    if (!(v >= 0 && v <= 1)) {
      throw std::invalid_argument("spread_of_proportions: " + std::to_string(v) + " is not in [0, 1]");
    }
  }
  if (values.size() < 2) return s;
  if (s.std_dev == 0) {
    s.ci95_low = s.ci95_high = values.front();
    return s;
  }
  std::vector<double> logits;
  for (const double v : values) {
    const double p = std::clamp(v, kProportionFloor, 1 - kProportionFloor);
    logits.push_back(std::log(p / (1 - p)));
  }
  const Spread on_logits = spread(logits);
  const auto inverse_logit = [](double z) { return 1 / (1 + std::exp(-z)); };
  s.ci95_low = inverse_logit(on_logits.ci95_low);
  s.ci95_high = inverse_logit(on_logits.ci95_high);
  return s;
}

}  // namespace brainmri::metrics
