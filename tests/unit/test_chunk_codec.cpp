#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <random>

#include "chunk_codec.hpp"

using brainmri::prep::decode_chunk;
using brainmri::prep::encode_chunk;
using brainmri::prep::shuffle_bytes;

TEST(ChunkCodec, ShuffleGroupsBytesOfEqualSignificance) {
  const std::vector<std::uint8_t> data = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(shuffle_bytes(data, 4), (std::vector<std::uint8_t>{1, 5, 2, 6, 3, 7, 4, 8}));
  EXPECT_EQ(shuffle_bytes(data, 1), data);
}

TEST(ChunkCodec, RoundTripsBytesAndFloats) {
  std::mt19937 random(7);
  std::vector<std::uint8_t> bytes(128 * 128);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(random() % 256);
  EXPECT_EQ(decode_chunk(encode_chunk(bytes, 1, 4), bytes.size(), 1), bytes);

  std::vector<float> values(64 * 64);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (auto& v : values) v = unit(random);
  std::vector<std::uint8_t> raw(values.size() * 4);
  std::memcpy(raw.data(), values.data(), raw.size());
  const auto encoded = encode_chunk(raw, 4, 9);
  EXPECT_EQ(decode_chunk(encoded, raw.size(), 4), raw);
}

TEST(ChunkCodec, CompressesRedundantData) {
  std::vector<std::uint8_t> flat(128 * 128, 17);
  EXPECT_LT(encode_chunk(flat, 1, 4).size(), flat.size() / 50);
}
