#pragma once
// Packs discovered images into stratified HDF5 shards plus manifest.json, atomically.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "brainmri/common/progress.hpp"
#include "brainmri/data/manifest.hpp"
#include "brainmri/imaging/preprocess.hpp"
#include "discovery.hpp"

namespace brainmri::prep {

// Raised when packing cannot produce a correct dataset; the temporary output is already removed.
class PackError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PackOptions {
  std::filesystem::path output;
  bool force = false;
  DiscoveryOptions discovery;
  imaging::PreprocessOptions preprocess;  // preprocess.output decides the stored dtype
  int shard_count = 0;                    // 0: sized from shard_target_bytes
  std::size_t shard_target_bytes = 64u << 20;
  int threads = 0;  // 0: all cores
  int compression_level = 4;
  int near_duplicate_bits = 2;  // chosen from the real data: docs/dataset-format.md
  int fold_count = 0;           // 0: no fold assignment
  std::uint64_t seed = 0;
  std::string held_out_split;  // empty: none
  data::HoldoutPolicy holdout_policy = data::HoldoutPolicy::SplitTest;
  bool strict = false;
  std::vector<std::string> command_line;
  std::function<void(const std::string&)> progress;  // receives occasional status lines
  // The images packed so far (common/progress.hpp): a bar on a terminal, else a line every
  // progress_seconds through `progress`; none without `progress`.
  ProgressStyle progress_style = ProgressStyle::Auto;
  double progress_seconds = 10;
};

// Returns the manifest that was written. `cancel` is polled; when it becomes true the run stops,
// removes its temporary output and throws PackError.
data::Manifest pack_dataset(const PackOptions& options, const std::atomic<bool>* cancel = nullptr);

// Where a run for `output` builds its result before the final rename.
std::filesystem::path temporary_output_path(const std::filesystem::path& output);

}  // namespace brainmri::prep
