#pragma once
// The one CSV writer (RFC 4180): a field holding a comma, a double quote, CR or LF is quoted and
// its quotes doubled, so a class name or a searched value with a comma cannot break a table.
// Numbers are written at full precision (the shortest text that reads back as the same double).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace brainmri {

class CsvTable {
 public:
  explicit CsvTable(const std::vector<std::string>& header);
  // Throws std::invalid_argument when the row has another number of fields than the header.
  CsvTable& row(const std::vector<std::string>& fields);
  // The table, header first, each row ending in "\n".
  const std::string& text() const { return text_; }

  static std::string field(std::string_view value);
  static std::string number(double value);  // "" for NaN: an empty cell, not a string "nan"

 private:
  std::size_t columns_;
  std::string text_;
};

}  // namespace brainmri
