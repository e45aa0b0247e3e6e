#include "brainmri/experiments/search_report.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/common/option_table.hpp"
#include "brainmri/experiments/search.hpp"
#include "brainmri/metrics/correlation.hpp"
#include "brainmri/reports/number_text.hpp"

namespace brainmri::experiments {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A search as its figures see it: one axis per searched option, each trial's place on them.
struct SearchPoints {
  std::vector<reports::SearchAxis> axes;
  std::vector<reports::SearchTrialPoint> trials;
};

SearchPoints search_points(const json& table) {
  SearchPoints points;
  std::vector<ParameterSpace> space;
  for (const auto& text : table.at("search")) {
    space.push_back(ParameterSpace::parse(text.get<std::string>()));
    reports::SearchAxis axis;
    axis.name = space.back().name;
    axis.log_scale = space.back().kind == "loguniform";
    if (space.back().kind == "choice") axis.categories = space.back().choices;
    points.axes.push_back(axis);
  }
  for (const auto& row : table.at("trials")) {
    reports::SearchTrialPoint trial;
    trial.number = row.at("trial").get<int>();
    for (std::size_t a = 0; a < space.size(); ++a) {
      const std::string value = row.at("parameters").value(space[a].name, std::string());
      double place = NAN;
      if (space[a].kind == "choice") {
        const auto& choices = space[a].choices;
        const auto found = std::find(choices.begin(), choices.end(), value);
        if (found != choices.end()) place = static_cast<double>(found - choices.begin());
      } else {
        try {
          place = option_text::parse<double>(value);
        } catch (const std::invalid_argument&) {
        }
      }
      trial.values.push_back(place);
    }
    for (const auto& score : row.at("objective_by_rung")) {
      if (score.is_number()) trial.score_by_rung.push_back(score.get<double>());
    }
    points.trials.push_back(std::move(trial));
  }
  return points;
}

json read_trials(const fs::path& directory) {
  const fs::path file = directory / "trials.json";
  std::ifstream in(file);
  if (!in)
    throw std::runtime_error(file.string() + " cannot be read: is " + directory.string() +
                             " a search (brainmri tune)?");
  json table = json::parse(in, nullptr, false);
  if (table.is_discarded() || !table.contains("trials") || !table.contains("search")) {
    throw std::runtime_error(file.string() + " is not the trials table of a search");
  }
  return table;
}

using reports::fixed;

}  // namespace

std::vector<reports::ParameterImportance> parameter_importance(const json& trials_json) {
  const auto points = search_points(trials_json);
  std::vector<reports::ParameterImportance> importance;
  for (std::size_t a = 0; a < points.axes.size(); ++a) {
    std::vector<double> values, scores;
    for (const auto& t : points.trials) {
      if (t.score_by_rung.empty() || std::isnan(t.values[a])) continue;
      values.push_back(t.values[a]);
      scores.push_back(t.score_by_rung.front());
    }
    reports::ParameterImportance p;
    p.name = points.axes[a].name;
    p.trials = static_cast<int>(values.size());
    if (points.axes[a].categories.empty()) {
      p.measure = "spearman";
      p.value = metrics::spearman_correlation(values, scores);
    } else {
      p.measure = "eta";
      std::vector<int> groups(values.begin(), values.end());
      p.value = metrics::correlation_ratio(groups, scores);
    }
    importance.push_back(p);
  }
  return importance;
}

json write_search_report(const fs::path& search_directory, const fs::path& output,
                         const reports::ReportOptions& options) {
  const json table = read_trials(search_directory);
  const auto points = search_points(table);
  const auto importance = parameter_importance(table);
  const std::vector<int> rung_epochs = table.value("rung_epochs", std::vector<int>{});
  const int rungs = std::max<int>(1, static_cast<int>(rung_epochs.size()));
  const std::string objective = table.value("objective", std::string("objective"));
  const std::string model = table.value("model", std::string());
  const std::string algorithm = table.value("algorithm", std::string());
  fs::create_directories(output);

  std::vector<std::pair<std::string, std::string>> figures;  // (file stem, caption)
  const bool any_score =
      std::any_of(points.trials.begin(), points.trials.end(), [](const auto& t) { return !t.score_by_rung.empty(); });
  if (options.figures && any_score) {
    const std::string title =
        model + ", " + algorithm + " search of " + std::to_string(points.trials.size()) + " trials";
    reports::plot_search_history(points.trials, rung_epochs, objective, title, output / "search_history",
                                 options.vector_figures);
    figures.emplace_back("search_history",
                         "Objective of every trial at the last rung it completed, in the order trials started; the "
                         "line: the best trial so far among those that completed the last rung");
    reports::plot_parallel_coordinates(points.axes, points.trials, rungs, objective, title,
                                       output / "search_parallel_coordinates", options.vector_figures);
    figures.emplace_back("search_parallel_coordinates",
                         "Hyperparameters of every trial, coloured by its objective at the last rung it completed: "
                         "thick lines for the trials that completed the last rung, thin for those stopped earlier");
    if (rung_epochs.size() > 1) {
      reports::plot_search_rungs(points.trials, rung_epochs, objective, title, output / "search_rungs",
                                 options.vector_figures);
      figures.emplace_back("search_rungs",
                           "Successive halving: every trial's objective at each rung it ran; a trial goes on only "
                           "while it is in the top 1/" +
                               std::to_string(table.value("reduction_factor", 3)) + " of its rung");
    }
    if (!importance.empty()) {
      reports::plot_parameter_importance(importance, "Hyperparameter importance", output / "search_importance",
                                         options.vector_figures);
      figures.emplace_back("search_importance",
                           "How strongly the objective at rung 0 follows each hyperparameter: |Spearman ρ| for "
                           "numbers (blue: larger is better, red: smaller is better), correlation ratio η for choices");
    }
  }

  // The tables: importance, then the trials by rank.
  json importance_json = json::array();
  std::ostringstream md;
  md << "# Search: " << model << ", " << algorithm << ", " << points.trials.size() << " trials, objective " << objective
     << "\n\n## Hyperparameter importance\n\n"
     << "Marginal dependence of the objective at rung 0 (every trial, same budget) on each hyperparameter: "
        "Spearman's ρ for numbers, the correlation ratio η for choices. Interactions are not captured.\n\n"
     << "| hyperparameter | measure | value | trials |\n|---|---|---:|---:|\n";
  for (const auto& p : importance) {
    importance_json.push_back({{"name", p.name},
                               {"measure", p.measure},
                               {"value", std::isnan(p.value) ? json() : json(p.value)},
                               {"trials", p.trials}});
    md << "| " << p.name << " | " << (p.measure == "eta" ? "η" : "Spearman ρ") << " | "
       << (std::isnan(p.value) ? std::string("n/a") : fixed(p.value, 3)) << " | " << p.trials << " |\n";
  }
  std::vector<json> ranked(table.at("trials").begin(), table.at("trials").end());
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const json& a, const json& b) { return a.value("rank", 1 << 30) < b.value("rank", 1 << 30); });
  md << "\n## Trials by rank\n\n| rank | trial | state | rung | objective |";
  for (const auto& axis : points.axes) md << " " << axis.name << " |";
  md << "\n|---:|---:|---|---:|---:|";
  for (std::size_t a = 0; a < points.axes.size(); ++a) md << "---|";
  md << "\n";
  for (const auto& row : ranked) {
    md << "| " << row.value("rank", 0) << " | " << row.at("trial").get<int>() << " | "
       << row.value("state", std::string()) << " | " << row.value("rung", -1) << " | "
       << (row["objective"].is_number() ? fixed(row["objective"].get<double>()) : std::string("n/a")) << " |";
    for (const auto& axis : points.axes) md << " " << row["parameters"].value(axis.name, std::string()) << " |";
    md << "\n";
  }
  write_file_atomically(output / "search_report.md", md.str());

  std::ostringstream html;
  using reports::html_escape;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>brainmri search: "
       << html_escape(model) << "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
       << "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;text-align:left}"
       << "th{background:#eee}img{max-width:100%;border:1px solid #ddd}figure{margin:2em 0}"
       << "figcaption{font-style:italic}</style></head><body>\n<h1>Search: " << html_escape(model) << " &mdash; "
       << html_escape(algorithm) << ", " << points.trials.size() << " trials</h1>\n<p>Search directory: <code>"
       << html_escape(fs::absolute(search_directory).string()) << "</code>; objective <code>" << html_escape(objective)
       << "</code>";
  if (!rung_epochs.empty()) {
    html << "; rungs of";
    for (const int e : rung_epochs) html << " " << e;
    html << " epochs";
  }
  html << ". Every trial: <a href=\"../trials.csv\">trials.csv</a>, <a href=\"../trials.json\">trials.json</a>.</p>\n";
  if (table["best_trial"].is_number()) {
    const int best = table["best_trial"].get<int>();
    char name[32];
    std::snprintf(name, sizeof(name), "trial-%04d", best);
    html << "<p>Best trial: " << name << " (its configuration: <a href=\"../best_config.ini\">best_config.ini</a>";
    for (const auto& fold : table.value("folds", std::vector<int>{})) {
      const auto report = fs::path("..") / "trials" / name / ("fold-" + std::to_string(fold)) / "report" / "index.html";
      if (fs::exists(output / report)) html << ", <a href=\"" << report.string() << "\">fold " << fold << " report</a>";
    }
    html << ").</p>\n";
  }
  html << "<h2>Hyperparameter importance</h2>\n<p>Marginal dependence of the objective at rung 0 (every trial, at the "
          "same budget) on each hyperparameter: Spearman's &rho; for numbers (sign: whether larger values scored "
          "higher), the correlation ratio &eta; for choices. One parameter at a time: interactions are not "
          "captured.</p>\n<table><tr><th>hyperparameter</th><th>measure</th><th>value</th><th>trials</th></tr>\n";
  for (const auto& p : importance) {
    html << "<tr><td>" << html_escape(p.name) << "</td><td>" << (p.measure == "eta" ? "&eta;" : "Spearman &rho;")
         << "</td><td>" << (std::isnan(p.value) ? std::string("n/a") : fixed(p.value, 3)) << "</td><td>" << p.trials
         << "</td></tr>\n";
  }
  html << "</table>\n";
  if (figures.empty())
    html << "<p>No figures: " << (any_score ? "this build of brainmri cannot draw them" : "no trial has a score yet")
         << ".</p>\n";
  for (const auto& [stem, caption] : figures) {
    html << "<figure><img src=\"" << stem << ".png\" alt=\"" << html_escape(caption) << "\"><figcaption>"
         << html_escape(caption);
    if (options.vector_figures)
      html << " (<a href=\"" << stem << ".svg\">SVG</a>, <a href=\"" << stem << ".pdf\">PDF</a>)";
    html << "</figcaption></figure>\n";
  }
  html
      << "<h2>Trials by rank</h2>\n<table><tr><th>rank</th><th>trial</th><th>state</th><th>rung</th><th>objective</th>";
  for (const auto& axis : points.axes) html << "<th>" << html_escape(axis.name) << "</th>";
  html << "</tr>\n";
  for (const auto& row : ranked) {
    html << "<tr><td>" << row.value("rank", 0) << "</td><td>" << row.at("trial").get<int>() << "</td><td>"
         << html_escape(row.value("state", std::string())) << "</td><td>" << row.value("rung", -1) << "</td><td>"
         << (row["objective"].is_number() ? fixed(row["objective"].get<double>()) : std::string("n/a")) << "</td>";
    for (const auto& axis : points.axes)
      html << "<td>" << html_escape(row["parameters"].value(axis.name, std::string())) << "</td>";
    html << "</tr>\n";
  }
  html << "</table>\n</body></html>\n";
  write_file_atomically(output / "index.html", html.str());
  return {{"importance", importance_json}, {"figures", figures.size()}};
}

}  // namespace brainmri::experiments
