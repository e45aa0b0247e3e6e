#pragma once
// One shard file: its header attributes, its per-sample columns and its images. The writer is
// used by brainmri-prep; the readers by the trainer, verify and audit.

#include <cstdint>
#include <filesystem>
#include <span>
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
  // The decoded source image's size before resizing; empty when read from a version-1 shard.
  std::vector<std::int32_t> original_width;
  std::vector<std::int32_t> original_height;
};

ShardHeader read_shard_header(hid_t file);
// Throws hdf5::Hdf5Error when a column is missing or the columns differ in length.
// Columns added after the shard's format version (its header says which) are left empty.
ShardColumns read_shard_columns(hid_t file);

struct ShardGeometry {
  int image_size = 0;
  int channels = 0;
  bool float32 = false;
  std::size_t element_size() const { return float32 ? 4 : 1; }
  std::size_t bytes_per_image() const {
    return static_cast<std::size_t>(image_size) * image_size * channels * element_size();
  }
};

// Writes one shard: images row by row, then the columns and the header. The image dataset is
// chunked one image per chunk with the shuffle and deflate filters.
class ShardWriter {
 public:
  ShardWriter(std::filesystem::path path, const ShardGeometry& geometry, std::size_t capacity, int deflate_level);

  // A chunk already shuffled and deflated exactly as HDF5's filters would do it, so callers can
  // compress in parallel threads; it is stored with H5Dwrite_chunk.
  void append_encoded(std::span<const std::uint8_t> chunk);
  // Raw pixels [H, W, C] of the geometry's type; HDF5 runs the filters itself.
  void append_pixels(const void* pixels);
  std::size_t rows() const { return static_cast<std::size_t>(rows_); }

  // Trims the images to rows(), writes `columns` (rows() entries each) and `header`, then
  // flushes, closes and fsyncs the file.
  void finish(const ShardHeader& header, const ShardColumns& columns);

 private:
  void grow_to(hsize_t rows);

  std::filesystem::path path_;
  ShardGeometry geometry_;
  hdf5::Handle file_;
  hdf5::Handle images_;
  hsize_t rows_ = 0;
  hsize_t capacity_ = 0;
};

}  // namespace brainmri::data
