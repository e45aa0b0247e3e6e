#include "brainmri/data/shard_file.hpp"

#include <algorithm>

#include "brainmri/common/atomic_file.hpp"
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
  const auto format_version = hdf5::read_int_attribute(file, format::kAttrFormatVersion);
  ShardColumns c;
  c.labels = hdf5::read_vector<std::int32_t>(file, format::kLabels);
  c.sample_ids = hdf5::read_vector<std::int64_t>(file, format::kSampleIds);
  c.source_paths = hdf5::read_strings(file, format::kSourcePaths);
  c.source_roots = hdf5::read_vector<std::int32_t>(file, format::kSourceRoots);
  c.source_split = hdf5::read_strings(file, format::kSourceSplit);
  c.content_hash = hdf5::read_fixed_strings(file, format::kContentHash);
  c.phash = hdf5::read_vector<std::uint64_t>(file, format::kPerceptualHash);
  c.colour_discarded = hdf5::read_vector<std::uint8_t>(file, format::kColourDiscarded);
  if (format_version >= 2) {
    c.original_width = hdf5::read_vector<std::int32_t>(file, format::kOriginalWidth);
    c.original_height = hdf5::read_vector<std::int32_t>(file, format::kOriginalHeight);
  }
  const std::size_t n = c.labels.size();
  const std::size_t sizes = format_version >= 2 ? n : 0;
  const bool consistent = c.sample_ids.size() == n && c.source_paths.size() == n && c.source_roots.size() == n &&
                          c.source_split.size() == n && c.content_hash.size() == n && c.phash.size() == n &&
                          c.colour_discarded.size() == n && c.original_width.size() == sizes &&
                          c.original_height.size() == sizes;
  if (!consistent) throw hdf5::Hdf5Error("per-sample columns differ in length");
  return c;
}

ShardWriter::ShardWriter(std::filesystem::path path, const ShardGeometry& geometry, std::size_t capacity,
                         int deflate_level)
    : path_(std::move(path)), geometry_(geometry), file_(hdf5::create_file(path_)), capacity_(capacity) {
  const auto side = static_cast<hsize_t>(geometry.image_size);
  const hsize_t extent[4] = {capacity_, side, side, static_cast<hsize_t>(geometry.channels)};
  const hsize_t max_extent[4] = {H5S_UNLIMITED, extent[1], extent[2], extent[3]};
  const hsize_t chunk[4] = {1, extent[1], extent[2], extent[3]};
  hdf5::Handle space(hdf5::check(H5Screate_simple(4, extent, max_extent), "create image dataspace"), H5Sclose);
  hdf5::Handle properties(hdf5::check(H5Pcreate(H5P_DATASET_CREATE), "create dataset properties"), H5Pclose);
  hdf5::check(H5Pset_chunk(properties, 4, chunk), "set image chunking");
  hdf5::check(H5Pset_shuffle(properties), "enable shuffle filter");
  hdf5::check(H5Pset_deflate(properties, static_cast<unsigned>(deflate_level)), "enable deflate filter");
  const hid_t stored_type = geometry.float32 ? H5T_IEEE_F32LE : H5T_STD_U8LE;
  images_ = hdf5::Handle(
      hdf5::check(H5Dcreate2(file_, format::kImages, stored_type, space, H5P_DEFAULT, properties, H5P_DEFAULT),
                  "create images dataset in " + path_.string()),
      H5Dclose);
}

void ShardWriter::grow_to(hsize_t rows) {
  if (rows <= capacity_) return;
  capacity_ = std::max(rows, capacity_ * 2);
  const auto side = static_cast<hsize_t>(geometry_.image_size);
  const hsize_t extent[4] = {capacity_, side, side, static_cast<hsize_t>(geometry_.channels)};
  hdf5::check(H5Dset_extent(images_, extent), "grow images dataset of " + path_.string());
}

void ShardWriter::append_encoded(std::span<const std::uint8_t> chunk) {
  grow_to(rows_ + 1);
  const hsize_t offset[4] = {rows_, 0, 0, 0};
  hdf5::check(H5Dwrite_chunk(images_, H5P_DEFAULT, 0, offset, chunk.size(), chunk.data()),
              "write image " + std::to_string(rows_) + " to " + path_.string());
  ++rows_;
}

void ShardWriter::append_pixels(const void* pixels) {
  grow_to(rows_ + 1);
  const auto side = static_cast<hsize_t>(geometry_.image_size);
  const hsize_t start[4] = {rows_, 0, 0, 0};
  const hsize_t count[4] = {1, side, side, static_cast<hsize_t>(geometry_.channels)};
  hdf5::Handle file_space(hdf5::check(H5Dget_space(images_), "get image dataspace"), H5Sclose);
  hdf5::check(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr), "select image row");
  hdf5::Handle memory_space(hdf5::check(H5Screate_simple(4, count, nullptr), "create memory dataspace"), H5Sclose);
  hdf5::check(H5Dwrite(images_, geometry_.float32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, memory_space, file_space,
                       H5P_DEFAULT, pixels),
              "write image " + std::to_string(rows_) + " to " + path_.string());
  ++rows_;
}

void ShardWriter::finish(const ShardHeader& header, const ShardColumns& c) {
  const std::size_t n = rows();
  const bool consistent = c.labels.size() == n && c.sample_ids.size() == n && c.source_paths.size() == n &&
                          c.source_roots.size() == n && c.source_split.size() == n && c.content_hash.size() == n &&
                          c.phash.size() == n && c.colour_discarded.size() == n && c.original_width.size() == n &&
                          c.original_height.size() == n;
  if (!consistent) throw hdf5::Hdf5Error(path_.string() + ": per-sample columns do not match the image count");
  if (header.format_version != format::kFormatVersion) {
    throw hdf5::Hdf5Error(path_.string() + ": shards are written in format version " +
                          std::to_string(format::kFormatVersion) + " only");
  }
  const auto side = static_cast<hsize_t>(geometry_.image_size);
  const hsize_t extent[4] = {rows_, side, side, static_cast<hsize_t>(geometry_.channels)};
  hdf5::check(H5Dset_extent(images_, extent), "trim images dataset of " + path_.string());
  images_.close();

  hdf5::write_vector(file_, format::kLabels, c.labels);
  hdf5::write_vector(file_, format::kSampleIds, c.sample_ids);
  hdf5::write_strings(file_, format::kSourcePaths, c.source_paths);
  hdf5::write_vector(file_, format::kSourceRoots, c.source_roots);
  hdf5::write_strings(file_, format::kSourceSplit, c.source_split);
  hdf5::write_fixed_strings(file_, format::kContentHash, c.content_hash, format::kContentHashHexLength);
  hdf5::write_vector(file_, format::kPerceptualHash, c.phash);
  hdf5::write_vector(file_, format::kColourDiscarded, c.colour_discarded);
  hdf5::write_vector(file_, format::kOriginalWidth, c.original_width);
  hdf5::write_vector(file_, format::kOriginalHeight, c.original_height);

  hdf5::write_attribute(file_, format::kAttrFormatVersion, std::int64_t{header.format_version});
  hdf5::write_attribute(file_, format::kAttrClassNames, header.class_names);
  hdf5::write_attribute(file_, format::kAttrImageSize, std::int64_t{header.image_size});
  hdf5::write_attribute(file_, format::kAttrChannels, std::int64_t{header.channels});
  hdf5::write_attribute(file_, format::kAttrDtype, header.dtype);
  hdf5::write_attribute(file_, format::kAttrScale, header.normalization_scale);
  hdf5::write_attribute(file_, format::kAttrOffset, header.normalization_offset);
  hdf5::write_attribute(file_, format::kAttrToolVersion, header.tool_version);
  hdf5::write_attribute(file_, format::kAttrShardIndex, std::int64_t{header.shard_index});
  hdf5::write_attribute(file_, format::kAttrShardCount, std::int64_t{header.shard_count});
  hdf5::write_attribute(file_, format::kAttrFirstSampleId, header.first_sample_id);
  hdf5::check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + path_.string());
  file_.close();
  fsync_path(path_);
}

}  // namespace brainmri::data
