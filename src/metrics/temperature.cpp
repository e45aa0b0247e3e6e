#include "brainmri/metrics/temperature.hpp"

#include <algorithm>
#include <boost/math/tools/minima.hpp>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>

namespace brainmri::metrics {
namespace {

constexpr double kProbabilityFloor = 1e-12;

// Mean NLL of the rows `rows` at inverse temperature `beta`, from the clipped log-probabilities.
double mean_nll(const std::vector<double>& log_p, std::span<const int> labels, int k, std::span<const std::size_t> rows,
                double beta) {
  const auto classes = static_cast<std::size_t>(k);
  double total = 0;
  for (const auto i : rows) {
    const double* row = log_p.data() + i * classes;
    const double top = *std::max_element(row, row + classes) * beta;
    double sum = 0;
    for (std::size_t c = 0; c < classes; ++c) sum += std::exp(beta * row[c] - top);
    total += top + std::log(sum) - beta * row[static_cast<std::size_t>(labels[i])];
  }
  return total / static_cast<double>(rows.size());
}

std::vector<double> clipped_logs(std::span<const double> probabilities) {
  std::vector<double> logs(probabilities.size());
  std::transform(probabilities.begin(), probabilities.end(), logs.begin(),
                 [](double p) { return std::log(std::max(p, kProbabilityFloor)); });
  return logs;
}

double fit_rows(const std::vector<double>& log_p, std::span<const int> labels, int k,
                std::span<const std::size_t> rows) {
  if (rows.empty()) return 1.0;
  const auto objective = [&](double beta) { return mean_nll(log_p, labels, k, rows, beta); };
  // Brent to full double precision would chase rounding noise; 40 bits is far below any
  // difference a temperature makes.
  const auto [beta, nll] =
      boost::math::tools::brent_find_minima(objective, 1.0 / kMaxTemperature, 1.0 / kMinTemperature, 40);
  (void)nll;
  return 1.0 / beta;
}

void check_shape(std::span<const double> probabilities, std::size_t rows, int class_count) {
  if (class_count < 1 || probabilities.size() != rows * static_cast<std::size_t>(class_count)) {
    throw std::invalid_argument("temperature scaling: probabilities are not [images, classes]");
  }
}

void check_labels(std::span<const int> labels, int class_count) {
  if (std::any_of(labels.begin(), labels.end(), [&](int label) { return label < 0 || label >= class_count; }))
    throw std::invalid_argument("temperature scaling: a label is outside 0.." + std::to_string(class_count - 1));
}

}  // namespace

std::vector<double> apply_temperature(std::span<const double> probabilities, int class_count, double temperature) {
  if (!(temperature > 0) || !std::isfinite(temperature))
    throw std::invalid_argument("a temperature must be a positive number");
  const auto classes = static_cast<std::size_t>(class_count);
  check_shape(probabilities, probabilities.size() / std::max<std::size_t>(classes, 1), class_count);
  const auto logs = clipped_logs(probabilities);
  std::vector<double> scaled(probabilities.size());
  for (std::size_t row = 0; row < probabilities.size(); row += classes) {
    const double top = *std::max_element(logs.begin() + static_cast<std::ptrdiff_t>(row),
                                         logs.begin() + static_cast<std::ptrdiff_t>(row + classes));
    double sum = 0;
    for (std::size_t c = 0; c < classes; ++c) sum += scaled[row + c] = std::exp((logs[row + c] - top) / temperature);
    for (std::size_t c = 0; c < classes; ++c) scaled[row + c] /= sum;
  }
  return scaled;
}

double fit_temperature(std::span<const double> probabilities, std::span<const int> labels, int class_count) {
  check_shape(probabilities, labels.size(), class_count);
  check_labels(labels, class_count);
  std::vector<std::size_t> rows(labels.size());
  std::iota(rows.begin(), rows.end(), std::size_t{0});
  return fit_rows(clipped_logs(probabilities), labels, class_count, rows);
}

std::vector<double> cross_fitted_temperature_scaling(std::span<const double> probabilities, std::span<const int> labels,
                                                     int class_count, std::uint64_t seed, double (&temperatures)[2]) {
  check_shape(probabilities, labels.size(), class_count);
  check_labels(labels, class_count);
  // Halves: each class's images shuffled and dealt alternately, so both halves hold every class.
  std::vector<std::vector<std::size_t>> by_class(static_cast<std::size_t>(class_count));
  for (std::size_t i = 0; i < labels.size(); ++i) by_class.at(static_cast<std::size_t>(labels[i])).push_back(i);
  std::mt19937_64 random(seed);
  std::vector<std::size_t> halves[2];
  std::size_t next = 0;
  for (auto& members : by_class) {
    std::shuffle(members.begin(), members.end(), random);
    for (const auto i : members) halves[next++ % 2].push_back(i);
  }
  const auto logs = clipped_logs(probabilities);
  const auto classes = static_cast<std::size_t>(class_count);
  std::vector<double> scaled(probabilities.size());
  for (int half = 0; half < 2; ++half) {
    temperatures[half] = fit_rows(logs, labels, class_count, halves[1 - half]);
    for (const auto i : halves[half]) {
      const auto row = apply_temperature(probabilities.subspan(i * classes, classes), class_count, temperatures[half]);
      std::copy(row.begin(), row.end(), scaled.begin() + static_cast<std::ptrdiff_t>(i * classes));
    }
  }
  return scaled;
}

}  // namespace brainmri::metrics
