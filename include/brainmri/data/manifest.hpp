#pragma once
// manifest.json of a packed dataset: what was packed, from where, into which shards, which
// samples duplicate each other, and the leakage-free fold assignment. Written last, so a
// directory without it is not a finished dataset.

#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "brainmri/data/folds.hpp"

namespace brainmri::data {

class ManifestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ShardEntry {
  std::string file;
  std::int64_t first_sample_id = 0;
  std::int64_t sample_count = 0;
  std::int64_t bytes = 0;
  std::string sha256;
  std::vector<std::int64_t> class_counts;  // indexed like Manifest::class_names
};

struct RejectedInput {
  std::string path;  // as found on disk
  std::string reason;
};

struct DuplicateGroup {
  std::vector<std::int64_t> members;  // sample ids, ascending
  bool exact = false;                 // every member has the same content hash
  bool label_conflict = false;        // members carry different labels
};

struct FoldAssignment {
  int fold_count = 0;  // 0: no folds were requested
  std::uint64_t seed = 0;
  std::string held_out_split;  // empty: none
  // Manifests written before the policy existed excluded the copies (DropTrain).
  HoldoutPolicy holdout_policy = HoldoutPolicy::SplitTest;
  std::vector<int> fold_of_sample;  // by sample id: 0..k-1, kFoldHeldOut or kFoldExcludedLeak
};

struct Manifest {
  int format_version = 0;
  std::string tool_version;
  std::vector<std::string> command_line;
  std::vector<std::string> roots;
  std::vector<std::string> class_names;
  std::vector<std::string> split_names;
  int image_size = 0;
  int channels = 0;
  std::string dtype;  // "uint8" or "float32"
  double normalization_scale = 1.0;
  double normalization_offset = 0.0;
  std::string resize_mode;
  int compression_level = 0;
  std::int64_t sample_count = 0;
  std::map<std::string, std::map<std::string, std::int64_t>> counts_by_split_and_class;
  std::vector<ShardEntry> shards;
  int near_duplicate_bits = 0;
  std::vector<DuplicateGroup> duplicate_groups;
  FoldAssignment folds;
  std::vector<RejectedInput> rejected;
};

std::string serialize_manifest(const Manifest& manifest);
// Parses and checks the structure; `source` names the file in error messages.
Manifest parse_manifest(std::string_view text, const std::string& source);
Manifest read_manifest(const std::filesystem::path& dataset_dir);

}  // namespace brainmri::data
