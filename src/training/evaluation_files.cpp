#include "brainmri/training/evaluation_files.hpp"

#include "brainmri/metrics/summary.hpp"

#include <cmath>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/metrics/bootstrap.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/roc.hpp"

namespace brainmri::training {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json number_or_null(double value) { return std::isnan(value) ? json(nullptr) : json(value); }

json interval(const metrics::Interval& i) {
  return {{"estimate", number_or_null(i.estimate)}, {"low", number_or_null(i.low)}, {"high", number_or_null(i.high)},
          {"resamples_used", i.resamples_used}};
}

json scores(const metrics::ClassScores& s) {
  return {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}, {"support", s.support}};
}

}  // namespace

json evaluation_metrics(const Predictions& p, const std::vector<std::string>& class_names, std::uint64_t bootstrap_seed,
                        int bootstrap_resamples) {
  const int k = static_cast<int>(class_names.size());
  const auto predicted = metrics::argmax_rows(p.probabilities, k);
  const metrics::ConfusionMatrix matrix(p.labels, predicted, k);
  const auto report = metrics::classification_report(matrix, class_names);
  const auto roc = metrics::one_vs_rest_roc(p.labels, p.probabilities, k);
  const auto intervals = metrics::bootstrap_intervals(p.labels, p.probabilities, k,
                                                      {bootstrap_resamples, 0.95, bootstrap_seed});
  json per_class = json::object();
  json confusion = json::array();
  for (int c = 0; c < k; ++c) {
    auto entry = scores(report.per_class[static_cast<std::size_t>(c)]);
    entry["auc"] = number_or_null(roc.auc_per_class[static_cast<std::size_t>(c)]);
    entry["auc_95ci"] = interval(intervals.auc_per_class[static_cast<std::size_t>(c)]);
    per_class[class_names[static_cast<std::size_t>(c)]] = entry;
    json row = json::array();
    for (int q = 0; q < k; ++q) row.push_back(matrix.at(c, q));
    confusion.push_back(row);
  }
  return {{"samples", p.labels.size()},
          {"loss", p.loss},
          {"accuracy", report.accuracy},
          {"accuracy_95ci", interval(intervals.accuracy)},
          {"macro_avg", scores(report.macro_average)},
          {"macro_f1_95ci", interval(intervals.macro_f1)},
          {"weighted_avg", scores(report.weighted_average)},
          {"per_class", per_class},
          {"macro_auc", number_or_null(roc.macro_auc)},
          {"macro_auc_classes", roc.classes_in_macro},
          {"macro_auc_95ci", interval(intervals.macro_auc)},
          {"micro_auc", number_or_null(roc.micro_auc)},
          {"confusion_matrix", {{"rows", "true class"}, {"columns", "predicted class"}, {"counts", confusion}}},
          {"class_names", class_names},
          {"bootstrap", {{"resamples", bootstrap_resamples}, {"seed", bootstrap_seed}, {"level", 0.95}}}};
}

json write_evaluation(const fs::path& directory, const Predictions& p, const std::vector<std::string>& class_names,
                      const json& context, std::uint64_t bootstrap_seed) {
  fs::create_directories(directory);
  const int k = static_cast<int>(class_names.size());
  auto metrics_json = evaluation_metrics(p, class_names, bootstrap_seed);
  metrics_json["context"] = context;
  write_file_atomically(directory / "metrics.json", metrics_json.dump(2) + "\n");

  const auto predicted = metrics::argmax_rows(p.probabilities, k);
  const auto report = metrics::classification_report(metrics::ConfusionMatrix(p.labels, predicted, k), class_names);
  write_file_atomically(directory / "classification_report.txt", metrics::format_classification_report(report, 4));

  const auto final_path = directory / "predictions.h5";
  auto temporary = final_path;
  temporary += ".partial";
  fs::remove(temporary);
  {
    auto file = hdf5::create_file(temporary);
    hdf5::write_vector(file, "sample_ids", p.sample_ids);
    std::vector<std::int32_t> labels(p.labels.begin(), p.labels.end());
    hdf5::write_vector(file, "labels", labels);
    hdf5::write_double_array(file, "probabilities", {p.labels.size(), static_cast<hsize_t>(k)}, p.probabilities);
    hdf5::write_attribute(file, "class_names", class_names);
    file.close();
  }
  fsync_path(temporary);
  fs::rename(temporary, final_path);
  return metrics_json;
}

nlohmann::json across_folds_json(const std::vector<double>& values) {
  if (values.empty()) return nullptr;
  const auto s = metrics::spread(values);
  auto number = [](double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); };
  return {{"mean", s.mean}, {"std", number(s.std_dev)}, {"ci95_low", number(s.ci95_low)},
          {"ci95_high", number(s.ci95_high)}, {"folds", values.size()}};
}

Predictions read_predictions(const fs::path& path) {
  const auto file = hdf5::open_file_readonly(path);
  Predictions p;
  p.sample_ids = hdf5::read_vector<std::int64_t>(file, "sample_ids");
  const auto labels = hdf5::read_vector<std::int32_t>(file, "labels");
  p.labels.assign(labels.begin(), labels.end());
  p.probabilities = hdf5::read_double_array(file, "probabilities").values;
  return p;
}

}  // namespace brainmri::training
