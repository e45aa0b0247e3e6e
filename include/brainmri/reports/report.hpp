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

#include "brainmri/reports/figures.hpp"
#include "brainmri/training/trainer.hpp"

namespace brainmri::reports {

// One set of predictions with the metrics written beside it (predictions.h5 + metrics.json).
struct Evaluation {
  std::string key;    // file-safe: validation, fold-0, out_of_fold, test_ensemble, final_test, ...
  std::string title;  // for people: "fold-0 (validation)", "held-out test: ensemble of 5 fold models"
  training::Predictions predictions;
  nlohmann::json metrics;
};

struct RunContents {
  std::filesystem::path directory;
  std::string kind;  // train | cv
  std::string model;
  std::vector<std::string> class_names;
  std::optional<Evaluation> main;   // train: validation; cv: the pooled out-of-fold predictions
  std::vector<Evaluation> folds;    // cv: each fold's validation
  std::vector<Evaluation> tests;    // held-out test sets: per fold model, ensemble, final model
  std::vector<EpochPoint> epochs;   // train: train_log.jsonl
  std::string config_text;          // config.ini
};

// Reads a run directory; throws std::runtime_error naming the directory and what is missing.
RunContents read_run(const std::filesystem::path& directory);

// Writes the report into `output` (created) and returns its headline metrics (accuracy, macro-F1,
// macro AUC, each with mean/std/CI for a CV or value/CI for a single run). Figures are drawn only
// when `figures` is true (plotting_available()); as PNG, plus SVG and PDF when `vector_figures`.
// With `gradcam_per_kind` > 0 and the run's models and dataset at hand (model.pt, fold-K/model.pt;
// the dataset path its metrics.json records), also gradcam_grid: per class that many most confident
// correct predictions and errors with their Grad-CAM; skipped, with the reason on the page and on
// stderr, when they are not.
nlohmann::json write_report(const RunContents& run, const std::filesystem::path& output, bool figures,
                            bool vector_figures = true, int gradcam_per_kind = 3);

// comparison.md, comparison.tex and index.html in `output`, one row per run.
void write_comparison(const std::vector<RunContents>& runs, const std::vector<nlohmann::json>& headlines,
                      const std::vector<std::filesystem::path>& report_directories, const std::filesystem::path& output);

}  // namespace brainmri::reports
