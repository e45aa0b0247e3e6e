#pragma once
// The localization check: does a class activation map point at the evidence the network used?
//
// Real MRI slices carry no ground truth for "where the evidence is", so the check builds a task
// where it is known: a bright disc at one of four class-specific positions (the quadrants' centres,
// jittered) pasted on real slices, plus a fifth class of slices without a disc (without it, one
// disc class could be told by the absence of the others, with no evidence of its own). A fresh
// network of the architecture under test trains on it briefly; for each CAM method the check
// reports the share of correct disc predictions whose map peaks inside the disc, and the
// model-randomization sanity check (Adebayo et al. 2018) on the same images: the mean Spearman
// correlation between the trained network's maps and those of the same architecture with random
// weights. A method passes when it localizes >= 90% and the correlation stays below 0.5.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "brainmri/explain/gradcam.hpp"
#include "brainmri/models/classifier.hpp"

namespace brainmri::explain {

struct LocalizationCheckOptions {
  std::vector<CamMethod> methods = {CamMethod::HiResCam};
  std::string layer;  // explained layer; "": the model's default
  int train_images = 600;
  int test_images = 150;
  int epochs = 12;
  int batch_size = 32;
  double learning_rate = 2e-3;
  std::uint64_t seed = 3;
  torch::Device device = torch::kCPU;  // where the check network trains (bit-reproducible on CPU)
};

struct MethodCheck {
  CamMethod method;
  double localization = 0;            // share of correct disc predictions peaking inside the disc
  double randomization_spearman = 0;  // mean over the test images (NaN maps left out)
  bool passed() const { return localization >= 0.9 && randomization_spearman < 0.5; }
};

struct LocalizationCheckResult {
  std::string model_name;
  std::string layer;
  int image_size = 0;
  double disc_radius = 0;     // pixels
  double peak_tolerance = 0;  // pixels beyond the radius still counted inside: half a cell of the explained map
  double accuracy = 0;        // of the check network on the synthetic test images (5 classes)
  int correct_disc_predictions = 0;
  bool learned() const { return accuracy >= 0.9; }  // below: the check says nothing about the method
  std::vector<MethodCheck> methods;
};

// `architecture`: the model options of the network under test; its class count is replaced by 5.
// `backgrounds`: real slices [N, C, H, W] in [0, 1] (resized to the architecture's input size).
// Deterministic for a seed on CPU.
LocalizationCheckResult localization_check(const std::string& model_name, models::ModelOptions architecture,
                                           const torch::Tensor& backgrounds,
                                           const LocalizationCheckOptions& options = {});

}  // namespace brainmri::explain
