#pragma once
// Publication figures drawn with PLplot (its C++ API and Cairo drivers): each figure is written
// as STEM.png and, unless `vector` is false, STEM.svg and STEM.pdf, each through a temporary file
// and a rename.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/evaluation/epoch_record.hpp"
#include "brainmri/metrics/calibration.hpp"
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

// Cross-validation: every fold's curves in its own colour — loss (training dashed, validation
// solid) and validation macro-F1 (solid) with validation accuracy (dotted) — over the epochs of
// every stage in order. `folds` pairs a fold's name with its epochs.
void plot_fold_training_curves(const std::vector<std::pair<std::string, std::vector<evaluation::EpochRecord>>>& folds,
                               const std::string& title, const std::filesystem::path& stem, bool vector = true);

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

// Reliability diagrams: the top-label panel, then one per class. In each, the observed frequency
// against the mean confidence of every non-empty bin (a point per bin, joined; the gap to the
// diagonal shaded), the diagonal of perfect calibration, the ECE in the title, and below it the
// bins' image counts as bars.
struct ReliabilityPanel {
  std::string title;  // "top label", a class name
  metrics::Reliability reliability;
};
void plot_reliability_diagrams(const std::vector<ReliabilityPanel>& panels, const std::filesystem::path& stem,
                               bool vector = true);

// A hyperparameter search's figures. A trial: its number (the order trials started), its value on
// every axis (a categorical axis: the index of its category) and its objective at each rung it
// completed, in rung order (none: it failed or has not finished rung 0).
struct SearchAxis {
  std::string name;
  bool log_scale = false;               // loguniform
  std::vector<std::string> categories;  // a choice: its values, in the order the search lists them
};
struct SearchTrialPoint {
  int number = 0;
  std::vector<double> values;
  std::vector<double> score_by_rung;
};

// The objective of every trial at the highest rung it completed, coloured by that rung, and the
// running best of the trials that completed the last rung (a step line), against trial number.
void plot_search_history(const std::vector<SearchTrialPoint>& trials, const std::vector<int>& rung_epochs,
                         const std::string& objective, const std::string& title, const std::filesystem::path& stem,
                         bool vector = true);

// One vertical axis per hyperparameter and one for the objective; each trial a line across them,
// coloured by its objective at the last rung it completed (a colour bar on the right): thick for
// the trials that completed the last rung (drawn last, the best on top), thin for the others.
void plot_parallel_coordinates(const std::vector<SearchAxis>& axes, const std::vector<SearchTrialPoint>& trials,
                               int rungs, const std::string& objective, const std::string& title,
                               const std::filesystem::path& stem, bool vector = true);

// Successive halving: each trial's objective at every rung it ran, joined by a line; the trials
// that reached the last rung in colour, those stopped earlier grey with a cross where they stopped.
void plot_search_rungs(const std::vector<SearchTrialPoint>& trials, const std::vector<int>& rung_epochs,
                       const std::string& objective, const std::string& title, const std::filesystem::path& stem,
                       bool vector = true);

// Horizontal bars, largest first: how strongly the objective depends on each hyperparameter.
struct ParameterImportance {
  std::string name;
  std::string measure;  // "spearman" (signed, numeric parameters) or "eta" (categorical, >= 0)
  double value = 0;     // NaN: not measurable (constant, too few trials)
  int trials = 0;
};
void plot_parameter_importance(const std::vector<ParameterImportance>& importance, const std::string& title,
                               const std::filesystem::path& stem, bool vector = true);

// Where a model fails: one row per subgroup, grouped under a heading per property, its accuracy a
// point with its 95% interval as a bar and "value (images)" on the left; the overall accuracy a
// dashed vertical line. Subgroups of fewer than `min_images` images are grey (too small to compare).
struct SubgroupAccuracy {
  std::string property, value;
  int images = 0;
  double accuracy = 0, low = 0, high = 0;
};
void plot_subgroup_accuracy(const std::vector<SubgroupAccuracy>& subgroups, double overall_accuracy, int min_images,
                            const std::string& title, const std::filesystem::path& stem, bool vector = true);

// The mean true-positive rate of several curves on `grid` (as numpy.interp, starting at 0).
std::vector<double> interpolate_tpr(const std::vector<double>& fpr, const std::vector<double>& tpr,
                                    const std::vector<double>& grid);

}  // namespace brainmri::reports
