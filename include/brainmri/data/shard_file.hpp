#pragma once
// Reads the header and the per-sample columns of one shard (everything but the pixels).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "brainmri/data/hdf5.hpp"

namespace brainmri::data {

struct ShardHeader {
  int format_version = 0;
  std::vector<std::string> class_names;
  int image_size = 0;
  int channels = 0;
  std::string dtype;
  double normalization_scale = 1.0;
  double normalization_offset = 0.0;
  std::string tool_version;
  int shard_index = 0;
  int shard_count = 0;
  std::int64_t first_sample_id = 0;
};

struct ShardColumns {
  std::vector<std::int32_t> labels;
  std::vector<std::int64_t> sample_ids;
  std::vector<std::string> source_paths;
  std::vector<std::int32_t> source_roots;
  std::vector<std::string> source_split;
  std::vector<std::string> content_hash;
  std::vector<std::uint64_t> phash;
  std::vector<std::uint8_t> colour_discarded;
};

ShardHeader read_shard_header(hid_t file);
// Throws hdf5::Hdf5Error when a column is missing or the columns differ in length.
ShardColumns read_shard_columns(hid_t file);

}  // namespace brainmri::data
