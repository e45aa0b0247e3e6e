#pragma once
// The report of a run directory — one written by `brainmri train` or by `brainmri cv` — built
// from its saved predictions alone (no model, no GPU, no MPI): classification reports (text in
// scikit-learn's layout, CSV, JSON), confusion matrices, ROC curves, training curves, tables for
// a paper (Markdown and LaTeX) and one self-contained index.html. Several runs also get a
// comparison table.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/common/option_table.hpp"
#include "brainmri/evaluation/epoch_record.hpp"
#include "brainmri/evaluation/evaluation_files.hpp"
#include "brainmri/evaluation/predictions.hpp"
#include "brainmri/explain/gradcam.hpp"
#include "brainmri/reports/figures.hpp"

namespace brainmri::reports {

// One set of predictions with the metrics written beside it (predictions.h5 + metrics.json).
struct Evaluation {
  std::string key;    // file-safe: validation, fold-0, out_of_fold, test_ensemble, final_test, ...
  std::string title;  // for people: "fold-0 (validation)", "held-out test: ensemble of 5 fold models"
  evaluation::Predictions predictions;
  evaluation::EvaluationMetrics metrics;
};

struct RunContents {
  std::filesystem::path directory;
  std::string kind;  // train | cv
  std::string model;
  std::vector<std::string> class_names;
  std::optional<Evaluation> main;               // train: validation; cv: the pooled out-of-fold predictions
  std::vector<Evaluation> folds;                // cv: each fold's validation
  std::vector<Evaluation> tests;                // held-out test sets: per fold model, ensemble, final model
  std::vector<evaluation::EpochRecord> epochs;  // train: train_log.jsonl
  // cv: each fold's train_log.jsonl (name, epochs), for the folds that have one
  std::vector<std::pair<std::string, std::vector<evaluation::EpochRecord>>> fold_epochs;
  std::string config_text;  // config.ini
};

// Reads a run directory; throws std::runtime_error naming the directory and what is missing.
RunContents read_run(const std::filesystem::path& directory);

struct ReportOptions {
  bool figures = true;         // only when plotting_available()
  bool vector_figures = true;  // figures also as SVG and PDF, not only PNG
  // The explanation grid: per class this many most confident correct predictions and errors,
  // each explained (its predicted class) by the model that made it; 0: none.
  int gradcam_per_kind = 3;
  // HiResCAM by default: it passes the localization check on the paper's CNN where Grad-CAM does
  // not, and equals Grad-CAM behind MobileNetV2's global average pooling.
  explain::CamMethod cam_method = explain::CamMethod::HiResCam;
  std::string cam_layer;  // explained layer; "": the model's default
  // Runs explain::localization_check for the run's architecture, method and layer on slices of
  // the run's dataset (trains a fresh network briefly, on CPU).
  bool explanation_check = true;
  torch::Device device = torch::kCPU;  // of the check's training (the grid's maps are computed on CPU)
};

// The options of `brainmri report` bound to the fields above (the device aside).
const std::vector<Option<ReportOptions>>& report_options();
// Throws ConfigError naming the option whose value is out of range.
void validate(const ReportOptions& options);

// Writes the report into `output` (created) and returns its headline metrics (accuracy, macro-F1,
// macro AUC, each with mean/std/CI for a CV or value/CI for a single run). The explanation grid and
// check need the run's models and dataset (model.pt, fold-K/model.pt; the dataset path its
// metrics.json records); without them they are skipped, with the reason on the page and on stderr.
nlohmann::json write_report(const RunContents& run, const std::filesystem::path& output,
                            const ReportOptions& options = {});

// Text made safe inside HTML (& < > ").
std::string html_escape(const std::string& text);

// comparison.md, comparison.tex and index.html in `output`, one row per run.
void write_comparison(const std::vector<RunContents>& runs, const std::vector<nlohmann::json>& headlines,
                      const std::vector<std::filesystem::path>& report_directories,
                      const std::filesystem::path& output);

}  // namespace brainmri::reports
