// The trainer's view of a packed dataset: ShardedDataset over the bundled sample.

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/folds.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/data/sharded_dataset.hpp"
#include "synthetic_dataset.hpp"
#include "test_support.hpp"
#ifdef BRAINMRI_HAVE_PREP
#include "packer.hpp"
#endif

using brainmri::data::ShardedDataset;
using namespace brainmri::testing;
namespace format = brainmri::data::format;

TEST(SyntheticDataset, PixelsLabelsAndIdsComeBackExactly) {
  ScratchDir dir;
  write_synthetic_dataset(dir / "bytes", 23, 3, 6, 1, false, 3, 4);
  write_synthetic_dataset(dir / "floats", 23, 3, 6, 3, true, 2, 0);
  const ShardedDataset bytes(dir / "bytes");
  const ShardedDataset floats(dir / "floats");
  const std::vector<std::int64_t> ids = {22, 0, 7, 8, 15};  // unordered, across shards
  const auto a = bytes.load(ids);
  const auto b = floats.load(ids);
  EXPECT_EQ(a.images.sizes(), (std::vector<std::int64_t>{5, 1, 6, 6}));
  EXPECT_EQ(b.images.sizes(), (std::vector<std::int64_t>{5, 3, 6, 6}));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto row = static_cast<std::int64_t>(i);
    EXPECT_FLOAT_EQ(a.images[row].max().item<float>(), static_cast<float>(ids[i] % 251) / 255.0f);
    EXPECT_FLOAT_EQ(a.images[row].min().item<float>(), static_cast<float>(ids[i] % 251) / 255.0f);
    EXPECT_FLOAT_EQ(b.images[row].mean().item<float>(), static_cast<float>(ids[i] % 251) / 250.0f);
    EXPECT_EQ(a.labels[row].item<std::int64_t>(), ids[i] % 3);
    EXPECT_EQ(a.sample_ids[row].item<std::int64_t>(), ids[i]);
    EXPECT_EQ(bytes.source_path(ids[i]),
              "Training/class" + std::to_string(ids[i] % 3) + "/" + std::to_string(ids[i]) + ".png");
  }
  EXPECT_EQ(bytes.validation_samples_for_fold(1), (std::vector<std::int64_t>{1, 5, 9, 13, 17, 21}));
  EXPECT_THROW(floats.fold(0), std::invalid_argument);  // packed without folds
}

// Format version 2 added the source images' original size; a dataset packed as version 1 (the same
// files without those two columns) still opens, its sizes unknown.
TEST(SyntheticDataset, VersionOneDatasetsStillOpenWithoutTheOriginalSize) {
  ScratchDir dir;
  const auto m = write_synthetic_dataset(dir / "d", 10, 2, 4, 1, false, 2, 2);
  {
    const ShardedDataset current(dir / "d");
    ASSERT_TRUE(current.original_size(0).has_value());
    EXPECT_EQ(current.original_size(0)->width, 256);
    EXPECT_EQ(current.original_size(0)->height, 240);
    EXPECT_EQ(current.original_size(7)->width, 512);
  }
  for (const auto& shard : m.shards) {
    const auto path = (dir / "d" / shard.file).string();
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    ASSERT_GE(H5Ldelete(file, format::kOriginalWidth, H5P_DEFAULT), 0);
    ASSERT_GE(H5Ldelete(file, format::kOriginalHeight, H5P_DEFAULT), 0);
    ASSERT_GE(H5Adelete(file, format::kAttrFormatVersion), 0);
    brainmri::hdf5::write_attribute(file, format::kAttrFormatVersion, std::int64_t{1});
    H5Fclose(file);
  }
  const auto manifest_path = dir / "d" / std::string(format::kManifestFile);
  std::string manifest;
  {
    std::ifstream in(manifest_path);
    manifest.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string current_version = "\"format_version\": " + std::to_string(format::kFormatVersion);
  ASSERT_NE(manifest.find(current_version), std::string::npos) << manifest.substr(0, 200);
  manifest.replace(manifest.find(current_version), current_version.size(), "\"format_version\": 1");
  std::ofstream(manifest_path) << manifest;

  const ShardedDataset old(dir / "d");
  EXPECT_EQ(old.manifest().format_version, 1);
  EXPECT_FALSE(old.original_size(0).has_value());
  EXPECT_EQ(old.load(std::vector<std::int64_t>{3, 8}).labels[1].item<std::int64_t>(), 0);
  EXPECT_EQ(old.validation_samples_for_fold(1), (std::vector<std::int64_t>{1, 3, 5, 7, 9}));
}

TEST(SyntheticDataset, ShardDisagreeingWithTheManifestIsRefused) {
  ScratchDir dir;
  write_synthetic_dataset(dir / "a", 10, 2, 4, 1, false, 2, 0);
  write_synthetic_dataset(dir / "b", 10, 2, 8, 1, false, 2, 0);
  std::filesystem::copy_file(dir / "b" / "shard-1.h5", dir / "a" / "shard-1.h5",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_THROW(ShardedDataset(dir / "a"), brainmri::data::ManifestError);
}

TEST(ShardedDatasetErrors, MissingDirectoryIsAClearError) {
  try {
    ShardedDataset dataset("/nonexistent/dataset");
    FAIL();
  } catch (const brainmri::data::ManifestError& e) {
    EXPECT_NE(std::string(e.what()).find("brainmri-prep"), std::string::npos);
  }
}

#ifdef BRAINMRI_HAVE_PREP
// The bundled sample packed by the real packer.
namespace {

class SampleDataset : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir();
    brainmri::prep::PackOptions options;
    options.output = *scratch_ / "packed";
    options.discovery.roots = {BRAINMRI_SAMPLE_DIR};
    options.shard_count = 3;
    options.fold_count = 4;
    options.seed = 9;
    brainmri::prep::pack_dataset(options);
    options.output = *scratch_ / "packed_float";
    options.preprocess.output = brainmri::imaging::PixelType::kFloat32;
    brainmri::prep::pack_dataset(options);
  }
  static void TearDownTestSuite() { delete scratch_; }
  static ScratchDir* scratch_;
};
ScratchDir* SampleDataset::scratch_ = nullptr;

}  // namespace

TEST_F(SampleDataset, LoadsNormalizedImagesLabelsAndIds) {
  const ShardedDataset dataset(*scratch_ / "packed");
  EXPECT_EQ(dataset.class_names().size(), 4u);
  const std::vector<std::int64_t> ids = {dataset.size() - 1, 0, 57, 3};  // any order, across shards
  const auto batch = dataset.load(ids);
  EXPECT_EQ(batch.images.sizes(), (std::vector<std::int64_t>{4, 1, 128, 128}));
  EXPECT_EQ(batch.images.dtype(), torch::kFloat32);
  EXPECT_GE(batch.images.min().item<float>(), 0.0f);
  EXPECT_LE(batch.images.max().item<float>(), 1.0f);
  EXPECT_GT(batch.images.max().item<float>(), 0.5f);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(batch.sample_ids[static_cast<std::int64_t>(i)].item<std::int64_t>(), ids[i]);
    EXPECT_EQ(batch.labels[static_cast<std::int64_t>(i)].item<std::int64_t>(), dataset.label(ids[i]));
  }
  // The same image read alone is the same tensor: order and batching do not change pixels.
  const std::vector<std::int64_t> single = {57};
  EXPECT_TRUE(torch::equal(dataset.load(single).images[0], batch.images[2]));
  const auto stored = dataset.load_stored(single);
  EXPECT_EQ(stored.dtype(), torch::kUInt8);
  EXPECT_TRUE(
      torch::allclose(stored.to(torch::kFloat32).div(255.0).permute({0, 3, 1, 2}), dataset.load(single).images));
  EXPECT_THROW(dataset.load(std::vector<std::int64_t>{dataset.size()}), std::out_of_range);
}

TEST_F(SampleDataset, FloatAndByteStorageAgreeWithinQuantization) {
  const ShardedDataset bytes(*scratch_ / "packed");
  const ShardedDataset floats(*scratch_ / "packed_float");
  const auto ids = bytes.all();
  const auto a = bytes.load(ids).images;
  const auto b = floats.load(ids).images;
  EXPECT_LE((a - b).abs().max().item<float>(), 0.5f / 255.0f + 1e-6f);
}

TEST_F(SampleDataset, FoldSelectionPartitionsTheTrainingData) {
  const ShardedDataset dataset(*scratch_ / "packed");
  std::set<std::int64_t> union_of_validation;
  for (int fold = 0; fold < 4; ++fold) {
    const auto train = dataset.training_samples_for_fold(fold);
    const auto validation = dataset.validation_samples_for_fold(fold);
    EXPECT_EQ(train.size() + validation.size(), static_cast<std::size_t>(dataset.size()));
    for (const auto id : validation) {
      EXPECT_EQ(dataset.fold(id), fold);
      EXPECT_TRUE(union_of_validation.insert(id).second) << "sample in two validation folds";
    }
    for (const auto id : train) EXPECT_NE(dataset.fold(id), fold);
  }
  EXPECT_EQ(union_of_validation.size(), static_cast<std::size_t>(dataset.size()));
  EXPECT_EQ(dataset.select_split("Training").size(), static_cast<std::size_t>(dataset.size()));
  EXPECT_THROW(dataset.select_split("Testing"), std::invalid_argument);
  EXPECT_THROW(dataset.validation_samples_for_fold(4), std::invalid_argument);
}
// The leakage study's folds: the same packed images dealt by another rule (data/folds.hpp).
TEST_F(SampleDataset, FoldsDealtByAnotherRuleKeepTogetherWhatTheRuleSays) {
  using brainmri::data::FoldGrouping;
  const ShardedDataset packed(*scratch_ / "packed");
  const ShardedDataset exact(*scratch_ / "packed", FoldGrouping::ExactCopies);
  const ShardedDataset random(*scratch_ / "packed", FoldGrouping::None);
  const auto& groups = packed.manifest().duplicate_groups;
  ASSERT_GE(groups.size(), 5u) << "the sample is meant to hold duplicate pairs";

  // Re-dealing by the duplicate groups is exactly what brainmri-prep stored.
  std::vector<int> labels;
  std::vector<std::string> splits;
  for (std::int64_t id = 0; id < packed.size(); ++id) {
    labels.push_back(packed.label(id));
    splits.push_back(packed.split(id));
  }
  EXPECT_EQ(brainmri::data::refold(packed.manifest(), labels, splits, {}, FoldGrouping::DuplicateGroups),
            packed.manifest().folds.fold_of_sample);
  EXPECT_EQ(ShardedDataset(*scratch_ / "packed", FoldGrouping::None).manifest().folds.fold_of_sample,
            random.manifest().folds.fold_of_sample);

  int exact_groups = 0, split_by_random = 0, near_split_by_exact = 0;
  for (const auto& group : groups) {
    std::set<int> random_folds, exact_folds;
    for (const auto id : group.members) {
      random_folds.insert(random.fold(id));
      exact_folds.insert(exact.fold(id));
    }
    if (group.exact) {
      ++exact_groups;
      EXPECT_EQ(exact_folds.size(), 1u) << "byte-identical copies in two folds";
    } else {
      near_split_by_exact += exact_folds.size() > 1;
    }
    split_by_random += random_folds.size() > 1;
  }
  EXPECT_GT(exact_groups, 0);
  EXPECT_GT(split_by_random, 0) << "a random deal of " << groups.size() << " pairs over 4 folds kept every pair";
  // Every image stays in some fold, and per class the folds still differ by at most one image.
  for (const auto* dataset : {&exact, &random}) {
    std::map<std::pair<int, int>, int> count;
    for (std::int64_t id = 0; id < dataset->size(); ++id) {
      const int fold = dataset->fold(id);
      ASSERT_GE(fold, 0);
      ASSERT_LT(fold, 4);
      ++count[{dataset->label(id), fold}];
    }
    for (int c = 0; c < static_cast<int>(dataset->class_names().size()); ++c) {
      int lo = count[{c, 0}], hi = lo;
      for (int f = 1; f < 4; ++f) {
        lo = std::min(lo, count[{c, f}]);
        hi = std::max(hi, count[{c, f}]);
      }
      EXPECT_LE(hi - lo, 1) << "class " << c;
    }
  }
}
#endif  // BRAINMRI_HAVE_PREP
