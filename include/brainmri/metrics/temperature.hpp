#pragma once
// Temperature scaling (Guo et al. 2017): one temperature T > 0 divides every logit before the
// softmax; T > 1 softens over-confident probabilities, T < 1 sharpens under-confident ones, and
// the predicted class never changes. It works on probabilities as well as on logits: log p is the
// logit up to a per-row constant, which the softmax ignores, so softmax(z / T) is p^(1/T)
// renormalized. Probabilities are clipped below at 1e-12 first, as the losses are.

#include <cstdint>
#include <span>
#include <vector>

namespace brainmri::metrics {

// The temperatures fit_temperature searches: far beyond what trained networks need (about 0.5-5).
inline constexpr double kMinTemperature = 0.05;
inline constexpr double kMaxTemperature = 20.0;

// `probabilities` is row-major [n, class_count]; returns them scaled by `temperature`.
std::vector<double> apply_temperature(std::span<const double> probabilities, int class_count, double temperature);

// The temperature minimizing the mean negative log-likelihood of `labels`: Brent's method on
// β = 1/T in [1/kMaxTemperature, 1/kMinTemperature], where the NLL is convex (a log-sum-exp of
// lines in β), so the bracketed minimum is the global one. No images: 1.
double fit_temperature(std::span<const double> probabilities, std::span<const int> labels, int class_count);

// Temperature scaling evaluated honestly on the images it is fitted on: the images are split in
// two halves (a seeded, class-stratified shuffle), each half is scaled with the temperature fitted
// on the other (2-fold cross-fitting), so no image's probabilities come from a temperature fitted
// on it. `temperatures` receives the two halves' temperatures.
std::vector<double> cross_fitted_temperature_scaling(std::span<const double> probabilities, std::span<const int> labels,
                                                     int class_count, std::uint64_t seed, double (&temperatures)[2]);

}  // namespace brainmri::metrics
