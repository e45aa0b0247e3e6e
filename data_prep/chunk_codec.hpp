#pragma once
// Encodes one HDF5 chunk exactly as HDF5's shuffle + deflate filter pipeline would, so worker
// threads can compress in parallel and the writer stores the result with H5Dwrite_chunk.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace brainmri::prep {

std::vector<std::uint8_t> shuffle_bytes(std::span<const std::uint8_t> data, std::size_t element_size);
std::vector<std::uint8_t> encode_chunk(std::span<const std::uint8_t> raw, std::size_t element_size, int deflate_level);
// The inverse, for tests: inflate, then unshuffle.
std::vector<std::uint8_t> decode_chunk(std::span<const std::uint8_t> encoded, std::size_t raw_size,
                                       std::size_t element_size);

}  // namespace brainmri::prep
