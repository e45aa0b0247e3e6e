// Packs the bundled sample with the real executable and checks what a user relies on.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "prep_test_support.hpp"

using namespace brainmri::testing;
namespace fs = std::filesystem;
namespace format = brainmri::data::format;

namespace {

std::size_t count_sample_files() {
  std::size_t n = 0;
  for (const auto& entry : fs::recursive_directory_iterator(kSampleRoot / "Training")) n += entry.is_regular_file();
  return n;
}

// Packs the sample once for all tests of this file.
class PackedSample : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir();
    const auto result = prep("-q --out " + shell_quote(*scratch_ / "sample") + " --folds 5 --seed 3 --shards 2 " +
                             shell_quote(kSampleRoot));
    ASSERT_EQ(result.exit_code, 0) << result.output;
  }
  static void TearDownTestSuite() { delete scratch_; }
  static fs::path output() { return *scratch_ / "sample"; }
  static ScratchDir* scratch_;
};
ScratchDir* PackedSample::scratch_ = nullptr;

}  // namespace

TEST_F(PackedSample, ManifestDescribesEverySample) {
  const auto m = brainmri::data::read_manifest(output());
  EXPECT_EQ(m.sample_count, static_cast<std::int64_t>(count_sample_files()));
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"glioma", "meningioma", "notumor", "pituitary"}));
  EXPECT_EQ(m.split_names, (std::vector<std::string>{"Training"}));
  EXPECT_EQ(m.image_size, 128);
  EXPECT_EQ(m.channels, 1);
  EXPECT_EQ(m.dtype, "uint8");
  EXPECT_DOUBLE_EQ(m.normalization_scale, 1.0 / 255.0);
  EXPECT_TRUE(m.rejected.empty());
  ASSERT_EQ(m.shards.size(), 2u);
  EXPECT_EQ(m.command_line.front().find("brainmri-prep") != std::string::npos, true);
  // Stratified: the two shards hold each class within one image of each other.
  for (std::size_t c = 0; c < m.class_names.size(); ++c) {
    EXPECT_LE(std::abs(m.shards[0].class_counts[c] - m.shards[1].class_counts[c]), 1);
  }
  for (const auto& shard : m.shards) EXPECT_EQ(shard.sha256.size(), 64u);
}

TEST_F(PackedSample, ShardSchemaIsWhatTheDocsSay) {
  const auto m = brainmri::data::read_manifest(output());
  std::int64_t next_id = 0;
  for (const auto& entry : m.shards) {
    const auto file = brainmri::hdf5::open_file_readonly(output() / entry.file);
    const auto header = brainmri::data::read_shard_header(file);
    EXPECT_EQ(header.format_version, format::kFormatVersion);
    EXPECT_EQ(header.class_names, m.class_names);
    EXPECT_EQ(header.dtype, "uint8");
    EXPECT_EQ(header.first_sample_id, entry.first_sample_id);
    const auto images = brainmri::hdf5::open_dataset(file, format::kImages);
    EXPECT_EQ(brainmri::hdf5::dataset_shape(images),
              (std::vector<hsize_t>{static_cast<hsize_t>(entry.sample_count), 128, 128, 1}));
    // One chunk per image, shuffle then deflate.
    brainmri::hdf5::Handle properties(H5Dget_create_plist(images), H5Pclose);
    hsize_t chunk[4];
    ASSERT_EQ(H5Pget_chunk(properties, 4, chunk), 4);
    EXPECT_EQ(chunk[0], 1u);
    ASSERT_EQ(H5Pget_nfilters(properties), 2);
    for (const auto& [index, filter] : {std::pair{0u, H5Z_FILTER_SHUFFLE}, std::pair{1u, H5Z_FILTER_DEFLATE}}) {
      unsigned flags = 0, values[8] = {};
      size_t value_count = 8;
      char name[64];
      EXPECT_EQ(H5Pget_filter2(properties, index, &flags, &value_count, values, sizeof(name), name, nullptr), filter);
    }
    const auto columns = brainmri::data::read_shard_columns(file);
    for (const auto id : columns.sample_ids) EXPECT_EQ(id, next_id++);
  }
}

TEST_F(PackedSample, PixelsEqualOpenCvDecodeAndResizeWithinOneGreyLevel) {
  const auto m = brainmri::data::read_manifest(output());
  int compared = 0;
  for (const auto& entry : m.shards) {
    const auto file = brainmri::hdf5::open_file_readonly(output() / entry.file);
    const auto columns = brainmri::data::read_shard_columns(file);
    for (std::size_t row = 0; row < columns.source_paths.size(); ++row) {
      const cv::Mat stored = read_stored_image(output() / entry.file, row);
      // Colour sources are decoded in colour and converted with cvtColor (BT.601 weights), as
      // the packer does; libjpeg's own luma-only decode (IMREAD_GRAYSCALE) differs by a few levels.
      const auto path = (kSampleRoot / columns.source_paths[row]).string();
      cv::Mat reference = cv::imread(path, cv::IMREAD_UNCHANGED);
      ASSERT_FALSE(reference.empty());
      if (reference.channels() == 3) cv::cvtColor(reference, reference, cv::COLOR_BGR2GRAY);
      cv::resize(reference, reference, cv::Size(128, 128), 0, 0, cv::INTER_AREA);
      double max_difference = 0;
      cv::minMaxLoc(cv::abs(stored - reference) + cv::abs(reference - stored), nullptr, &max_difference);
      EXPECT_LE(max_difference, 1.0) << columns.source_paths[row];
      ++compared;
    }
  }
  EXPECT_EQ(compared, m.sample_count);
}

TEST_F(PackedSample, DuplicatesAndFoldsAreLeakageFree) {
  const auto m = brainmri::data::read_manifest(output());
  // tools/make_sample.py put byte-identical pairs into the sample: they must be grouped.
  std::int64_t exact_groups = 0;
  for (const auto& group : m.duplicate_groups) exact_groups += group.exact;
  EXPECT_GE(exact_groups, 6);
  ASSERT_EQ(m.folds.fold_count, 5);
  for (const auto& group : m.duplicate_groups) {
    std::set<int> folds;
    for (const auto id : group.members) folds.insert(m.folds.fold_of_sample[static_cast<std::size_t>(id)]);
    EXPECT_EQ(folds.size(), 1u) << "a duplicate group is split across folds";
  }
}

TEST_F(PackedSample, VerifyPassesAndAuditSummarizes) {
  const auto verify = prep("verify " + shell_quote(output()));
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_NE(verify.output.find("OK: 2 shard(s)"), std::string::npos);

  ScratchDir scratch;
  const auto audit = prep("audit " + shell_quote(output()) + " --json " + shell_quote(scratch / "audit.json"));
  ASSERT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_NE(audit.output.find("Duplicates"), std::string::npos);
  EXPECT_NE(audit.output.find("Folds: 5"), std::string::npos);
  const auto json = read_json(scratch / "audit.json");
  EXPECT_EQ(json["dataset"]["samples"].get<std::size_t>(), count_sample_files());
  EXPECT_EQ(json["folds"]["duplicate_groups_split_across_folds"].get<int>(), 0);
  EXPECT_LE(json["folds"]["max_class_spread_across_folds"].get<int>(), 12);
  EXPECT_EQ(json["rejected"]["count"].get<int>(), 0);
  // tools/make_sample.py copied 9 byte-identical pairs into the sample.
  EXPECT_EQ(json["duplicates"]["identical_pixel_groups"].get<int>(), 9);
  EXPECT_EQ(json["duplicates"]["identical_pixel_redundant_images"].get<int>(), 9);
  EXPECT_GE(json["duplicates"]["redundant_images"].get<int>(), 9);
}

TEST_F(PackedSample, CorruptedShardByteFailsVerifyNamingTheShard) {
  ScratchDir scratch;
  fs::copy(output(), scratch / "copy", fs::copy_options::recursive);
  const auto m = brainmri::data::read_manifest(scratch / "copy");
  const auto victim = scratch / "copy" / m.shards[1].file;
  {
    std::fstream file(victim, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5A);
    file.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    file.write(&byte, 1);
  }
  const auto verify = prep("verify " + shell_quote(scratch / "copy"));
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE(verify.output.find(m.shards[1].file), std::string::npos) << verify.output;
  EXPECT_NE(verify.output.find("SHA-256"), std::string::npos) << verify.output;
}

TEST(PackOptions, FloatStorageAndThreeChannelsKeepValuesInUnitRange) {
  ScratchDir scratch;
  const auto result =
      prep("-q --out " + shell_quote(scratch / "f") + " --dtype float32 --channels 3 --size 64 --resize pad " +
           shell_quote(kSampleRoot / "Training"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto m = brainmri::data::read_manifest(scratch / "f");
  EXPECT_EQ(m.dtype, "float32");
  EXPECT_EQ(m.channels, 3);
  EXPECT_EQ(m.split_names, (std::vector<std::string>{"Training"}));  // flat root: the folder's name
  const cv::Mat image = read_stored_image(scratch / "f" / m.shards[0].file, 0);
  EXPECT_EQ(image.type(), CV_32FC3);
  double low = 0, high = 0;
  cv::minMaxLoc(image.reshape(1), &low, &high);
  EXPECT_GE(low, 0.0);
  EXPECT_LE(high, 1.0);
  EXPECT_GT(high, 0.2);
  EXPECT_EQ(prep("verify " + shell_quote(scratch / "f")).exit_code, 0);
}

TEST(PackOutput, ExistingOutputIsRefusedUnlessForced) {
  ScratchDir scratch;
  const auto out = shell_quote(scratch / "o");
  ASSERT_EQ(prep("-q --out " + out + " " + shell_quote(kSampleRoot)).exit_code, 0);
  const auto again = prep("-q --out " + out + " " + shell_quote(kSampleRoot));
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("--force"), std::string::npos) << again.output;
  const auto forced = prep("-q --force --size 32 --out " + out + " " + shell_quote(kSampleRoot));
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_EQ(brainmri::data::read_manifest(scratch / "o").image_size, 32);
  // Nothing but the output is left beside it.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(scratch.path())) ++entries;
  EXPECT_EQ(entries, 1u);
}

// Packs eight copies of the sample single-threaded (a few seconds) into scratch/out and sends
// `signal` once the first shard file appears; returns the script's output with "status=<code>".
CommandResult interrupt_packing(const ScratchDir& scratch, const std::string& signal) {
  fs::create_directories(scratch / "big");
  for (int copy = 0; copy < 8; ++copy) {
    fs::copy(kSampleRoot / "Training", scratch / "big" / ("Training" + std::to_string(copy)),
             fs::copy_options::recursive);
  }
  const std::string script = shell_quote(kPrep) + " -q --threads 1 --out " + shell_quote(scratch / "out") + " " +
                             shell_quote(scratch / "big") + " & pid=$!; for i in $(seq 1 2000); do ls " +
                             shell_quote(scratch.path()) +
                             "/.out.partial-$pid/*.h5 >/dev/null 2>&1 && break; sleep 0.005; done; kill -" + signal +
                             " $pid; wait $pid; echo status=$?";
  return run_command("bash -c " + shell_quote(script));
}

TEST(PackOutput, KilledRunLeavesNoValidLookingOutput) {
  ScratchDir scratch;
  const auto killed = interrupt_packing(scratch, "KILL");
  ASSERT_NE(killed.output.find("status=137"), std::string::npos)
      << "the run finished before it was killed: " << killed.output;
  EXPECT_FALSE(fs::exists(scratch / "out"));
  bool found_partial = false;
  for (const auto& entry : fs::directory_iterator(scratch.path())) {
    if (!entry.path().filename().string().starts_with(".out.partial-")) continue;
    found_partial = true;
    EXPECT_FALSE(fs::exists(entry.path() / format::kManifestFile));
    EXPECT_EQ(prep("verify " + shell_quote(entry.path())).exit_code, 1);
  }
  EXPECT_TRUE(found_partial);
  // A fresh run is not disturbed by the leftovers.
  EXPECT_EQ(prep("-q --out " + shell_quote(scratch / "out") + " " + shell_quote(scratch / "big")).exit_code, 0);
  EXPECT_EQ(prep("verify " + shell_quote(scratch / "out")).exit_code, 0);
}

TEST(PackOutput, TerminatedRunCleansUpAndExits130) {
  ScratchDir scratch;
  const auto result = interrupt_packing(scratch, "TERM");
  EXPECT_NE(result.output.find("status=130"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("interrupted"), std::string::npos) << result.output;
  for (const auto& entry : fs::directory_iterator(scratch.path())) {
    EXPECT_EQ(entry.path().filename(), "big") << "left behind: " << entry.path();
  }
}

TEST(PackLayouts, TwoSplitsWithAHeldOutTestSetAndItsLeaks) {
  // Kaggle layout with Training and Testing; one Testing image is a byte copy of a Training image.
  ScratchDir scratch;
  const fs::path root = scratch / "kaggle";
  fs::create_directories(root);
  fs::copy(kSampleRoot / "Training", root / "Training", fs::copy_options::recursive);
  for (const auto* name : {"glioma", "meningioma", "notumor", "pituitary"}) {
    fs::create_directories(root / "Testing" / name);
    int copied = 0;
    for (const auto& entry : fs::directory_iterator(root / "Training" / name)) {
      if (copied++ == 3) break;
      fs::rename(entry.path(), root / "Testing" / name / entry.path().filename());  // moved: unique to Testing
    }
  }
  const fs::path leaked = *fs::directory_iterator(root / "Training/glioma");
  fs::copy_file(leaked, root / "Testing/glioma/copy_of_training.jpg");

  // The default policy (split-test) keeps the training copy; drop-train excludes it.
  const auto result =
      prep("-q --out " + shell_quote(scratch / "out") + " --folds 3 --holdout-split Testing " + shell_quote(root));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto dropping = prep("-q --out " + shell_quote(scratch / "dropped") +
                             " --folds 3 --holdout-split Testing --holdout-policy drop-train " + shell_quote(root));
  ASSERT_EQ(dropping.exit_code, 0) << dropping.output;
  const auto m = brainmri::data::read_manifest(scratch / "out");
  EXPECT_EQ(m.split_names, (std::vector<std::string>{"Testing", "Training"}));
  EXPECT_EQ(m.counts_by_split_and_class.at("Testing").at("glioma"), 4);
  EXPECT_EQ(m.folds.held_out_split, "Testing");
  EXPECT_EQ(m.folds.holdout_policy, brainmri::data::HoldoutPolicy::SplitTest);
  EXPECT_EQ(brainmri::data::read_manifest(scratch / "dropped").folds.holdout_policy,
            brainmri::data::HoldoutPolicy::DropTrain);

  std::map<std::string, std::string> split_of_path;
  const auto folds_by_path = [&](const fs::path& dataset) {
    const auto manifest = brainmri::data::read_manifest(dataset);
    std::map<std::string, int> fold_of_path;
    for (const auto& entry : manifest.shards) {
      const auto file = brainmri::hdf5::open_file_readonly(dataset / entry.file);
      const auto c = brainmri::data::read_shard_columns(file);
      for (std::size_t i = 0; i < c.labels.size(); ++i) {
        fold_of_path[c.source_paths[i]] = manifest.folds.fold_of_sample[static_cast<std::size_t>(c.sample_ids[i])];
        split_of_path[c.source_paths[i]] = c.source_split[i];
      }
    }
    return fold_of_path;
  };
  const auto kept = folds_by_path(scratch / "out");
  const auto dropped = folds_by_path(scratch / "dropped");
  for (const auto& [path, fold] : dropped) {
    if (split_of_path[path] == "Testing") {
      EXPECT_EQ(fold, format::kFoldHeldOut) << path;
      EXPECT_EQ(kept.at(path), format::kFoldHeldOut) << path;
    } else {
      EXPECT_GE(kept.at(path), 0) << path << ": split-test keeps every training image";
    }
  }
  EXPECT_EQ(dropped.at("Training/glioma/" + leaked.filename().string()), format::kFoldExcludedLeak);

  // The moved files may include one half of a duplicate pair already in the sample, so count
  // the leaks from the manifest and check that the audit reports the same.
  int excluded = 0;
  for (const auto& [path, fold] : dropped) excluded += fold == format::kFoldExcludedLeak;
  EXPECT_GE(excluded, 1);
  const auto audit =
      prep("audit " + shell_quote(scratch / "dropped") + " --json " + shell_quote(scratch / "audit.json"));
  ASSERT_EQ(audit.exit_code, 0) << audit.output;
  const auto json = read_json(scratch / "audit.json");
  EXPECT_EQ(json["folds"]["excluded_duplicates_of_held_out"].get<int>(), excluded);
  EXPECT_EQ(json["folds"]["held_out_samples_with_copy_in_folds"].get<int>(), 0);
  EXPECT_EQ(json["folds"]["held_out_samples"].get<int>(), 13);
  EXPECT_GE(json["duplicates"]["samples_with_duplicate_in_split"]["Testing"]["Training"].get<int>(), 1);
  EXPECT_NE(audit.output.find("Testing images with a duplicate in Training"), std::string::npos) << audit.output;
  // Under split-test the same held-out images are the contaminated part.
  const auto kept_audit =
      prep("audit " + shell_quote(scratch / "out") + " --json " + shell_quote(scratch / "kept.json"));
  ASSERT_EQ(kept_audit.exit_code, 0) << kept_audit.output;
  const auto kept_json = read_json(scratch / "kept.json");
  EXPECT_EQ(kept_json["folds"]["excluded_duplicates_of_held_out"].get<int>(), 0);
  EXPECT_GE(kept_json["folds"]["held_out_samples_with_copy_in_folds"].get<int>(), 1);
  EXPECT_NE(kept_audit.output.find("policy split-test"), std::string::npos) << kept_audit.output;

  // Only Training, then: the split filter.
  const auto training_only =
      prep("-q --splits Training --out " + shell_quote(scratch / "train") + " " + shell_quote(root));
  ASSERT_EQ(training_only.exit_code, 0) << training_only.output;
  EXPECT_EQ(brainmri::data::read_manifest(scratch / "train").split_names, (std::vector<std::string>{"Training"}));
}

TEST(PackLayouts, SeveralRootsAreMergedAndRecorded) {
  ScratchDir scratch;
  for (const auto* name : {"glioma", "notumor"}) {
    fs::create_directories(scratch / "a/Training" / name);
    fs::create_directories(scratch / "b/Training" / name);
    int n = 0;
    for (const auto& entry : fs::directory_iterator(kSampleRoot / "Training" / name)) {
      fs::copy_file(entry.path(), scratch / (n % 2 ? "a/Training" : "b/Training") / name / entry.path().filename());
      if (++n == 10) break;
    }
  }
  const auto result = prep("-q --class-map notumor=healthy --out " + shell_quote(scratch / "out") + " " +
                           shell_quote(scratch / "a") + " " + shell_quote(scratch / "b"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto m = brainmri::data::read_manifest(scratch / "out");
  EXPECT_EQ(m.sample_count, 20);
  EXPECT_EQ(m.roots.size(), 2u);
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"glioma", "healthy"}));
  const auto file = brainmri::hdf5::open_file_readonly(scratch / "out" / m.shards[0].file);
  const auto c = brainmri::data::read_shard_columns(file);
  EXPECT_EQ(std::count(c.source_roots.begin(), c.source_roots.end(), 0), 10);
  EXPECT_EQ(std::count(c.source_roots.begin(), c.source_roots.end(), 1), 10);
}
