#include "brainmri/reports/subgroups.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <tuple>

#include "brainmri/metrics/calibration.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/summary.hpp"
#include "brainmri/reports/number_text.hpp"

namespace brainmri::reports {
using nlohmann::json;

namespace {

constexpr double kDarkPixel = 10.0 / 255.0;

// The quartile (1-4) of each value among `values`.
std::vector<std::string> quartile_labels(const std::vector<double>& values, const char* unit_format) {
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const auto cut = [&](double q) {
    return sorted[static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1))];
  };
  const double edges[5] = {sorted.front(), cut(0.25), cut(0.5), cut(0.75), sorted.back()};
  std::vector<std::string> names;
  for (int q = 0; q < 4; ++q) {
    char text[96];
    std::snprintf(text, sizeof(text), "Q%d (", q + 1);
    std::string name = text;
    std::snprintf(text, sizeof(text), unit_format, edges[q], edges[q + 1]);
    names.push_back(name + text + ")");
  }
  std::vector<std::string> labels;
  for (const double v : values) {
    int q = 0;
    while (q < 3 && v > edges[q + 1]) ++q;
    labels.push_back(names[static_cast<std::size_t>(q)]);
  }
  return labels;
}

// "W×H" of each image whose size at least kMinSubgroupImages of the images share; the rarer sizes
// together as one subgroup (a size held by a handful of images says nothing on its own).
std::vector<std::string> size_labels(const std::vector<data::ImageSize>& sizes) {
  std::map<std::pair<int, int>, int> count;
  for (const auto& s : sizes) ++count[{s.width, s.height}];
  std::vector<std::string> labels;
  for (const auto& s : sizes) {
    labels.push_back(count[{s.width, s.height}] >= kMinSubgroupImages
                         ? std::to_string(s.width) + "×" + std::to_string(s.height)
                         : "other sizes");
  }
  return labels;
}

}  // namespace

std::string file_name_family(const std::string& source_path) {
  std::string stem = std::filesystem::path(source_path).stem().string();
  while (!stem.empty() && std::isdigit(static_cast<unsigned char>(stem.back()))) stem.pop_back();
  return stem.empty() ? "(digits only)" : stem;
}

SubgroupAnalysis analyse_subgroups(const evaluation::Predictions& p, const data::ShardedDataset& dataset,
                                   const std::vector<std::string>& class_names) {
  const int k = static_cast<int>(class_names.size());
  const auto n = p.sample_ids.size();
  const auto predicted = metrics::argmax_rows(p.probabilities, k);

  // Each property's label of every evaluated image.
  std::vector<bool> in_group(static_cast<std::size_t>(dataset.size()), false);
  for (const auto& group : dataset.manifest().duplicate_groups) {
    for (const auto m : group.members) in_group[static_cast<std::size_t>(m)] = true;
  }
  const auto pixels = dataset.load(p.sample_ids).images;  // [n, C, H, W] in [0, 1]
  const auto means = pixels.mean({1, 2, 3}).to(torch::kFloat64).contiguous();
  const auto dark = pixels.lt(kDarkPixel).to(torch::kFloat64).mean({1, 2, 3}).contiguous();
  const std::vector<double> mean_values(means.data_ptr<double>(), means.data_ptr<double>() + n);
  const std::vector<double> dark_values(dark.data_ptr<double>(), dark.data_ptr<double>() + n);
  std::vector<std::pair<std::string, std::vector<std::string>>> properties(5);
  properties[0].first = "file-name family";
  properties[1].first = "colour discarded";
  properties[2].first = "in a duplicate group";
  properties[3] = {"mean intensity", quartile_labels(mean_values, "%.3f-%.3f")};
  properties[4] = {"share of dark pixels", quartile_labels(dark_values, "%.2f-%.2f")};
  std::vector<data::ImageSize> sizes;
  for (std::size_t i = 0; i < n; ++i) {
    const auto id = p.sample_ids[i];
    properties[0].second.push_back(file_name_family(dataset.source_path(id)));
    properties[1].second.push_back(dataset.colour_discarded(id) ? "yes" : "no");
    properties[2].second.push_back(in_group[static_cast<std::size_t>(id)] ? "yes" : "no");
    if (const auto size = dataset.original_size(id)) sizes.push_back(*size);
  }

  SubgroupAnalysis analysis;
  if (sizes.size() == n) {
    properties.insert(properties.begin() + 1, {"original size", size_labels(sizes)});
  } else {
    analysis.notes.push_back(
        "original size: not recorded in this dataset (packed in format version 1); packing it again with "
        "this brainmri-prep records it");
  }
  analysis.overall_accuracy =
      metrics::classification_report(metrics::ConfusionMatrix(p.labels, predicted, k), class_names).accuracy;
  for (const auto& [property, labels] : properties) {
    std::map<std::string, std::vector<std::size_t>> rows;
    for (std::size_t i = 0; i < n; ++i) rows[labels[i]].push_back(i);
    for (const auto& [value, members] : rows) {
      Subgroup g{property, value, static_cast<int>(members.size()), 0, 0, 0, {}, 0};
      std::vector<int> truth, guess;
      std::vector<double> probabilities;
      for (const auto i : members) {
        truth.push_back(p.labels[i]);
        guess.push_back(predicted[i]);
        probabilities.insert(probabilities.end(), p.probabilities.begin() + static_cast<std::ptrdiff_t>(i * k),
                             p.probabilities.begin() + static_cast<std::ptrdiff_t>((i + 1) * k));
      }
      const auto report = metrics::classification_report(metrics::ConfusionMatrix(truth, guess, k), class_names);
      g.accuracy = report.accuracy;
      int correct = 0;
      for (std::size_t i = 0; i < truth.size(); ++i) correct += truth[i] == guess[i];
      std::tie(g.accuracy_low, g.accuracy_high) = metrics::wilson_interval_95(correct, g.images);
      for (int c = 0; c < k; ++c) {
        const auto& scores = report.per_class[static_cast<std::size_t>(c)];
        g.recall.push_back(scores.support > 0 ? scores.recall : std::nan(""));
      }
      g.ece = metrics::top_label_reliability(truth, probabilities, k, metrics::kCalibrationBins,
                                             metrics::CalibrationBinning::EqualWidth)
                  .ece;
      analysis.subgroups.push_back(std::move(g));
    }
  }
  for (const auto& g : analysis.subgroups) {
    if (g.images >= kMinSubgroupImages && g.images < static_cast<int>(n)) analysis.largest_gaps.push_back(g);
  }
  std::stable_sort(
      analysis.largest_gaps.begin(), analysis.largest_gaps.end(), [&](const Subgroup& a, const Subgroup& b) {
        return std::abs(a.accuracy - analysis.overall_accuracy) > std::abs(b.accuracy - analysis.overall_accuracy);
      });
  if (analysis.largest_gaps.size() > 5) analysis.largest_gaps.resize(5);
  return analysis;
}

json to_json(const SubgroupAnalysis& analysis) {
  const auto subgroup_json = [](const Subgroup& g) {
    json recall = json::array();
    for (const double r : g.recall) recall.push_back(std::isnan(r) ? json(nullptr) : json(r));
    return json{{"property", g.property},
                {"value", g.value},
                {"images", g.images},
                {"accuracy", g.accuracy},
                {"accuracy_95ci", {{"low", g.accuracy_low}, {"high", g.accuracy_high}, {"method", "wilson"}}},
                {"recall_per_class", recall},
                {"ece", std::isnan(g.ece) ? json(nullptr) : json(g.ece)}};
  };
  json out = {{"overall_accuracy", analysis.overall_accuracy},
              {"min_images_for_gaps", kMinSubgroupImages},
              {"notes", analysis.notes}};
  out["subgroups"] = json::array();
  for (const auto& g : analysis.subgroups) out["subgroups"].push_back(subgroup_json(g));
  out["largest_gaps"] = json::array();
  for (const auto& g : analysis.largest_gaps) out["largest_gaps"].push_back(subgroup_json(g));
  return out;
}

std::string markdown(const SubgroupAnalysis& analysis, const std::vector<std::string>& class_names) {
  std::ostringstream md;
  md << "| property | subgroup | images | accuracy [95% interval] |";
  for (const auto& name : class_names) md << " recall " << name << " |";
  md << " ECE |\n|---|---|---:|---:|";
  for (std::size_t c = 0; c < class_names.size(); ++c) md << "---:|";
  md << "---:|\n";
  for (const auto& g : analysis.subgroups) {
    md << "| " << g.property << " | " << g.value << " | " << g.images << " | " << fixed(g.accuracy) << " ["
       << fixed(g.accuracy_low) << ", " << fixed(g.accuracy_high) << "] |";
    for (const double r : g.recall) md << " " << fixed(r) << " |";
    md << " " << fixed(g.ece) << " |\n";
  }
  md << "\nOverall accuracy " << fixed(analysis.overall_accuracy) << ". ";
  if (analysis.largest_gaps.empty()) {
    md << "No subgroup of at least " << kMinSubgroupImages << " images to compare.\n";
    for (const auto& note : analysis.notes) md << "\nNot broken down: " << note << ".\n";
    return md.str();
  }
  md << "Largest gaps (subgroups of at least " << kMinSubgroupImages << " images): ";
  for (std::size_t i = 0; i < analysis.largest_gaps.size(); ++i) {
    const auto& g = analysis.largest_gaps[i];
    char gap[32];
    std::snprintf(gap, sizeof(gap), "%+.1f", (g.accuracy - analysis.overall_accuracy) * 100);
    md << (i ? "; " : "") << g.property << " " << g.value << " (" << g.images << " images): accuracy "
       << fixed(g.accuracy) << ", " << gap << " points";
  }
  md << ".\n";
  for (const auto& note : analysis.notes) md << "\nNot broken down: " << note << ".\n";
  return md.str();
}

}  // namespace brainmri::reports
