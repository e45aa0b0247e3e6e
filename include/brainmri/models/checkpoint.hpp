#pragma once
// The model part of a checkpoint file: the weights, the architecture that rebuilds them, and the
// model card that makes the file usable alone (class names, preprocessing, explained layer,
// provenance). The trainer adds its own state (trainer.hpp); anything that only uses a model
// reads it from here.

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/common/enum_names.hpp"
#include "brainmri/models/classifier.hpp"

namespace brainmri::models {

// {"model": name, "num_classes": ..., "input_channels": ..., "image_size": ..., "dropout": ...,
// "dense_units": ..., "filters": [...], "width_multiplier": ...}
nlohmann::json architecture_json(const Classifier& model);
ClassifierPtr model_from_architecture(const nlohmann::json& architecture);  // untrained

// Writes the architecture next to the weights (`model->save(archive)` writes the weights).
void write_architecture(torch::serialize::OutputArchive& archive, const Classifier& model);
// The architecture a checkpoint archive records; nullopt when it records none.
std::optional<nlohmann::json> read_architecture(torch::serialize::InputArchive& archive);

// How images become the network's input: what brainmri-prep did to the training images.
struct Preprocessing {
  int image_size = 0;
  int channels = 0;
  std::string resize = "stretch";            // stretch | pad (imaging::ResizeMode)
  std::string stored_dtype = "uint8";        // as packed; the network sees float values in [0, 1]
  double normalization_scale = 1.0 / 255.0;  // stored value x scale = network input
};

// How a model's probabilities are calibrated after its softmax (metrics/temperature.hpp).
enum class Calibration {
  None,         // as the network gives them
  Temperature,  // divided by the temperature stored in the model card, when one is stored
};

// The temperature scaling a model card records.
struct TemperatureCalibration {
  double temperature = 1.0;
  std::string fitted_on;  // which predictions it was fitted on, for people: "fold 0 (1141 images)"
  // The same as data, so that an evaluation of those very images is recognised: the selection in
  // evaluate's words ("fold-0", "split-Validation") and the rule that dealt the folds ("group",
  // "exact-groups", "random"). Empty in checkpoints written before they were recorded.
  std::string fitted_on_selection;
  std::string fitted_on_folds_by;
};

// What a checkpoint needs to be used alone, without the run directory beside it.
struct ModelCard {
  std::vector<std::string> class_names;
  Preprocessing preprocessing;
  std::string explained_layer;  // the default layer of explanations ("" : the model's own default)
  // Where it came from: brainmri version and commit, command, the SHA-256 of the run's config
  // text and of the dataset's manifest.json, the dataset path, the selection it validated on.
  nlohmann::json provenance = nlohmann::json::object();
  std::optional<TemperatureCalibration> calibration;  // unset: none fitted (or an older checkpoint)
};
// The temperature `choice` applies with this card: the stored one under Temperature, else 1.
double temperature_for(const std::optional<ModelCard>& card, Calibration choice);
nlohmann::json to_json(const ModelCard& card);
ModelCard model_card_from_json(const nlohmann::json& json);  // throws nlohmann::json::exception

void write_model_card(torch::serialize::OutputArchive& archive, const ModelCard& card);
std::optional<ModelCard> read_model_card(torch::serialize::InputArchive& archive);  // nullopt: an older checkpoint

struct LoadedCheckpoint {
  ClassifierPtr model;
  std::optional<ModelCard> card;  // absent in checkpoints written before model cards
};
// Reads a checkpoint written by the trainer (or save_model) and rebuilds its model on `device`.
// Throws std::runtime_error naming the file when it is not one.
LoadedCheckpoint load_checkpoint(const std::filesystem::path& checkpoint, torch::Device device);
ClassifierPtr load_model_from_checkpoint(const std::filesystem::path& checkpoint, torch::Device device);

// Writes a model (weights, architecture, card) as a checkpoint that load_checkpoint reads.
void save_model(const Classifier& model, const ModelCard& card, const std::filesystem::path& file);

}  // namespace brainmri::models

namespace brainmri {
template <>
struct EnumNames<models::Calibration> {
  static constexpr std::string_view what = "calibration";
  static constexpr std::array names = {std::pair{models::Calibration::None, std::string_view("none")},
                                       std::pair{models::Calibration::Temperature, std::string_view("temperature")}};
};
}  // namespace brainmri
