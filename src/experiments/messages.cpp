#include "brainmri/experiments/messages.hpp"

#include <cstdio>

#include "brainmri/common/log.hpp"

namespace brainmri::experiments {
namespace {

void write_line(std::FILE* stream, const std::string& message) {
  const std::string line = message + "\n";
  std::fwrite(line.data(), 1, line.size(), stream);
  std::fflush(stream);
}

}  // namespace

Messages Messages::standard() {
  return {[](const std::string& m) { write_line(stdout, m); }, [](const std::string& m) { logging::info(m); }};
}

Messages Messages::silent() {
  return {[](const std::string&) {}, [](const std::string&) {}};
}

}  // namespace brainmri::experiments
