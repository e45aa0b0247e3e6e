#include "brainmri/evaluation/run_log.hpp"

#include <cmath>
#include <fstream>
#include <vector>

#include "brainmri/common/csv.hpp"

namespace brainmri::evaluation {

void append_metrics_csv(const std::filesystem::path& file, const EpochRecord& r) {
  CsvTable table({"stage", "epoch", "learning_rate", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                  "val_macro_f1", "val_macro_auc", "images_per_second", "seconds", "best"});
  const auto header_length = table.text().size();
  table.row({r.stage, std::to_string(r.epoch), CsvTable::number(r.learning_rate), CsvTable::number(r.train_loss),
             CsvTable::number(r.train_accuracy), CsvTable::number(r.val_loss), CsvTable::number(r.val_accuracy),
             CsvTable::number(r.val_macro_f1), CsvTable::number(r.val_macro_auc), CsvTable::number(r.images_per_second),
             CsvTable::number(r.seconds), r.best ? "true" : "false"});
  const bool fresh = !std::filesystem::exists(file) || std::filesystem::file_size(file) == 0;
  std::ofstream out(file, std::ios::app);
  out << (fresh ? table.text() : table.text().substr(header_length));
}

RunLog::RunLog(std::filesystem::path directory) : directory_(std::move(directory)) {}
RunLog::~RunLog() = default;

TensorBoardWriter& RunLog::events() {
  if (!events_) events_ = std::make_unique<TensorBoardWriter>(directory_);
  return *events_;
}

void RunLog::resumed_at(std::int64_t steps_done) { events().restart_at(steps_done + 1); }

void RunLog::epoch(const EpochRecord& r, std::int64_t step, bool validated) {
  append_training_log(directory_ / "train_log.jsonl", r);
  append_metrics_csv(directory_ / "metrics.csv", r);
  auto& tb = events();
  tb.scalar("loss/train", step, r.train_loss);
  tb.scalar("accuracy/train", step, r.train_accuracy);
  tb.scalar("learning_rate", step, r.learning_rate);
  tb.scalar("images_per_second", step, r.images_per_second);
  if (validated) {
    tb.scalar("loss/val", step, r.val_loss);
    tb.scalar("accuracy/val", step, r.val_accuracy);
    tb.scalar("macro_f1/val", step, r.val_macro_f1);
    if (!std::isnan(r.val_macro_auc)) tb.scalar("macro_auc/val", step, r.val_macro_auc);
  }
  tb.flush();
}

void RunLog::step(std::int64_t step, double running_loss, double learning_rate, double images_per_second) {
  auto& tb = events();
  tb.scalar("step/loss", step, running_loss);
  tb.scalar("step/learning_rate", step, learning_rate);
  tb.scalar("step/images_per_second", step, images_per_second);
}

void RunLog::hyperparameters(const std::map<std::string, TensorBoardWriter::HParamValue>& values,
                             const std::string& group) {
  events().hyperparameters(values, group);
  events().flush();
}

}  // namespace brainmri::evaluation
