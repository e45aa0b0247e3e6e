#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/folds.hpp"
#include "grouping.hpp"
#include "hashing.hpp"

using namespace brainmri::prep;
using brainmri::data::assign_folds;
using brainmri::data::assign_group_folds;
using brainmri::data::HoldoutPolicy;
namespace format = brainmri::data::format;

namespace {

std::vector<int> random_labels(std::mt19937& random, std::size_t n, int classes) {
  std::vector<int> labels(n);
  for (auto& l : labels) l = static_cast<int>(random() % static_cast<unsigned>(classes));
  return labels;
}

// Reference: O(n^2) union-find, to check the pigeonhole search against.
std::vector<int> brute_force_groups(const std::vector<std::string>& content, const std::vector<std::uint64_t>& phash,
                                    int near_bits) {
  const std::size_t n = content.size();
  std::vector<int> group(n);
  std::iota(group.begin(), group.end(), 0);
  bool changed = true;
  while (changed) {
    changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = i + 1; j < n; ++j) {
        const bool same =
            content[i] == content[j] || (near_bits >= 0 && hamming_distance(phash[i], phash[j]) <= near_bits);
        if (same && group[i] != group[j]) {
          const int low = std::min(group[i], group[j]);
          const int high = std::max(group[i], group[j]);
          for (auto& g : group) {
            if (g == high) g = low;
          }
          changed = true;
        }
      }
    }
  }
  return group;
}

// Two partitions are equal when "same group" agrees for every pair.
void expect_same_partition(const std::vector<int>& a, const std::vector<int>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (std::size_t j = i + 1; j < a.size(); ++j) {
      ASSERT_EQ(a[i] == a[j], b[i] == b[j]) << "samples " << i << " and " << j;
    }
  }
}

}  // namespace

TEST(StratifiedShards, EveryShardHasTheSameClassBalance) {
  std::mt19937 random(1);
  for (int trial = 0; trial < 50; ++trial) {
    const auto labels = random_labels(random, 50 + random() % 500, 1 + static_cast<int>(random() % 5));
    const int shard_count = 1 + static_cast<int>(random() % 7);
    const auto shards = plan_stratified_shards(labels, shard_count);
    ASSERT_EQ(shards.size(), static_cast<std::size_t>(shard_count));
    std::vector<int> seen(labels.size(), 0);
    std::map<int, std::vector<int>> per_class;  // class -> count per shard
    for (std::size_t s = 0; s < shards.size(); ++s) {
      EXPECT_TRUE(std::is_sorted(shards[s].begin(), shards[s].end()));
      for (const auto i : shards[s]) {
        ++seen[i];
        auto& counts = per_class[labels[i]];
        counts.resize(shards.size());
        ++counts[s];
      }
    }
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
    for (auto& [label, counts] : per_class) {
      counts.resize(shards.size());
      EXPECT_LE(*std::max_element(counts.begin(), counts.end()) - *std::min_element(counts.begin(), counts.end()), 1)
          << "class " << label;
    }
    std::size_t smallest = labels.size(), largest = 0;
    for (const auto& shard : shards) {
      smallest = std::min(smallest, shard.size());
      largest = std::max(largest, shard.size());
    }
    EXPECT_LE(largest - smallest, 1u);
  }
}

TEST(StratifiedShards, DefaultCountTargetsShardSize) {
  EXPECT_EQ(default_shard_count(0, 16384, 64u << 20), 1);
  EXPECT_EQ(default_shard_count(5708, 128 * 128, 64u << 20), 2);
  EXPECT_EQ(default_shard_count(4096, 16384, 64u << 20), 1);
  EXPECT_EQ(default_shard_count(4097, 16384, 64u << 20), 2);
}

TEST(DuplicateGroups, PigeonholeSearchEqualsBruteForce) {
  std::mt19937_64 random(2);
  for (int trial = 0; trial < 30; ++trial) {
    const std::size_t n = 60 + random() % 60;
    std::vector<std::string> content(n);
    std::vector<std::uint64_t> phash(n);
    for (std::size_t i = 0; i < n; ++i) {
      content[i] = std::to_string(random());
      phash[i] = random();
      if (i > 0 && random() % 4 == 0) {  // a near copy of an earlier image: flip a few bits
        phash[i] = phash[random() % i];
        for (int flips = static_cast<int>(random() % 6); flips > 0; --flips) phash[i] ^= 1ULL << (random() % 64);
      }
      if (i > 0 && random() % 10 == 0) content[i] = content[random() % i];  // an exact copy
    }
    for (const int bits : {-1, 0, 1, 3, 5}) {
      const auto groups = find_duplicate_groups(content, phash, bits);
      expect_same_partition(groups.group_of_sample, brute_force_groups(content, phash, bits));
      for (std::size_t g = 0; g < groups.groups.size(); ++g) {
        const auto& members = groups.groups[g];
        ASSERT_FALSE(members.empty());
        EXPECT_TRUE(std::is_sorted(members.begin(), members.end()));
        const bool all_same = std::all_of(members.begin(), members.end(),
                                          [&](std::int64_t m) { return content[m] == content[members[0]]; });
        EXPECT_EQ(groups.exact[g], all_same);
      }
    }
  }
}

TEST(GroupKFold, NoGroupIsSplitAndClassesBalanceWithinOne) {
  std::mt19937 random(3);
  for (int trial = 0; trial < 40; ++trial) {
    const int classes = 2 + static_cast<int>(random() % 4);
    const int k = 2 + static_cast<int>(random() % 5);
    const std::size_t n = 200 + random() % 800;
    const auto labels = random_labels(random, n, classes);
    // Mostly singletons, some groups of 2-4 of one class, a few groups mixing classes.
    std::vector<int> group(n);
    int next_group = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0 && random() % 8 == 0) {
        std::size_t partner = random() % i;
        int tries = 0;
        while (labels[partner] != labels[i] && tries++ < 20 && random() % 20 != 0) partner = random() % i;
        group[i] = group[partner];
      } else {
        group[i] = next_group++;
      }
    }
    std::vector<int> compact(n);  // group ids must be 0..G-1
    std::map<int, int> renumber;
    for (std::size_t i = 0; i < n; ++i)
      compact[i] = renumber.emplace(group[i], static_cast<int>(renumber.size())).first->second;
    const std::vector<int> splits(n, 0);
    const auto folds = assign_group_folds(labels, splits, compact, classes, {k, static_cast<std::uint64_t>(trial), {}});

    std::map<int, std::set<int>> folds_of_group;
    std::vector<std::vector<int>> counts(k, std::vector<int>(classes, 0));
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_GE(folds[i], 0);
      ASSERT_LT(folds[i], k);
      folds_of_group[compact[i]].insert(folds[i]);
      ++counts[folds[i]][labels[i]];
    }
    for (const auto& [g, fs] : folds_of_group) EXPECT_EQ(fs.size(), 1u) << "group " << g << " split across folds";
    for (int c = 0; c < classes; ++c) {
      int lo = counts[0][c], hi = counts[0][c];
      for (int f = 0; f < k; ++f) {
        lo = std::min(lo, counts[f][c]);
        hi = std::max(hi, counts[f][c]);
      }
      EXPECT_LE(hi - lo, 1) << "class " << c << " trial " << trial;
    }
  }
}

TEST(GroupKFold, DropTrainExcludesTrainingCopiesOfHeldOutImages) {
  // Samples 0-5 are Training (split 0), 6-7 Testing (split 1). Sample 2 duplicates test sample 6.
  const std::vector<int> labels = {0, 0, 0, 1, 1, 1, 0, 1};
  const std::vector<int> splits = {0, 0, 0, 0, 0, 0, 1, 1};
  const std::vector<int> groups = {0, 1, 2, 3, 4, 5, 2, 6};
  const auto folds = assign_group_folds(labels, splits, groups, 2, {2, 5, 1, HoldoutPolicy::DropTrain});
  EXPECT_EQ(folds[6], format::kFoldHeldOut);
  EXPECT_EQ(folds[7], format::kFoldHeldOut);
  EXPECT_EQ(folds[2], format::kFoldExcludedLeak);
  for (const int i : {0, 1, 3, 4, 5}) EXPECT_TRUE(folds[i] == 0 || folds[i] == 1);
}

TEST(GroupKFold, SplitTestKeepsTrainingCopiesOfHeldOutImagesInTheFolds) {
  // As above; sample 3 also duplicates training sample 2, so 2 and 3 still share a fold.
  const std::vector<int> labels = {0, 0, 0, 1, 1, 1, 0, 1};
  const std::vector<int> splits = {0, 0, 0, 0, 0, 0, 1, 1};
  const std::vector<int> compact = {0, 1, 2, 2, 3, 4, 2, 5};
  const auto folds = assign_group_folds(labels, splits, compact, 2, {2, 5, 1, HoldoutPolicy::SplitTest});
  EXPECT_EQ(folds[6], format::kFoldHeldOut);
  EXPECT_EQ(folds[7], format::kFoldHeldOut);
  for (const int i : {0, 1, 2, 3, 4, 5}) EXPECT_TRUE(folds[i] == 0 || folds[i] == 1) << i;
  EXPECT_EQ(folds[2], folds[3]);
}

TEST(GroupKFold, FoldUnitsDecideWhatStaysTogetherAndDuplicateGroupsWhatIsDropped) {
  // Eight copies of one image (one duplicate group) among 40 singletons. Dealt by the duplicate
  // groups they share a fold; dealt one by one (a random split) they spread over the folds. Under
  // drop-train, a held-out member excludes its training copies whatever the fold units are.
  const std::size_t n = 48;
  std::vector<int> labels(n), splits(n, 0), groups(n), singles(n);
  for (std::size_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int>(i % 2);
    groups[i] = i < 8 ? 0 : static_cast<int>(i) - 7;
    singles[i] = static_cast<int>(i);
  }
  for (std::size_t i = 0; i < 8; ++i) labels[i] = 0;
  const auto together = assign_folds(labels, splits, groups, groups, 2, {4, 3, {}});
  const auto apart = assign_folds(labels, splits, groups, singles, 2, {4, 3, {}});
  EXPECT_EQ(std::set<int>(together.begin(), together.begin() + 8).size(), 1u);
  EXPECT_GT(std::set<int>(apart.begin(), apart.begin() + 8).size(), 1u);

  splits[0] = 1;  // one copy is a held-out image
  const auto dropped = assign_folds(labels, splits, groups, singles, 2, {4, 3, 1, HoldoutPolicy::DropTrain});
  EXPECT_EQ(dropped[0], format::kFoldHeldOut);
  for (std::size_t i = 1; i < 8; ++i) EXPECT_EQ(dropped[i], format::kFoldExcludedLeak) << i;
  for (std::size_t i = 8; i < n; ++i) EXPECT_GE(dropped[i], 0) << i;
}

TEST(GroupKFold, DeterministicPerSeedAndSeedMatters) {
  std::mt19937 random(4);
  const auto labels = random_labels(random, 300, 4);
  std::vector<int> groups(300);
  std::iota(groups.begin(), groups.end(), 0);
  const std::vector<int> splits(300, 0);
  const auto a = assign_group_folds(labels, splits, groups, 4, {5, 11, {}});
  const auto b = assign_group_folds(labels, splits, groups, 4, {5, 11, {}});
  const auto c = assign_group_folds(labels, splits, groups, 4, {5, 12, {}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}
