#pragma once
// The one reader of brainmri's config files: "key = value" lines (config.ini, best_config.ini,
// configs/*.ini). '#' or ';' starts a comment line; blank lines are skipped; keys and values are
// trimmed; a key may repeat (repeated options such as `stage`). Sections are not used.

#include <filesystem>
#include <istream>
#include <string>
#include <vector>

namespace brainmri {

struct IniEntry {
  std::string key;
  std::string value;
  int line = 0;  // 1-based, for error messages
};

// Throws std::invalid_argument "SOURCE:LINE: ..." for a line that is not KEY = VALUE.
std::vector<IniEntry> parse_ini(std::istream& in, const std::string& source);
// Throws std::runtime_error when the file cannot be read, std::invalid_argument as above.
std::vector<IniEntry> read_ini(const std::filesystem::path& file);

}  // namespace brainmri
