#pragma once
// Reads a dataset written by brainmri-prep: selection by split and fold, and images as tensors.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "brainmri/data/folds.hpp"
#include "brainmri/data/manifest.hpp"

namespace brainmri::data {

struct Batch {
  torch::Tensor images;      // float32 [n, C, H, W], values in [0, 1]
  torch::Tensor labels;      // int64 [n]
  torch::Tensor sample_ids;  // int64 [n]
};

class ShardedDataset;

// Reads stored pixels by sample id, keeping each shard's HDF5 file open between calls. Not
// thread-safe: a reader thread owns one.
class ShardImageReader {
 public:
  explicit ShardImageReader(const ShardedDataset& dataset);
  ShardImageReader(const ShardImageReader&) = delete;
  ShardImageReader& operator=(const ShardImageReader&) = delete;
  ~ShardImageReader();
  // Pixels as stored: [n, H, W, C], uint8 or float32, in the order of `sample_ids`.
  torch::Tensor read(std::span<const std::int64_t> sample_ids);

 private:
  struct OpenShard;
  const ShardedDataset& dataset_;
  std::vector<std::unique_ptr<OpenShard>> shards_;
};

struct ImageSize {
  int width = 0;
  int height = 0;
};

class ShardedDataset {
 public:
  // Reads the manifest and the per-sample columns of every shard; pixels are read on demand.
  // `folds_by` other than DuplicateGroups re-deals the folds by that rule (data/folds.hpp); the
  // held-out split and the images excluded for it stay as packed.
  explicit ShardedDataset(std::filesystem::path directory, FoldGrouping folds_by = FoldGrouping::DuplicateGroups);

  const Manifest& manifest() const { return manifest_; }
  const std::filesystem::path& directory() const { return directory_; }
  std::int64_t size() const { return manifest_.sample_count; }
  int image_size() const { return manifest_.image_size; }
  int channels() const { return manifest_.channels; }
  const std::vector<std::string>& class_names() const { return manifest_.class_names; }

  int label(std::int64_t sample_id) const { return labels_.at(static_cast<std::size_t>(sample_id)); }
  const std::string& split(std::int64_t sample_id) const { return splits_.at(static_cast<std::size_t>(sample_id)); }
  const std::string& source_path(std::int64_t sample_id) const {
    return paths_.at(static_cast<std::size_t>(sample_id));
  }
  // The packer converted a colour image to grayscale (its colour was lost).
  bool colour_discarded(std::int64_t sample_id) const {
    return colour_discarded_.at(static_cast<std::size_t>(sample_id)) != 0;
  }
  // The source image's width and height before the packer resized it; nullopt for a dataset
  // packed in format version 1, which did not record it.
  std::optional<ImageSize> original_size(std::int64_t sample_id) const {
    if (original_sizes_.empty()) return std::nullopt;
    return original_sizes_.at(static_cast<std::size_t>(sample_id));
  }
  // The sample's fold, format::kFoldHeldOut or format::kFoldExcludedLeak; throws without folds.
  int fold(std::int64_t sample_id) const;
  FoldGrouping folds_by() const { return folds_by_; }

  // By sample id: the images of `test_split` with an exact or near copy among the images a run
  // may train on (data::contaminated_held_out).
  std::vector<bool> contaminated(const std::string& test_split) const {
    return contaminated_held_out(manifest_, splits_, test_split);
  }

  std::vector<std::int64_t> all() const;
  std::vector<std::int64_t> select_split(std::string_view split) const;
  // Samples whose fold is in `folds` (held-out and excluded samples never match).
  std::vector<std::int64_t> select_folds(std::span<const int> folds) const;
  // Cross-validation: every fold but `validation_fold` to train on, and that fold to validate.
  std::vector<std::int64_t> training_samples_for_fold(int validation_fold) const;
  std::vector<std::int64_t> validation_samples_for_fold(int validation_fold) const;

  // Pixels as stored: [n, H, W, C], uint8 or float32.
  torch::Tensor load_stored(std::span<const std::int64_t> sample_ids) const;
  // Images normalized to [0, 1] in [n, C, H, W] with their labels and ids.
  Batch load(std::span<const std::int64_t> sample_ids) const;

 private:
  friend class ShardImageReader;
  std::size_t shard_of(std::int64_t sample_id) const;
  void require_folds() const;

  std::filesystem::path directory_;
  FoldGrouping folds_by_;
  Manifest manifest_;
  std::vector<int> labels_;
  std::vector<std::string> splits_;
  std::vector<std::string> paths_;
  std::vector<std::uint8_t> colour_discarded_;
  std::vector<ImageSize> original_sizes_;  // empty when any shard predates format version 2
};

}  // namespace brainmri::data
