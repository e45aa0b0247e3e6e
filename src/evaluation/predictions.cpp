#include "brainmri/evaluation/predictions.hpp"

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
