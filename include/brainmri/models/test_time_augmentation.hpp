#pragma once
// Test-time augmentation: a model's class probabilities averaged over fixed views of each image,
// the views the training augmentation makes likely (training/augmentation.hpp):
// - none: the image;
// - flip: the image and its mirror image (left-right), 2 views;
// - flip+rot: those two, each also turned by +kTestTimeRotationDegrees and −kTestTimeRotationDegrees,
//   6 views.
// The mean is of probabilities (the softmax of each view's logits), as in most TTA and ensemble
// work; a model's temperature then scales that mean (evaluate, held-out tests, predict, serve).
// Here, beside the networks, so that inference (predict, serve) uses it without linking the
// trainer; the training augmentation shares affine_resample.

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "brainmri/common/enum_names.hpp"

namespace brainmri::models {

enum class TestTimeAugmentation { None, Flip, FlipRotate };

// A third of the paper's training rotation range (RandomRotation(0.08): ±28.8°).
inline constexpr double kTestTimeRotationDegrees = 10.0;

// One affine map per image [N, C, H, W]: output = the input rotated by `angles` (radians [N]),
// zoomed by `zooms` ([N], above 1 zooms out) and mirrored left-right where `flipped` ([N] bool),
// bilinear with reflected borders (Keras fill_mode="reflect"). All on the CPU or the images' device.
torch::Tensor affine_resample(const torch::Tensor& images, const torch::Tensor& angles, const torch::Tensor& zooms,
                              const torch::Tensor& flipped);

// The views of a batch [N, C, H, W], the unchanged images first.
std::vector<torch::Tensor> test_time_views(const torch::Tensor& images, TestTimeAugmentation augmentation);

// The mean over the views of softmax(logits), float [N, classes] on the images' device. A stored
// temperature scales that mean afterwards (metrics/temperature.hpp), as it was fitted.
torch::Tensor test_time_probabilities(const std::function<torch::Tensor(const torch::Tensor&)>& logits_of,
                                      const torch::Tensor& images, TestTimeAugmentation augmentation);

}  // namespace brainmri::models

namespace brainmri {
template <>
struct EnumNames<models::TestTimeAugmentation> {
  static constexpr std::string_view what = "test-time augmentation";
  static constexpr std::array names = {
      std::pair{models::TestTimeAugmentation::None, std::string_view("none")},
      std::pair{models::TestTimeAugmentation::Flip, std::string_view("flip")},
      std::pair{models::TestTimeAugmentation::FlipRotate, std::string_view("flip+rot")}};
};
}  // namespace brainmri
