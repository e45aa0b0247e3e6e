#pragma once
// A trained model ready to classify new images: a brainmri checkpoint (or a TorchScript export),
// with the class names, the preprocessing and the provenance of the run that trained it. The one
// path from an image file or upload to class probabilities and an explanation, shared by
// `brainmri predict` and `brainmri serve`; preprocessing is imaging/preprocess, the code
// brainmri-prep packs the training data with.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "brainmri/common/option_table.hpp"
#include "brainmri/explain/gradcam.hpp"
#include "brainmri/imaging/preprocess.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/models/classifier.hpp"
#include "brainmri/models/test_time_augmentation.hpp"

namespace torch::jit {
struct Module;  // <torch/script.h>, needed only where exports are loaded
}  // namespace torch::jit

namespace brainmri::inference {

struct LoadOptions {
  // "auto": as the run's dataset was packed (its manifest.json, found through the run's
  // config.ini), else stretch; or "stretch" / "pad".
  std::string resize = "auto";
  // TorchScript exports carry no configuration: the input they were trained at.
  int export_image_size = 128;
  int export_channels = 1;
  std::string explained_layer;  // "": the model's default (its last convolution)
  explain::CamMethod method = explain::CamMethod::HiResCam;
  // Temperature: probabilities scaled by the temperature stored in the checkpoint's model card
  // (none stored: as the network gives them, with a warning); None: as the network gives them.
  models::Calibration calibration = models::Calibration::Temperature;
  // The probabilities averaged over these views of each image (training/test_time_augmentation.hpp).
  models::TestTimeAugmentation test_time_augmentation = models::TestTimeAugmentation::None;
  torch::Device device = torch::kCPU;
};

// The options of predict and serve that say how a model is loaded (all but the device).
const std::vector<Option<LoadOptions>>& model_loading_options();
// Throws ConfigError naming the option (resize, size, channels).
void validate(const LoadOptions& options);

// An image decoded and preprocessed for the model.
struct PreparedImage {
  imaging::PreprocessedImage preprocessed;  // size x size x channels, as brainmri-prep stores it
  torch::Tensor input;                      // [C, H, W] float in [0, 1], on the CPU
};

struct Predictions {
  torch::Tensor probabilities;  // [N, classes] float, CPU
  torch::Tensor maps;           // [N, H, W] float in [0, 1], CPU; undefined without explanations
};

class InferenceModel {
 public:
  // Throws ConfigError for a bad option (unknown layer or resize mode) and
  // std::runtime_error for a file that is neither a brainmri checkpoint nor a TorchScript export.
  static std::unique_ptr<InferenceModel> load(const std::filesystem::path& file, const LoadOptions& options = {});
  // An ensemble: the mean of the models' probabilities (each with its own stored temperature),
  // e.g. a cross-validation's fold models. The first model describes and explains; the others must
  // be brainmri checkpoints for the same classes and input. Throws ConfigError ("model") otherwise.
  static std::unique_ptr<InferenceModel> load(const std::vector<std::filesystem::path>& files,
                                              const LoadOptions& options = {});
  ~InferenceModel();
  InferenceModel(const InferenceModel&) = delete;
  InferenceModel& operator=(const InferenceModel&) = delete;

  const std::vector<std::string>& class_names() const { return class_names_; }
  const imaging::PreprocessOptions& preprocessing() const { return preprocessing_; }
  bool can_explain() const { return classifier_ != nullptr; }
  explain::CamMethod method() const { return method_; }
  std::string explained_layer() const;  // "" when it cannot explain
  // The architecture (e.g. "baseline_cnn"), or "torchscript" for an export.
  const std::string& name() const { return name_; }
  // What divides the logits before the softmax: the stored temperature, or 1.
  double temperature() const { return temperature_; }
  // The first 12 hex digits of the model file's SHA-256 (an ensemble's: of its files' SHA-256s in
  // order): two servers answer alike iff they agree.
  std::string version() const { return sha256_.substr(0, 12); }
  // Classes, input, explanation, and where the model came from: its file, the run directory, the
  // run's configuration and dataset, its validation metrics (docs/serve.md shows an example).
  const nlohmann::json& description() const { return description_; }

  // Throws imaging::ImageRejected for data that is not a readable image (ImageTooLarge beyond
  // `limits`).
  PreparedImage prepare(std::span<const std::uint8_t> encoded, const imaging::DecodeLimits& limits = {}) const;
  PreparedImage prepare_file(const std::filesystem::path& file) const;

  // `images`: [N, C, H, W] as prepare() makes them. Not thread-safe: one caller at a time.
  Predictions predict(const torch::Tensor& images, bool explain);

 private:
  InferenceModel() = default;
  PreparedImage prepare_decoded(const imaging::DecodedImage& decoded) const;

  models::ClassifierPtr classifier_;
  std::unique_ptr<torch::jit::Module> exported_;
  torch::Device device_ = torch::kCPU;
  explain::CamMethod method_ = explain::CamMethod::HiResCam;
  double temperature_ = 1.0;
  // An ensemble's other members, each with the temperature it applies.
  std::vector<std::pair<models::ClassifierPtr, double>> others_;
  models::TestTimeAugmentation test_time_augmentation_ = models::TestTimeAugmentation::None;
  std::vector<std::string> class_names_;
  imaging::PreprocessOptions preprocessing_;
  std::string name_;
  std::string sha256_;
  nlohmann::json description_;
};

// One image file classified by `brainmri predict`.
struct FileClassification {
  std::filesystem::path file;
  std::vector<double> probabilities;  // one per class name; empty when the file failed
  std::string predicted_class;
  std::filesystem::path overlay;  // the explanation overlay PNG, when one was asked for
  std::string error;              // why the file could not be classified ("" when it was)
};

// Classifies each file on its own: an unreadable or corrupt image is reported in its entry and
// the others go on. With an `overlay_directory` (created; the model must can_explain()), writes
// STEM_gradcam.png there for each image.
std::vector<FileClassification> classify_files(InferenceModel& model, const std::vector<std::filesystem::path>& files,
                                               const std::filesystem::path& overlay_directory = {});
nlohmann::json to_json(const FileClassification& result, const std::vector<std::string>& class_names);

// Pictures for people, as 8-bit BGR images at the network's resolution: the preprocessed slice in
// grey, and the map in the inferno colour map.
cv::Mat slice_for_display(const cv::Mat& preprocessed_pixels);
cv::Mat heatmap_for_display(const torch::Tensor& map);
// Enlarged by a whole factor (pixels kept square) to at least `min_size`, so that a reader can see it.
cv::Mat enlarge_for_display(const cv::Mat& image, int min_size = 384);
// slice * (1 - opacity) + heatmap * opacity.
cv::Mat blend(const cv::Mat& slice, const cv::Mat& heatmap, double opacity);
std::string encode_png(const cv::Mat& image);

}  // namespace brainmri::inference
