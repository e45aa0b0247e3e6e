#include "brainmri/reports/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/csv.hpp"
#include "brainmri/common/log.hpp"
#include "brainmri/data/sharded_dataset.hpp"
#include "brainmri/evaluation/evaluation_files.hpp"
#include "brainmri/explain/gradcam.hpp"
#include "brainmri/explain/localization_check.hpp"
#include "brainmri/metrics/calibration.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/roc.hpp"
#include "brainmri/metrics/summary.hpp"
#include "brainmri/models/checkpoint.hpp"
#include "brainmri/reports/number_text.hpp"
#include "brainmri/reports/paired_tests.hpp"
#include "brainmri/reports/subgroups.hpp"

namespace brainmri::reports {
namespace fs = std::filesystem;
using nlohmann::json;

std::string html_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

json read_json(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error(file.string() + " is not valid JSON: " + e.what());
  }
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<Evaluation> read_evaluation(const fs::path& directory, const std::string& key, const std::string& title) {
  if (!fs::exists(directory / "predictions.h5") || !fs::exists(directory / "metrics.json")) return std::nullopt;
  return Evaluation{key, title, evaluation::read_predictions(directory / "predictions.h5"),
                    evaluation::read_metrics(directory / "metrics.json")};
}

// A held-out evaluation and its parts (evaluation::write_held_out_evaluation), clean part first:
// the one that measures images the model has not seen.
void add_test_evaluations(std::vector<Evaluation>& tests, const fs::path& directory, const std::string& key,
                          const std::string& title) {
  if (auto e = read_evaluation(directory / "clean", key + "_clean", title + ", clean part (no copy in training)"))
    tests.push_back(*e);
  if (auto e = read_evaluation(directory / "contaminated", key + "_contaminated",
                               title + ", contaminated part (a copy in training)"))
    tests.push_back(*e);
  if (auto e = read_evaluation(directory, key, title)) tests.push_back(*e);
}

// Temperature scaling in words: what was fitted or applied, and the calibration before and after.
std::string temperature_scaling_text(const evaluation::EvaluationMetrics& m) {
  if (!m.temperature_scaling) return "";
  const auto& t = *m.temperature_scaling;
  if (t.temperatures.empty()) return "";
  const auto [low, high] = std::minmax_element(t.temperatures.begin(), t.temperatures.end());
  const std::string temperatures = t.temperatures.size() == 1
                                       ? "T = " + fixed(*low, 3)
                                       : "one per fold model, T = " + fixed(*low, 3) + " to " + fixed(*high, 3);
  const auto change = [](const char* name, double before, double after) {
    return std::string(name) + " " + fixed(before) + " → " + fixed(after);
  };
  const std::string changes = change("top-label ECE", t.before.ece, t.after.ece) + ", " +
                              change("classwise ECE", t.before.classwise_ece, t.after.classwise_ece) + ", " +
                              change("Brier score", t.before.brier, t.after.brier) + ", " +
                              change("NLL", t.before.nll, t.after.nll);
  if (t.applied) {
    return " The probabilities are scaled by the temperature stored with the model (" + temperatures +
           ", fitted on its validation predictions); before → after on these images: " + changes + ".";
  }
  return " Temperature scaling (" + temperatures +
         ") was fitted on these predictions; judged by 2-fold "
         "cross-fitting (each half of the images scaled with the temperature fitted on the other half): " +
         changes +
         ". The figures and tables show the network's own probabilities; predict, serve and the held-out tests "
         "apply the temperature.";
}

std::string latex_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '_' || c == '%' || c == '&' || c == '#') out += '\\';
    out += c;
  }
  return out;
}

// The scores of one evaluation, recomputed from its predictions with the metrics module.
struct Scores {
  metrics::ConfusionMatrix matrix;
  metrics::ClassificationReport report;
  metrics::OneVsRestRoc roc;
};
Scores score(const Evaluation& e, const std::vector<std::string>& class_names) {
  const int k = static_cast<int>(class_names.size());
  metrics::ConfusionMatrix matrix(e.predictions.labels, metrics::argmax_rows(e.predictions.probabilities, k), k);
  auto report = metrics::classification_report(matrix, class_names);
  return {std::move(matrix), std::move(report),
          metrics::one_vs_rest_roc(e.predictions.labels, e.predictions.probabilities, k)};
}

json scores_json(const Scores& s) {
  json per_class = json::object();
  for (std::size_t c = 0; c < s.report.class_names.size(); ++c) {
    const auto& p = s.report.per_class[c];
    const double auc = s.roc.auc_per_class[c];
    per_class[s.report.class_names[c]] = {{"precision", p.precision},
                                          {"recall", p.recall},
                                          {"f1", p.f1},
                                          {"support", p.support},
                                          {"auc", std::isnan(auc) ? json() : json(auc)}};
  }
  auto average = [](const metrics::ClassScores& a) {
    return json{{"precision", a.precision}, {"recall", a.recall}, {"f1", a.f1}, {"support", a.support}};
  };
  return {{"per_class", per_class},
          {"accuracy", s.report.accuracy},
          {"macro_avg", average(s.report.macro_average)},
          {"weighted_avg", average(s.report.weighted_average)},
          {"macro_auc", std::isnan(s.roc.macro_auc) ? json() : json(s.roc.macro_auc)},
          {"micro_auc", std::isnan(s.roc.micro_auc) ? json() : json(s.roc.micro_auc)}};
}

// "0.9512 ± 0.0110 [0.9375, 0.9651]" (spread) or "0.9512 [0.9390, 0.9630]" (value with CI).
std::string spread_text(const json& s, const char* pm = "±") {
  if (s.is_null()) return "n/a";
  std::string text = fixed(s["mean"].get<double>());
  if (!s["std"].is_null()) text += std::string(" ") + pm + " " + fixed(s["std"].get<double>());
  if (!s["ci95_low"].is_null())
    text += " [" + fixed(s["ci95_low"].get<double>()) + ", " + fixed(s["ci95_high"].get<double>()) + "]";
  return text;
}
using evaluation::number_or_nan;
using evaluation::number_or_null;

std::string value_text(double value, const metrics::Interval& interval) {
  if (std::isnan(value)) return "n/a";
  std::string text = fixed(value);
  if (!std::isnan(interval.low) && !std::isnan(interval.high))
    text += " [" + fixed(interval.low) + ", " + fixed(interval.high) + "]";
  return text;
}

// The rows of the paper table: per class precision, recall, F1, AUC; then accuracy, macro-F1,
// macro AUC. For a CV: mean ± std [95% t-interval, logit scale] over the folds; for a single evaluation: the
// value, with its bootstrap 95% interval where metrics.json has one. The ECE column is the main
// evaluation's (a CV's pooled out-of-fold predictions): one-vs-rest per class, top-label [bootstrap
// 95% interval] on the accuracy row, classwise on the macro row.
struct TableRow {
  std::string name;
  std::vector<std::string> cells;  // precision, recall, F1, AUC, ECE
};
struct CalibrationCells {
  std::vector<std::string> per_class;
  std::string top_label, classwise;
};
std::vector<TableRow> paper_rows(const RunContents& run, const json& report_json, const CalibrationCells& ece) {
  std::vector<TableRow> rows;
  if (run.kind == "cv" && report_json.contains("across_folds")) {
    const auto& across = report_json["across_folds"];
    for (std::size_t k = 0; k < run.class_names.size(); ++k) {
      const auto& c = across["per_class"][run.class_names[k]];
      rows.push_back({run.class_names[k],
                      {spread_text(c["precision"]), spread_text(c["recall"]), spread_text(c["f1"]),
                       spread_text(c["auc"]), ece.per_class[k]}});
    }
    rows.push_back({"accuracy", {"", "", spread_text(across["accuracy"]), "", ece.top_label}});
    rows.push_back({"macro average",
                    {spread_text(across["macro_precision"]), spread_text(across["macro_recall"]),
                     spread_text(across["macro_f1"]), spread_text(across["macro_auc"]), ece.classwise}});
    return rows;
  }
  const auto& m = run.main->metrics;
  const auto& e = report_json["evaluations"][run.main->key];
  for (std::size_t k = 0; k < run.class_names.size(); ++k) {
    const auto& name = run.class_names[k];
    const auto& c = e["per_class"][name];
    metrics::Interval interval{NAN, NAN, NAN, 0};
    for (const auto& recorded : m.per_class) {
      if (recorded.name == name) interval = recorded.auc_interval;
    }
    rows.push_back({name,
                    {fixed(c["precision"].get<double>()), fixed(c["recall"].get<double>()),
                     fixed(c["f1"].get<double>()), value_text(number_or_nan(c["auc"]), interval), ece.per_class[k]}});
  }
  rows.push_back(
      {"accuracy", {"", "", value_text(number_or_nan(e["accuracy"]), m.accuracy_interval), "", ece.top_label}});
  rows.push_back({"macro average",
                  {fixed(e["macro_avg"]["precision"].get<double>()), fixed(e["macro_avg"]["recall"].get<double>()),
                   value_text(number_or_nan(e["macro_avg"]["f1"]), m.macro_f1_interval),
                   value_text(number_or_nan(e["macro_auc"]), m.macro_auc_interval), ece.classwise}});
  return rows;
}

std::string table_caption(const RunContents& run) {
  const std::string ece = "; ECE (" + std::to_string(metrics::kCalibrationBins) +
                          " equal-width bins): one-vs-rest per class, top-label [bootstrap 95% interval] on the "
                          "accuracy row, classwise on the macro row";
  if (run.kind == "cv") {
    return run.model + ", " + std::to_string(run.folds.size()) +
           "-fold cross-validation: mean ± std over the folds [95% t-interval of the mean, on the logit scale]" + ece +
           ", of the pooled out-of-fold predictions";
  }
  return run.model + ", " + run.main->title + ": value [bootstrap 95% interval]" + ece;
}

std::string markdown_table(const std::vector<TableRow>& rows) {
  std::ostringstream md;
  md << "| class | precision | recall | F1 | AUC | ECE |\n|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    md << "| " << r.name;
    for (const auto& c : r.cells) md << " | " << c;
    md << " |\n";
  }
  return md.str();
}

std::string latex_table(const std::vector<TableRow>& rows, const std::string& caption) {
  std::ostringstream tex;
  tex << "% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n\\caption{" << latex_escape(caption)
      << "}\n\\begin{tabular}{llllll}\n\\toprule\nclass & precision & recall & F1 & AUC & ECE \\\\\n\\midrule\n";
  for (const auto& r : rows) {
    if (r.name == "accuracy") tex << "\\midrule\n";
    tex << latex_escape(r.name);
    for (auto c : r.cells) {
      c = std::regex_replace(c, std::regex("±"), "$\\pm$");
      tex << " & " << c;
    }
    tex << " \\\\\n";
  }
  tex << "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
  return tex.str();
}

void append_csv(CsvTable& csv, const std::string& evaluation, const Scores& s) {
  const auto number = CsvTable::number;
  auto scores_row = [&](const std::string& name, const metrics::ClassScores& p) {
    csv.row({evaluation, name, number(p.precision), number(p.recall), number(p.f1), std::to_string(p.support)});
  };
  for (std::size_t c = 0; c < s.report.class_names.size(); ++c)
    scores_row(s.report.class_names[c], s.report.per_class[c]);
  csv.row(
      {evaluation, "accuracy", "", "", number(s.report.accuracy), std::to_string(s.report.weighted_average.support)});
  scores_row("macro avg", s.report.macro_average);
  scores_row("weighted avg", s.report.weighted_average);
}

}  // namespace

RunContents read_run(const fs::path& directory) {
  if (!fs::is_directory(directory)) throw std::runtime_error(directory.string() + " is not a directory");
  RunContents run;
  run.directory = directory;
  if (fs::exists(directory / "config.ini")) run.config_text = read_text(directory / "config.ini");
  if (fs::exists(directory / "cv_summary.json")) {
    run.kind = "cv";
    const auto summary = read_json(directory / "cv_summary.json");
    run.model = summary.value("model", "");
    for (const auto& f : summary.at("folds")) {
      const std::string fold = f.at("fold").get<std::string>();
      if (auto e = read_evaluation(directory / fold / "validation", fold, fold + " (validation)"))
        run.folds.push_back(*e);
      add_test_evaluations(run.tests, directory / fold / "test", fold + "_test", "held-out test: " + fold + " model");
      if (fs::exists(directory / fold / "train_log.jsonl")) {
        run.fold_epochs.emplace_back(fold, evaluation::read_training_log(directory / fold / "train_log.jsonl"));
      }
    }
    if (run.folds.empty())
      throw std::runtime_error(directory.string() + ": cv_summary.json lists no fold with predictions");
    run.main = read_evaluation(directory / "out_of_fold", "out_of_fold",
                               "pooled out-of-fold predictions of the " + std::to_string(run.folds.size()) + " folds");
    add_test_evaluations(run.tests, directory / "test_ensemble", "test_ensemble",
                         "held-out test: ensemble of the " + std::to_string(run.folds.size()) + " fold models");
    add_test_evaluations(run.tests, directory / "final" / "test", "final_test",
                         "held-out test: final model (all folds)");
  } else if (fs::exists(directory / "validation" / "predictions.h5")) {
    run.kind = "train";
    run.main = read_evaluation(directory / "validation", "validation", "validation");
    add_test_evaluations(run.tests, directory / "test", "test", "held-out test");
    if (fs::exists(directory / "train_log.jsonl"))
      run.epochs = evaluation::read_training_log(directory / "train_log.jsonl");
  } else {
    throw std::runtime_error(directory.string() +
                             " is neither a run of brainmri train (validation/predictions.h5) nor of "
                             "brainmri cv (cv_summary.json)");
  }
  if (!run.main)
    throw std::runtime_error(directory.string() + " has no pooled predictions (out_of_fold/ or validation/)");
  run.class_names = run.main->metrics.class_names;
  if (run.model.empty()) run.model = run.main->metrics.context.value("model", "model");
  return run;
}

// The run's dataset, or an error saying it is not here.
fs::path run_dataset(const RunContents& run) {
  const auto dataset_path = run.main->metrics.context.value("dataset", std::string());
  if (dataset_path.empty() || !fs::exists(fs::path(dataset_path) / "manifest.json")) {
    throw std::runtime_error("the run's dataset (" +
                             (dataset_path.empty() ? std::string("not recorded") : dataset_path) + ") is not here");
  }
  return dataset_path;
}

// Each evaluated sample's model: the fold model that predicted it, or the run's model.
std::map<std::int64_t, fs::path> run_models(const RunContents& run) {
  std::map<std::int64_t, fs::path> model_of;
  if (run.kind == "cv") {
    for (const auto& f : run.folds) {
      for (const auto id : f.predictions.sample_ids) model_of[id] = run.directory / f.key / "model.pt";
    }
  } else {
    for (const auto id : run.main->predictions.sample_ids) model_of[id] = run.directory / "model.pt";
  }
  return model_of;
}

models::ClassifierPtr load_explained_model(const fs::path& checkpoint, const std::string& layer) {
  if (!fs::exists(checkpoint))
    throw std::runtime_error(checkpoint.string() + " is not here (checkpoints are not kept with results)");
  auto model = models::load_model_from_checkpoint(checkpoint, torch::kCPU);
  model->set_explained_layer(layer);
  return model;
}

// The explanation grid of the main evaluation's most confident correct predictions and errors,
// each explained (its predicted class) by the model that made the prediction.
json write_gradcam_grid(const RunContents& run, const fs::path& stem, const ReportOptions& options) {
  const int per_kind = options.gradcam_per_kind;
  const auto dataset_path = run_dataset(run);
  const auto model_of = run_models(run);
  const int k = static_cast<int>(run.class_names.size());
  const auto& p = run.main->predictions;
  const auto predicted = metrics::argmax_rows(p.probabilities, k);
  // Per class: indices of correct and wrong predictions, most confident first.
  std::vector<std::vector<std::size_t>> correct(static_cast<std::size_t>(k)), wrong(static_cast<std::size_t>(k));
  for (std::size_t i = 0; i < p.labels.size(); ++i) {
    (predicted[i] == p.labels[i] ? correct : wrong)[static_cast<std::size_t>(p.labels[i])].push_back(i);
  }
  auto confidence = [&](std::size_t i) {
    return p.probabilities[i * static_cast<std::size_t>(k) + static_cast<std::size_t>(predicted[i])];
  };
  std::vector<std::size_t> chosen;
  for (auto* lists : {&correct, &wrong}) {
    for (auto& list : *lists) {
      std::stable_sort(list.begin(), list.end(),
                       [&](std::size_t a, std::size_t b) { return confidence(a) > confidence(b); });
      if (static_cast<int>(list.size()) > per_kind) list.resize(static_cast<std::size_t>(per_kind));
      chosen.insert(chosen.end(), list.begin(), list.end());
    }
  }
  // Explain every chosen image with its own model, a batch per model.
  const data::ShardedDataset dataset(dataset_path);
  std::map<fs::path, std::vector<std::size_t>> by_model;
  for (const auto i : chosen) by_model[model_of.at(p.sample_ids[i])].push_back(i);
  std::map<std::size_t, CamTile> tiles;
  std::vector<double> correlations;
  std::string layer;
  for (const auto& [checkpoint, indices] : by_model) {
    auto model = load_explained_model(checkpoint, options.cam_layer);
    std::vector<std::int64_t> ids;
    for (const auto i : indices) ids.push_back(p.sample_ids[i]);
    const auto batch = dataset.load(ids);
    const auto cam = explain::class_activation_maps(*model, batch.images, std::nullopt, options.cam_method);
    // The randomization check: the same architecture with fresh (seeded) weights must explain
    // the same images and classes differently.
    torch::manual_seed(0);
    auto randomized = models::create_model(model->model_name(), model->options());
    randomized->set_explained_layer(options.cam_layer);
    const auto r =
        explain::randomization_correlations(*model, *randomized, batch.images, cam.classes, options.cam_method);
    layer = model->explained_layer();
    correlations.insert(correlations.end(), r.begin(), r.end());
    for (std::size_t j = 0; j < indices.size(); ++j) {
      const auto image = batch.images[static_cast<std::int64_t>(j)][0].contiguous().to(torch::kFloat64);
      const auto map = cam.maps[static_cast<std::int64_t>(j)].contiguous().to(torch::kFloat64);
      CamTile tile;
      tile.height = static_cast<int>(image.size(0));
      tile.width = static_cast<int>(image.size(1));
      tile.image.assign(image.data_ptr<double>(), image.data_ptr<double>() + image.numel());
      tile.map.assign(map.data_ptr<double>(), map.data_ptr<double>() + map.numel());
      const auto i = indices[j];
      tile.truth = p.labels[i];
      tile.predicted = predicted[i];
      tile.probability = confidence(i);
      tiles[i] = std::move(tile);
    }
  }
  std::vector<std::vector<std::optional<CamTile>>> rows(static_cast<std::size_t>(k));
  for (int c = 0; c < k; ++c) {
    auto& row = rows[static_cast<std::size_t>(c)];
    row.resize(static_cast<std::size_t>(2 * per_kind));
    for (std::size_t j = 0; j < correct[static_cast<std::size_t>(c)].size(); ++j)
      row[j] = tiles.at(correct[static_cast<std::size_t>(c)][j]);
    for (std::size_t j = 0; j < wrong[static_cast<std::size_t>(c)].size(); ++j) {
      row[static_cast<std::size_t>(per_kind) + j] = tiles.at(wrong[static_cast<std::size_t>(c)][j]);
    }
  }
  plot_gradcam_grid(rows, per_kind, run.class_names,
                    explain::display_name(options.cam_method) + " (" + layer + "): " + run.main->title,
                    explain::display_name(options.cam_method), stem, options.vector_figures);
  std::vector<double> defined;
  for (const auto c : correlations) {
    if (!std::isnan(c)) defined.push_back(c);
  }
  std::sort(defined.begin(), defined.end());
  double mean = 0;
  for (const auto c : defined) mean += c / static_cast<double>(defined.size());
  return {{"method", explain::to_string(options.cam_method)},
          {"layer", layer},
          {"images", chosen.size()},
          {"randomization_check",
           {{"what",
             "Spearman correlation between each image's map from the trained model and from the same "
             "architecture with random weights (maps pooled to at most 32x32); near 0: the maps depend on the "
             "learned weights"},
            {"images_with_both_maps_non_flat", defined.size()},
            {"mean", defined.empty() ? json() : json(mean)},
            {"median", defined.empty() ? json() : json(defined[defined.size() / 2])}}}};
}

// The localization check (explain/localization_check.hpp) for the run's architecture, explanation
// method and layer, on slices of the run's own dataset.
json run_explanation_check(const RunContents& run, const ReportOptions& options) {
  const data::ShardedDataset dataset(run_dataset(run));
  const auto model = load_explained_model(run_models(run).begin()->second, options.cam_layer);
  const auto& ids = run.main->predictions.sample_ids;
  const auto backgrounds =
      dataset
          .load(std::vector<std::int64_t>(
              ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(ids.size(), 200))))
          .images;
  explain::LocalizationCheckOptions check_options;
  check_options.methods = {options.cam_method};
  check_options.layer = options.cam_layer;
  check_options.device = options.device;
  const auto result = explain::localization_check(model->model_name(), model->options(), backgrounds, check_options);
  const auto& method = result.methods.front();
  return {
      {"what",
       "a fresh " + result.model_name +
           " of the run's architecture trained on the run's slices with a bright "
           "disc at one of four class-specific positions (a fifth class has none); localization: share of correct "
           "disc predictions whose map peaks inside the disc; randomization: mean Spearman correlation with the "
           "maps of random weights"},
      {"method", explain::to_string(method.method)},
      {"layer", result.layer},
      {"image_size", result.image_size},
      {"device", options.device.str()},
      {"disc_radius_pixels", result.disc_radius},
      {"peak_tolerance_pixels", result.peak_tolerance},
      {"check_network_accuracy", result.accuracy},
      {"correct_disc_predictions", result.correct_disc_predictions},
      {"localization", method.localization},
      {"randomization_spearman",
       std::isnan(method.randomization_spearman) ? json() : json(method.randomization_spearman)},
      {"verdict", !result.learned() ? "inconclusive: the check network did not learn the discs (accuracy below 0.90)"
                  : method.passed() ? "passed: localization >= 0.90 and randomization Spearman < 0.50"
                                    : "failed: localization < 0.90 or randomization Spearman >= 0.50"}};
}

json write_report(const RunContents& run, const fs::path& output, const ReportOptions& options) {
  const bool figures = options.figures, vector_figures = options.vector_figures;
  fs::create_directories(output);
  const auto& classes = run.class_names;
  const int k = static_cast<int>(classes.size());
  std::vector<const Evaluation*> all;
  for (const auto& f : run.folds) all.push_back(&f);
  all.push_back(&*run.main);
  for (const auto& t : run.tests) all.push_back(&t);

  json report = {{"run", fs::absolute(run.directory).string()},
                 {"kind", run.kind},
                 {"model", run.model},
                 {"class_names", classes},
                 {"evaluations", json::object()}};
  std::ostringstream text;
  CsvTable csv({"evaluation", "class", "precision", "recall", "f1", "support"});
  std::map<std::string, Scores> scores;
  for (const auto* e : all) {
    if (static_cast<int>(e->predictions.probabilities.size()) != k * static_cast<int>(e->predictions.labels.size())) {
      throw std::runtime_error(e->key + " of " + run.directory.string() +
                               " has predictions for another number of classes");
    }
    scores.emplace(e->key, score(*e, classes));
    const auto& s = scores.at(e->key);
    report["evaluations"][e->key] = scores_json(s);
    report["evaluations"][e->key]["title"] = e->title;
    report["evaluations"][e->key]["samples"] = e->predictions.labels.size();
    text << "== " << e->title << " (" << e->predictions.labels.size() << " images) ==\n\n"
         << metrics::format_classification_report(s.report, 4) << "\n";
    append_csv(csv, e->key, s);
  }
  json headline;
  if (run.kind == "cv") {
    std::map<std::string, std::vector<double>> values;
    for (const auto& f : run.folds) {
      const auto& s = scores.at(f.key);
      for (int c = 0; c < k; ++c) {
        const auto& name = classes[static_cast<std::size_t>(c)];
        values[name + "/precision"].push_back(s.report.per_class[static_cast<std::size_t>(c)].precision);
        values[name + "/recall"].push_back(s.report.per_class[static_cast<std::size_t>(c)].recall);
        values[name + "/f1"].push_back(s.report.per_class[static_cast<std::size_t>(c)].f1);
        if (!std::isnan(s.roc.auc_per_class[static_cast<std::size_t>(c)])) {
          values[name + "/auc"].push_back(s.roc.auc_per_class[static_cast<std::size_t>(c)]);
        }
      }
      values["accuracy"].push_back(s.report.accuracy);
      values["macro_precision"].push_back(s.report.macro_average.precision);
      values["macro_recall"].push_back(s.report.macro_average.recall);
      values["macro_f1"].push_back(s.report.macro_average.f1);
      if (!std::isnan(s.roc.macro_auc)) values["macro_auc"].push_back(s.roc.macro_auc);
    }
    json across = {{"per_class", json::object()}, {"folds", run.folds.size()}};
    for (const auto& name : classes) {
      across["per_class"][name] = {{"precision", evaluation::across_folds_json(values[name + "/precision"])},
                                   {"recall", evaluation::across_folds_json(values[name + "/recall"])},
                                   {"f1", evaluation::across_folds_json(values[name + "/f1"])},
                                   {"auc", evaluation::across_folds_json(values[name + "/auc"])}};
    }
    for (const auto* key : {"accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_auc"}) {
      across[key] = evaluation::across_folds_json(values[key]);
    }
    report["across_folds"] = across;
    headline = {{"accuracy", across["accuracy"]}, {"macro_f1", across["macro_f1"]}, {"macro_auc", across["macro_auc"]}};
    text << "== Across the " << run.folds.size() << " folds: mean ± std [95% t-interval, logit scale] ==\n\n";
    char line[512];
    std::snprintf(line, sizeof(line), "%-16s %-36s %-36s %-36s\n", "", "precision", "recall", "f1-score");
    text << line;
    for (const auto& name : classes) {
      const auto& c = across["per_class"][name];
      std::snprintf(line, sizeof(line), "%-16s %-36s %-36s %-36s\n", name.c_str(), spread_text(c["precision"]).c_str(),
                    spread_text(c["recall"]).c_str(), spread_text(c["f1"]).c_str());
      text << line;
    }
    std::snprintf(line, sizeof(line), "\n%-16s %-36s\n%-16s %-36s %-36s %-36s\n", "accuracy",
                  spread_text(across["accuracy"]).c_str(), "macro avg", spread_text(across["macro_precision"]).c_str(),
                  spread_text(across["macro_recall"]).c_str(), spread_text(across["macro_f1"]).c_str());
    text << line;
    for (const char* key : {"accuracy", "macro_precision", "macro_recall", "macro_f1"}) {
      const auto& s = across[key];
      const auto folds = std::to_string(run.folds.size());
      csv.row({"across_folds_mean", key, "", "", CsvTable::number(s["mean"].get<double>()), folds});
      if (!s["std"].is_null())
        csv.row({"across_folds_std", key, "", "", CsvTable::number(s["std"].get<double>()), folds});
    }
  } else {
    const auto& m = run.main->metrics;
    const auto& e = report["evaluations"][run.main->key];
    auto with_interval = [](const json& value, const metrics::Interval& interval) {
      return json{{"mean", value},
                  {"std", nullptr},
                  {"ci95_low", number_or_null(interval.low)},
                  {"ci95_high", number_or_null(interval.high)}};
    };
    headline = {{"accuracy", with_interval(e["accuracy"], m.accuracy_interval)},
                {"macro_f1", with_interval(e["macro_avg"]["f1"], m.macro_f1_interval)},
                {"macro_auc", e["macro_auc"].is_null() ? json() : with_interval(e["macro_auc"], m.macro_auc_interval)}};
  }
  report["headline"] = headline;
  write_file_atomically(output / "classification_report.txt", text.str());
  write_file_atomically(output / "classification_report.csv", csv.text());

  // Calibration of the main evaluation (the pooled out-of-fold predictions of a CV): can its
  // probabilities be trusted? The interval is metrics.json's bootstrap (absent in older files).
  using metrics::CalibrationBinning;
  const auto& main_predictions = run.main->predictions;
  const int class_count = static_cast<int>(classes.size());
  auto calibration = evaluation::calibration_metrics(main_predictions, class_count);
  const auto& stored_calibration = run.main->metrics.calibration;
  const bool has_ece_interval = stored_calibration.bins == metrics::kCalibrationBins;
  if (has_ece_interval) calibration.ece_interval = stored_calibration.ece_interval;
  std::vector<ReliabilityPanel> reliability_panels = {
      {"top label", {calibration.top_label_bins, calibration.ece, calibration.mce}}};
  // Temperature scaling's other side, from metrics.json: after it (cross-fitted) where the
  // predictions are the model's own, before it where they were scaled by a stored temperature.
  std::string scaled_panel;
  if (const auto& scaling = run.main->metrics.temperature_scaling; scaling && !scaling->temperatures.empty()) {
    const auto& other = scaling->applied ? scaling->before : scaling->after;
    if (!other.top_label_bins.empty()) {
      // Short panel titles (the caption says the rest): a panel is ~40 characters wide.
      reliability_panels.front().title = scaling->applied ? "top label, scaled" : "top label";
      reliability_panels.insert(reliability_panels.begin() + 1,
                                {scaling->applied ? "top label, unscaled" : "top label, scaled",
                                 {other.top_label_bins, other.ece, other.mce}});
      scaled_panel = scaling->applied ? "the same before temperature scaling"
                                      : "the same after temperature scaling, cross-fitted: each half of the images "
                                        "scaled with the temperature fitted on the other half";
    }
  }
  CalibrationCells ece_cells{
      {},
      value_text(calibration.ece, has_ece_interval ? calibration.ece_interval : metrics::Interval{NAN, NAN, NAN, 0}),
      fixed(calibration.classwise_ece)};
  for (int c = 0; c < class_count; ++c) {
    reliability_panels.push_back(
        {classes[static_cast<std::size_t>(c)],
         metrics::class_reliability(main_predictions.labels, main_predictions.probabilities, class_count, c,
                                    metrics::kCalibrationBins, CalibrationBinning::EqualWidth)});
    ece_cells.per_class.push_back(fixed(reliability_panels.back().reliability.ece));
  }
  report["calibration"] = evaluation::to_json(calibration);
  report["calibration"]["evaluation"] = run.main->key;
  if (!has_ece_interval) report["calibration"]["ece_95ci"] = nullptr;  // an older metrics.json has none
  const std::string calibration_text =
      "Calibration of the " + run.main->title + " (" + std::to_string(main_predictions.labels.size()) + " images, " +
      std::to_string(metrics::kCalibrationBins) + " equal-width bins): top-label ECE " + fixed(calibration.ece) +
      (has_ece_interval ? " [bootstrap 95% interval " + fixed(calibration.ece_interval.low) + ", " +
                              fixed(calibration.ece_interval.high) + "]"
                        : std::string()) +
      ", MCE " + fixed(calibration.mce) + ", classwise ECE " + fixed(calibration.classwise_ece) +
      ", ECE with equal-mass bins " + fixed(calibration.ece_equal_mass) + ", Brier score " + fixed(calibration.brier) +
      ", negative log-likelihood " + fixed(calibration.nll) + "." + temperature_scaling_text(run.main->metrics);

  // Tables for a paper.
  const auto rows = paper_rows(run, report, ece_cells);
  std::ostringstream md;
  md << "**" << table_caption(run) << "**\n\n" << markdown_table(rows);
  for (const auto& t : run.tests) {
    const auto& e = report["evaluations"][t.key];
    md << "\n"
       << t.title << " (" << t.predictions.labels.size() << " images): accuracy " << fixed(e["accuracy"].get<double>())
       << ", macro-F1 " << fixed(e["macro_avg"]["f1"].get<double>()) << ", macro AUC "
       << (e["macro_auc"].is_null() ? std::string("n/a") : fixed(e["macro_auc"].get<double>())) << "\n";
  }
  md << "\n" << calibration_text << "\n";
  // Where it fails: subgroups of the main evaluation's images, from the run's dataset.
  std::string subgroup_table, subgroup_note;
  std::optional<SubgroupAnalysis> subgroups;
  try {
    const data::ShardedDataset dataset(run_dataset(run));
    const auto& analysis = subgroups.emplace(analyse_subgroups(main_predictions, dataset, classes));
    report["subgroups"] = to_json(analysis);
    subgroup_table = markdown(analysis, classes);
    md << "\n**Where it fails: the " << run.main->title << " by subgroup**\n\n" << subgroup_table;
  } catch (const std::exception& e) {
    subgroup_note = std::string("No subgroup analysis: ") + e.what() + ".";
    logging::warning("brainmri report: " + subgroup_note);
    md << "\n" << subgroup_note << "\n";
  }
  write_file_atomically(output / "tables.md", md.str());
  write_file_atomically(output / "tables.tex", latex_table(rows, table_caption(run)));

  // Figures.
  std::vector<std::pair<std::string, std::string>> figure_list;  // (file stem, caption)
  if (figures) {
    plot_confusion_matrix(scores.at(run.main->key).matrix, classes, "Confusion matrix", output / "confusion_matrix",
                          vector_figures);
    figure_list.push_back({"confusion_matrix", "Confusion matrix: " + run.main->title});
    plot_reliability_diagrams(reliability_panels, output / "reliability_diagram", vector_figures);
    figure_list.push_back(
        {"reliability_diagram", "Reliability diagrams of the " + run.main->title +
                                    ": observed frequency against mean confidence in " +
                                    std::to_string(metrics::kCalibrationBins) +
                                    " equal-width bins (shaded: the gap to the diagonal), top label " +
                                    (scaled_panel.empty() ? "" : "(beside it: " + scaled_panel + ") ") +
                                    "then each class one-vs-rest; below, the images per bin"});
    if (subgroups) {
      std::vector<SubgroupAccuracy> points;
      for (const auto& g : subgroups->subgroups) {
        points.push_back({g.property, g.value, g.images, g.accuracy, g.accuracy_low, g.accuracy_high});
      }
      plot_subgroup_accuracy(points, subgroups->overall_accuracy, kMinSubgroupImages,
                             "Accuracy by subgroup (" + std::to_string(main_predictions.labels.size()) + " images)",
                             output / "subgroup_accuracy", vector_figures);
      figure_list.push_back(
          {"subgroup_accuracy", "Where it fails: accuracy of the " + run.main->title +
                                    " in each subgroup of the source images, with its Wilson 95% interval (grey: "
                                    "fewer than " +
                                    std::to_string(kMinSubgroupImages) + " images)"});
    }
    if (run.kind == "cv") {
      std::vector<FoldPredictions> folds;
      for (const auto& f : run.folds) folds.push_back({f.predictions.labels, f.predictions.probabilities});
      plot_cross_validated_roc(folds, classes, "ROC, " + std::to_string(run.folds.size()) + "-fold CV",
                               output / "roc_curves", vector_figures);
      figure_list.push_back(
          {"roc_curves",
           "ROC curves, one-vs-rest: each fold's validation (faint) and the mean over the folds ± 1 std"});
      plot_roc_curves(run.main->predictions.labels, run.main->predictions.probabilities, classes,
                      "ROC, pooled out-of-fold", output / "roc_curves_out_of_fold", vector_figures);
      figure_list.push_back({"roc_curves_out_of_fold", "ROC curves: " + run.main->title});
      if (!run.fold_epochs.empty()) {
        plot_fold_training_curves(run.fold_epochs, run.model, output / "training_curves", vector_figures);
        figure_list.push_back(
            {"training_curves", "Training curves of every fold (dotted vertical lines: a new stage starts)"});
      }
    } else {
      plot_roc_curves(run.main->predictions.labels, run.main->predictions.probabilities, classes, "ROC, validation",
                      output / "roc_curves", vector_figures);
      figure_list.push_back({"roc_curves", "ROC curves, one-vs-rest: " + run.main->title});
      if (!run.epochs.empty()) {
        plot_training_curves(run.epochs, run.model, output / "training_curves", vector_figures);
        figure_list.push_back({"training_curves", "Training curves (dotted lines: a new stage starts)"});
      }
    }
    for (const auto& t : run.tests) {
      // Per-fold and contaminated-part figures: in the tables only.
      if (t.key.rfind("fold-", 0) == 0 || t.key.ends_with("_contaminated")) continue;
      plot_confusion_matrix(scores.at(t.key).matrix, classes, "Confusion matrix, held-out test",
                            output / ("confusion_matrix_" + t.key), vector_figures);
      figure_list.push_back({"confusion_matrix_" + t.key, "Confusion matrix: " + t.title});
      plot_roc_curves(t.predictions.labels, t.predictions.probabilities, classes, "ROC, held-out test",
                      output / ("roc_curves_" + t.key), vector_figures);
      figure_list.push_back({"roc_curves_" + t.key, "ROC curves: " + t.title});
    }
  }
  std::string gradcam_note;
  const auto method_name = explain::display_name(options.cam_method);
  if (figures && options.gradcam_per_kind > 0) {
    try {
      report["gradcam"] = write_gradcam_grid(run, output / "gradcam_grid", options);
      figure_list.push_back(
          {"gradcam_grid",
           method_name +
               " of the predicted class, on the most confident correct predictions and errors of each class"});
    } catch (const std::exception& e) {
      gradcam_note = "No " + method_name + " grid: " + e.what() + ".";
      logging::warning("brainmri report: " + gradcam_note);
    }
  }
  std::string check_note;
  if (options.explanation_check) {
    try {
      report["explanation_check"] = run_explanation_check(run, options);
    } catch (const std::exception& e) {
      check_note = std::string("No explanation check: ") + e.what() + ".";
      logging::warning("brainmri report: " + check_note);
    }
  }
  report["figures"] = json::array();
  for (const auto& [stem, caption] : figure_list) report["figures"].push_back({{"stem", stem}, {"caption", caption}});
  write_file_atomically(output / "classification_report.json", report.dump(2) + "\n");

  // One page with everything; only files of this directory, no network.
  std::ostringstream html;
  const std::string command = run.kind == "cv" ? "brainmri cv" : "brainmri train";
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>brainmri report: "
       << html_escape(run.directory.filename().string())
       << "</title>\n<style>body{font-family:sans-serif;max-width:1100px;"
       << "margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid "
          "#bbb;"
       << "padding:4px 8px;text-align:left}th{background:#eee}img{max-width:100%;border:1px solid "
          "#ddd}pre{background:#f6f6f6;"
       << "padding:1em;overflow:auto;font-size:0.85em}figure{margin:2em "
          "0}figcaption{font-style:italic}</style></head><body>\n"
       << "<h1>" << html_escape(run.model) << " &mdash; "
       << html_escape(run.kind == "cv" ? "cross-validation" : "training run") << "</h1>\n<p>Run directory: <code>"
       << html_escape(fs::absolute(run.directory).string()) << "</code></p>\n"
       << "<h2>Results</h2>\n<p>" << html_escape(table_caption(run))
       << "</p>\n<table><tr><th>class</th><th>precision</th>"
       << "<th>recall</th><th>F1</th><th>AUC</th><th>ECE</th></tr>\n";
  for (const auto& r : rows) {
    html << "<tr><td>" << html_escape(r.name) << "</td>";
    for (const auto& c : r.cells) html << "<td>" << html_escape(c) << "</td>";
    html << "</tr>\n";
  }
  html << "</table>\n";
  if (!run.tests.empty()) {
    html << "<h3>Held-out test "
            "set</h3>\n<table><tr><th>model</th><th>images</th><th>accuracy</th><th>macro-F1</th><th>macro "
            "AUC</th></tr>\n";
    for (const auto& t : run.tests) {
      const auto& e = report["evaluations"][t.key];
      html << "<tr><td>" << html_escape(t.title) << "</td><td>" << t.predictions.labels.size() << "</td><td>"
           << fixed(e["accuracy"].get<double>()) << "</td><td>" << fixed(e["macro_avg"]["f1"].get<double>())
           << "</td><td>" << (e["macro_auc"].is_null() ? std::string("n/a") : fixed(e["macro_auc"].get<double>()))
           << "</td></tr>\n";
    }
    html << "</table>\n";
  }
  if (!gradcam_note.empty()) html << "<p>" << html_escape(gradcam_note) << "</p>\n";
  if (report.contains("gradcam") && !report["gradcam"]["randomization_check"]["mean"].is_null()) {
    const auto& check = report["gradcam"]["randomization_check"];
    html << "<p>Model-randomization check of the " << method_name << " maps below (layer <code>"
         << html_escape(report["gradcam"]["layer"].get<std::string>())
         << "</code>): mean Spearman correlation between the trained "
         << "model's map and a randomly initialized model's, over "
         << check["images_with_both_maps_non_flat"].get<std::size_t>()
         << " images: " << fixed(check["mean"].get<double>(), 3) << " (median "
         << fixed(check["median"].get<double>(), 3)
         << "; near 0 means the maps depend on what the model learned).</p>\n";
  }
  if (!check_note.empty()) html << "<p>" << html_escape(check_note) << "</p>\n";
  if (report.contains("explanation_check")) {
    const auto& check = report["explanation_check"];
    html
        << "<h3>Does the explanation point at the evidence?</h3>\n<p>Localization check of " << method_name
        << " on layer <code>" << html_escape(check["layer"].get<std::string>())
        << "</code>: " << html_escape(check["what"].get<std::string>())
        << ". A peak counts as inside when it lies within the disc's radius ("
        << fixed(check["disc_radius_pixels"].get<double>(), 1) << " px) plus half a cell of the explained map ("
        << fixed(check["peak_tolerance_pixels"].get<double>(), 1)
        << " px).</p>\n<table><tr><th>check network accuracy</th><th>correct disc predictions</th><th>localization</th>"
        << "<th>randomization Spearman</th><th>verdict</th></tr>\n<tr><td>"
        << fixed(check["check_network_accuracy"].get<double>(), 3) << "</td><td>"
        << check["correct_disc_predictions"].get<int>() << "</td><td>" << fixed(check["localization"].get<double>(), 3)
        << "</td><td>"
        << (check["randomization_spearman"].is_null() ? std::string("n/a")
                                                      : fixed(check["randomization_spearman"].get<double>(), 3))
        << "</td><td>" << html_escape(check["verdict"].get<std::string>()) << "</td></tr>\n</table>\n";
  }
  if (figure_list.empty())
    html << "<p>No figures: this build of brainmri cannot draw them (PLplot with its Cairo drivers is missing).</p>\n";
  for (const auto& [stem, caption] : figure_list) {
    html << "<figure><img src=\"" << stem << ".png\" alt=\"" << html_escape(caption) << "\"><figcaption>"
         << html_escape(caption);
    if (vector_figures) html << " (<a href=\"" << stem << ".svg\">SVG</a>, <a href=\"" << stem << ".pdf\">PDF</a>)";
    html << "</figcaption></figure>\n";
  }
  html << "<h2>Calibration</h2>\n<p>" << html_escape(calibration_text) << "</p>\n";
  html << "<h2>Where it fails: subgroups</h2>\n"
       << (subgroup_table.empty() ? "<p>" + html_escape(subgroup_note) + "</p>"
                                  : "<pre>" + html_escape(subgroup_table) + "</pre>")
       << "\n";
  html << "<h2>Classification reports</h2>\n<p>Also as <a href=\"classification_report.csv\">CSV</a> and "
       << "<a href=\"classification_report.json\">JSON</a>; tables for a paper: <a href=\"tables.md\">Markdown</a>, "
       << "<a href=\"tables.tex\">LaTeX</a>.</p>\n<pre>" << html_escape(text.str()) << "</pre>\n"
       << "<h2>Configuration</h2>\n<p>Reproduce with <code>" << html_escape(command) << " --config "
       << html_escape((fs::absolute(run.directory) / "config.ini").string())
       << "</code> (add <code>--output DIR</code>).</p>\n<pre>"
       << html_escape(run.config_text.empty() ? "(no config.ini in the run directory)" : run.config_text) << "</pre>\n"
       << "</body></html>\n";
  write_file_atomically(output / "index.html", html.str());
  return headline;
}

void write_comparison(const std::vector<RunContents>& runs, const std::vector<json>& headlines,
                      const std::vector<fs::path>& report_directories, const fs::path& output) {
  fs::create_directories(output);
  std::ostringstream md, tex, html;
  md << "| run | model | evaluation | accuracy | macro-F1 | macro AUC |\n|---|---|---|---|---|---|\n";
  tex << "% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n\\caption{Comparison: mean $\\pm$ std over "
         "the "
         "folds [95\\% t-interval, logit scale] for cross-validations, value [bootstrap 95\\% interval] for single "
         "runs}\n"
         "\\begin{tabular}{llllll}\n\\toprule\nrun & model & evaluation & accuracy & macro-F1 & macro AUC "
         "\\\\\n\\midrule\n";
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>brainmri comparison</title><style>"
       << "body{font-family:sans-serif;max-width:1100px;margin:2em "
          "auto}table{border-collapse:collapse}td,th{border:1px solid #bbb;"
       << "padding:4px 8px}</style></head><body>\n<h1>Comparison of " << runs.size()
       << " runs</h1>\n<table><tr><th>run</th>"
       << "<th>model</th><th>evaluation</th><th>accuracy</th><th>macro-F1</th><th>macro AUC</th></tr>\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& run = runs[i];
    const auto& h = headlines[i];
    const std::string name = run.directory.filename().string();
    const std::string evaluation = run.kind == "cv" ? std::to_string(run.folds.size()) + "-fold CV" : "validation";
    const std::string a = spread_text(h["accuracy"]), f = spread_text(h["macro_f1"]), u = spread_text(h["macro_auc"]);
    md << "| " << name << " | " << run.model << " | " << evaluation << " | " << a << " | " << f << " | " << u << " |\n";
    auto tex_cell = [](std::string c) { return std::regex_replace(c, std::regex("±"), "$\\pm$"); };
    tex << latex_escape(name) << " & " << latex_escape(run.model) << " & " << evaluation << " & " << tex_cell(a)
        << " & " << tex_cell(f) << " & " << tex_cell(u) << " \\\\\n";
    const auto link = fs::relative(report_directories[i] / "index.html", output).string();
    html << "<tr><td><a href=\"" << html_escape(link) << "\">" << html_escape(name) << "</a></td><td>"
         << html_escape(run.model) << "</td><td>" << evaluation << "</td><td>" << html_escape(a) << "</td><td>"
         << html_escape(f) << "</td><td>" << html_escape(u) << "</td></tr>\n";
  }
  tex << "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
  html << "</table>\n<p>Cross-validations: mean ± std over the folds [95% t-interval, logit scale]; single runs: value "
          "[bootstrap "
          "95% "
          "interval].</p>\n";
  // Paired tests of every pair of runs, in the order given.
  json tests = json::array();
  md << "\n## Paired tests\n";
  html << "<h2>Paired tests</h2>\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    for (std::size_t j = i + 1; j < runs.size(); ++j) {
      const auto pair = compare_runs(runs[i], runs[j]);
      tests.push_back(to_json(pair));
      const auto section = markdown(pair);
      md << "\n" << section;
      html << "<pre>" << html_escape(section) << "</pre>\n";
    }
  }
  html << "</body></html>\n";
  write_file_atomically(output / "comparison.md", md.str());
  write_file_atomically(output / "comparison.tex", tex.str());
  write_file_atomically(output / "comparison.json", json{{"paired_tests", tests}}.dump(2) + "\n");
  write_file_atomically(output / "index.html", html.str());
}

const std::vector<Option<ReportOptions>>& report_options() {
  using R = ReportOptions;
  constexpr const char* kGroup = "brainmri report";
  // clang-format off
  static const std::vector<Option<R>> table = {
    bind_option<R>("figures", kGroup, "draw the figures (false: tables and text only)", [](auto& o) -> auto& { return o.figures; }),
    bind_option<R>("vector", kGroup, "figures also as SVG and PDF (false: PNG only, e.g. for a repository)", [](auto& o) -> auto& { return o.vector_figures; }),
    bind_option<R>("gradcam", kGroup, "explanation grid: this many most confident correct predictions and errors per class (0: none; needs the run's checkpoints and dataset)", [](auto& o) -> auto& { return o.gradcam_per_kind; }),
    bind_option<R>("method", kGroup, "explanation method: hirescam (equals Grad-CAM behind MobileNetV2's global pooling, and localizes on the paper's CNN where Grad-CAM does not), gradcam or gradcam++", [](auto& o) -> auto& { return o.cam_method; }),
    bind_option<R>("layer", kGroup, "explained layer (default: the last convolution: conv3 of the baseline CNN, Conv_1 of MobileNetV2; also conv1, conv2, Conv1, expanded_conv, block_1 ... block_16)", [](auto& o) -> auto& { return o.cam_layer; }),
    bind_option<R>("explanation-check", kGroup, "run the localization and model-randomization check of the method on the run's architecture (trains a small copy; needs the run's checkpoints and dataset)", [](auto& o) -> auto& { return o.explanation_check; }),
  };
  // clang-format on
  return table;
}

void validate(const ReportOptions& options) {
  if (options.gradcam_per_kind < 0) throw ConfigError("gradcam", "must be >= 0");
}

}  // namespace brainmri::reports
