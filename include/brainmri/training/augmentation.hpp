#pragma once
// Keras-equivalent augmentation applied to a whole batch on its device in one resampling pass:
// RandomFlip("horizontal"), RandomRotation(f), RandomZoom(f) and RandomContrast(f).
//
// - flip: each image mirrored left-right with probability 1/2;
// - rotation: angle uniform in [-f, f] * 2*pi (RandomRotation(0.08) = +-28.8 degrees);
// - zoom: one factor uniform in [1 - f, 1 + f] for both axes (Keras keeps the aspect ratio when
//   width_factor is None); above 1 zooms out;
// - contrast: (x - mean) * c + mean per image and channel, c uniform in [1 - f, 1 + f], clipped to
//   [0, 1];
// - rotation, zoom and flip are one affine map per image, applied by a single grid_sample with
//   bilinear interpolation and reflection at the borders (Keras fill_mode="reflect").
// Random numbers come from a generator seeded by (seed, rank, epoch, step): reproducible, and
// different on every rank and step.

#include <torch/torch.h>

#include <cstdint>

namespace brainmri::training {

struct AugmentationOptions {
  bool horizontal_flip = true;
  double rotation = 0.08;
  double zoom = 0.08;
  double contrast = 0.1;
  bool enabled() const { return horizontal_flip || rotation > 0 || zoom > 0 || contrast > 0; }
};

struct AugmentationDraw {
  torch::Tensor flipped;   // bool [N]
  torch::Tensor angles;    // radians [N]
  torch::Tensor zooms;     // [N]
  torch::Tensor contrast;  // [N]
};

std::uint64_t augmentation_seed(std::uint64_t seed, int rank, int epoch, std::int64_t step);

class BatchAugmenter {
 public:
  explicit BatchAugmenter(AugmentationOptions options) : options_(options) {}
  const AugmentationOptions& options() const { return options_; }

  // The random parameters for a batch of `count` images (on the CPU).
  AugmentationDraw draw(std::int64_t count, std::uint64_t stream_seed) const;
  // images: float [N, C, H, W] in [0, 1] on any device; returns a new tensor.
  torch::Tensor apply(const torch::Tensor& images, const AugmentationDraw& draw) const;
  torch::Tensor apply(const torch::Tensor& images, std::uint64_t stream_seed) const {
    return apply(images, draw(images.size(0), stream_seed));
  }

 private:
  AugmentationOptions options_;
};

}  // namespace brainmri::training
