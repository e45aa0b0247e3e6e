#include "brainmri/common/log.hpp"

#ifdef BRAINMRI_HAVE_SPDLOG
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#else
#include <chrono>
#include <cstdio>
#include <ctime>
#endif

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace brainmri::logging {
namespace {

thread_local std::string t_context;  // the labels of this thread's LogContexts, each followed by a space

// "[rank 1/4] " when several ranks run, else nothing.
std::string rank_prefix(int rank, int world_size) {
  return world_size > 1 ? "[rank " + std::to_string(rank) + "/" + std::to_string(world_size) + "] " : "";
}

#ifdef BRAINMRI_HAVE_SPDLOG

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return spdlog::level::trace;
    case LogLevel::Debug: return spdlog::level::debug;
    case LogLevel::Info: return spdlog::level::info;
    case LogLevel::Warning: return spdlog::level::warn;
    case LogLevel::Error: return spdlog::level::err;
    case LogLevel::Off: break;
  }
  return spdlog::level::off;
}

// The level padded to 7 characters ("warning"), so that messages line up.
std::string pattern_for(int rank, int world_size) {
  return "%Y-%m-%d %H:%M:%S.%e %^%-7l%$ " + rank_prefix(rank, world_size) + "%v";
}

// Colours only on a terminal; each line one write, flushed, so ranks that share a Slurm log never
// interleave within a line and a killed job loses no line.
class Writer {
 public:
  Writer() {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
    logger_ = std::make_shared<spdlog::logger>("brainmri", std::move(sink));
    logger_->set_pattern(pattern_for(0, 1));
    logger_->set_level(spdlog::level::trace);  // filtered before, by the level
    logger_->flush_on(spdlog::level::trace);
  }
  void set_rank(int rank, int world_size) {
    const std::lock_guard lock(mutex_);  // the pattern's replacement, not the lines (the sink locks)
    logger_->set_pattern(pattern_for(rank, world_size));
  }
  void write(LogLevel level, const std::string& context, std::string_view message) {
    logger_->log(to_spdlog(level), "{}{}", context, message);
  }

 private:
  std::mutex mutex_;
  std::shared_ptr<spdlog::logger> logger_;
};

#else  // without spdlog: the same lines, uncoloured

class Writer {
 public:
  void set_rank(int rank, int world_size) {
    const std::lock_guard lock(mutex_);
    prefix_ = rank_prefix(rank, world_size);
  }
  void write(LogLevel level, const std::string& context, std::string_view message) {
    const auto now = std::chrono::system_clock::now();
    const auto seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm local{};
    localtime_r(&seconds, &local);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &local);
    char head[64];
    std::snprintf(head, sizeof(head), "%s.%03d %-7s ", stamp, static_cast<int>(millis), name_of(level).c_str());
    const std::lock_guard lock(mutex_);
    const std::string line = head + prefix_ + context + std::string(message) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);  // one write per line, flushed: see above
    std::fflush(stderr);
  }

 private:
  std::mutex mutex_;
  std::string prefix_;
};

#endif

struct State {
  Writer writer;
  std::atomic<LogLevel> level{LogLevel::Info};
};

State& state() {
  static State instance;
  static std::once_flag configured;
  std::call_once(configured, [] {
    try {
      instance.level = default_level();
    } catch (const std::invalid_argument& e) {
      instance.writer.write(LogLevel::Warning, "", std::string(e.what()) + "; logging at info");
    }
  });
  return instance;
}

}  // namespace

LogLevel default_level() {
  const char* text = std::getenv("BRAINMRI_LOG_LEVEL");
  if (text == nullptr || *text == '\0') return LogLevel::Info;
  try {
    return parse_enum<LogLevel>(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("BRAINMRI_LOG_LEVEL: ") + e.what());
  }
}

void set_level(LogLevel level) { state().level = level; }
LogLevel level() { return state().level; }

void set_rank(int rank, int world_size) { state().writer.set_rank(rank, world_size); }

bool enabled(LogLevel level) { return level != LogLevel::Off && level >= state().level; }

LogContext::LogContext(const std::string& label) : previous_length_(t_context.size()) { t_context += label + " "; }
LogContext::~LogContext() { t_context.resize(previous_length_); }

void write(LogLevel level, std::string_view message) {
  if (!enabled(level)) return;
  state().writer.write(level, t_context, message);
}

}  // namespace brainmri::logging
