#pragma once
// Where a run's training progress is recorded besides the console, by rank 0 in the run directory:
// train_log.jsonl (the report's source), metrics.csv (one row per epoch, for a spreadsheet or
// pandas) and TensorBoard event files (`tensorboard --logdir RUN`, or the directory of a cv or
// tune: each fold and trial is a run of its own there).
//
// TensorBoard's x axis is the training step, counted over the run's stages: epoch scalars at the
// step that ends the epoch, step scalars every `every_steps` steps (the running loss of the epoch,
// the learning rate, images per second).

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "brainmri/evaluation/epoch_record.hpp"
#include "brainmri/evaluation/tensorboard.hpp"

namespace brainmri::evaluation {

// metrics.csv: the fields of train_log.jsonl as columns, a row appended per epoch.
void append_metrics_csv(const std::filesystem::path& file, const EpochRecord& record);

class RunLog {
 public:
  explicit RunLog(std::filesystem::path directory);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  // A process that continues the run after `steps_done` steps (a resumed or requeued run):
  // TensorBoard drops what an interrupted process logged after that step.
  void resumed_at(std::int64_t steps_done);
  // `validated`: the epoch has validation scores (a stage without validation has none).
  void epoch(const EpochRecord& record, std::int64_t step, bool validated);
  void step(std::int64_t step, double running_loss, double learning_rate, double images_per_second);
  // The HParams plugin's view of this run (a search trial): its hyperparameters.
  void hyperparameters(const std::map<std::string, TensorBoardWriter::HParamValue>& values, const std::string& group);

 private:
  TensorBoardWriter& events();

  std::filesystem::path directory_;
  std::unique_ptr<TensorBoardWriter> events_;  // opened at the first event
};

}  // namespace brainmri::evaluation
