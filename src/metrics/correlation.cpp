#include "brainmri/metrics/correlation.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

#include "same_size.hpp"

namespace brainmri::metrics {
namespace {

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const auto n = static_cast<double>(x.size());
  const double mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double xy = 0, xx = 0, yy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    xy += (x[i] - mean_x) * (y[i] - mean_y);
    xx += (x[i] - mean_x) * (x[i] - mean_x);
    yy += (y[i] - mean_y) * (y[i] - mean_y);
  }
  if (xx == 0 || yy == 0) return NAN;
  return std::clamp(xy / std::sqrt(xx * yy), -1.0, 1.0);
}

}  // namespace

std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<std::size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (std::size_t start = 0; start < order.size();) {
    std::size_t end = start + 1;
    while (end < order.size() && values[order[end]] == values[order[start]]) ++end;
    const double mean_rank = (static_cast<double>(start + 1) + static_cast<double>(end)) / 2.0;
    for (std::size_t i = start; i < end; ++i) ranks[order[i]] = mean_rank;
    start = end;
  }
  return ranks;
}

double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y) {
  require_same_size(x.size(), y.size(), "spearman_correlation");
  if (x.size() < 3) return NAN;
  return pearson(average_ranks(x), average_ranks(y));
}

double correlation_ratio(const std::vector<int>& group, const std::vector<double>& y) {
  require_same_size(group.size(), y.size(), "correlation_ratio");
  if (y.size() < 3) return NAN;
  const double mean = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(y.size());
  std::map<int, std::pair<double, int>> sums;  // group -> (sum, count)
  double total = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    sums[group[i]].first += y[i];
    sums[group[i]].second += 1;
    total += (y[i] - mean) * (y[i] - mean);
  }
  if (sums.size() < 2 || total == 0) return NAN;
  double between = 0;
  for (const auto& [g, sum_count] : sums) {
    const double group_mean = sum_count.first / sum_count.second;
    between += sum_count.second * (group_mean - mean) * (group_mean - mean);
  }
  return std::sqrt(std::clamp(between / total, 0.0, 1.0));
}

}  // namespace brainmri::metrics
