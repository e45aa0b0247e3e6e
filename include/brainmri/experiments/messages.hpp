#pragma once
// Where an experiment's messages go. Several ranks share a terminal, so each message is written
// whole, in one call.

#include <functional>
#include <string>

namespace brainmri::experiments {

struct Messages {
  std::function<void(const std::string&)> result;    // summaries and tables (stdout)
  std::function<void(const std::string&)> progress;  // job and epoch lines, errors (stderr)
  static Messages standard();
  static Messages silent();
};

}  // namespace brainmri::experiments
