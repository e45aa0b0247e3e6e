#include "brainmri/common/csv.hpp"

#include <cmath>
#include <stdexcept>

#include "brainmri/common/option_table.hpp"

namespace brainmri {

CsvTable::CsvTable(const std::vector<std::string>& header) : columns_(header.size()) { row(header); }

CsvTable& CsvTable::row(const std::vector<std::string>& fields) {
  if (fields.size() != columns_) {
    throw std::invalid_argument("a CSV row has " + std::to_string(fields.size()) + " fields, the header " +
                                std::to_string(columns_));
  }
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) text_ += ',';
    text_ += field(fields[i]);
  }
  text_ += '\n';
  return *this;
}

std::string CsvTable::field(std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(value);
  std::string quoted = "\"";
  for (const char c : value) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string CsvTable::number(double value) { return std::isnan(value) ? "" : option_text::format(value); }

}  // namespace brainmri
