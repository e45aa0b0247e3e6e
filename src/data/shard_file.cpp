#include "brainmri/data/shard_file.hpp"

#include "brainmri/data/dataset_format.hpp"

namespace brainmri::data {

ShardHeader read_shard_header(hid_t file) {
  ShardHeader h;
  h.format_version = static_cast<int>(hdf5::read_int_attribute(file, format::kAttrFormatVersion));
  h.class_names = hdf5::read_string_list_attribute(file, format::kAttrClassNames);
  h.image_size = static_cast<int>(hdf5::read_int_attribute(file, format::kAttrImageSize));
  h.channels = static_cast<int>(hdf5::read_int_attribute(file, format::kAttrChannels));
  h.dtype = hdf5::read_string_attribute(file, format::kAttrDtype);
  h.normalization_scale = hdf5::read_double_attribute(file, format::kAttrScale);
  h.normalization_offset = hdf5::read_double_attribute(file, format::kAttrOffset);
  h.tool_version = hdf5::read_string_attribute(file, format::kAttrToolVersion);
  h.shard_index = static_cast<int>(hdf5::read_int_attribute(file, format::kAttrShardIndex));
  h.shard_count = static_cast<int>(hdf5::read_int_attribute(file, format::kAttrShardCount));
  h.first_sample_id = hdf5::read_int_attribute(file, format::kAttrFirstSampleId);
  return h;
}

ShardColumns read_shard_columns(hid_t file) {
  ShardColumns c;
  c.labels = hdf5::read_vector<std::int32_t>(file, format::kLabels);
  c.sample_ids = hdf5::read_vector<std::int64_t>(file, format::kSampleIds);
  c.source_paths = hdf5::read_strings(file, format::kSourcePaths);
  c.source_roots = hdf5::read_vector<std::int32_t>(file, format::kSourceRoots);
  c.source_split = hdf5::read_strings(file, format::kSourceSplit);
  c.content_hash = hdf5::read_fixed_strings(file, format::kContentHash);
  c.phash = hdf5::read_vector<std::uint64_t>(file, format::kPerceptualHash);
  c.colour_discarded = hdf5::read_vector<std::uint8_t>(file, format::kColourDiscarded);
  const std::size_t n = c.labels.size();
  const bool consistent = c.sample_ids.size() == n && c.source_paths.size() == n && c.source_roots.size() == n &&
                          c.source_split.size() == n && c.content_hash.size() == n && c.phash.size() == n &&
                          c.colour_discarded.size() == n;
  if (!consistent) throw hdf5::Hdf5Error("per-sample columns differ in length");
  return c;
}

}  // namespace brainmri::data
