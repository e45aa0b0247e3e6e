#include "brainmri/models/test_time_augmentation.hpp"

#include <numbers>

namespace brainmri::models {

torch::Tensor affine_resample(const torch::Tensor& images, const torch::Tensor& angles, const torch::Tensor& zooms,
                              const torch::Tensor& flipped) {
  const auto n = images.size(0);
  // theta maps output coordinates (normalized to [-1, 1]) to input coordinates:
  // input = R(angle) * zoom * (flip_x * output).
  const auto cos = torch::cos(angles) * zooms;
  const auto sin = torch::sin(angles) * zooms;
  const auto flip = 1.0 - 2.0 * flipped.to(torch::kFloat32);
  const auto zero = torch::zeros({n});
  const auto row0 = torch::stack({cos * flip, -sin, zero}, 1);
  const auto row1 = torch::stack({sin * flip, cos, zero}, 1);
  const auto theta = torch::stack({row0, row1}, 1).to(images.device(), images.scalar_type());
  const auto grid = torch::nn::functional::affine_grid(theta, images.sizes(), /*align_corners=*/false);
  return torch::nn::functional::grid_sample(images, grid,
                                            torch::nn::functional::GridSampleFuncOptions()
                                                .mode(torch::kBilinear)
                                                .padding_mode(torch::kReflection)
                                                .align_corners(false));
}

std::vector<torch::Tensor> test_time_views(const torch::Tensor& images, TestTimeAugmentation augmentation) {
  std::vector<torch::Tensor> views = {images};
  if (augmentation == TestTimeAugmentation::None) return views;
  views.push_back(torch::flip(images, {3}));  // exact: no resampling
  if (augmentation == TestTimeAugmentation::Flip) return views;
  const auto n = images.size(0);
  constexpr double radians = kTestTimeRotationDegrees * std::numbers::pi / 180.0;
  for (const bool flipped : {false, true}) {
    for (const double angle : {radians, -radians}) {
      views.push_back(affine_resample(images, torch::full({n}, angle, torch::kFloat32), torch::ones({n}),
                                      torch::full({n}, flipped, torch::kBool)));
    }
  }
  return views;
}

torch::Tensor test_time_probabilities(const std::function<torch::Tensor(const torch::Tensor&)>& logits_of,
                                      const torch::Tensor& images, TestTimeAugmentation augmentation) {
  torch::Tensor sum;
  const auto views = test_time_views(images, augmentation);
  for (const auto& view : views) {
    const auto p = torch::softmax(logits_of(view).to(torch::kFloat32), 1);
    sum = sum.defined() ? sum + p : p;
  }
  return sum / static_cast<double>(views.size());
}

}  // namespace brainmri::models
