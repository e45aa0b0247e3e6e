#pragma once
// How far a long loop is, for a person watching it: on a terminal a bar redrawn in place (at most
// ten times a second) with the count, the rate and the time left; otherwise (a Slurm log, a pipe)
// a line every few seconds, so that a 12-hour job's log shows where it is without a line per step.
// The meter decides when and what to show; the caller's sink decides where it goes. Used by the
// trainer (each epoch's images) and brainmri-prep (the images it packs).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "brainmri/common/enum_names.hpp"

namespace brainmri {

// auto: a bar for a process alone on a terminal (stderr is a TTY and no MPI or Slurm launcher
// started it), lines otherwise.
enum class ProgressStyle { Auto, Bar, Lines, None };

// "1:02:03", "4:05", "0:07".
std::string format_duration(double seconds);

class ProgressMeter {
 public:
  // `in_place`: a bar to redraw over the previous one (a terminal); else a line to print.
  using Sink = std::function<void(const std::string& text, bool in_place)>;
  ProgressMeter(std::string label, std::int64_t total, std::string unit, ProgressStyle style, double line_seconds,
                Sink sink, std::int64_t done = 0);
  // Counts `count` more (cheap: it looks at the clock, and shows something only when due).
  void advance(std::int64_t count);
  // A bar is cleared (the caller's next line takes its place); lines print nothing more.
  void finish();
  ProgressStyle style() const { return style_; }
  std::string text() const;  // what it would show now

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  std::int64_t total_;
  std::string unit_;
  ProgressStyle style_;
  double line_seconds_;
  Sink sink_;
  std::int64_t start_done_, done_;
  Clock::time_point started_, last_shown_;
  bool shown_ = false;
};

}  // namespace brainmri

namespace brainmri {
template <>
struct EnumNames<ProgressStyle> {
  static constexpr std::string_view what = "progress";
  static constexpr std::array names = {std::pair{ProgressStyle::Auto, std::string_view("auto")},
                                       std::pair{ProgressStyle::Bar, std::string_view("bar")},
                                       std::pair{ProgressStyle::Lines, std::string_view("lines")},
                                       std::pair{ProgressStyle::None, std::string_view("none")}};
};
}  // namespace brainmri
