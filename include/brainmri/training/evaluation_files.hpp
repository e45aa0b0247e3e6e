#pragma once
// The files an evaluation leaves behind: predictions.h5 (sample id, label, probabilities),
// metrics.json (every metric, with bootstrap intervals) and classification_report.txt.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "brainmri/training/trainer.hpp"

namespace brainmri::training {

// Metrics of a prediction set as JSON: accuracy, per-class and averaged precision/recall/F1,
// confusion matrix, per-class/macro/micro AUC and bootstrap 95% intervals (seeded).
nlohmann::json evaluation_metrics(const Predictions& predictions, const std::vector<std::string>& class_names,
                                  std::uint64_t bootstrap_seed, int bootstrap_resamples = 1000);

// Writes the three files into `directory` (created if needed), each atomically; returns what
// metrics.json holds.
nlohmann::json write_evaluation(const std::filesystem::path& directory, const Predictions& predictions,
                      const std::vector<std::string>& class_names, const nlohmann::json& context,
                      std::uint64_t bootstrap_seed);

// A metric over the folds of a cross-validation as JSON: mean, std, ci95_low, ci95_high (null where
// undefined: fewer than 2 folds) and folds; null for no values.
nlohmann::json across_folds_json(const std::vector<double>& values);

// Reads predictions.h5 back.
Predictions read_predictions(const std::filesystem::path& file);

}  // namespace brainmri::training
