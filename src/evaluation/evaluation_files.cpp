#include "brainmri/evaluation/evaluation_files.hpp"

#include <cmath>
#include <fstream>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/roc.hpp"
#include "brainmri/metrics/summary.hpp"
#include "brainmri/metrics/temperature.hpp"

namespace brainmri::evaluation {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json interval_json(const metrics::Interval& i) {
  return {{"estimate", number_or_null(i.estimate)},
          {"low", number_or_null(i.low)},
          {"high", number_or_null(i.high)},
          {"resamples_used", i.resamples_used}};
}
metrics::Interval interval_from(const json& j) {
  return {number_or_nan(j.at("estimate")), number_or_nan(j.at("low")), number_or_nan(j.at("high")),
          j.at("resamples_used").get<int>()};
}

json scores_json(const AveragedScores& s) {
  return {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}, {"support", s.support}};
}
AveragedScores scores_from(const json& j) {
  return {j.at("precision").get<double>(), j.at("recall").get<double>(), j.at("f1").get<double>(),
          j.at("support").get<std::int64_t>()};
}
AveragedScores averaged(const metrics::ClassScores& s) { return {s.precision, s.recall, s.f1, s.support}; }

json calibration_json(const CalibrationMetrics& c) {
  json bins = json::array();
  for (const auto& b : c.top_label_bins) {
    bins.push_back({{"lower", b.lower},
                    {"upper", b.upper},
                    {"mean_confidence", b.mean_score},
                    {"accuracy", b.frequency},
                    {"count", b.count}});
  }
  return {{"bins", c.bins},
          {"ece", number_or_null(c.ece)},
          {"ece_95ci", interval_json(c.ece_interval)},
          {"ece_equal_mass", number_or_null(c.ece_equal_mass)},
          {"mce", number_or_null(c.mce)},
          {"classwise_ece", number_or_null(c.classwise_ece)},
          {"brier", number_or_null(c.brier)},
          {"nll", number_or_null(c.nll)},
          {"top_label_bins", bins}};
}
CalibrationMetrics calibration_from(const json& j) {
  CalibrationMetrics c;
  c.bins = j.at("bins").get<int>();
  c.ece = number_or_nan(j.at("ece"));
  c.ece_interval = interval_from(j.at("ece_95ci"));
  c.ece_equal_mass = number_or_nan(j.at("ece_equal_mass"));
  c.mce = number_or_nan(j.at("mce"));
  c.classwise_ece = number_or_nan(j.at("classwise_ece"));
  c.brier = number_or_nan(j.at("brier"));
  c.nll = number_or_nan(j.at("nll"));
  for (const auto& b : j.at("top_label_bins")) {
    c.top_label_bins.push_back({b.at("mean_confidence").get<double>(), b.at("accuracy").get<double>(),
                                b.at("count").get<int>(), b.at("lower").get<double>(), b.at("upper").get<double>()});
  }
  return c;
}

}  // namespace

json to_json(const EvaluationMetrics& m) {
  json per_class = json::object();
  for (const auto& c : m.per_class) {
    auto entry = scores_json(c.scores);
    entry["auc"] = number_or_null(c.auc);
    entry["auc_95ci"] = interval_json(c.auc_interval);
    per_class[c.name] = entry;
  }
  json out = {
      {"samples", m.samples},
      {"loss", m.loss},
      {"accuracy", m.accuracy},
      {"accuracy_95ci", interval_json(m.accuracy_interval)},
      {"macro_avg", scores_json(m.macro_average)},
      {"macro_f1_95ci", interval_json(m.macro_f1_interval)},
      {"weighted_avg", scores_json(m.weighted_average)},
      {"per_class", per_class},
      {"macro_auc", number_or_null(m.macro_auc)},
      {"macro_auc_classes", m.macro_auc_classes},
      {"macro_auc_95ci", interval_json(m.macro_auc_interval)},
      {"micro_auc", number_or_null(m.micro_auc)},
      {"calibration", calibration_json(m.calibration)},
      {"temperature_scaling", m.temperature_scaling ? json{{"temperatures", m.temperature_scaling->temperatures},
                                                           {"applied", m.temperature_scaling->applied},
                                                           {"before", calibration_json(m.temperature_scaling->before)},
                                                           {"after", calibration_json(m.temperature_scaling->after)}}
                                                    : json(nullptr)},
      {"confusion_matrix", {{"rows", "true class"}, {"columns", "predicted class"}, {"counts", m.confusion}}},
      {"class_names", m.class_names},
      {"bootstrap", {{"resamples", m.bootstrap_resamples}, {"seed", m.bootstrap_seed}, {"level", m.bootstrap_level}}}};
  out["context"] = m.context;
  return out;
}

EvaluationMetrics metrics_from_json(const json& j) {
  EvaluationMetrics m;
  m.samples = j.at("samples").get<std::int64_t>();
  m.loss = j.at("loss").get<double>();
  m.accuracy = j.at("accuracy").get<double>();
  m.accuracy_interval = interval_from(j.at("accuracy_95ci"));
  m.macro_average = scores_from(j.at("macro_avg"));
  m.macro_f1_interval = interval_from(j.at("macro_f1_95ci"));
  m.weighted_average = scores_from(j.at("weighted_avg"));
  m.class_names = j.at("class_names").get<std::vector<std::string>>();
  for (const auto& name : m.class_names) {
    const auto& c = j.at("per_class").at(name);
    m.per_class.push_back({name, scores_from(c), number_or_nan(c.at("auc")), interval_from(c.at("auc_95ci"))});
  }
  m.macro_auc = number_or_nan(j.at("macro_auc"));
  m.macro_auc_classes = j.at("macro_auc_classes").get<int>();
  m.macro_auc_interval = interval_from(j.at("macro_auc_95ci"));
  m.micro_auc = number_or_nan(j.at("micro_auc"));
  if (j.contains("calibration")) {
    m.calibration = calibration_from(j.at("calibration"));
  } else {
    m.calibration.bins = 0;  // an older metrics.json
  }
  if (j.contains("temperature_scaling") && !j.at("temperature_scaling").is_null()) {
    const auto& t = j.at("temperature_scaling");
    m.temperature_scaling =
        TemperatureScaling{t.at("temperatures").get<std::vector<double>>(), t.at("applied").get<bool>(),
                           calibration_from(t.at("before")), calibration_from(t.at("after"))};
  }
  m.confusion = j.at("confusion_matrix").at("counts").get<std::vector<std::vector<std::int64_t>>>();
  const auto& bootstrap = j.at("bootstrap");
  m.bootstrap_resamples = bootstrap.at("resamples").get<int>();
  m.bootstrap_seed = bootstrap.at("seed").get<std::uint64_t>();
  m.bootstrap_level = bootstrap.at("level").get<double>();
  m.context = j.value("context", json::object());
  return m;
}

EvaluationMetrics read_metrics(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  const auto parsed = json::parse(in, nullptr, false);
  if (parsed.is_discarded()) throw std::runtime_error(file.string() + " is not JSON");
  try {
    return metrics_from_json(parsed);
  } catch (const json::exception& e) {
    throw std::runtime_error(file.string() + " is not a brainmri metrics.json: " + e.what());
  }
}

CalibrationMetrics calibration_metrics(const Predictions& p, int class_count) {
  using metrics::CalibrationBinning;
  constexpr int bins = metrics::kCalibrationBins;
  const auto top =
      metrics::top_label_reliability(p.labels, p.probabilities, class_count, bins, CalibrationBinning::EqualWidth);
  CalibrationMetrics c;
  c.ece = top.ece;
  c.mce = top.mce;
  c.top_label_bins = top.bins;
  c.ece_equal_mass =
      metrics::top_label_reliability(p.labels, p.probabilities, class_count, bins, CalibrationBinning::EqualMass).ece;
  c.classwise_ece =
      metrics::classwise_ece(p.labels, p.probabilities, class_count, bins, CalibrationBinning::EqualWidth);
  c.brier = metrics::brier_score(p.labels, p.probabilities, class_count);
  c.nll = metrics::negative_log_likelihood(p.labels, p.probabilities, class_count);
  return c;
}

nlohmann::json to_json(const CalibrationMetrics& calibration) { return calibration_json(calibration); }

Predictions with_temperature(const Predictions& p, int class_count, double temperature) {
  Predictions scaled = p;
  scaled.probabilities = metrics::apply_temperature(p.probabilities, class_count, temperature);
  scaled.loss = mean_log_loss(scaled.probabilities, scaled.labels, class_count);
  return scaled;
}

StoredTemperature apply_stored_temperature(const Predictions& unscaled, int class_count,
                                           std::optional<double> temperature) {
  if (!temperature) return {unscaled, std::nullopt};
  auto scaled = with_temperature(unscaled, class_count, *temperature);
  auto scaling = temperature_scaling(unscaled, scaled, class_count, {*temperature}, true);
  return {std::move(scaled), std::move(scaling)};
}

Predictions cross_fitted_predictions(const Predictions& p, int class_count, std::uint64_t seed) {
  Predictions scaled = p;
  double temperatures[2];
  scaled.probabilities =
      metrics::cross_fitted_temperature_scaling(p.probabilities, p.labels, class_count, seed, temperatures);
  scaled.loss = mean_log_loss(scaled.probabilities, scaled.labels, class_count);
  return scaled;
}

TemperatureScaling temperature_scaling(const Predictions& before, const Predictions& after, int class_count,
                                       std::vector<double> temperatures, bool applied) {
  return {std::move(temperatures), applied, calibration_metrics(before, class_count),
          calibration_metrics(after, class_count)};
}

EvaluationMetrics evaluation_metrics(const Predictions& p, const std::vector<std::string>& class_names,
                                     std::uint64_t bootstrap_seed, int bootstrap_resamples) {
  const int k = static_cast<int>(class_names.size());
  const auto predicted = metrics::argmax_rows(p.probabilities, k);
  const metrics::ConfusionMatrix matrix(p.labels, predicted, k);
  const auto report = metrics::classification_report(matrix, class_names);
  const auto roc = metrics::one_vs_rest_roc(p.labels, p.probabilities, k);
  const auto intervals =
      metrics::bootstrap_intervals(p.labels, p.probabilities, k, {bootstrap_resamples, 0.95, bootstrap_seed});
  EvaluationMetrics m;
  m.samples = static_cast<std::int64_t>(p.labels.size());
  m.loss = p.loss;
  m.accuracy = report.accuracy;
  m.accuracy_interval = intervals.accuracy;
  m.macro_average = averaged(report.macro_average);
  m.macro_f1_interval = intervals.macro_f1;
  m.weighted_average = averaged(report.weighted_average);
  m.class_names = class_names;
  m.per_class.reserve(static_cast<std::size_t>(k));
  m.confusion.reserve(static_cast<std::size_t>(k));
  for (int c = 0; c < k; ++c) {
    const auto i = static_cast<std::size_t>(c);
    m.per_class.push_back(
        {class_names[i], averaged(report.per_class[i]), roc.auc_per_class[i], intervals.auc_per_class[i]});
    std::vector<std::int64_t> row(static_cast<std::size_t>(k));
    for (int q = 0; q < k; ++q) row[static_cast<std::size_t>(q)] = matrix.at(c, q);
    m.confusion.push_back(std::move(row));
  }
  m.macro_auc = roc.macro_auc;
  m.macro_auc_classes = roc.classes_in_macro;
  m.macro_auc_interval = intervals.macro_auc;
  m.micro_auc = roc.micro_auc;
  m.calibration = calibration_metrics(p, k);
  m.calibration.ece_interval = intervals.top_label_ece;
  m.bootstrap_resamples = bootstrap_resamples;
  m.bootstrap_seed = bootstrap_seed;
  m.bootstrap_level = 0.95;
  return m;
}

EvaluationMetrics write_evaluation(const fs::path& directory, const Predictions& p,
                                   const std::vector<std::string>& class_names, const json& context,
                                   std::uint64_t bootstrap_seed, const std::optional<TemperatureScaling>& scaling) {
  fs::create_directories(directory);
  const int k = static_cast<int>(class_names.size());
  auto metrics = evaluation_metrics(p, class_names, bootstrap_seed);
  metrics.context = context;
  metrics.temperature_scaling = scaling;
  write_file_atomically(directory / "metrics.json", to_json(metrics).dump(2) + "\n");

  const auto predicted = metrics::argmax_rows(p.probabilities, k);
  const auto report = metrics::classification_report(metrics::ConfusionMatrix(p.labels, predicted, k), class_names);
  write_file_atomically(directory / "classification_report.txt", metrics::format_classification_report(report, 4));
  write_predictions(directory / "predictions.h5", p, class_names);
  return metrics;
}

json to_json(const Scores& s) {
  return {
      {"accuracy", s.accuracy}, {"macro_f1", s.macro_f1}, {"macro_auc", number_or_null(s.macro_auc)}, {"loss", s.loss}};
}

namespace {

// The clean and the contaminated rows of a held-out prediction set.
std::pair<Predictions, Predictions> held_out_parts(const Predictions& p, const std::vector<bool>& contaminated,
                                                   int class_count) {
  const auto is_contaminated = [&](std::int64_t id) { return contaminated.at(static_cast<std::size_t>(id)); };
  return {select_predictions(
              p, [&](std::int64_t id) { return !is_contaminated(id); }, class_count),
          select_predictions(p, is_contaminated, class_count)};
}

}  // namespace

HeldOutEvaluation write_held_out_evaluation(const fs::path& directory, const Predictions& p,
                                            const std::vector<std::string>& class_names, json context,
                                            std::uint64_t bootstrap_seed, const std::vector<bool>& contaminated,
                                            const std::optional<TemperatureScaling>& scaling) {
  const int k = static_cast<int>(class_names.size());
  const auto [clean, dirty] = held_out_parts(p, contaminated, k);
  context["held_out_parts"] = {{"clean", clean.labels.size()}, {"contaminated", dirty.labels.size()}};
  HeldOutEvaluation result;
  context["part"] = "all";
  result.all = write_evaluation(directory, p, class_names, context, bootstrap_seed, scaling);
  if (clean.labels.empty() || dirty.labels.empty()) {
    if (!clean.labels.empty()) result.clean = result.all;
    if (!dirty.labels.empty()) result.contaminated = result.all;
    return result;
  }
  context["part"] = "clean";
  result.clean = write_evaluation(directory / "clean", clean, class_names, context, bootstrap_seed);
  context["part"] = "contaminated";
  result.contaminated = write_evaluation(directory / "contaminated", dirty, class_names, context, bootstrap_seed);
  return result;
}

json held_out_parts_json(const Predictions& p, const std::vector<bool>& contaminated, int class_count) {
  const auto [clean, dirty] = held_out_parts(p, contaminated, class_count);
  json parts;
  for (const auto& [name, part] : {std::pair{"clean", &clean}, std::pair{"contaminated", &dirty}}) {
    if (part->labels.empty()) {
      parts[name] = nullptr;
      continue;
    }
    parts[name] = to_json(score_predictions(*part, class_count));
    parts[name]["samples"] = part->labels.size();
  }
  return parts;
}

json across_folds_json(const std::vector<double>& values) {
  if (values.empty()) return nullptr;
  const auto s = metrics::spread_of_proportions(values);
  return {{"mean", s.mean},
          {"std", number_or_null(s.std_dev)},
          {"ci95_low", number_or_null(s.ci95_low)},
          {"ci95_high", number_or_null(s.ci95_high)},
          {"folds", values.size()}};
}

json number_or_null(double value) { return std::isnan(value) ? json(nullptr) : json(value); }
double number_or_nan(const json& value) { return value.is_null() ? NAN : value.get<double>(); }

}  // namespace brainmri::evaluation
