#pragma once
// What a model said about a set of images: one row of class probabilities per sample. The unit
// every evaluation, report and comparison works on; no Torch, no MPI.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace brainmri::evaluation {

struct Predictions {
  std::vector<std::int64_t> sample_ids;
  std::vector<int> labels;
  std::vector<double> probabilities;  // row-major [n, classes]
  double loss = 0;                    // mean cross-entropy, no smoothing
};

// predictions.h5: sample_ids, labels, probabilities [n, classes] and the class names. Written
// atomically (temporary file, fsync, rename).
void write_predictions(const std::filesystem::path& file, const Predictions& predictions,
                       const std::vector<std::string>& class_names);
// Throws std::runtime_error naming the file when it cannot be read.
Predictions read_predictions(const std::filesystem::path& file);

// Mean cross-entropy of the true labels under `probabilities` (clamped at 1e-12): the loss of
// predictions made by combining or selecting others, where no logits are left.
double mean_log_loss(const std::vector<double>& probabilities, const std::vector<int>& labels, int class_count);

// An ensemble: the mean of several prediction sets' class probabilities on the same images, in
// the same order (several models, or several views of each image). Throws std::invalid_argument
// when the members differ in their images or are none.
Predictions average_predictions(const std::vector<Predictions>& members, int class_count);

// The rows whose sample id `keep` accepts, in their order, the loss recomputed over them.
Predictions select_predictions(const Predictions& predictions, const std::function<bool(std::int64_t)>& keep,
                               int class_count);

// The headline scores of a prediction set (the trainer's per-epoch validation, a job's result).
struct Scores {
  double loss = 0;
  double accuracy = 0;
  double macro_f1 = 0;
  double macro_auc = 0;  // NaN when undefined (a class without positives or negatives)
};
Scores score_predictions(const Predictions& predictions, int class_count);

}  // namespace brainmri::evaluation
