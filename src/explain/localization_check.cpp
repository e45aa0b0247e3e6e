#include "brainmri/explain/localization_check.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace brainmri::explain {
namespace {

constexpr int kDiscClasses = 4;  // class 4: no disc

struct SyntheticSet {
  torch::Tensor images;                            // [N, C, S, S]
  torch::Tensor labels;                            // int64 [N]
  std::vector<std::pair<double, double>> centres;  // (row, column) of each image's disc; (-1, -1): none
};

SyntheticSet make_discs(const torch::Tensor& backgrounds, int count, int size, double radius) {
  // The quadrants' centres of the original 64-pixel design, scaled.
  const double near = 16.0 * size / 64.0, far = 47.0 * size / 64.0;
  const std::pair<double, double> centres[kDiscClasses] = {{near, near}, {near, far}, {far, near}, {far, far}};
  const int jitter = std::max(1, static_cast<int>(std::lround(3.0 * size / 64.0)));
  SyntheticSet set;
  set.images = torch::empty({count, backgrounds.size(1), size, size});
  set.labels = torch::randint(0, kDiscClasses + 1, {count}, torch::kInt64);
  const auto rows = torch::arange(size).view({size, 1}).to(torch::kFloat32);
  const auto columns = torch::arange(size).view({1, size}).to(torch::kFloat32);
  for (int i = 0; i < count; ++i) {
    const auto background = backgrounds[torch::randint(0, backgrounds.size(0), {1}).item<std::int64_t>()] * 0.6;
    const auto label = set.labels[i].item<std::int64_t>();
    const auto offset = torch::randint(-jitter, jitter + 1, {2});
    if (label == kDiscClasses) {
      set.images[i] = background;
      set.centres.push_back({-1, -1});
      continue;
    }
    const double row = centres[label].first + offset[0].item<int>();
    const double column = centres[label].second + offset[1].item<int>();
    const auto inside = ((rows - row).pow(2) + (columns - column).pow(2)).sqrt() <= radius;
    set.images[i] = torch::where(inside.unsqueeze(0), torch::ones_like(background), background);
    set.centres.push_back({row, column});
  }
  return set;
}

}  // namespace

LocalizationCheckResult localization_check(const std::string& model_name, models::ModelOptions architecture,
                                           const torch::Tensor& backgrounds, const LocalizationCheckOptions& options) {
  if (backgrounds.dim() != 4 || backgrounds.size(0) == 0)
    throw std::invalid_argument("the localization check needs background slices of shape [N, C, H, W]");
  if (options.methods.empty()) throw std::invalid_argument("the localization check needs at least one CAM method");
  const int size = architecture.image_size;
  architecture.num_classes = kDiscClasses + 1;
  architecture.input_channels = static_cast<int>(backgrounds.size(1));
  torch::Tensor slices = backgrounds.to(torch::kCPU, torch::kFloat32);
  if (slices.size(2) != size || slices.size(3) != size)
    slices = torch::nn::functional::interpolate(slices, torch::nn::functional::InterpolateFuncOptions()
                                                            .size(std::vector<int64_t>{size, size})
                                                            .mode(torch::kBilinear)
                                                            .align_corners(false));

  LocalizationCheckResult result;
  result.model_name = model_name;
  result.image_size = size;
  result.disc_radius = 7.0 * size / 64.0;

  torch::manual_seed(options.seed);
  auto train = make_discs(slices, options.train_images, size, result.disc_radius);
  auto test = make_discs(slices, options.test_images, size, result.disc_radius);
  auto model = models::create_model(model_name, architecture);
  model->to(options.device);
  train.images = train.images.to(options.device);
  train.labels = train.labels.to(options.device);
  const auto test_images = test.images.to(options.device);
  model->set_explained_layer(options.layer);
  result.layer = model->explained_layer();
  torch::optim::Adam adam(model->parameters(), options.learning_rate);
  model->train();
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    const auto order = torch::randperm(options.train_images);
    for (std::int64_t start = 0; start < options.train_images; start += options.batch_size) {
      const auto index =
          order.narrow(0, start, std::min<std::int64_t>(options.batch_size, options.train_images - start))
              .to(options.device);
      adam.zero_grad();
      torch::nn::functional::cross_entropy(model->forward(train.images.index({index})), train.labels.index({index}))
          .backward();
      adam.step();
    }
  }
  model->eval();
  // A map cannot place its peak more finely than one cell of the explained layer.
  {
    torch::NoGradGuard no_gradients;
    const auto cells = model->forward_with_features(test_images.narrow(0, 0, 1)).features.size(2);
    result.peak_tolerance = 0.5 * size / static_cast<double>(cells);
  }
  torch::manual_seed(options.seed + 1);
  auto randomized = models::create_model(model_name, architecture);
  randomized->to(options.device);
  randomized->set_explained_layer(options.layer);
  randomized->eval();

  for (const auto method : options.methods) {
    auto cam = class_activation_maps(*model, test_images, std::nullopt, method);
    cam.maps = cam.maps.cpu();
    cam.classes = cam.classes.cpu();
    const auto correct = cam.classes.eq(test.labels);
    result.accuracy = correct.to(torch::kFloat64).mean().item<double>();
    int inside = 0, correct_discs = 0;
    for (int i = 0; i < options.test_images; ++i) {
      if (!correct[i].item<bool>() || test.labels[i].item<std::int64_t>() == kDiscClasses) continue;
      ++correct_discs;
      const auto peak = cam.maps[i].argmax().item<std::int64_t>();
      const auto [row, column] = test.centres[static_cast<std::size_t>(i)];
      const double distance =
          std::hypot(static_cast<double>(peak / size) - row, static_cast<double>(peak % size) - column);
      inside += distance <= result.disc_radius + result.peak_tolerance;
    }
    result.correct_disc_predictions = correct_discs;
    MethodCheck check{method};
    check.localization = static_cast<double>(inside) / std::max(1, correct_discs);
    double sum = 0;
    int defined = 0;
    for (const double c :
         randomization_correlations(*model, *randomized, test_images, cam.classes.to(options.device), method)) {
      if (std::isnan(c)) continue;
      sum += c;
      ++defined;
    }
    check.randomization_spearman = defined > 0 ? sum / defined : NAN;
    result.methods.push_back(check);
  }
  return result;
}

}  // namespace brainmri::explain
