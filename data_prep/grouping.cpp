#include "grouping.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <unordered_map>

#include "hashing.hpp"

namespace brainmri::prep {
namespace {

class UnionFind {
 public:
  explicit UnionFind(std::size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), std::size_t{0}); }
  std::size_t find(std::size_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  // The smaller index becomes the root, so group ids do not depend on the order of unions.
  void unite(std::size_t a, std::size_t b) {
    a = find(a);
    b = find(b);
    if (a != b) parent_[std::max(a, b)] = std::min(a, b);
  }

 private:
  std::vector<std::size_t> parent_;
};

}  // namespace

std::vector<std::vector<std::size_t>> plan_stratified_shards(std::span<const int> labels, int shard_count) {
  if (shard_count < 1) throw std::invalid_argument("shard count must be at least 1");
  std::vector<std::vector<std::size_t>> shards(static_cast<std::size_t>(shard_count));
  const int class_count = labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end()) + 1;
  std::size_t next_shard = 0;
  for (int label = 0; label < class_count; ++label) {
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] != label) continue;
      shards[next_shard].push_back(i);
      next_shard = (next_shard + 1) % shards.size();
    }
  }
  for (auto& shard : shards) std::sort(shard.begin(), shard.end());
  return shards;
}

int default_shard_count(std::size_t sample_count, std::size_t bytes_per_sample, std::size_t target_bytes) {
  const std::size_t total = sample_count * bytes_per_sample;
  return static_cast<int>(std::max<std::size_t>(1, (total + target_bytes - 1) / target_bytes));
}

DuplicateGroups find_duplicate_groups(std::span<const std::string> content_hashes,
                                      std::span<const std::uint64_t> perceptual_hashes, int near_bits) {
  const std::size_t n = content_hashes.size();
  if (perceptual_hashes.size() != n) throw std::invalid_argument("hash lists differ in length");
  UnionFind sets(n);

  std::unordered_map<std::string, std::size_t> first_with_hash;
  for (std::size_t i = 0; i < n; ++i) {
    auto [it, inserted] = first_with_hash.emplace(content_hashes[i], i);
    if (!inserted) sets.unite(it->second, i);
  }

  if (near_bits >= 0) {
    if (near_bits > 63) throw std::invalid_argument("near-duplicate distance must be below 64 bits");
    const int blocks = near_bits + 1;
    for (int block = 0; block < blocks; ++block) {
      const int begin = block * 64 / blocks;
      const int end = (block + 1) * 64 / blocks;
      const int width = end - begin;
      const std::uint64_t mask = width == 64 ? ~0ULL : ((1ULL << width) - 1);
      std::unordered_map<std::uint64_t, std::vector<std::size_t>> buckets;
      for (std::size_t i = 0; i < n; ++i) buckets[(perceptual_hashes[i] >> begin) & mask].push_back(i);
      for (const auto& [key, members] : buckets) {
        for (std::size_t a = 0; a < members.size(); ++a) {
          for (std::size_t b = a + 1; b < members.size(); ++b) {
            const auto i = members[a];
            const auto j = members[b];
            if (hamming_distance(perceptual_hashes[i], perceptual_hashes[j]) <= near_bits) sets.unite(i, j);
          }
        }
      }
    }
  }

  DuplicateGroups result;
  result.group_of_sample.assign(n, -1);
  std::vector<int> group_of_root(n, -1);
  for (std::size_t i = 0; i < n; ++i) {
    const auto root = sets.find(i);
    if (group_of_root[root] < 0) {
      group_of_root[root] = static_cast<int>(result.groups.size());
      result.groups.emplace_back();
    }
    result.group_of_sample[i] = group_of_root[root];
    result.groups[group_of_root[root]].push_back(static_cast<std::int64_t>(i));
  }
  result.exact.resize(result.groups.size());
  for (std::size_t g = 0; g < result.groups.size(); ++g) {
    const auto& members = result.groups[g];
    result.exact[g] = std::all_of(members.begin(), members.end(), [&](std::int64_t m) {
      return content_hashes[static_cast<std::size_t>(m)] == content_hashes[static_cast<std::size_t>(members[0])];
    });
  }
  return result;
}

}  // namespace brainmri::prep
