#include "brainmri/evaluation/epoch_record.hpp"

#include <cmath>
#include <fstream>

namespace brainmri::evaluation {
using nlohmann::json;

json to_json(const EpochRecord& r) {
  return {{"stage", r.stage},
          {"epoch", r.epoch},
          {"learning_rate", r.learning_rate},
          {"train_loss", r.train_loss},
          {"train_accuracy", r.train_accuracy},
          {"val_loss", r.val_loss},
          {"val_accuracy", r.val_accuracy},
          {"val_macro_f1", r.val_macro_f1},
          {"val_macro_auc", std::isnan(r.val_macro_auc) ? json(nullptr) : json(r.val_macro_auc)},
          {"images_per_second", r.images_per_second},
          {"seconds", r.seconds},
          {"best", r.best}};
}

EpochRecord epoch_record_from_json(const json& line) {
  EpochRecord r;
  r.stage = line.value("stage", r.stage);
  r.epoch = line.value("epoch", r.epoch);
  r.learning_rate = line.value("learning_rate", r.learning_rate);
  r.train_loss = line.value("train_loss", r.train_loss);
  r.train_accuracy = line.value("train_accuracy", r.train_accuracy);
  r.val_loss = line.value("val_loss", r.val_loss);
  r.val_accuracy = line.value("val_accuracy", r.val_accuracy);
  r.val_macro_f1 = line.value("val_macro_f1", r.val_macro_f1);
  const auto auc = line.find("val_macro_auc");
  r.val_macro_auc = auc == line.end() || auc->is_null() ? NAN : auc->get<double>();
  r.images_per_second = line.value("images_per_second", r.images_per_second);
  r.seconds = line.value("seconds", r.seconds);
  r.best = line.value("best", r.best);
  return r;
}

void append_training_log(const std::filesystem::path& file, const EpochRecord& record) {
  std::ofstream out(file, std::ios::app);
  out << to_json(record).dump() << "\n";
}

std::vector<EpochRecord> read_training_log(const std::filesystem::path& file) {
  std::vector<EpochRecord> records;
  std::ifstream log(file);
  for (std::string line; std::getline(log, line);) {
    if (line.empty()) continue;
    const auto parsed = json::parse(line, nullptr, false);
    if (parsed.is_discarded()) continue;  // a torn last line of an interrupted run
    records.push_back(epoch_record_from_json(parsed));
  }
  return records;
}

}  // namespace brainmri::evaluation
