#include "grouping.hpp"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "brainmri/data/dataset_format.hpp"
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

std::vector<int> assign_group_folds(std::span<const int> labels, std::span<const int> splits,
                                    std::span<const int> group_of_sample, int class_count, const FoldOptions& options) {
  const std::size_t n = labels.size();
  if (splits.size() != n || group_of_sample.size() != n) throw std::invalid_argument("fold inputs differ in length");
  if (options.fold_count < 2) throw std::invalid_argument("at least 2 folds are needed");
  std::vector<int> fold(n, 0);

  const int group_count = n == 0 ? 0 : *std::max_element(group_of_sample.begin(), group_of_sample.end()) + 1;
  std::vector<std::vector<std::size_t>> members(static_cast<std::size_t>(group_count));
  for (std::size_t i = 0; i < n; ++i) members[static_cast<std::size_t>(group_of_sample[i])].push_back(i);

  std::vector<std::size_t> assignable_groups;
  for (std::size_t g = 0; g < members.size(); ++g) {
    const bool touches_held_out =
        options.held_out_split && std::any_of(members[g].begin(), members[g].end(),
                                              [&](std::size_t i) { return splits[i] == *options.held_out_split; });
    if (touches_held_out) {
      for (auto i : members[g]) {
        fold[i] = splits[i] == *options.held_out_split ? data::format::kFoldHeldOut : data::format::kFoldExcludedLeak;
      }
    } else if (!members[g].empty()) {
      assignable_groups.push_back(g);
    }
  }

  // Large groups first, because they are the hard ones to balance; a seeded shuffle before the
  // stable sort decides among equal sizes, so the seed changes which singletons land together.
  std::mt19937_64 random(options.seed);
  std::shuffle(assignable_groups.begin(), assignable_groups.end(), random);
  std::stable_sort(assignable_groups.begin(), assignable_groups.end(),
                   [&](std::size_t a, std::size_t b) { return members[a].size() > members[b].size(); });
  std::vector<int> fold_order(static_cast<std::size_t>(options.fold_count));
  std::iota(fold_order.begin(), fold_order.end(), 0);
  std::shuffle(fold_order.begin(), fold_order.end(), random);

  const auto k = static_cast<std::size_t>(options.fold_count);
  std::vector<std::vector<std::int64_t>> class_count_in_fold(k, std::vector<std::int64_t>(class_count, 0));
  std::vector<std::int64_t> fold_size(k, 0);
  std::vector<std::int64_t> group_classes(class_count, 0);
  for (const auto g : assignable_groups) {
    std::fill(group_classes.begin(), group_classes.end(), 0);
    for (auto i : members[g]) ++group_classes[labels[i]];
    // Choose the fold where adding the group raises the sum of squared class counts least: the
    // fold poorest in the group's classes, then the smallest fold.
    int best_fold = -1;
    std::int64_t best_cost = 0;
    for (const int f : fold_order) {
      std::int64_t cost = 0;
      for (int c = 0; c < class_count; ++c) {
        cost += group_classes[c] * (2 * class_count_in_fold[f][c] + group_classes[c]);
      }
      if (best_fold < 0 || cost < best_cost || (cost == best_cost && fold_size[f] < fold_size[best_fold])) {
        best_fold = f;
        best_cost = cost;
      }
    }
    for (int c = 0; c < class_count; ++c) class_count_in_fold[best_fold][c] += group_classes[c];
    fold_size[best_fold] += static_cast<std::int64_t>(members[g].size());
    for (auto i : members[g]) fold[i] = best_fold;
  }
  return fold;
}

}  // namespace brainmri::prep
