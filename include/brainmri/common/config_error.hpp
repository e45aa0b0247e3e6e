#pragma once
// A configuration value that cannot be used. It names the option (its key in a config file), so
// that a front end can point at the flag or line that set it; the library never names a flag.

#include <stdexcept>
#include <string>

namespace brainmri {

class ConfigError : public std::invalid_argument {
 public:
  // what(): "OPTION: PROBLEM" ("lr: must be > 0, got -1").
  ConfigError(std::string option, const std::string& problem)
      : std::invalid_argument(option + ": " + problem), option_(std::move(option)) {}
  const std::string& option() const { return option_; }

 private:
  std::string option_;
};

}  // namespace brainmri
