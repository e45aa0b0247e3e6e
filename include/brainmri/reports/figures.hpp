#pragma once
// Publication figures drawn with PLplot (its C++ API and Cairo drivers): each figure is written
// as STEM.png and, unless `vector` is false, STEM.svg and STEM.pdf, each through a temporary file
// and a rename.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/evaluation/epoch_record.hpp"
#include "brainmri/metrics/classification.hpp"

namespace brainmri::reports {

// Whether this build has PLplot and the Cairo PNG/SVG/PDF drivers are installed; `why` says what
// is missing otherwise.
bool plotting_available(std::string* why = nullptr);

// Two panels: counts, and counts divided by each true class's total (recall on the diagonal).
void plot_confusion_matrix(const metrics::ConfusionMatrix& matrix, const std::vector<std::string>& class_names,
                           const std::string& title, const std::filesystem::path& stem, bool vector = true);

// One evaluation's ROC curves: one-vs-rest per class with its AUC in the legend, the micro- and
// macro-average curves and the chance diagonal. `probabilities` is row-major [n, classes].
void plot_roc_curves(const std::vector<int>& labels, const std::vector<double>& probabilities,
                     const std::vector<std::string>& class_names, const std::string& title,
                     const std::filesystem::path& stem, bool vector = true);

// Cross-validation: per class, each fold's curve faint and the mean curve over the folds with a
// ±1 standard-deviation band (true positive rates interpolated on a common false-positive grid).
struct FoldPredictions {
  std::vector<int> labels;
  std::vector<double> probabilities;
};
void plot_cross_validated_roc(const std::vector<FoldPredictions>& folds, const std::vector<std::string>& class_names,
                              const std::string& title, const std::filesystem::path& stem, bool vector = true);

// Per-epoch training curves: loss (training, validation) and accuracy (training, validation)
// with validation macro-F1, over the epochs of every stage in order.
void plot_training_curves(const std::vector<evaluation::EpochRecord>& epochs, const std::string& title,
                          const std::filesystem::path& stem, bool vector = true);

// Grad-CAM grid: one row per class, its tiles left to right (the most confident correct
// predictions, then the most confident errors); each tile the slice in grey with the heat map over
// it (a perceptual colour map, transparent where the map is low) and its true/predicted labels
// with the probability; a colour scale below. Images and maps are row-major [height, width] in [0, 1].
struct CamTile {
  std::vector<double> image;
  std::vector<double> map;
  int height = 0, width = 0;
  int truth = 0, predicted = 0;
  double probability = 0;  // of the predicted class
};
void plot_gradcam_grid(const std::vector<std::vector<std::optional<CamTile>>>& rows, int correct_columns,
                       const std::vector<std::string>& class_names, const std::string& title,
                       const std::string& map_name, const std::filesystem::path& stem, bool vector = true);

// The mean true-positive rate of several curves on `grid` (as numpy.interp, starting at 0).
std::vector<double> interpolate_tpr(const std::vector<double>& fpr, const std::vector<double>& tpr,
                                    const std::vector<double>& grid);

}  // namespace brainmri::reports
