#include "brainmri/experiments/training_run.hpp"

#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <tuple>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/config_error.hpp"
#include "brainmri/common/sha256.hpp"
#include "brainmri/evaluation/evaluation_files.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/temperature.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/models/keras_weights.hpp"
#include "brainmri/models/torchscript_export.hpp"
#include "brainmri/reports/report.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/version.hpp"

namespace brainmri::experiments {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json scores_json(const RunScores& s) { return evaluation::to_json(s.scores); }

}  // namespace

models::ModelCard model_card(const models::Classifier& model, const data::ShardedDataset& dataset,
                             const std::string& command, const std::string& config_text, const std::string& selection) {
  const auto& manifest = dataset.manifest();
  models::ModelCard card;
  card.class_names = dataset.class_names();
  card.preprocessing = {manifest.image_size, manifest.channels,
                        manifest.resize_mode.empty() ? "stretch" : manifest.resize_mode, manifest.dtype,
                        manifest.normalization_scale};
  card.explained_layer = model.explained_layer();
  const auto manifest_file = dataset.directory() / "manifest.json";
  card.provenance = {
      {"brainmri_version", kVersion},
      {"commit", kCommit},
      {"command", command},
      {"config_sha256", sha256_hex({reinterpret_cast<const std::uint8_t*>(config_text.data()), config_text.size()})},
      {"dataset", fs::absolute(dataset.directory()).string()},
      {"dataset_manifest_sha256", fs::exists(manifest_file) ? json(sha256_file(manifest_file)) : json(nullptr)},
      {"validated_on", selection}};
  return card;
}

RunPlacement RunPlacement::of(const RunConfig& config) {
  RunPlacement where;
  where.output = config.output.directory;
  where.val_fold = config.data.val_fold;
  where.val_split = config.data.val_split;
  where.resume = config.output.resume;
  return where;
}

json RunOutcome::to_json() const {
  json result = {{"run_directory", directory.string()}, {"validation_samples", validation_samples}};
  if (validation) result.update(scores_json(*validation));
  if (test) {
    result["test"] = scores_json(*test);
    result["test"]["samples"] = test->samples;
    if (!test_parts.is_null()) result["test"].update(test_parts);
  }
  return result;
}

std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>> select_samples(const data::ShardedDataset& dataset,
                                                                               int val_fold,
                                                                               const std::string& val_split) {
  if (!val_split.empty()) {
    auto validation = dataset.select_split(val_split);
    std::vector<std::int64_t> training;
    const bool has_folds = dataset.manifest().folds.fold_count > 0;
    for (std::int64_t id = 0; id < dataset.size(); ++id) {
      if (dataset.split(id) == val_split) continue;
      // With folds, training images that duplicate held-out ones are excluded.
      if (has_folds && dataset.fold(id) < 0) continue;
      training.push_back(id);
    }
    return {training, validation};
  }
  if (dataset.manifest().folds.fold_count == 0) {
    throw ConfigError("val-fold",
                      dataset.directory().string() +
                          " has no fold assignment; pack it with brainmri-prep --folds K or validate on a split");
  }
  if (val_fold < 0 || val_fold >= dataset.manifest().folds.fold_count) {
    throw ConfigError("val-fold", std::to_string(val_fold) + " is outside 0.." +
                                      std::to_string(dataset.manifest().folds.fold_count - 1));
  }
  return {dataset.training_samples_for_fold(val_fold), dataset.validation_samples_for_fold(val_fold)};
}

models::ClassifierPtr create_model(const ModelConfig& config, const data::ShardedDataset& dataset) {
  models::ModelOptions options;
  options.num_classes = static_cast<int>(dataset.class_names().size());
  options.input_channels = dataset.channels();
  options.image_size = dataset.image_size();
  options.dropout = config.dropout;
  options.dense_units = config.dense_units;
  options.filters = config.filters;
  options.width_multiplier = config.width;
  return models::create_model(config.architecture, options);
}

RunOutcome train_run(const RunConfig& config, const RunPlacement& where, const data::ShardedDataset& dataset,
                     distributed::Communicator& communicator, const torch::Device& device, const Say& say,
                     const std::string& command, const std::string& config_text) {
  const bool writer = communicator.rank() == 0;
  torch::manual_seed(config.training.seed);

  std::vector<std::int64_t> train_ids, val_ids, test_ids;
  if (where.all_folds) {
    std::vector<int> every_fold(static_cast<std::size_t>(dataset.manifest().folds.fold_count));
    std::iota(every_fold.begin(), every_fold.end(), 0);
    train_ids = dataset.select_folds(every_fold);
    if (train_ids.empty())
      throw ConfigError("data", dataset.directory().string() + " has no folds to train a final model on");
  } else {
    std::tie(train_ids, val_ids) = select_samples(dataset, where.val_fold, where.val_split);
    if (train_ids.empty() || val_ids.empty())
      throw ConfigError("data", "the training or the validation selection is empty");
  }
  if (!where.test_split.empty()) {
    test_ids = dataset.select_split(where.test_split);
    if (test_ids.empty())
      throw ConfigError("test-split", "the held-out split '" + where.test_split + "' has no images");
  }

  auto model = create_model(config.model, dataset);
  if (!config.model.pretrained.empty()) {
    const auto report = models::load_keras_weights(*model, config.model.pretrained);
    say("Loaded " + std::to_string(report.layers_loaded) + " layers (" + std::to_string(report.tensors_loaded) +
        " tensors) from " + config.model.pretrained.string());
  }
  fs::create_directories(where.output);
  if (writer) {
    write_file_atomically(where.output / "config.ini",
                          "# brainmri " + std::string(kVersion) + " " + command + "\n" + config_text);
  }
  const std::string selection = where.all_folds           ? std::string("none: every fold trains")
                                : where.val_split.empty() ? "fold " + std::to_string(where.val_fold)
                                                          : "split " + where.val_split;
  say("Training " + model->model_name() + " on " + std::to_string(train_ids.size()) + " images, validating on " +
      std::to_string(val_ids.size()) + " (" + selection + ")" +
      (test_ids.empty() ? std::string()
                        : ", testing on " + std::to_string(test_ids.size()) + " (split " + where.test_split + ")") +
      ", device " + device.str() +
      (communicator.size() > 1
           ? ", " + std::to_string(communicator.size()) + " ranks (" + communicator.backend() + "), global batch " +
                 std::to_string(config.training.batch_size * communicator.size())
           : std::string()));
  const auto card = model_card(*model, dataset, command, config_text, selection);
  const auto memory_limit = static_cast<std::size_t>(config.data.memory_limit_mb) << 20;
  const auto loader = config.data.loader;
  const auto train_source = training::make_loader(dataset, train_ids, device, loader, memory_limit);
  const auto val_source =
      val_ids.empty() ? nullptr : training::make_loader(dataset, val_ids, device, loader, memory_limit);

  auto run_stage = [&](training::TrainOptions stage_options) {
    stage_options.communicator = &communicator;
    stage_options.output_dir = where.output;
    stage_options.model_card = card;
    auto trainer = std::make_unique<training::Trainer>(model, stage_options, device);
    trainer->on_epoch = [&](const evaluation::EpochRecord& r) { say(format_epoch(r)); };
    trainer->on_note = say;
    if (where.resume && fs::exists(trainer->last_checkpoint())) {
      trainer->resume(trainer->last_checkpoint());
      say("Resumed " + stage_options.stage_name + " from " + trainer->last_checkpoint().string() + " (epoch " +
          std::to_string(trainer->epochs_done() + 1) + ", step " + std::to_string(trainer->steps_into_epoch() + 1) +
          ")");
    }
    trainer->fit(*train_source, val_source.get());
    return trainer;
  };
  // Each stage ends with its best weights restored (restore-best with validation), else its last.
  std::unique_ptr<training::Trainer> trainer;
  int epochs_before = 0;  // the run log's step axis continues over the stages
  for (auto stage : training_stages(config)) {
    stage.options.epochs_before = epochs_before;
    epochs_before += stage.options.epochs;
    if (!stage.trainable_from.empty()) {
      model->set_trainable_from(stage.trainable_from);
    } else if (stage.trainable_blocks) {
      model->set_trainable_backbone_groups(*stage.trainable_blocks);
    }
    trainer = run_stage(stage.options);  // from the previous stage's best (restored) weights
  }

  const int k = static_cast<int>(dataset.class_names().size());
  const auto score = [&](const evaluation::Predictions& predictions) {
    const auto predicted = metrics::argmax_rows(predictions.probabilities, k);
    return RunScores{evaluation::score_predictions(predictions, k), static_cast<int>(predictions.labels.size()),
                     metrics::format_classification_report(
                         metrics::classification_report(metrics::ConfusionMatrix(predictions.labels, predicted, k),
                                                        dataset.class_names()),
                         4)};
  };
  RunOutcome outcome;
  outcome.directory = where.output;
  outcome.validation_samples = static_cast<int>(val_ids.size());
  evaluation::Predictions validation;
  evaluation::StoredTemperature test;  // the held-out test's predictions, scaled when a temperature was fitted
  std::vector<bool> contaminated;      // by sample id, for the held-out test split
  std::optional<models::TemperatureCalibration> calibration;
  if (val_source) {
    validation = trainer->predict(*val_source);
    outcome.validation = score(validation);
    if (config.output.calibration == models::Calibration::Temperature) {
      calibration = models::TemperatureCalibration{
          metrics::fit_temperature(validation.probabilities, validation.labels, k),
          selection + " (" + std::to_string(validation.labels.size()) + " images)",
          where.val_split.empty() ? "fold-" + std::to_string(where.val_fold) : "split-" + where.val_split,
          name_of(dataset.folds_by())};
    }
  }
  if (!test_ids.empty()) {
    // The held-out test, with the test-time augmentation asked for (validation never uses it): an
    // evaluation-only trainer (no epochs) like evaluate's, else the last stage's own.
    const auto test_source = training::make_loader(dataset, test_ids, device, loader, memory_limit);
    evaluation::Predictions unscaled_test;
    if (config.output.test_time_augmentation == models::TestTimeAugmentation::None) {
      unscaled_test = trainer->predict(*test_source);
    } else {
      training::TrainOptions test_options;
      test_options.epochs = 0;
      test_options.eval_batch_size = config.training.eval_batch_size;
      test_options.precision = config.training.precision;
      test_options.channels_last = config.training.channels_last;
      test_options.communicator = &communicator;
      test_options.test_time_augmentation = config.output.test_time_augmentation;
      unscaled_test = training::Trainer(model, test_options, device).predict(*test_source);
    }
    test = evaluation::apply_stored_temperature(unscaled_test, k,
                                                calibration ? std::optional(calibration->temperature) : std::nullopt);
    outcome.test = score(test.predictions);
    contaminated = dataset.contaminated(where.test_split);
    outcome.test_parts = evaluation::held_out_parts_json(test.predictions, contaminated, k);
  }
  if (!writer) return outcome;
  // model.pt: the final weights with the model card, and the temperature when one was fitted.
  auto final_card = card;
  final_card.calibration = calibration;
  models::save_model(*model, final_card, where.output / "model.pt");
  json context = {{"command", command},
                  {"dataset", fs::absolute(dataset.directory()).string()},
                  {"selection", selection},
                  {"model", model->model_name()},
                  {"ranks", communicator.size()},
                  {"checkpoint", (where.output / "model.pt").string()},
                  {"folds_by", name_of(dataset.folds_by())}};
  const auto bootstrap_seed = config.output.bootstrap_seed;
  if (val_source) {
    std::optional<evaluation::TemperatureScaling> scaling;
    if (calibration) {
      scaling = evaluation::temperature_scaling(validation,
                                                evaluation::cross_fitted_predictions(validation, k, bootstrap_seed), k,
                                                {calibration->temperature}, false);
    }
    evaluation::write_evaluation(where.output / "validation", validation, dataset.class_names(), context,
                                 bootstrap_seed, scaling);
  }
  if (!test_ids.empty()) {
    context["selection"] = "split " + where.test_split + " (held out)";
    context["test_time_augmentation"] = name_of(config.output.test_time_augmentation);
    evaluation::write_held_out_evaluation(where.output / "test", test.predictions, dataset.class_names(), context,
                                          bootstrap_seed, contaminated, test.scaling);
  }
  if (where.export_model) {
    models::export_torchscript(*model, where.output / "model.torchscript.pt");
    say("Exported " + (where.output / "model.torchscript.pt").string() + " (TorchScript: float images [N, " +
        std::to_string(dataset.channels()) + ", " + std::to_string(dataset.image_size()) + ", " +
        std::to_string(dataset.image_size()) + "] in [0, 1] -> logits)");
  }
  return outcome;
}

void write_run_report(const fs::path& run_directory, const OutputConfig& output, const torch::Device& device,
                      const Say& say, const Say& say_error, bool check_explanations) {
  if (!output.report) return;
  std::string why;
  reports::ReportOptions options;
  options.explanation_check = check_explanations && output.explanation_check;
  options.device = device;
  options.figures = reports::plotting_available(&why);
  try {
    const auto run = reports::read_run(run_directory);
    reports::write_report(run, run_directory / "report", options);
    say("Report: " + (fs::absolute(run_directory) / "report" / "index.html").string());
    if (!options.figures) {
      say("  (tables only: " + why + "; for the figures run `brainmri report " + run_directory.string() +
          "` where PLplot is installed)");
    }
  } catch (const std::exception& e) {
    say_error("brainmri: the report of " + run_directory.string() + " could not be written: " + e.what() +
              "\nEverything it needs is saved; run `brainmri report " + run_directory.string() + "` to retry.");
  }
}

std::string format_epoch(const evaluation::EpochRecord& r) {
  char line[320];
  std::snprintf(line, sizeof(line),
                "[%s] epoch %3d  lr %.2e  loss %.4f  acc %.4f | val loss %.4f  acc %.4f  macro-F1 %.4f  AUC %.4f | "
                "%6.0f img/s  %5.1f s%s",
                r.stage.c_str(), r.epoch, r.learning_rate, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy,
                r.val_macro_f1, r.val_macro_auc, r.images_per_second, r.seconds, r.best ? "  *" : "");
  return line;
}

}  // namespace brainmri::experiments
