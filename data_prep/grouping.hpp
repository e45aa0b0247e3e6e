#pragma once
// The pure, testable decisions of packing: which shard a sample goes to and which samples are
// duplicates of each other (the folds are dealt by brainmri/data/folds.hpp, which runs share).

#include <cstdint>
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

}  // namespace brainmri::prep
