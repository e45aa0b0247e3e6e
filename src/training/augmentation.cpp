#include "brainmri/training/augmentation.hpp"

#include <cmath>
#include <numbers>

#include "brainmri/models/test_time_augmentation.hpp"

namespace brainmri::training {

std::uint64_t augmentation_seed(std::uint64_t seed, int rank, int epoch, std::int64_t step) {
  // splitmix64 over the four coordinates: nearby (rank, epoch, step) give unrelated streams.
  auto mix = [](std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  };
  std::uint64_t h = mix(seed);
  h = mix(h ^ static_cast<std::uint64_t>(rank));
  h = mix(h ^ static_cast<std::uint64_t>(epoch));
  return mix(h ^ static_cast<std::uint64_t>(step));
}

AugmentationDraw BatchAugmenter::draw(std::int64_t count, std::uint64_t stream_seed) const {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(stream_seed);
  const auto options = torch::TensorOptions().dtype(torch::kFloat32);
  auto uniform = [&](double low, double high) { return torch::empty({count}, options).uniform_(low, high, generator); };
  AugmentationDraw d;
  // Always draw every parameter, so switching one augmentation off leaves the others' streams alone.
  const auto coin = uniform(0.0, 1.0);
  const double max_angle = options_.rotation * 2.0 * std::numbers::pi;
  const auto angle = uniform(-1.0, 1.0);
  const auto zoom = uniform(-1.0, 1.0);
  const auto contrast = uniform(-1.0, 1.0);
  d.flipped = options_.horizontal_flip ? coin < 0.5 : torch::zeros({count}, torch::kBool);
  d.angles = angle * max_angle;
  d.zooms = 1.0 + zoom * options_.zoom;
  d.contrast = 1.0 + contrast * options_.contrast;
  return d;
}

torch::Tensor BatchAugmenter::apply(const torch::Tensor& images, const AugmentationDraw& d) const {
  const auto n = images.size(0);
  torch::Tensor out = images;
  const bool geometric = options_.horizontal_flip || options_.rotation > 0 || options_.zoom > 0;
  if (geometric) out = models::affine_resample(images, d.angles, d.zooms, d.flipped);
  if (options_.contrast > 0) {
    const auto factor = d.contrast.to(images.device(), images.scalar_type()).view({n, 1, 1, 1});
    const auto mean = out.mean({2, 3}, /*keepdim=*/true);
    out = ((out - mean) * factor + mean).clamp(0.0, 1.0);
  }
  return out;
}

}  // namespace brainmri::training
