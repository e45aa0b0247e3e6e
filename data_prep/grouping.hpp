#pragma once
// The pure, testable decisions of packing: which shard a sample goes to, which samples are
// duplicates of each other, and which cross-validation fold each sample belongs to.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace brainmri::prep {

// Deals the samples of each class round-robin over the shards, continuing the rotation from one
// class to the next: per class, and in total, shard sizes differ by at most one.
// Returns, per shard, the indices into `labels` in ascending order.
std::vector<std::vector<std::size_t>> plan_stratified_shards(std::span<const int> labels, int shard_count);

// About `target_bytes` of uncompressed pixels per shard, at least one shard.
int default_shard_count(std::size_t sample_count, std::size_t bytes_per_sample, std::size_t target_bytes);

struct DuplicateGroups {
  std::vector<int> group_of_sample;               // group id for every sample (singletons included)
  std::vector<std::vector<std::int64_t>> groups;  // every group, members ascending, ordered by first member
  std::vector<bool> exact;                        // the group's members all share one content hash
};

// Union-find over equal content hashes and perceptual hashes at Hamming distance <= near_bits
// (near_bits < 0 disables near-duplicate matching). Near pairs are found by the pigeonhole
// principle: two 64-bit hashes within d bits agree exactly on at least one of d+1 disjoint bit
// blocks, so only hashes sharing a block value are compared.
DuplicateGroups find_duplicate_groups(std::span<const std::string> content_hashes,
                                      std::span<const std::uint64_t> perceptual_hashes, int near_bits);

struct FoldOptions {
  int fold_count = 5;
  std::uint64_t seed = 0;
  std::optional<int> held_out_split;  // samples of this split are the fixed test set
};

// Stratified group k-fold. No group is split across folds; per class, fold sizes differ by at
// most one whenever the multi-member groups allow it. Held-out samples get kFoldHeldOut; other
// members of a group that touches the held-out split get kFoldExcludedLeak, so no fold trains
// on a copy of a test image.
std::vector<int> assign_group_folds(std::span<const int> labels, std::span<const int> splits,
                                    std::span<const int> group_of_sample, int class_count, const FoldOptions& options);

}  // namespace brainmri::prep
