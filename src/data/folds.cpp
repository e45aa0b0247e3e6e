#include "brainmri/data/folds.hpp"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/manifest.hpp"

namespace brainmri::data {
namespace {

int id_count(std::span<const int> ids) { return ids.empty() ? 0 : *std::max_element(ids.begin(), ids.end()) + 1; }

std::vector<std::vector<std::size_t>> members_of(std::span<const int> ids) {
  std::vector<std::vector<std::size_t>> members(static_cast<std::size_t>(id_count(ids)));
  for (std::size_t i = 0; i < ids.size(); ++i) members[static_cast<std::size_t>(ids[i])].push_back(i);
  return members;
}

// Ids 0..G-1 in order of each group's first sample, from any labelling of the samples.
template <typename Key>
std::vector<int> numbered_by_first_member(std::size_t n, const Key& key_of) {
  std::vector<int> ids(n);
  std::unordered_map<std::decay_t<decltype(key_of(std::size_t{0}))>, int> id_of_key;
  for (std::size_t i = 0; i < n; ++i)
    ids[i] = id_of_key.emplace(key_of(i), static_cast<int>(id_of_key.size())).first->second;
  return ids;
}

}  // namespace

std::vector<int> assign_folds(std::span<const int> labels, std::span<const int> splits,
                              std::span<const int> duplicate_group_of_sample, std::span<const int> fold_unit_of_sample,
                              int class_count, const FoldOptions& options) {
  const std::size_t n = labels.size();
  if (splits.size() != n || duplicate_group_of_sample.size() != n || fold_unit_of_sample.size() != n)
    throw std::invalid_argument("fold inputs differ in length");
  if (options.fold_count < 2) throw std::invalid_argument("at least 2 folds are needed");
  std::vector<int> fold(n, 0);

  const auto held_out = [&](std::size_t i) { return options.held_out_split && splits[i] == *options.held_out_split; };
  std::vector<bool> dealt(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    if (held_out(i)) {
      fold[i] = format::kFoldHeldOut;
      dealt[i] = false;
    }
  }
  if (options.held_out_split && options.holdout_policy == HoldoutPolicy::DropTrain) {
    for (const auto& group : members_of(duplicate_group_of_sample)) {
      if (std::none_of(group.begin(), group.end(), held_out)) continue;
      for (const auto i : group) {
        if (held_out(i)) continue;
        fold[i] = format::kFoldExcludedLeak;
        dealt[i] = false;
      }
    }
  }

  auto members = members_of(fold_unit_of_sample);
  std::vector<std::size_t> assignable_units;
  for (std::size_t u = 0; u < members.size(); ++u) {
    std::erase_if(members[u], [&](std::size_t i) { return !dealt[i]; });
    if (!members[u].empty()) assignable_units.push_back(u);
  }

  // Large units first, because they are the hard ones to balance; a seeded shuffle before the
  // stable sort decides among equal sizes, so the seed changes which singletons land together.
  std::mt19937_64 random(options.seed);
  std::shuffle(assignable_units.begin(), assignable_units.end(), random);
  std::stable_sort(assignable_units.begin(), assignable_units.end(),
                   [&](std::size_t a, std::size_t b) { return members[a].size() > members[b].size(); });
  std::vector<int> fold_order(static_cast<std::size_t>(options.fold_count));
  std::iota(fold_order.begin(), fold_order.end(), 0);
  std::shuffle(fold_order.begin(), fold_order.end(), random);

  const auto k = static_cast<std::size_t>(options.fold_count);
  std::vector<std::vector<std::int64_t>> class_count_in_fold(k, std::vector<std::int64_t>(class_count, 0));
  std::vector<std::int64_t> fold_size(k, 0);
  std::vector<std::int64_t> unit_classes(class_count, 0);
  for (const auto u : assignable_units) {
    std::fill(unit_classes.begin(), unit_classes.end(), 0);
    for (auto i : members[u]) ++unit_classes[labels[i]];
    // Choose the fold where adding the unit raises the sum of squared class counts least: the
    // fold poorest in the unit's classes, then the smallest fold.
    int best_fold = -1;
    std::int64_t best_cost = 0;
    for (const int f : fold_order) {
      std::int64_t cost = 0;
      for (int c = 0; c < class_count; ++c) cost += unit_classes[c] * (2 * class_count_in_fold[f][c] + unit_classes[c]);
      if (best_fold < 0 || cost < best_cost || (cost == best_cost && fold_size[f] < fold_size[best_fold])) {
        best_fold = f;
        best_cost = cost;
      }
    }
    for (int c = 0; c < class_count; ++c) class_count_in_fold[best_fold][c] += unit_classes[c];
    fold_size[best_fold] += static_cast<std::int64_t>(members[u].size());
    for (auto i : members[u]) fold[i] = best_fold;
  }
  return fold;
}

std::vector<int> fold_units(const Manifest& manifest, std::span<const std::string> content_hashes,
                            FoldGrouping grouping) {
  const auto n = static_cast<std::size_t>(manifest.sample_count);
  switch (grouping) {
    case FoldGrouping::DuplicateGroups: {
      std::vector<std::int64_t> first_member(n);
      std::iota(first_member.begin(), first_member.end(), std::int64_t{0});
      for (const auto& group : manifest.duplicate_groups) {
        const auto first = *std::min_element(group.members.begin(), group.members.end());
        for (const auto m : group.members) first_member.at(static_cast<std::size_t>(m)) = first;
      }
      return numbered_by_first_member(n, [&](std::size_t i) { return first_member[i]; });
    }
    case FoldGrouping::ExactCopies:
      if (content_hashes.size() != n) throw std::invalid_argument("one content hash per sample is needed");
      return numbered_by_first_member(n, [&](std::size_t i) { return content_hashes[i]; });
    case FoldGrouping::None: {
      std::vector<int> ids(n);
      std::iota(ids.begin(), ids.end(), 0);
      return ids;
    }
  }
  throw std::logic_error("unknown fold grouping");
}

std::vector<int> refold(const Manifest& manifest, std::span<const int> labels, std::span<const std::string> splits,
                        std::span<const std::string> content_hashes, FoldGrouping grouping) {
  const auto& stored = manifest.folds;
  if (stored.fold_count < 2) throw std::invalid_argument("the dataset has no fold assignment to redo");
  std::vector<int> split_index(splits.size());
  for (std::size_t i = 0; i < splits.size(); ++i) {
    const auto it = std::find(manifest.split_names.begin(), manifest.split_names.end(), splits[i]);
    split_index[i] = static_cast<int>(it - manifest.split_names.begin());
  }
  FoldOptions options{stored.fold_count, stored.seed, std::nullopt, stored.holdout_policy};
  if (!stored.held_out_split.empty()) {
    const auto it = std::find(manifest.split_names.begin(), manifest.split_names.end(), stored.held_out_split);
    options.held_out_split = static_cast<int>(it - manifest.split_names.begin());
  }
  const auto duplicate_groups = fold_units(manifest, content_hashes, FoldGrouping::DuplicateGroups);
  return assign_folds(labels, split_index, duplicate_groups, fold_units(manifest, content_hashes, grouping),
                      static_cast<int>(manifest.class_names.size()), options);
}

std::vector<bool> contaminated_held_out(const Manifest& manifest, std::span<const std::string> split_of_sample,
                                        const std::string& test_split) {
  const bool has_folds = manifest.folds.fold_count > 0;
  const auto trainable = [&](std::int64_t m) {
    const auto i = static_cast<std::size_t>(m);
    return split_of_sample[i] != test_split &&
           !(has_folds && manifest.folds.fold_of_sample[i] == format::kFoldExcludedLeak);
  };
  std::vector<bool> contaminated(split_of_sample.size(), false);
  for (const auto& group : manifest.duplicate_groups) {
    if (std::none_of(group.members.begin(), group.members.end(), trainable)) continue;
    for (const auto m : group.members) {
      if (split_of_sample[static_cast<std::size_t>(m)] == test_split) contaminated[static_cast<std::size_t>(m)] = true;
    }
  }
  return contaminated;
}

}  // namespace brainmri::data
