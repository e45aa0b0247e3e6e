#pragma once
// Cross-validation folds of a packed dataset: which images must stay together in one fold, and the
// stratified deal of those units over the folds. brainmri-prep writes the leakage-free assignment
// into manifest.json; a run can deal the same images by a coarser or finer rule (the leakage
// study: `--folds-by random` is what most published splits of this dataset did).

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "brainmri/common/enum_names.hpp"

namespace brainmri::data {

struct Manifest;

// What keeps images together in one fold.
enum class FoldGrouping {
  DuplicateGroups,  // exact and near copies (the audit's duplicate groups): no leakage between folds
  ExactCopies,      // only byte-identical pixels: near copies (re-saved, rescaled) may cross folds
  None,             // every image on its own: a stratified random split, copies cross freely
};

// What happens to training images that copy an image of the held-out test split.
enum class HoldoutPolicy {
  SplitTest,  // keep them; evaluate the test split in a clean part (no copy in training) and a contaminated one
  DropTrain,  // exclude them from every fold (format::kFoldExcludedLeak): the test split is clean, training loses
              // images
};

struct FoldOptions {
  int fold_count = 5;
  std::uint64_t seed = 0;
  std::optional<int> held_out_split;  // samples of this split are the fixed test set
  HoldoutPolicy holdout_policy = HoldoutPolicy::SplitTest;
};

// Stratified group k-fold. Samples with the same `fold_unit_of_sample` id (0..U-1) land in one
// fold; per class, fold sizes differ by at most one whenever the multi-member units allow it.
// Held-out samples get kFoldHeldOut. Under DropTrain, the training samples that share a
// `duplicate_group_of_sample` id (0..G-1) with a held-out sample get kFoldExcludedLeak, whatever
// the fold units are.
std::vector<int> assign_folds(std::span<const int> labels, std::span<const int> splits,
                              std::span<const int> duplicate_group_of_sample, std::span<const int> fold_unit_of_sample,
                              int class_count, const FoldOptions& options);

// The leakage-free deal: the fold units are the duplicate groups.
inline std::vector<int> assign_group_folds(std::span<const int> labels, std::span<const int> splits,
                                           std::span<const int> group_of_sample, int class_count,
                                           const FoldOptions& options) {
  return assign_folds(labels, splits, group_of_sample, group_of_sample, class_count, options);
}

// Group ids 0..G-1 of a packed dataset's samples, numbered by first member: the manifest's
// duplicate groups (DuplicateGroups), equal content hashes (ExactCopies), or one per sample (None).
std::vector<int> fold_units(const Manifest& manifest, std::span<const std::string> content_hashes,
                            FoldGrouping grouping);

// The fold of every sample of `manifest`'s dataset under `grouping`, with the manifest's fold
// count, seed, held-out split and policy. With DuplicateGroups this is the assignment
// brainmri-prep stored. Throws std::invalid_argument when the dataset has no folds.
std::vector<int> refold(const Manifest& manifest, std::span<const int> labels, std::span<const std::string> splits,
                        std::span<const std::string> content_hashes, FoldGrouping grouping);

// By sample id: true for the images of `test_split` that have an exact or near copy (the
// manifest's duplicate groups) among the images a run may train on: those of other splits,
// except the ones excluded from the folds (format::kFoldExcludedLeak). These are the
// "contaminated" part of a held-out evaluation; the others are its "clean" part.
std::vector<bool> contaminated_held_out(const Manifest& manifest, std::span<const std::string> split_of_sample,
                                        const std::string& test_split);

}  // namespace brainmri::data

namespace brainmri {
template <>
struct EnumNames<data::FoldGrouping> {
  static constexpr std::string_view what = "fold grouping";
  static constexpr std::array names = {std::pair{data::FoldGrouping::DuplicateGroups, std::string_view("group")},
                                       std::pair{data::FoldGrouping::ExactCopies, std::string_view("exact-groups")},
                                       std::pair{data::FoldGrouping::None, std::string_view("random")}};
};
template <>
struct EnumNames<data::HoldoutPolicy> {
  static constexpr std::string_view what = "held-out policy";
  static constexpr std::array names = {std::pair{data::HoldoutPolicy::SplitTest, std::string_view("split-test")},
                                       std::pair{data::HoldoutPolicy::DropTrain, std::string_view("drop-train")}};
};
}  // namespace brainmri
