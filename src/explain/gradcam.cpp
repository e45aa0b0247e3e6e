#include "brainmri/explain/gradcam.hpp"

#include <cmath>
#include <stdexcept>

namespace brainmri::explain {

CamMethod cam_method_from_string(const std::string& name) { return parse_enum<CamMethod>(name); }
std::string to_string(CamMethod method) { return name_of(method); }

std::string display_name(CamMethod method) {  // in figures and pages
  switch (method) {
    case CamMethod::GradCam: return "Grad-CAM";
    case CamMethod::GradCamPlusPlus: return "Grad-CAM++";
    case CamMethod::HiResCam: return "HiResCAM";
  }
  throw std::logic_error("a CAM method without a name");
}

ClassActivationMaps class_activation_maps(models::Classifier& model, const torch::Tensor& images,
                                          const std::optional<torch::Tensor>& classes, CamMethod method) {
  if (images.dim() != 4) throw std::invalid_argument("Grad-CAM needs images of shape [N, C, H, W]");
  const bool was_training = model.is_training();
  model.eval();
  torch::AutoGradMode gradients_on(true);
  // The input requires gradients so that the graph reaches the activations even when every
  // layer before them is frozen; only d score / d activations is computed.
  auto input = images.detach().clone().requires_grad_(true);
  const auto out = model.forward_with_features(input);
  const auto activations = out.features;
  ClassActivationMaps result;
  result.probabilities = torch::softmax(out.logits.detach().to(torch::kFloat32), 1);
  result.classes = classes ? classes->to(out.logits.device(), torch::kInt64) : result.probabilities.argmax(1);
  if (result.classes.numel() != images.size(0)) {
    model.train(was_training);
    throw std::invalid_argument("Grad-CAM: one class per image is needed");
  }
  // Each image's score depends on its own activations only, so one backward gives every image's gradient.
  const auto score = out.logits.gather(1, result.classes.unsqueeze(1)).sum();
  const auto gradients =
      torch::autograd::grad({score}, {activations}, {}, /*retain_graph=*/false)[0].to(torch::kFloat32);
  const auto a = activations.detach().to(torch::kFloat32);
  torch::Tensor weights;
  if (method == CamMethod::GradCam) {
    weights = gradients.mean({2, 3}, /*keepdim=*/true);
  } else if (method == CamMethod::HiResCam) {
    weights = gradients;  // per position: the sum below is then Σ_k g_k(x, y) · A_k(x, y)
  } else {
    const auto g2 = gradients.pow(2), g3 = gradients.pow(3);
    auto denominator = 2 * g2 + a.sum({2, 3}, /*keepdim=*/true) * g3;
    denominator = torch::where(denominator != 0, denominator, torch::ones_like(denominator));
    const auto alpha = g2 / denominator;
    weights = (alpha * torch::relu(gradients)).sum({2, 3}, /*keepdim=*/true);
  }
  auto cam = torch::relu((weights * a).sum(1, /*keepdim=*/true));
  cam = torch::nn::functional::interpolate(cam, torch::nn::functional::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{images.size(2), images.size(3)})
                                                    .mode(torch::kBilinear)
                                                    .align_corners(false));
  cam = cam.squeeze(1);
  const auto peak = cam.flatten(1).amax(1).view({-1, 1, 1});
  // A flat (all-zero) map has nothing to point at: it stays zero rather than dividing by zero.
  result.maps = torch::where(peak > 1e-12, cam / peak.clamp_min(1e-12), torch::zeros_like(cam));
  model.train(was_training);
  return result;
}

namespace {
torch::Tensor ranks(const torch::Tensor& values) {
  const auto flat = values.flatten().to(torch::kFloat64);
  const auto order = flat.argsort();
  const auto sorted = flat.index({order});
  auto rank = torch::empty_like(flat);
  const auto* s = sorted.data_ptr<double>();
  const auto* o = order.data_ptr<std::int64_t>();
  auto* r = rank.data_ptr<double>();
  const auto n = flat.numel();
  for (std::int64_t i = 0; i < n;) {
    std::int64_t j = i;
    while (j + 1 < n && s[j + 1] == s[i]) ++j;
    const double mean_rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0;
    for (std::int64_t t = i; t <= j; ++t) r[o[t]] = mean_rank;
    i = j + 1;
  }
  return rank;
}
}  // namespace

double spearman_correlation(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.numel() != b.numel() || a.numel() < 2)
    throw std::invalid_argument("Spearman correlation needs two maps of one size");
  const auto ra = ranks(a.cpu().contiguous()), rb = ranks(b.cpu().contiguous());
  const auto da = ra - ra.mean(), db = rb - rb.mean();
  const double denominator = std::sqrt((da * da).sum().item<double>() * (db * db).sum().item<double>());
  return denominator > 0 ? (da * db).sum().item<double>() / denominator : NAN;
}

std::vector<double> randomization_correlations(models::Classifier& trained, models::Classifier& randomized,
                                               const torch::Tensor& images, const torch::Tensor& classes,
                                               CamMethod method) {
  const auto a = class_activation_maps(trained, images, classes, method).maps;
  const auto b = class_activation_maps(randomized, images, classes, method).maps;
  const auto side = std::min<std::int64_t>(32, images.size(2));
  auto pool = [&](const torch::Tensor& maps) {
    return torch::adaptive_avg_pool2d(maps.unsqueeze(1), {side, side}).squeeze(1);
  };
  const auto pa = pool(a), pb = pool(b);
  std::vector<double> correlations;
  for (std::int64_t i = 0; i < images.size(0); ++i) correlations.push_back(spearman_correlation(pa[i], pb[i]));
  return correlations;
}

}  // namespace brainmri::explain
