#pragma once
// The files an evaluation leaves behind: predictions.h5 (sample id, label, probabilities),
// metrics.json (every metric, with bootstrap intervals) and classification_report.txt. The
// schema of metrics.json is the struct below, written and read here only.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/evaluation/predictions.hpp"
#include "brainmri/metrics/bootstrap.hpp"
#include "brainmri/metrics/calibration.hpp"

namespace brainmri::evaluation {

struct AveragedScores {
  double precision = 0, recall = 0, f1 = 0;
  std::int64_t support = 0;
};

struct ClassMetrics {
  std::string name;
  AveragedScores scores;
  double auc = 0;  // one-vs-rest; NaN when undefined
  metrics::Interval auc_interval;
};

// Can the probabilities be trusted (metrics/calibration.hpp): with kCalibrationBins bins.
struct CalibrationMetrics {
  int bins = metrics::kCalibrationBins;
  double ece = 0;  // top-label, equal-width bins
  metrics::Interval ece_interval;
  double ece_equal_mass = 0;  // top-label, equal-mass bins
  double mce = 0;             // top-label, equal-width bins
  double classwise_ece = 0;   // equal-width bins
  double brier = 0;
  double nll = 0;
  std::vector<metrics::ReliabilityBin> top_label_bins;  // equal-width, the non-empty ones
};

// Temperature scaling of an evaluation (metrics/temperature.hpp) and the calibration before and
// after it (without bootstrap intervals).
struct TemperatureScaling {
  std::vector<double> temperatures;  // the model's; a cross-validation's: one per fold model
  // true: the predictions hold scaled probabilities (a stored temperature applied to images it was
  // not fitted on) and `before` is the model's own calibration. false: the predictions are the
  // model's own, the ones the temperature was fitted on, and `after` is cross-fitted (each half
  // of the images scaled with the temperature fitted on the other half).
  bool applied = false;
  CalibrationMetrics before, after;
};

// metrics.json. Undefined numbers (NaN) are written as null and read back as NaN.
struct EvaluationMetrics {
  std::int64_t samples = 0;
  double loss = 0;
  double accuracy = 0;
  metrics::Interval accuracy_interval;
  AveragedScores macro_average;
  metrics::Interval macro_f1_interval;
  AveragedScores weighted_average;
  std::vector<ClassMetrics> per_class;  // in class order
  double macro_auc = 0;
  int macro_auc_classes = 0;  // classes with both positives and negatives
  metrics::Interval macro_auc_interval;
  double micro_auc = 0;
  // Absent from metrics.json files written before calibration was measured: then bins is 0.
  CalibrationMetrics calibration;
  std::optional<TemperatureScaling> temperature_scaling;  // absent: none fitted or applied
  std::vector<std::vector<std::int64_t>> confusion;       // rows: true class, columns: predicted class
  std::vector<std::string> class_names;
  int bootstrap_resamples = 0;
  std::uint64_t bootstrap_seed = 0;
  double bootstrap_level = 0.95;
  nlohmann::json context = nlohmann::json::object();  // who evaluated what: command, dataset, selection, model, ...
};

nlohmann::json to_json(const EvaluationMetrics& metrics);
EvaluationMetrics metrics_from_json(const nlohmann::json& json);    // throws nlohmann::json::exception
EvaluationMetrics read_metrics(const std::filesystem::path& file);  // throws std::runtime_error naming the file

// The calibration of a prediction set, without the ECE's bootstrap interval (evaluation_metrics
// adds it), and its JSON as metrics.json holds it.
CalibrationMetrics calibration_metrics(const Predictions& predictions, int class_count);
nlohmann::json to_json(const CalibrationMetrics& calibration);

// The predictions with their probabilities scaled by `temperature` and the loss recomputed.
Predictions with_temperature(const Predictions& predictions, int class_count, double temperature);
// A temperature stored with a model, applied to images it was not fitted on (a held-out test,
// evaluate): the scaled predictions and the calibration before and after (applied = true).
// Without a temperature: the predictions as they are and no scaling.
struct StoredTemperature {
  Predictions predictions;
  std::optional<TemperatureScaling> scaling;
};
StoredTemperature apply_stored_temperature(const Predictions& unscaled, int class_count,
                                           std::optional<double> temperature);
// Each image's probabilities scaled with the temperature fitted on the other half of the images
// (metrics::cross_fitted_temperature_scaling, halves drawn with `seed`).
Predictions cross_fitted_predictions(const Predictions& predictions, int class_count, std::uint64_t seed);
// The calibration of `before` and `after` (the same images, before and after scaling).
TemperatureScaling temperature_scaling(const Predictions& before, const Predictions& after, int class_count,
                                       std::vector<double> temperatures, bool applied);

// Every metric of a prediction set: accuracy, per-class and averaged precision/recall/F1,
// confusion matrix, per-class/macro/micro AUC and bootstrap 95% intervals (seeded).
EvaluationMetrics evaluation_metrics(const Predictions& predictions, const std::vector<std::string>& class_names,
                                     std::uint64_t bootstrap_seed, int bootstrap_resamples = 1000);

// Writes the three files into `directory` (created if needed), each atomically; returns what
// metrics.json holds.
EvaluationMetrics write_evaluation(const std::filesystem::path& directory, const Predictions& predictions,
                                   const std::vector<std::string>& class_names, const nlohmann::json& context,
                                   std::uint64_t bootstrap_seed,
                                   const std::optional<TemperatureScaling>& scaling = std::nullopt);

// The headline scores as a job result holds them: accuracy, macro_f1, macro_auc (null when
// undefined) and loss.
nlohmann::json to_json(const Scores& scores);

// A held-out test split in two parts (data::contaminated_held_out): "clean" images have no exact
// or near copy among the images the model may have trained on; "contaminated" ones do. Only the
// clean part measures generalization to unseen images.
struct HeldOutEvaluation {
  EvaluationMetrics all;
  std::optional<EvaluationMetrics> clean, contaminated;  // unset: the part holds no image
};
// `contaminated` is indexed by sample id. Writes `directory` (every image) like write_evaluation
// and, when both parts hold images, `directory`/clean and `directory`/contaminated; the context
// of each records the part and the counts. `scaling` describes the whole split.
HeldOutEvaluation write_held_out_evaluation(const std::filesystem::path& directory, const Predictions& predictions,
                                            const std::vector<std::string>& class_names, nlohmann::json context,
                                            std::uint64_t bootstrap_seed, const std::vector<bool>& contaminated,
                                            const std::optional<TemperatureScaling>& scaling = std::nullopt);
// The scores of each part, for summaries: {"clean": {samples, accuracy, macro_f1, macro_auc, loss}
// or null, "contaminated": likewise}.
nlohmann::json held_out_parts_json(const Predictions& predictions, const std::vector<bool>& contaminated,
                                   int class_count);

// A metric in [0, 1] over the folds of a cross-validation as JSON: mean, std, ci95_low, ci95_high
// (metrics::spread_of_proportions: inside [0, 1]; null where undefined: fewer than 2 folds) and
// folds; null for no values.
nlohmann::json across_folds_json(const std::vector<double>& values);

// JSON has no NaN: an undefined metric (NaN, e.g. the AUC of an absent class) is written as null
// and read back as NaN. The one place for that rule.
nlohmann::json number_or_null(double value);
double number_or_nan(const nlohmann::json& value);  // null (or absent) -> NaN; a non-number throws

}  // namespace brainmri::evaluation
