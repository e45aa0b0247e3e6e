#include "brainmri/common/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace brainmri {
namespace {

// Started by mpirun, srun or another launcher: several processes share the terminal, and a bar
// redrawn by each would garble it.
bool launched_with_others() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_ID"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

std::string with_thousands(std::int64_t value) {
  const auto digits = std::to_string(value);
  std::string text;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') text += ',';
    text += digits[i];
  }
  return text;
}

}  // namespace

std::string format_duration(double seconds) {
  const auto total = static_cast<std::int64_t>(std::llround(std::max(0.0, seconds)));
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof(text), "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  } else {
    std::snprintf(text, sizeof(text), "%lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return text;
}

ProgressMeter::ProgressMeter(std::string label, std::int64_t total, std::string unit, ProgressStyle style,
                             double line_seconds, Sink sink, std::int64_t done)
    : label_(std::move(label)),
      total_(std::max<std::int64_t>(total, 1)),
      unit_(std::move(unit)),
      style_(style),
      line_seconds_(line_seconds),
      sink_(std::move(sink)),
      start_done_(done),
      done_(done),
      started_(Clock::now()),
      last_shown_(started_) {
  if (style_ == ProgressStyle::Auto) {
    style_ = ::isatty(STDERR_FILENO) && !launched_with_others() ? ProgressStyle::Bar : ProgressStyle::Lines;
  }
}

std::string ProgressMeter::text() const {
  const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  const double rate = seconds > 0 ? static_cast<double>(done_ - start_done_) / seconds : 0;
  const double fraction = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
  std::string shown = label_ + " ";
  if (style_ == ProgressStyle::Bar) {
    constexpr std::size_t kWidth = 24;
    const auto filled = static_cast<std::size_t>(std::clamp(fraction, 0.0, 1.0) * kWidth);
    shown += '[';
    shown.append(filled, '#');
    shown.append(kWidth - filled, '.');
    shown += "] ";
  }
  char numbers[160];
  std::snprintf(numbers, sizeof(numbers), "%s/%s %s (%.0f%%), %.0f %s/s, %s left", with_thousands(done_).c_str(),
                with_thousands(total_).c_str(), unit_.c_str(), 100 * fraction, rate, unit_.c_str(),
                rate > 0 ? format_duration(static_cast<double>(total_ - done_) / rate).c_str() : "?");
  return shown + numbers;
}

void ProgressMeter::advance(std::int64_t count) {
  done_ += count;
  if (style_ == ProgressStyle::None || done_ >= total_) return;
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_shown_).count();
  if (since < (style_ == ProgressStyle::Bar ? 0.1 : line_seconds_)) return;
  last_shown_ = now;
  shown_ = true;
  sink_(text(), style_ == ProgressStyle::Bar);
}

void ProgressMeter::finish() {
  if (style_ == ProgressStyle::Bar && shown_) sink_("", true);
  shown_ = false;
}

}  // namespace brainmri
