#pragma once
// Writes a small packed dataset with known pixels without brainmri-prep (and so without
// OpenCV), for tests of the format and of the readers on machines built without the packer.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/manifest.hpp"
#include "brainmri/data/shard_file.hpp"

namespace brainmri::testing {

// Sample i has label i % classes, every pixel equal to i % 251 (uint8) or (i % 251) / 250 (float),
// fold i % folds, split "Training", and lands in shard i * shards / count.
inline data::Manifest write_synthetic_dataset(const std::filesystem::path& dir, int count, int classes, int size,
                                              int channels, bool float32, int shards, int folds) {
  std::filesystem::create_directories(dir);
  data::Manifest m;
  m.format_version = data::format::kFormatVersion;
  m.tool_version = "synthetic test dataset";
  m.command_line = {"write_synthetic_dataset"};
  m.roots = {"/synthetic"};
  for (int c = 0; c < classes; ++c) m.class_names.push_back("class" + std::to_string(c));
  m.split_names = {"Training"};
  m.image_size = size;
  m.channels = channels;
  m.dtype = float32 ? "float32" : "uint8";
  m.normalization_scale = float32 ? 1.0 : 1.0 / 255.0;
  m.resize_mode = "stretch";
  m.compression_level = 4;
  m.sample_count = count;
  const data::ShardGeometry geometry{size, channels, float32};
  int next = 0;
  for (int s = 0; s < shards; ++s) {
    const int end = (s + 1) * count / shards;
    const auto file = "shard-" + std::to_string(s) + ".h5";
    data::ShardWriter writer(dir / file, geometry, 1, 4);  // capacity 1: exercises growing
    data::ShardColumns columns;
    data::ShardEntry entry{file, next, end - next, 0, "", std::vector<std::int64_t>(classes, 0)};
    for (; next < end; ++next) {
      const std::size_t values = static_cast<std::size_t>(size) * size * channels;
      if (float32) {
        std::vector<float> pixels(values, static_cast<float>(next % 251) / 250.0f);
        writer.append_pixels(pixels.data());
      } else {
        std::vector<std::uint8_t> pixels(values, static_cast<std::uint8_t>(next % 251));
        writer.append_pixels(pixels.data());
      }
      columns.labels.push_back(next % classes);
      columns.sample_ids.push_back(next);
      columns.source_paths.push_back("Training/class" + std::to_string(next % classes) + "/" + std::to_string(next) +
                                     ".png");
      columns.source_roots.push_back(0);
      columns.source_split.push_back("Training");
      columns.content_hash.push_back(std::string(64, static_cast<char>('a' + next % 6)));
      columns.phash.push_back(static_cast<std::uint64_t>(next) * 0x9E3779B97F4A7C15ULL);
      columns.colour_discarded.push_back(0);
      columns.original_width.push_back(next % 2 ? 512 : 256);
      columns.original_height.push_back(next % 2 ? 512 : 240);
      ++entry.class_counts[static_cast<std::size_t>(next % classes)];
      ++m.counts_by_split_and_class["Training"][m.class_names[static_cast<std::size_t>(next % classes)]];
      if (folds > 0) m.folds.fold_of_sample.push_back(next % folds);
    }
    writer.finish({m.format_version, m.class_names, size, channels, m.dtype, m.normalization_scale, 0.0, m.tool_version,
                   s, shards, entry.first_sample_id},
                  columns);
    entry.bytes = static_cast<std::int64_t>(std::filesystem::file_size(dir / file));
    entry.sha256 = std::string(64, '0');  // not checked by the readers; verify would flag it
    m.shards.push_back(entry);
  }
  m.folds.fold_count = folds;
  m.near_duplicate_bits = 2;
  write_file_atomically(dir / data::format::kManifestFile, data::serialize_manifest(m));
  return m;
}

}  // namespace brainmri::testing
