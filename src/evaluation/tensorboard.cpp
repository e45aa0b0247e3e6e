#include "brainmri/evaluation/tensorboard.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <system_error>

namespace brainmri::evaluation {
namespace {

// --- protocol buffer wire format: the few pieces the messages below need -----------------------

void put_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}
void put_tag(std::string& out, int field, int wire_type) {
  put_varint(out, static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(wire_type));
}
template <typename T>
void put_fixed(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian, as the wire format wants (x86, ARM)
  out.append(bytes, sizeof(T));
}
void put_double(std::string& out, int field, double value) {
  put_tag(out, field, 1);
  put_fixed(out, value);
}
void put_float(std::string& out, int field, float value) {
  put_tag(out, field, 5);
  put_fixed(out, value);
}
void put_int(std::string& out, int field, std::int64_t value) {
  put_tag(out, field, 0);
  put_varint(out, static_cast<std::uint64_t>(value));
}
void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// tensorflow.Event: wall_time = 1, step = 2, file_version = 3, summary = 5, session_log = 7.
std::string event(std::int64_t step) {
  std::string out;
  put_double(out, 1, now_seconds());
  if (step != 0) put_int(out, 2, step);
  return out;
}

// tensorflow.Summary.Value: tag = 1, simple_value = 2, metadata = 9 (SummaryMetadata: plugin_data
// = 1 (PluginData: plugin_name = 1, content = 2)).
std::string plugin_value(const std::string& tag, const std::string& plugin, const std::string& content) {
  std::string plugin_data, metadata, value;
  put_bytes(plugin_data, 1, plugin);
  put_bytes(plugin_data, 2, content);
  put_bytes(metadata, 1, plugin_data);
  put_bytes(value, 1, tag);
  put_bytes(value, 9, metadata);
  return value;
}

constexpr std::array<std::uint32_t, 256> crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
    table[i] = c;
  }
  return table;
}
constexpr auto kCrcTable = crc_table();

}  // namespace

std::uint32_t crc32c(std::string_view bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (const char byte : bytes) crc = kCrcTable[(crc ^ static_cast<std::uint8_t>(byte)) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

std::uint32_t masked_crc32c(std::string_view bytes) {
  const std::uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& directory) {
  std::filesystem::create_directories(directory);
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  // TensorBoard reads a directory's files in name order: the time to the microsecond (fixed width)
  // puts a resumed process's file after the one it continues; the counter keeps several writers
  // of one process apart.
  static std::atomic<int> writers{0};
  const double now = now_seconds();
  char stamp[32];
  std::snprintf(stamp, sizeof(stamp), "%010lld.%06d", static_cast<long long>(now),
                static_cast<int>((now - std::floor(now)) * 1e6));
  file_ = directory / ("events.out.tfevents." + std::string(stamp) + "." + host + "." + std::to_string(::getpid()) +
                       "." + std::to_string(writers++));
  descriptor_ = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (descriptor_ < 0) throw std::system_error(errno, std::generic_category(), "cannot create " + file_.string());
  auto first = event(0);
  put_bytes(first, 3, "brain.Event:2");
  write_event(first);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (descriptor_ >= 0) ::close(descriptor_);
}

void TensorBoardWriter::write_event(const std::string& data) {
  std::string record;
  const std::uint64_t length = data.size();
  std::string length_bytes;
  put_fixed(length_bytes, length);
  record += length_bytes;
  put_fixed(record, masked_crc32c(length_bytes));
  record += data;
  put_fixed(record, masked_crc32c(data));
  // One write per record (O_APPEND): a crash leaves at most a torn last record, which
  // TensorBoard's reader stops at.
  const auto written = ::write(descriptor_, record.data(), record.size());
  if (written != static_cast<ssize_t>(record.size())) {
    throw std::system_error(errno, std::generic_category(), "cannot write " + file_.string());
  }
}

void TensorBoardWriter::scalar(const std::string& tag, std::int64_t step, double value) {
  std::string summary_value, summary;
  put_bytes(summary_value, 1, tag);
  put_float(summary_value, 2, static_cast<float>(value));
  put_bytes(summary, 1, summary_value);  // Summary: value = 1 (repeated)
  auto out = event(step);
  put_bytes(out, 5, summary);
  write_event(out);
}

void TensorBoardWriter::restart_at(std::int64_t step) {
  std::string session_log;
  put_int(session_log, 1, 1);  // SessionLog.status = START
  auto out = event(step);
  put_bytes(out, 7, session_log);  // Event.session_log
  write_event(out);
}

void TensorBoardWriter::hyperparameters(const std::map<std::string, HParamValue>& values, const std::string& group) {
  // HParamsPluginData: version = 1, session_start_info = 3 (SessionStartInfo: hparams = 1, a map
  // of string to google.protobuf.Value (number_value = 2, string_value = 3, bool_value = 4);
  // group_name = 4, start_time_secs = 5).
  std::string start;
  for (const auto& [name, value] : values) {
    std::string proto_value, entry;
    if (const auto* number = std::get_if<double>(&value)) {
      put_double(proto_value, 2, *number);
    } else if (const auto* text = std::get_if<std::string>(&value)) {
      put_bytes(proto_value, 3, *text);
    } else {
      put_int(proto_value, 4, std::get<bool>(value) ? 1 : 0);
    }
    put_bytes(entry, 1, name);
    put_bytes(entry, 2, proto_value);
    put_bytes(start, 1, entry);
  }
  put_bytes(start, 4, group);
  put_double(start, 5, now_seconds());
  std::string plugin_data;
  put_int(plugin_data, 1, 0);
  put_bytes(plugin_data, 3, start);
  std::string summary;
  put_bytes(summary, 1, plugin_value("_hparams_/session_start_info", "hparams", plugin_data));
  auto out = event(0);
  put_bytes(out, 5, summary);
  write_event(out);
}

void TensorBoardWriter::flush() {
  if (descriptor_ >= 0) ::fsync(descriptor_);
}

}  // namespace brainmri::evaluation
