#pragma once
// One epoch of a training stage: the trainer's console line, a line of train_log.jsonl, and a
// point of the report's training curves. One type, one JSON form, read and written here.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace brainmri::evaluation {

struct EpochRecord {
  std::string stage;
  int epoch = 0;  // 1-based
  double learning_rate = 0;
  double train_loss = 0;
  double train_accuracy = 0;
  double val_loss = 0;
  double val_accuracy = 0;
  double val_macro_f1 = 0;
  double val_macro_auc = 0;  // NaN when undefined (written as null)
  double images_per_second = 0;
  double seconds = 0;
  bool best = false;
};

nlohmann::json to_json(const EpochRecord& record);
// Fields missing from `line` keep their defaults (older logs); throws nlohmann::json::exception
// for a field of the wrong type.
EpochRecord epoch_record_from_json(const nlohmann::json& line);

// train_log.jsonl: one record per line, appended as each epoch ends.
void append_training_log(const std::filesystem::path& file, const EpochRecord& record);
// Every record of a log; a line that is not JSON (the torn last line of an interrupted run) is skipped.
std::vector<EpochRecord> read_training_log(const std::filesystem::path& file);

}  // namespace brainmri::evaluation
