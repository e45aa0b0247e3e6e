#pragma once
// Class activation maps: where in the image the network's evidence for a class lies.
//
// Grad-CAM (Selvaraju et al. 2017): the target layer's activations A (the model's
// forward_with_features: the last convolution of the baseline CNN, Conv_1 of MobileNetV2),
// weighted per channel by the spatial mean of d score / d A, summed over channels, ReLU,
// bilinearly upsampled to the input and scaled so each map's maximum is 1 (a flat map stays 0).
// Grad-CAM++ (Chattopadhay et al. 2018) weights each position's positive gradient by
// alpha = g² / (2g² + Σ_ij A · g³), the closed form for an exponential of the score.
// Batched, on the model's device, in inference mode (batch norm uses its statistics); works for a
// frozen backbone, since gradients are taken with respect to the activations themselves.

#include <torch/torch.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/common/enum_names.hpp"
#include "brainmri/models/classifier.hpp"

namespace brainmri::explain {

// HiResCAM (Draelos & Carin 2020) multiplies gradients and activations position by position
// instead of averaging the gradients over the map, which keeps a Flatten + Dense head's
// position-specific weights (the paper's CNN) in the explanation.
enum class CamMethod { GradCam, GradCamPlusPlus, HiResCam };
CamMethod cam_method_from_string(const std::string& name);  // parse_enum: gradcam | gradcam++ | hirescam
std::string to_string(CamMethod method);                    // name_of
std::string display_name(CamMethod method);                 // "Grad-CAM", "Grad-CAM++", "HiResCAM"

struct ClassActivationMaps {
  torch::Tensor maps;           // float [N, H, W] in [0, 1], the input's size
  torch::Tensor probabilities;  // float [N, classes]
  torch::Tensor classes;        // int64 [N]: the class each map explains
};

// `images`: [N, C, H, W] in [0, 1] as the model takes them. `classes`: the class to explain per
// image; none: the predicted class. The model is left in the mode it was in.
ClassActivationMaps class_activation_maps(models::Classifier& model, const torch::Tensor& images,
                                          const std::optional<torch::Tensor>& classes = std::nullopt,
                                          CamMethod method = CamMethod::GradCam);

// Spearman's rank correlation of two maps of the same size (ties get their mean rank); NaN when
// either map is constant.
double spearman_correlation(const torch::Tensor& a, const torch::Tensor& b);

// The model-randomization sanity check (Adebayo et al. 2018): the maps of `trained` and of
// `randomized` (the same architecture with fresh weights) for the same images and classes; a map
// that explains the model must change when the weights do. Returns each image's Spearman
// correlation (maps average-pooled to at most 32x32 first, so that the bilinear upsampling adds no
// ties of its own).
std::vector<double> randomization_correlations(models::Classifier& trained, models::Classifier& randomized,
                                               const torch::Tensor& images, const torch::Tensor& classes,
                                               CamMethod method = CamMethod::GradCam);

}  // namespace brainmri::explain

namespace brainmri {
template <>
struct EnumNames<explain::CamMethod> {
  static constexpr std::string_view what = "explanation method";
  static constexpr std::array names = {std::pair{explain::CamMethod::HiResCam, std::string_view("hirescam")},
                                       std::pair{explain::CamMethod::GradCam, std::string_view("gradcam")},
                                       std::pair{explain::CamMethod::GradCamPlusPlus, std::string_view("gradcam++")}};
};
}  // namespace brainmri
