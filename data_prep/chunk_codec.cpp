#include "chunk_codec.hpp"

#include <zlib.h>

#include <stdexcept>
#include <string>

namespace brainmri::prep {

std::vector<std::uint8_t> shuffle_bytes(std::span<const std::uint8_t> data, std::size_t element_size) {
  std::vector<std::uint8_t> out(data.begin(), data.end());
  // HDF5's shuffle leaves single-byte elements and any trailing partial element untouched.
  if (element_size <= 1) return out;
  const std::size_t count = data.size() / element_size;
  for (std::size_t byte = 0; byte < element_size; ++byte) {
    for (std::size_t i = 0; i < count; ++i) out[byte * count + i] = data[i * element_size + byte];
  }
  return out;
}

std::vector<std::uint8_t> encode_chunk(std::span<const std::uint8_t> raw, std::size_t element_size,
                                       int deflate_level) {
  const auto shuffled = shuffle_bytes(raw, element_size);
  uLongf capacity = compressBound(static_cast<uLong>(shuffled.size()));
  std::vector<std::uint8_t> out(capacity);
  const int status = compress2(out.data(), &capacity, shuffled.data(), static_cast<uLong>(shuffled.size()),
                               deflate_level);
  if (status != Z_OK) throw std::runtime_error("zlib compress2 failed with status " + std::to_string(status));
  out.resize(capacity);
  return out;
}

std::vector<std::uint8_t> decode_chunk(std::span<const std::uint8_t> encoded, std::size_t raw_size,
                                       std::size_t element_size) {
  std::vector<std::uint8_t> shuffled(raw_size);
  uLongf size = static_cast<uLongf>(raw_size);
  const int status = uncompress(shuffled.data(), &size, encoded.data(), static_cast<uLong>(encoded.size()));
  if (status != Z_OK || size != raw_size) throw std::runtime_error("zlib uncompress failed");
  if (element_size <= 1) return shuffled;
  std::vector<std::uint8_t> out(shuffled);
  const std::size_t count = raw_size / element_size;
  for (std::size_t byte = 0; byte < element_size; ++byte) {
    for (std::size_t i = 0; i < count; ++i) out[i * element_size + byte] = shuffled[byte * count + i];
  }
  return out;
}

}  // namespace brainmri::prep
