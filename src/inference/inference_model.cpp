#include "brainmri/inference/inference_model.hpp"

#include <torch/script.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/ini.hpp"
#include "brainmri/common/log.hpp"
#include "brainmri/common/sha256.hpp"
#include "brainmri/data/manifest.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/version.hpp"

namespace brainmri::inference {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Probabilities [N, classes] scaled by a temperature: softmax(z / T) from softmax(z), since log p
// is z up to a per-row constant (metrics/temperature.hpp, which does the same for stored ones).
torch::Tensor with_temperature(const torch::Tensor& probabilities, double temperature) {
  if (temperature == 1.0) return probabilities;
  return torch::softmax(torch::log(probabilities.clamp_min(1e-12)) / temperature, 1);
}

json read_json_or_null(const fs::path& file) {
  if (!fs::exists(file)) return nullptr;
  std::ifstream in(file);
  auto parsed = json::parse(in, nullptr, false);
  return parsed.is_discarded() ? json(nullptr) : parsed;
}

// The run's config.ini (written by train/cv/tune next to the model, or one level up for a fold),
// as key -> value.
std::pair<fs::path, std::map<std::string, std::string>> run_configuration(const fs::path& model_file) {
  for (const auto& directory : {model_file.parent_path(), model_file.parent_path().parent_path()}) {
    const auto file = directory / "config.ini";
    if (directory.empty() || !fs::exists(file)) continue;
    std::map<std::string, std::string> values;
    try {
      for (const auto& entry : read_ini(file)) values[entry.key] = entry.value;
    } catch (const std::exception&) {
      return {};  // an unreadable config only costs the provenance: the defaults apply
    }
    return {file, values};
  }
  return {};
}

}  // namespace

InferenceModel::~InferenceModel() = default;

std::unique_ptr<InferenceModel> InferenceModel::load(const fs::path& file, const LoadOptions& options) {
  validate(options);
  if (!fs::is_regular_file(file)) throw std::runtime_error("model file " + file.string() + " does not exist");
  std::unique_ptr<InferenceModel> model(new InferenceModel());
  model->device_ = options.device;
  model->method_ = options.method;
  std::string checkpoint_error;
  std::optional<models::ModelCard> card;  // in checkpoints written since model cards: usable alone
  try {
    auto loaded = models::load_checkpoint(file, options.device);
    model->classifier_ = std::move(loaded.model);
    card = std::move(loaded.card);
  } catch (const std::exception& e) {
    checkpoint_error = e.what();
  }
  int class_count = 0;
  auto& preprocessing = model->preprocessing_;
  if (model->classifier_) {
    const auto layer = options.explained_layer.empty() && card ? card->explained_layer : options.explained_layer;
    try {
      model->classifier_->set_explained_layer(layer);
    } catch (const std::invalid_argument& e) {
      throw ConfigError("layer", e.what());
    }
    model->classifier_->eval();
    model->name_ = model->classifier_->model_name();
    preprocessing.size = model->classifier_->options().image_size;
    preprocessing.channels = model->classifier_->options().input_channels;
    class_count = model->classifier_->options().num_classes;
  } else {
    try {
      model->exported_ = std::make_unique<torch::jit::Module>(torch::jit::load(file.string(), options.device));
    } catch (const c10::Error&) {
      throw std::runtime_error(checkpoint_error + "; nor is it a TorchScript export");
    }
    model->exported_->eval();
    model->name_ = "torchscript";
    preprocessing.size = options.export_image_size;
    preprocessing.channels = options.export_channels;
    torch::NoGradGuard no_grad;
    const auto probe =
        torch::zeros({1, preprocessing.channels, preprocessing.size, preprocessing.size}, options.device);
    class_count = static_cast<int>(model->exported_->forward({probe}).toTensor().size(1));
  }

  // Where it came from: the run's configuration, its dataset's manifest and its evaluation.
  const auto [config_file, config] = run_configuration(file);
  std::optional<data::Manifest> manifest;
  if (const auto data = config.find("data");
      data != config.end() && fs::exists(fs::path(data->second) / "manifest.json")) {
    try {
      manifest = data::read_manifest(data->second);
    } catch (const std::exception&) {
      // A damaged manifest only costs the class names and the resize mode: the defaults apply.
    }
  }
  json evaluation = nullptr;
  std::string evaluation_name;
  for (const auto* name : {"validation", "test"}) {
    evaluation = read_json_or_null(file.parent_path() / name / "metrics.json");
    if (evaluation.is_object()) {
      evaluation_name = name;
      break;
    }
  }

  if (card && static_cast<int>(card->class_names.size()) == class_count) {
    model->class_names_ = card->class_names;
  } else if (evaluation.is_object() && evaluation.contains("class_names") &&
             static_cast<int>(evaluation["class_names"].size()) == class_count) {
    model->class_names_ = evaluation["class_names"].get<std::vector<std::string>>();
  } else if (manifest && static_cast<int>(manifest->class_names.size()) == class_count) {
    model->class_names_ = manifest->class_names;
  } else {
    for (int k = 0; k < class_count; ++k) model->class_names_.push_back("class " + std::to_string(k));
  }
  std::string resize_source = "given";
  if (options.resize == "auto" && card) {
    preprocessing.resize = imaging::parse_resize_mode(card->preprocessing.resize);
    resize_source = "the checkpoint's model card";
  } else if (options.resize == "auto") {
    const bool known = manifest && !manifest->resize_mode.empty();
    preprocessing.resize = known ? imaging::parse_resize_mode(manifest->resize_mode) : imaging::ResizeMode::kStretch;
    resize_source = known ? "the dataset's manifest" : "default (no dataset manifest found)";
  } else {
    preprocessing.resize = imaging::parse_resize_mode(options.resize);  // throws std::invalid_argument
  }
  model->sha256_ = sha256_file(file);
  model->temperature_ = models::temperature_for(card, options.calibration);
  model->test_time_augmentation_ = options.test_time_augmentation;
  json calibration = {{"method", model->temperature_ != 1.0 ? "temperature" : "none"},
                      {"temperature", model->temperature_}};
  if (card && card->calibration && options.calibration == models::Calibration::Temperature) {
    calibration["fitted_on"] = card->calibration->fitted_on;
  } else if (options.calibration == models::Calibration::Temperature) {
    logging::warning(file.string() + " stores no temperature (" +
                     (model->classifier_
                          ? "trained with --calibration none, without validation, or before calibration existed"
                          : "a TorchScript export") +
                     "): its probabilities are not calibrated");
  }

  json source = {
      {"file", fs::absolute(file).string()},
      {"sha256", model->sha256_},
      {"kind", model->classifier_ ? "brainmri checkpoint" : "TorchScript export"},
      {"run_directory", config_file.empty() ? json(nullptr) : json(fs::absolute(config_file.parent_path()).string())},
      {"dataset", config.count("data") ? json(config.at("data")) : json(nullptr)}};
  if (card) {
    source["provenance"] = card->provenance;
    if (source["dataset"].is_null()) source["dataset"] = card->provenance.value("dataset", json(nullptr));
  }
  if (!config.empty()) {
    json selected = json::object();
    for (const auto* key :
         {"model", "epochs", "batch-size", "lr", "optimizer", "seed", "val-fold", "width", "pretrained", "augment"}) {
      if (const auto it = config.find(key); it != config.end() && !it->second.empty()) selected[key] = it->second;
    }
    source["config"] = selected;
  }
  if (evaluation.is_object()) {
    source["evaluation"] = {
        {"on", evaluation_name},
        {"samples", evaluation.value("samples", 0)},
        {"accuracy", evaluation.value("accuracy", 0.0)},
        {"macro_f1", evaluation.contains("macro_avg") ? evaluation["macro_avg"].value("f1", 0.0) : 0.0},
        {"macro_auc", evaluation.value("macro_auc", json(nullptr))}};
  }
  const auto channels = preprocessing.channels == 1 ? "grayscale" : "RGB";
  model->description_ = {
      {"name", model->name_},
      {"version", model->version()},
      {"brainmri_version", kVersion},
      {"classes", model->class_names_},
      {"input",
       {{"size", preprocessing.size},
        {"channels", preprocessing.channels},
        {"resize", imaging::to_string(preprocessing.resize)},
        {"resize_from", resize_source},
        {"preprocessing", std::string(channels) + ", " + imaging::to_string(preprocessing.resize) + " to " +
                              std::to_string(preprocessing.size) + "x" + std::to_string(preprocessing.size) +
                              ", values / 255 (as brainmri-prep packs them)"}}},
      {"explanation",
       {{"available", model->can_explain()},
        {"method", model->can_explain() ? json(explain::display_name(model->method_)) : json(nullptr)},
        {"layer", model->can_explain() ? json(model->explained_layer()) : json(nullptr)}}},
      {"calibration", calibration},
      {"test_time_augmentation", name_of(options.test_time_augmentation)},
      {"source", source}};
  return model;
}

std::unique_ptr<InferenceModel> InferenceModel::load(const std::vector<fs::path>& files, const LoadOptions& options) {
  if (files.empty()) throw ConfigError("model", "give at least one model file");
  auto model = load(files.front(), options);
  if (files.size() == 1) return model;
  if (!model->classifier_) throw ConfigError("model", "an ensemble's models must be brainmri checkpoints, not exports");
  std::string hashes = model->sha256_;
  json members = json::array({fs::absolute(files.front()).string()});
  for (std::size_t i = 1; i < files.size(); ++i) {
    const auto& file = files[i];
    if (!fs::is_regular_file(file)) throw std::runtime_error("model file " + file.string() + " does not exist");
    auto loaded = models::load_checkpoint(file, options.device);
    const auto& mine = model->classifier_->options();
    const auto& theirs = loaded.model->options();
    const bool same_classes = !loaded.card || loaded.card->class_names == model->class_names_;
    if (theirs.num_classes != mine.num_classes || theirs.image_size != mine.image_size ||
        theirs.input_channels != mine.input_channels || !same_classes) {
      throw ConfigError("model", file.string() + " is not for the same classes and input as " + files.front().string() +
                                     " (an ensemble averages models of one task)");
    }
    if (options.calibration == models::Calibration::Temperature && (!loaded.card || !loaded.card->calibration)) {
      logging::warning(file.string() + " stores no temperature: its probabilities enter the ensemble uncalibrated");
    }
    loaded.model->eval();
    model->others_.emplace_back(std::move(loaded.model), models::temperature_for(loaded.card, options.calibration));
    hashes += sha256_file(file);
    members.push_back(fs::absolute(file).string());
  }
  model->sha256_ = sha256_hex({reinterpret_cast<const std::uint8_t*>(hashes.data()), hashes.size()});
  model->description_["version"] = model->version();
  model->description_["ensemble"] = {{"models", members}, {"combination", "mean of the models' probabilities"}};
  return model;
}

std::string InferenceModel::explained_layer() const { return classifier_ ? classifier_->explained_layer() : ""; }

PreparedImage InferenceModel::prepare(std::span<const std::uint8_t> encoded,
                                      const imaging::DecodeLimits& limits) const {
  return prepare_decoded(imaging::decode_image(encoded, limits));
}

PreparedImage InferenceModel::prepare_file(const fs::path& file) const {
  return prepare_decoded(imaging::decode_image_file(file));
}

PreparedImage InferenceModel::prepare_decoded(const imaging::DecodedImage& decoded) const {
  PreparedImage prepared;
  prepared.preprocessed = imaging::preprocess(decoded, preprocessing_);
  cv::Mat as_float;
  const auto& pixels = prepared.preprocessed.pixels;
  pixels.convertTo(as_float, CV_32F, pixels.depth() == CV_8U ? 1.0 / 255.0 : 1.0);
  prepared.input = torch::from_blob(as_float.data, {preprocessing_.size, preprocessing_.size, preprocessing_.channels},
                                    torch::kFloat32)
                       .permute({2, 0, 1})
                       .clone(torch::MemoryFormat::Contiguous);  // owns its pixels: as_float goes away
  // (not .contiguous(): with one channel the permuted view already counts as contiguous, and
  // would keep pointing into as_float)
  return prepared;
}

Predictions InferenceModel::predict(const torch::Tensor& images, bool explain) {
  const auto input = images.to(device_);
  Predictions out;
  const bool plain = others_.empty() && test_time_augmentation_ == models::TestTimeAugmentation::None;
  if (explain && classifier_) {
    auto cam = explain::class_activation_maps(*classifier_, input, std::nullopt, method_);
    out.maps = cam.maps.cpu();
    if (plain) {
      out.probabilities = with_temperature(cam.probabilities, temperature_).cpu();
      return out;
    }
  }
  // Every model over every view; the explanation (above) is the first model's on the image itself.
  // Each model's temperature scales the mean of its views, as evaluate and the held-out tests do.
  torch::NoGradGuard no_grad;
  const auto scaled = [&](const std::function<torch::Tensor(const torch::Tensor&)>& logits_of, double temperature) {
    return with_temperature(models::test_time_probabilities(logits_of, input, test_time_augmentation_), temperature);
  };
  auto sum = scaled(
      [&](const torch::Tensor& view) {
        return classifier_ ? classifier_->forward(view) : exported_->forward({view}).toTensor();
      },
      temperature_);
  for (const auto& [other, temperature] : others_) {
    sum += scaled([&](const torch::Tensor& view) { return other->forward(view); }, temperature);
  }
  out.probabilities = (sum / static_cast<double>(1 + others_.size())).cpu();
  return out;
}

cv::Mat slice_for_display(const cv::Mat& preprocessed_pixels) {
  cv::Mat grey = imaging::to_uint8(preprocessed_pixels);
  if (grey.channels() == 3) cv::cvtColor(grey, grey, cv::COLOR_RGB2GRAY);
  cv::Mat bgr;
  cv::cvtColor(grey, bgr, cv::COLOR_GRAY2BGR);
  return bgr;
}

cv::Mat heatmap_for_display(const torch::Tensor& map) {
  const auto m =
      (map.cpu().to(torch::kFloat32).contiguous() * 255.0).round().clamp(0, 255).to(torch::kUInt8).contiguous();
  const cv::Mat heat(static_cast<int>(m.size(0)), static_cast<int>(m.size(1)), CV_8UC1, m.data_ptr<std::uint8_t>());
  cv::Mat coloured;
  cv::applyColorMap(heat, coloured, cv::COLORMAP_INFERNO);  // a copy: m goes away
  return coloured;
}

cv::Mat enlarge_for_display(const cv::Mat& image, int min_size) {
  const int scale = std::max(1, (min_size + image.cols - 1) / std::max(1, image.cols));
  if (scale == 1) return image;
  cv::Mat larger;
  cv::resize(image, larger, cv::Size(), scale, scale, cv::INTER_CUBIC);
  return larger;
}

cv::Mat blend(const cv::Mat& slice, const cv::Mat& heatmap, double opacity) {
  cv::Mat blended;
  cv::addWeighted(slice, 1.0 - opacity, heatmap, opacity, 0.0, blended);
  return blended;
}

std::string encode_png(const cv::Mat& image) {
  std::vector<std::uint8_t> png;
  if (!cv::imencode(".png", image, png)) throw std::runtime_error("cannot encode a PNG");
  return {png.begin(), png.end()};
}

const std::vector<Option<LoadOptions>>& model_loading_options() {
  using L = LoadOptions;
  constexpr const char* kGroup = "model and preprocessing";
  // clang-format off
  static const std::vector<Option<L>> table = {
    bind_option<L>("method", kGroup, "explanation method: hirescam, gradcam or gradcam++ (docs/reports.md: which passes which check)", [](auto& o) -> auto& { return o.method; }),
    bind_option<L>("layer", kGroup, "explained layer (default: the model's last convolution; docs/models.md lists the names)", [](auto& o) -> auto& { return o.explained_layer; }),
    bind_option<L>("calibration", kGroup, "temperature: probabilities scaled by the temperature stored in the checkpoint (fitted on its run's validation predictions); none: as the network gives them", [](auto& o) -> auto& { return o.calibration; }),
    bind_option<L>("tta", kGroup, "test-time augmentation: none, flip (mean of the image and its mirror image) or flip+rot (also each turned by +-10 degrees: 6 views)", [](auto& o) -> auto& { return o.test_time_augmentation; }),
    bind_option<L>("resize", kGroup, "auto (as the model's training data was packed: from the checkpoint's model card, or its run's dataset manifest; else stretch), stretch or pad", [](auto& o) -> auto& { return o.resize; }),
    bind_option<L>("size", kGroup, "TorchScript exports: the input size they were trained at", [](auto& o) -> auto& { return o.export_image_size; }),
    bind_option<L>("channels", kGroup, "TorchScript exports: input channels (1 or 3)", [](auto& o) -> auto& { return o.export_channels; }),
  };
  // clang-format on
  return table;
}

void validate(const LoadOptions& options) {
  if (options.resize != "auto" && options.resize != "stretch" && options.resize != "pad") {
    throw ConfigError("resize", "must be auto, stretch or pad, got '" + options.resize + "'");
  }
  if (options.export_image_size < 8 || options.export_image_size > 4096)
    throw ConfigError("size", "must be in 8..4096");
  if (options.export_channels != 1 && options.export_channels != 3) throw ConfigError("channels", "must be 1 or 3");
}

std::vector<FileClassification> classify_files(InferenceModel& model, const std::vector<fs::path>& files,
                                               const fs::path& overlay_directory) {
  const bool explain = !overlay_directory.empty();
  if (explain) {
    if (!model.can_explain()) {
      throw std::invalid_argument(
          "explanation overlays need a brainmri checkpoint (a TorchScript export has no "
          "activations to explain)");
    }
    fs::create_directories(overlay_directory);
  }
  std::vector<FileClassification> results;
  for (const auto& file : files) {
    auto& result = results.emplace_back();
    result.file = file;
    try {
      const auto prepared = model.prepare_file(file);
      const auto predictions = model.predict(prepared.input.unsqueeze(0), explain);
      const auto probabilities = predictions.probabilities[0].to(torch::kDouble).contiguous();
      result.probabilities.assign(probabilities.data_ptr<double>(),
                                  probabilities.data_ptr<double>() + probabilities.numel());
      result.predicted_class =
          model.class_names()[static_cast<std::size_t>(probabilities.argmax().item<std::int64_t>())];
      if (explain) {
        result.overlay = overlay_directory / (file.stem().string() + "_gradcam.png");
        const auto slice = enlarge_for_display(slice_for_display(prepared.preprocessed.pixels));
        const auto heat = enlarge_for_display(heatmap_for_display(predictions.maps[0]));
        write_file_atomically(result.overlay, encode_png(blend(slice, heat, 0.45)));
      }
    } catch (const std::exception& e) {
      result = FileClassification{file, {}, "", {}, e.what()};
    }
  }
  return results;
}

json to_json(const FileClassification& result, const std::vector<std::string>& class_names) {
  json entry = {{"file", result.file.string()}};
  if (!result.error.empty()) {
    entry["error"] = result.error;
    return entry;
  }
  entry["prediction"] = result.predicted_class;
  entry["probabilities"] = json::object();
  for (std::size_t k = 0; k < class_names.size(); ++k) entry["probabilities"][class_names[k]] = result.probabilities[k];
  if (!result.overlay.empty()) entry["gradcam"] = result.overlay.string();
  return entry;
}

}  // namespace brainmri::inference
