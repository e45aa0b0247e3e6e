#pragma once
// The log: lines for a person following a job (epochs, jobs settled, warnings, errors), on stderr,
// each with its time, its level and, when several ranks run, its rank:
//
//   2026-12-02 01:23:45.678 info [rank 0/4] epoch 3/20 loss 0.4121 ...
//
// Results (tables, summaries, help) are not log lines: they go to stdout, plain. One place decides
// the format and the level (--log-level, or BRAINMRI_LOG_LEVEL), so every command logs alike.
// The interface hides its library (spdlog): a header that includes it would meet LibTorch's own
// copy of fmt in every file that uses Torch. Built without spdlog (-DBRAINMRI_WITH_SPDLOG=OFF, for
// a machine without it and without root), a plain writer writes the same lines, uncoloured.

#include <string>
#include <string_view>

#include "brainmri/common/enum_names.hpp"

namespace brainmri {

enum class LogLevel { Trace, Debug, Info, Warning, Error, Off };

template <>
struct EnumNames<LogLevel> {
  static constexpr std::string_view what = "log-level";
  static constexpr std::array names = {
      std::pair{LogLevel::Trace, std::string_view("trace")}, std::pair{LogLevel::Debug, std::string_view("debug")},
      std::pair{LogLevel::Info, std::string_view("info")},   std::pair{LogLevel::Warning, std::string_view("warning")},
      std::pair{LogLevel::Error, std::string_view("error")}, std::pair{LogLevel::Off, std::string_view("off")}};
};

namespace logging {

// The level when neither --log-level nor BRAINMRI_LOG_LEVEL says (info), or BRAINMRI_LOG_LEVEL's;
// throws std::invalid_argument naming the variable when it holds no level.
LogLevel default_level();

// What is logged from here on: lines at `level` and above.
void set_level(LogLevel level);
LogLevel level();

// The rank of this process in a job of `world_size`: the prefix of its lines when world_size > 1.
// Which ranks speak is the caller's choice (rank 0 of a job, the leader of a CV fold's group,
// every rank with --log-all-ranks): a job of 64 ranks writes one line per epoch, not 64.
void set_rank(int rank, int world_size);

// A label for every line this thread logs while it lives ("[fold 2]", "[trial-0007 rung 1 fold 0]"),
// after the rank: the lines of a job, the trainer's included, say which job they come from.
// Nested contexts add their labels in order.
class LogContext {
 public:
  explicit LogContext(const std::string& label);
  ~LogContext();
  LogContext(const LogContext&) = delete;
  LogContext& operator=(const LogContext&) = delete;

 private:
  std::size_t previous_length_;
};

bool enabled(LogLevel level);  // would a line at `level` be written?
void write(LogLevel level, std::string_view message);

inline void trace(std::string_view message) { write(LogLevel::Trace, message); }
inline void debug(std::string_view message) { write(LogLevel::Debug, message); }
inline void info(std::string_view message) { write(LogLevel::Info, message); }
inline void warning(std::string_view message) { write(LogLevel::Warning, message); }
inline void error(std::string_view message) { write(LogLevel::Error, message); }

}  // namespace logging
}  // namespace brainmri
