#pragma once
// Inside src/metrics only: the check that paired inputs (two score vectors, labels and scores) are
// of one length, with the error every metric gives.

#include <cstddef>
#include <stdexcept>
#include <string>

namespace brainmri::metrics {

inline void require_same_size(std::size_t a, std::size_t b, const char* what) {
  if (a != b) {
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(a) + " values against " + std::to_string(b));
  }
}

}  // namespace brainmri::metrics
