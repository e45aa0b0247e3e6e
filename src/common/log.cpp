#include "brainmri/common/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace brainmri::logging {
namespace {

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

struct State {
  std::mutex mutex;  // guards the logger's replacement, not its lines (spdlog's _mt sinks do)
  std::shared_ptr<spdlog::logger> logger;
  std::atomic<LogLevel> level{LogLevel::Info};
};

// The level padded to 7 characters ("warning"), so that messages line up.
std::string pattern_for(int rank, int world_size) {
  std::string pattern = "%Y-%m-%d %H:%M:%S.%e %^%-7l%$ ";
  if (world_size > 1) pattern += "[rank " + std::to_string(rank) + "/" + std::to_string(world_size) + "] ";
  return pattern + "%v";
}

thread_local std::string t_context;  // the labels of this thread's LogContexts, each followed by a space

State& state() {
  static State instance;
  static std::once_flag created;
  std::call_once(created, [] {
    // Colours only on a terminal; each line one write, flushed, so ranks that share a Slurm log
    // never interleave within a line and a killed job loses no line.
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
    instance.logger = std::make_shared<spdlog::logger>("brainmri", std::move(sink));
    instance.logger->set_pattern(pattern_for(0, 1));
    instance.logger->set_level(spdlog::level::trace);  // filtered here, by `level`
    instance.logger->flush_on(spdlog::level::trace);
    try {
      instance.level = default_level();
    } catch (const std::invalid_argument& e) {
      instance.logger->warn("{}; logging at info", e.what());
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

void set_rank(int rank, int world_size) {
  auto& s = state();
  const std::lock_guard lock(s.mutex);
  s.logger->set_pattern(pattern_for(rank, world_size));
}

bool enabled(LogLevel level) { return level != LogLevel::Off && level >= state().level; }

LogContext::LogContext(const std::string& label) : previous_length_(t_context.size()) { t_context += label + " "; }
LogContext::~LogContext() { t_context.resize(previous_length_); }

void write(LogLevel level, std::string_view message) {
  if (!enabled(level)) return;
  state().logger->log(to_spdlog(level), "{}{}", t_context, message);
}

}  // namespace brainmri::logging
