#pragma once
// Numbers in report tables and sentences, written one way everywhere: fixed digits, "n/a" for an
// undefined (NaN) value, and an explicit sign for differences.

#include <cmath>
#include <cstdio>
#include <string>

namespace brainmri::reports {

inline std::string fixed(double value, int digits = 4) {
  if (std::isnan(value)) return "n/a";
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", digits, value);
  return text;
}

inline std::string signed_fixed(double value, int digits = 4) {
  if (std::isnan(value)) return "n/a";
  char text[32];
  std::snprintf(text, sizeof(text), "%+.*f", digits, value);
  return text;
}

}  // namespace brainmri::reports
