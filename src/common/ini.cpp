#include "brainmri/common/ini.hpp"

#include <fstream>
#include <stdexcept>

namespace brainmri {
namespace {

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

std::vector<IniEntry> parse_ini(std::istream& in, const std::string& source) {
  std::vector<IniEntry> entries;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const auto text = trim(line);
    if (text.empty() || text.front() == '#' || text.front() == ';') continue;
    const auto equals = text.find('=');
    const auto where = source + ":" + std::to_string(number) + ": ";
    if (text.front() == '[')
      throw std::invalid_argument(where + "sections ('" + text + "') are not used in brainmri configs");
    if (equals == std::string::npos) throw std::invalid_argument(where + "'" + text + "' is not KEY = VALUE");
    auto key = trim(text.substr(0, equals));
    if (key.empty()) throw std::invalid_argument(where + "'" + text + "' has no key before '='");
    entries.push_back({std::move(key), trim(text.substr(equals + 1)), number});
  }
  return entries;
}

std::vector<IniEntry> read_ini(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  return parse_ini(in, file.string());
}

}  // namespace brainmri
