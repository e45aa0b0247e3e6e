#include "brainmri/metrics/significance.hpp"

#include <algorithm>
#include <boost/math/distributions/binomial.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "brainmri/metrics/correlation.hpp"
#include "same_size.hpp"

namespace brainmri::metrics {
namespace {

// Sun & Xu's structural components of one model's AUC: V10 over the positives, V01 over the
// negatives, and the AUC — all from midranks, so O(n log n).
struct Components {
  std::vector<double> v10, v01;
  double auc = 0;
};

Components components(std::span<const int> positive, std::span<const double> scores) {
  std::vector<double> positives, negatives;
  for (std::size_t i = 0; i < scores.size(); ++i) (positive[i] != 0 ? positives : negatives).push_back(scores[i]);
  const auto m = positives.size(), n = negatives.size();
  std::vector<double> all(positives);
  all.insert(all.end(), negatives.begin(), negatives.end());
  const auto t_x = average_ranks(positives), t_y = average_ranks(negatives), t_z = average_ranks(all);
  Components c;
  double rank_sum = 0;
  for (std::size_t i = 0; i < m; ++i) {
    c.v10.push_back((t_z[i] - t_x[i]) / static_cast<double>(n));
    rank_sum += t_z[i];
  }
  for (std::size_t j = 0; j < n; ++j) c.v01.push_back(1.0 - (t_z[m + j] - t_y[j]) / static_cast<double>(m));
  c.auc = (rank_sum - static_cast<double>(m) * static_cast<double>(m + 1) / 2.0) /
          (static_cast<double>(m) * static_cast<double>(n));
  return c;
}

// The sample covariance of two equally long vectors (divisor size − 1).
double covariance(const std::vector<double>& a, const std::vector<double>& b) {
  const auto size = static_cast<double>(a.size());
  const double mean_a = std::accumulate(a.begin(), a.end(), 0.0) / size;
  const double mean_b = std::accumulate(b.begin(), b.end(), 0.0) / size;
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += (a[i] - mean_a) * (b[i] - mean_b);
  return sum / (size - 1);
}

double two_sided_normal(double z) {
  const boost::math::normal standard;
  return 2.0 * boost::math::cdf(boost::math::complement(standard, std::abs(z)));
}

}  // namespace

PairedAucTest delong_test(std::span<const int> positive, std::span<const double> scores_a,
                          std::span<const double> scores_b) {
  require_same_size(positive.size(), scores_a.size(), "delong_test");
  require_same_size(positive.size(), scores_b.size(), "delong_test");
  const auto m =
      static_cast<std::size_t>(std::count_if(positive.begin(), positive.end(), [](int p) { return p != 0; }));
  const auto n = positive.size() - m;
  PairedAucTest test;
  if (m < 2 || n < 2) {  // a covariance needs two of each
    test.auc_a = test.auc_b = test.difference = test.standard_error = test.z = test.p_value = NAN;
    return test;
  }
  const auto a = components(positive, scores_a), b = components(positive, scores_b);
  test.auc_a = a.auc;
  test.auc_b = b.auc;
  test.difference = a.auc - b.auc;
  const double variance =
      (covariance(a.v10, a.v10) + covariance(b.v10, b.v10) - 2 * covariance(a.v10, b.v10)) / static_cast<double>(m) +
      (covariance(a.v01, a.v01) + covariance(b.v01, b.v01) - 2 * covariance(a.v01, b.v01)) / static_cast<double>(n);
  test.standard_error = std::sqrt(std::max(variance, 0.0));
  if (test.standard_error > 0) {
    test.z = test.difference / test.standard_error;
    test.p_value = two_sided_normal(test.z);
  } else {  // the two models rank every pair alike: no evidence of a difference
    test.z = test.difference == 0 ? 0 : NAN;
    test.p_value = test.difference == 0 ? 1 : NAN;
  }
  return test;
}

PairedAccuracyTest mcnemar_exact_test(std::span<const int> truth, std::span<const int> predicted_a,
                                      std::span<const int> predicted_b) {
  require_same_size(truth.size(), predicted_a.size(), "mcnemar_exact_test");
  require_same_size(truth.size(), predicted_b.size(), "mcnemar_exact_test");
  PairedAccuracyTest test;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    const bool a_right = predicted_a[i] == truth[i], b_right = predicted_b[i] == truth[i];
    test.only_a_right += a_right && !b_right ? 1 : 0;
    test.only_b_right += b_right && !a_right ? 1 : 0;
  }
  const int discordant = test.only_a_right + test.only_b_right;
  if (discordant == 0) return test;  // p = 1: the models never disagree on being right
  const boost::math::binomial binomial(discordant, 0.5);
  const double tail = boost::math::cdf(binomial, std::min(test.only_a_right, test.only_b_right));
  test.p_value = std::min(1.0, 2.0 * tail);
  return test;
}

CorrectedTTest corrected_resampled_t_test(std::span<const double> differences, double test_to_train) {
  CorrectedTTest test;
  const auto j = differences.size();
  test.degrees_of_freedom = static_cast<int>(j) - 1;
  if (j == 0) {
    test.mean_difference = test.t = test.p_value = NAN;
    return test;
  }
  test.mean_difference = std::accumulate(differences.begin(), differences.end(), 0.0) / static_cast<double>(j);
  if (j < 2) {
    test.t = test.p_value = NAN;
    return test;
  }
  double squares = 0;
  for (const double d : differences) squares += (d - test.mean_difference) * (d - test.mean_difference);
  const double variance = squares / static_cast<double>(j - 1);
  const double corrected = (1.0 / static_cast<double>(j) + test_to_train) * variance;
  if (corrected == 0) {
    test.t = test.mean_difference == 0 ? 0 : NAN;
    test.p_value = test.mean_difference == 0 ? 1 : NAN;
    return test;
  }
  test.t = test.mean_difference / std::sqrt(corrected);
  const boost::math::students_t distribution(static_cast<double>(test.degrees_of_freedom));
  test.p_value = 2.0 * boost::math::cdf(boost::math::complement(distribution, std::abs(test.t)));
  return test;
}

std::vector<double> holm_adjusted(std::span<const double> p_values) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < p_values.size(); ++i) {
    if (!std::isnan(p_values[i])) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p_values[a] < p_values[b]; });
  std::vector<double> adjusted(p_values.begin(), p_values.end());
  const auto tests = order.size();
  double running = 0;
  for (std::size_t rank = 0; rank < tests; ++rank) {
    const double scaled = std::min(1.0, static_cast<double>(tests - rank) * p_values[order[rank]]);
    running = std::max(running, scaled);  // step-down: never below an earlier adjusted value
    adjusted[order[rank]] = running;
  }
  return adjusted;
}

}  // namespace brainmri::metrics
