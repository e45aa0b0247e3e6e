#pragma once
// TensorBoard event files, written in TensorBoard's own format so that `tensorboard --logdir`
// (and its EventAccumulator) reads them: TFRecord framing (length, masked CRC-32C of the length,
// the record, masked CRC-32C of the record) around tensorflow.Event protocol buffers. The few
// messages needed (Event, Summary.Value with a simple_value, SessionLog, the HParams plugin's
// session start) are encoded here by hand: their field numbers are fixed by TensorBoard's .proto
// files (tensorboard/compat/proto/event.proto, summary.proto, plugins/hparams/*.proto), and
// linking libprotobuf for them would cost more than the encoder.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <variant>

namespace brainmri::evaluation {

// CRC-32C (Castagnoli), and TFRecord's masking of it.
std::uint32_t crc32c(std::string_view bytes);
std::uint32_t masked_crc32c(std::string_view bytes);

class TensorBoardWriter {
 public:
  // Creates DIRECTORY/events.out.tfevents.<seconds>.<microseconds>.<host>.<pid>.<n> (a new file per writer, as
  // TensorBoard expects: a directory's files are read in name order as one stream) and writes
  // the file-version event. Throws std::runtime_error when the file cannot be created.
  explicit TensorBoardWriter(const std::filesystem::path& directory);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void scalar(const std::string& tag, std::int64_t step, double value);
  // A run that resumes at `step`: TensorBoard drops what an earlier, interrupted process logged
  // at this step and after (its purge of orphaned data), so a resumed curve has no doubles.
  void restart_at(std::int64_t step);
  // The HParams plugin's session start: this run's hyperparameters (numbers, texts or booleans).
  using HParamValue = std::variant<double, std::string, bool>;
  void hyperparameters(const std::map<std::string, HParamValue>& values, const std::string& group);
  void flush();
  const std::filesystem::path& file() const { return file_; }

 private:
  void write_event(const std::string& event);

  std::filesystem::path file_;
  int descriptor_ = -1;
};

}  // namespace brainmri::evaluation
