#include "brainmri/experiments/checkpoint_evaluation.hpp"

#include "brainmri/common/config_error.hpp"
#include "brainmri/common/log.hpp"
#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/training/data_loader.hpp"
#include "brainmri/training/trainer.hpp"

namespace brainmri::experiments {
namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<Option<CheckpointEvaluation>>& checkpoint_evaluation_options() {
  using C = CheckpointEvaluation;
  constexpr const char* kGroup = "brainmri evaluate";
  // clang-format off
  static const std::vector<Option<C>> table = {
    as_input_path(bind_option<C>("checkpoint", kGroup, "model.pt or any checkpoint written by brainmri train (required)", [](auto& c) -> auto& { return c.checkpoint; })),
    as_input_path(bind_option<C>("data", kGroup, "dataset directory written by brainmri-prep (required)", [](auto& c) -> auto& { return c.dataset; })),
    bind_option<C>("split", kGroup, "evaluate this split (e.g. Testing)", [](auto& c) -> auto& { return c.split; }),
    bind_option<C>("fold", kGroup, "or: evaluate this fold of the dataset's k-fold (-1: neither; no split either: every image)", [](auto& c) -> auto& { return c.fold; }),
    bind_option<C>("folds-by", kGroup, "with --fold: how the run that trained the checkpoint dealt the folds (group, exact-groups or random; its config.ini says)", [](auto& c) -> auto& { return c.folds_by; }),
    bind_option<C>("output", kGroup, "where to write predictions.h5, metrics.json and classification_report.txt (default: next to the checkpoint, eval-SELECTION)", [](auto& c) -> auto& { return c.output; }),
    bind_option<C>("device", kGroup, "auto, cpu or cuda", [](auto& c) -> auto& { return c.device; }),
    bind_option<C>("threads", kGroup, "CPU threads for LibTorch (0: its default)", [](auto& c) -> auto& { return c.threads; }),
    bind_option<C>("batch-size", kGroup, "evaluation batch size", [](auto& c) -> auto& { return c.batch_size; }),
    bind_option<C>("calibration", kGroup, "temperature: scale the probabilities by the temperature stored in the checkpoint (fitted on its run's validation predictions; a checkpoint without one is evaluated as it is, with a warning); none: as the network gives them", [](auto& c) -> auto& { return c.calibration; }),
    bind_option<C>("tta", kGroup, "test-time augmentation: none, flip (mean of the image and its mirror image) or flip+rot (also each turned by +-10 degrees: 6 views)", [](auto& c) -> auto& { return c.test_time_augmentation; }),
    bind_option<C>("bootstrap-seed", kGroup, "seed of the bootstrap confidence intervals", [](auto& c) -> auto& { return c.bootstrap_seed; }),
  };
  // clang-format on
  return table;
}

void validate(const CheckpointEvaluation& request) {
  if (request.checkpoint.empty()) throw ConfigError("checkpoint", "required: the model to evaluate");
  if (request.dataset.empty()) throw ConfigError("data", "required: the dataset written by brainmri-prep");
  if (!request.split.empty() && request.fold >= 0) throw ConfigError("split", "give a split or a fold, not both");
  if (request.batch_size < 1) throw ConfigError("batch-size", "must be at least 1");
}

CheckpointEvaluationResult evaluate_checkpoint(const CheckpointEvaluation& request,
                                               distributed::Communicator& communicator, const torch::Device& device) {
  validate(request);
  const auto loaded = models::load_checkpoint(request.checkpoint, device);
  const auto& model = loaded.model;
  const double temperature = models::temperature_for(loaded.card, request.calibration);
  if (request.calibration == models::Calibration::Temperature && (!loaded.card || !loaded.card->calibration) &&
      communicator.rank() == 0) {
    logging::warning(request.checkpoint.string() +
                     " stores no temperature (trained with --calibration none, without validation, or before "
                     "calibration existed): its probabilities are evaluated uncalibrated");
  }
  const data::ShardedDataset dataset(request.dataset, request.folds_by);
  const auto& m = model->options();
  if (m.image_size != dataset.image_size() || m.input_channels != dataset.channels() ||
      m.num_classes != static_cast<int>(dataset.class_names().size())) {
    throw std::runtime_error("checkpoint " + request.checkpoint.string() + " expects " + std::to_string(m.image_size) +
                             "x" + std::to_string(m.image_size) + "x" + std::to_string(m.input_channels) +
                             " images and " + std::to_string(m.num_classes) + " classes, but " +
                             dataset.directory().string() + " has " + std::to_string(dataset.image_size()) + "x" +
                             std::to_string(dataset.image_size()) + "x" + std::to_string(dataset.channels()) + " and " +
                             std::to_string(dataset.class_names().size()) +
                             " classes; repack or pick another checkpoint");
  }
  std::vector<std::int64_t> ids;
  std::string selection;
  if (!request.split.empty()) {
    ids = dataset.select_split(request.split);
    selection = "split-" + request.split;
  } else if (request.fold >= 0) {
    ids = dataset.validation_samples_for_fold(request.fold);
    selection = "fold-" + std::to_string(request.fold);
  } else {
    ids = dataset.all();
    selection = "all";
  }
  if (ids.empty())
    throw ConfigError(request.split.empty() ? "fold" : "split", "the selection " + selection + " is empty");
  CheckpointEvaluationResult result;
  result.output = request.output.empty() ? request.checkpoint.parent_path() / ("eval-" + selection) : request.output;

  training::TrainOptions options;
  options.epochs = 0;
  options.eval_batch_size = request.batch_size;
  options.test_time_augmentation = request.test_time_augmentation;
  options.communicator = &communicator;  // under mpirun the ranks share the evaluation
  training::Trainer trainer(model, options, device);
  const auto loader = training::make_loader(dataset, ids, device, training::LoaderKind::Auto, std::size_t{4096} << 20);
  const auto unscaled = trainer.predict(*loader);
  if (communicator.rank() != 0) return result;
  const int k = static_cast<int>(dataset.class_names().size());
  json context = {{"command", "evaluate"},
                  {"checkpoint", fs::absolute(request.checkpoint).string()},
                  {"dataset", fs::absolute(dataset.directory()).string()},
                  {"selection", selection},
                  {"model", model->model_name()},
                  {"test_time_augmentation", name_of(request.test_time_augmentation)}};
  const auto scaled =
      evaluation::apply_stored_temperature(unscaled, k, temperature != 1.0 ? std::optional(temperature) : std::nullopt);
  const auto& predictions = scaled.predictions;
  const auto& scaling = scaled.scaling;
  if (scaling) {
    const auto& calibration = *loaded.card->calibration;
    context["calibration"] = {{"temperature", temperature}, {"fitted_on", calibration.fitted_on}};
    // The same images: the same split, or the same fold dealt by the same rule.
    const bool same_images =
        selection == calibration.fitted_on_selection &&
        (selection.starts_with("split-") || calibration.fitted_on_folds_by == name_of(request.folds_by));
    if (same_images) {
      logging::warning("the temperature of " + request.checkpoint.string() + " was fitted on these images (" +
                       calibration.fitted_on +
                       "): their calibration here is optimistic; the run's validation/metrics.json "
                       "judges it honestly (temperature_scaling, cross-fitted)");
    }
  }
  if (request.split.empty()) {
    result.metrics = evaluation::write_evaluation(result.output, predictions, dataset.class_names(), context,
                                                  request.bootstrap_seed, scaling);
  } else {
    // A split is scored in parts: its images with and without a copy in the other splits.
    const auto parts =
        evaluation::write_held_out_evaluation(result.output, predictions, dataset.class_names(), context,
                                              request.bootstrap_seed, dataset.contaminated(request.split), scaling);
    result.metrics = parts.all;
    result.clean = parts.clean;
    result.contaminated = parts.contaminated;
  }
  const auto predicted = metrics::argmax_rows(predictions.probabilities, k);
  result.report = metrics::format_classification_report(
      metrics::classification_report(metrics::ConfusionMatrix(predictions.labels, predicted, k), dataset.class_names()),
      4);
  return result;
}

}  // namespace brainmri::experiments
