#include "brainmri/evaluation/predictions.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/metrics/roc.hpp"

namespace brainmri::evaluation {
namespace fs = std::filesystem;

void write_predictions(const fs::path& final_path, const Predictions& p, const std::vector<std::string>& class_names) {
  replace_file_atomically(final_path, [&](const fs::path& temporary) {
    auto file = hdf5::create_file(temporary);
    hdf5::write_vector(file, "sample_ids", p.sample_ids);
    std::vector<std::int32_t> labels(p.labels.begin(), p.labels.end());
    hdf5::write_vector(file, "labels", labels);
    hdf5::write_double_array(file, "probabilities", {p.labels.size(), static_cast<hsize_t>(class_names.size())},
                             p.probabilities);
    hdf5::write_attribute(file, "class_names", class_names);
    file.close();
  });
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

double mean_log_loss(const std::vector<double>& probabilities, const std::vector<int>& labels, int class_count) {
  if (labels.empty()) return 0;
  double total = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    total -= std::log(std::max(
        probabilities[i * static_cast<std::size_t>(class_count) + static_cast<std::size_t>(labels[i])], 1e-12));
  }
  return total / static_cast<double>(labels.size());
}

Predictions average_predictions(const std::vector<Predictions>& members, int class_count) {
  if (members.empty()) throw std::invalid_argument("an ensemble needs at least one prediction set");
  Predictions mean = members.front();
  for (std::size_t m = 1; m < members.size(); ++m) {
    if (members[m].sample_ids != mean.sample_ids || members[m].probabilities.size() != mean.probabilities.size()) {
      throw std::invalid_argument("the ensemble's members are not predictions of the same images");
    }
    for (std::size_t i = 0; i < mean.probabilities.size(); ++i) mean.probabilities[i] += members[m].probabilities[i];
  }
  const auto count = static_cast<double>(members.size());
  for (auto& p : mean.probabilities) p /= count;
  mean.loss = mean_log_loss(mean.probabilities, mean.labels, class_count);
  return mean;
}

Predictions select_predictions(const Predictions& predictions, const std::function<bool(std::int64_t)>& keep,
                               int class_count) {
  Predictions kept;
  const auto k = static_cast<std::size_t>(class_count);
  for (std::size_t i = 0; i < predictions.sample_ids.size(); ++i) {
    if (!keep(predictions.sample_ids[i])) continue;
    kept.sample_ids.push_back(predictions.sample_ids[i]);
    kept.labels.push_back(predictions.labels[i]);
    kept.probabilities.insert(kept.probabilities.end(),
                              predictions.probabilities.begin() + static_cast<std::ptrdiff_t>(i * k),
                              predictions.probabilities.begin() + static_cast<std::ptrdiff_t>((i + 1) * k));
  }
  kept.loss = mean_log_loss(kept.probabilities, kept.labels, class_count);
  return kept;
}

Scores score_predictions(const Predictions& p, int class_count) {
  Scores s;
  s.loss = p.loss;
  if (p.labels.empty()) return s;
  const auto predicted = metrics::argmax_rows(p.probabilities, class_count);
  const auto report = metrics::classification_report(metrics::ConfusionMatrix(p.labels, predicted, class_count),
                                                     std::vector<std::string>(static_cast<std::size_t>(class_count)));
  s.accuracy = report.accuracy;
  s.macro_f1 = report.macro_average.f1;
  s.macro_auc = metrics::one_vs_rest_roc(p.labels, p.probabilities, class_count).macro_auc;
  return s;
}

}  // namespace brainmri::evaluation
