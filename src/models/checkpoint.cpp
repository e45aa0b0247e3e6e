#include "brainmri/models/checkpoint.hpp"

#include <stdexcept>

#include "brainmri/common/atomic_file.hpp"

namespace brainmri::models {
using nlohmann::json;

namespace {
constexpr const char* kArchitectureKey = "brainmri_model_config";
constexpr const char* kModelCardKey = "brainmri_model_card";
}  // namespace

json to_json(const ModelCard& card) {
  const auto& p = card.preprocessing;
  json calibration = nullptr;
  if (card.calibration) {
    calibration = {{"method", "temperature"},
                   {"temperature", card.calibration->temperature},
                   {"fitted_on", card.calibration->fitted_on},
                   {"fitted_on_selection", card.calibration->fitted_on_selection},
                   {"fitted_on_folds_by", card.calibration->fitted_on_folds_by}};
  }
  return {{"class_names", card.class_names},
          {"calibration", calibration},
          {"preprocessing",
           {{"image_size", p.image_size},
            {"channels", p.channels},
            {"resize", p.resize},
            {"stored_dtype", p.stored_dtype},
            {"normalization_scale", p.normalization_scale}}},
          {"explained_layer", card.explained_layer},
          {"provenance", card.provenance}};
}

ModelCard model_card_from_json(const json& j) {
  ModelCard card;
  card.class_names = j.at("class_names").get<std::vector<std::string>>();
  const auto& p = j.at("preprocessing");
  card.preprocessing = {p.at("image_size").get<int>(), p.at("channels").get<int>(), p.at("resize").get<std::string>(),
                        p.at("stored_dtype").get<std::string>(), p.at("normalization_scale").get<double>()};
  card.explained_layer = j.value("explained_layer", std::string());
  card.provenance = j.value("provenance", json::object());
  if (j.contains("calibration") && !j.at("calibration").is_null()) {
    const auto& c = j.at("calibration");
    card.calibration = TemperatureCalibration{c.at("temperature").get<double>(), c.value("fitted_on", std::string()),
                                              c.value("fitted_on_selection", std::string()),
                                              c.value("fitted_on_folds_by", std::string())};
  }
  return card;
}

double temperature_for(const std::optional<ModelCard>& card, Calibration choice) {
  if (choice == Calibration::None || !card || !card->calibration) return 1.0;
  return card->calibration->temperature;
}

void write_model_card(torch::serialize::OutputArchive& archive, const ModelCard& card) {
  archive.write(kModelCardKey, c10::IValue(to_json(card).dump()));
}

std::optional<ModelCard> read_model_card(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  if (!archive.try_read(kModelCardKey, value)) return std::nullopt;
  return model_card_from_json(json::parse(value.toStringRef()));
}

json architecture_json(const Classifier& model) {
  const auto& o = model.options();
  return {{"model", model.model_name()},
          {"num_classes", o.num_classes},
          {"input_channels", o.input_channels},
          {"image_size", o.image_size},
          {"dropout", o.dropout},
          {"dense_units", o.dense_units},
          {"filters", o.filters},
          {"width_multiplier", o.width_multiplier}};
}

ClassifierPtr model_from_architecture(const json& architecture) {
  ModelOptions options;
  options.num_classes = architecture.at("num_classes");
  options.input_channels = architecture.at("input_channels");
  options.image_size = architecture.at("image_size");
  options.dropout = architecture.at("dropout");
  options.dense_units = architecture.at("dense_units");
  options.filters = architecture.at("filters").get<std::vector<int>>();
  options.width_multiplier = architecture.at("width_multiplier");
  return create_model(architecture.at("model").get<std::string>(), options);
}

void write_architecture(torch::serialize::OutputArchive& archive, const Classifier& model) {
  archive.write(kArchitectureKey, c10::IValue(architecture_json(model).dump()));
}

std::optional<json> read_architecture(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  if (!archive.try_read(kArchitectureKey, value)) return std::nullopt;
  return json::parse(value.toStringRef());
}

LoadedCheckpoint load_checkpoint(const std::filesystem::path& checkpoint, torch::Device device) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(checkpoint.string(), device);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot read checkpoint " + checkpoint.string() + ": " + e.what_without_backtrace());
  }
  const auto architecture = read_architecture(archive);
  if (!architecture)
    throw std::runtime_error(checkpoint.string() + " is not a brainmri checkpoint (no model configuration)");
  LoadedCheckpoint loaded;
  try {
    loaded.model = model_from_architecture(*architecture);
    loaded.card = read_model_card(archive);
  } catch (const json::exception& e) {
    throw std::runtime_error(checkpoint.string() + " has a damaged model description: " + e.what());
  }
  loaded.model->load(archive);
  loaded.model->to(device);
  return loaded;
}

ClassifierPtr load_model_from_checkpoint(const std::filesystem::path& checkpoint, torch::Device device) {
  return load_checkpoint(checkpoint, device).model;
}

void save_model(const Classifier& model, const ModelCard& card, const std::filesystem::path& file) {
  torch::serialize::OutputArchive archive;
  model.save(archive);
  write_architecture(archive, model);
  write_model_card(archive, card);
  replace_file_atomically(file, [&](const std::filesystem::path& temporary) { archive.save_to(temporary.string()); });
}

}  // namespace brainmri::models
