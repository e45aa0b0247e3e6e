#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/manifest.hpp"

using namespace brainmri::data;

namespace {
Manifest example() {
  Manifest m;
  m.format_version = format::kFormatVersion;
  m.tool_version = "brainmri-prep test";
  m.command_line = {"brainmri-prep", "--out", "x", "root"};
  m.roots = {"/data/root"};
  m.class_names = {"glioma", "notumor"};
  m.split_names = {"Testing", "Training"};
  m.image_size = 128;
  m.channels = 1;
  m.dtype = "uint8";
  m.normalization_scale = 1.0 / 255.0;
  m.resize_mode = "stretch";
  m.compression_level = 4;
  m.sample_count = 5;
  m.counts_by_split_and_class = {{"Training", {{"glioma", 3}, {"notumor", 2}}}};
  m.shards = {{"shard-00000-of-00002.h5", 0, 3, 1000, std::string(64, 'a'), {2, 1}},
              {"shard-00001-of-00002.h5", 3, 2, 900, std::string(64, 'b'), {1, 1}}};
  m.near_duplicate_bits = 2;
  m.duplicate_groups = {{{0, 4}, true, true}};
  m.folds = {2, 7, "", brainmri::data::HoldoutPolicy::SplitTest, {0, 1, 0, 1, 0}};
  m.rejected = {{"/data/root/x.jpg", "empty file (0 bytes)"}};
  return m;
}
}  // namespace

TEST(Manifest, RoundTripsEveryField) {
  const Manifest m = example();
  const Manifest back = parse_manifest(serialize_manifest(m), "test");
  EXPECT_EQ(serialize_manifest(back), serialize_manifest(m));
  EXPECT_EQ(back.shards[1].first_sample_id, 3);
  EXPECT_DOUBLE_EQ(back.normalization_scale, 1.0 / 255.0);
  EXPECT_EQ(back.duplicate_groups[0].members, (std::vector<std::int64_t>{0, 4}));
  EXPECT_EQ(back.folds.fold_of_sample, (std::vector<int>{0, 1, 0, 1, 0}));
  EXPECT_EQ(back.folds.holdout_policy, brainmri::data::HoldoutPolicy::SplitTest);
}

TEST(Manifest, OlderManifestsWithoutAHoldoutPolicyExcludedTheCopies) {
  auto j = nlohmann::json::parse(serialize_manifest(example()));
  j["folds"].erase("holdout_policy");
  EXPECT_EQ(parse_manifest(j.dump(), "old.json").folds.holdout_policy, brainmri::data::HoldoutPolicy::DropTrain);
  j["folds"]["holdout_policy"] = "keep-everything";
  EXPECT_THROW(parse_manifest(j.dump(), "bad.json"), ManifestError);
}

TEST(Manifest, RejectsInconsistentOrForeignFiles) {
  EXPECT_THROW(parse_manifest("{not json", "m.json"), ManifestError);
  EXPECT_THROW(parse_manifest("{}", "m.json"), ManifestError);

  Manifest newer = example();
  newer.format_version = format::kFormatVersion + 1;
  try {
    parse_manifest(serialize_manifest(newer), "m.json");
    FAIL() << "a newer format must be refused";
  } catch (const ManifestError& e) {
    EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos);
  }

  Manifest gap = example();
  gap.shards[1].first_sample_id = 4;
  EXPECT_THROW(parse_manifest(serialize_manifest(gap), "m.json"), ManifestError);

  Manifest short_folds = example();
  short_folds.folds.fold_of_sample.pop_back();
  EXPECT_THROW(parse_manifest(serialize_manifest(short_folds), "m.json"), ManifestError);

  Manifest bad_member = example();
  bad_member.duplicate_groups[0].members.push_back(99);
  EXPECT_THROW(parse_manifest(serialize_manifest(bad_member), "m.json"), ManifestError);
}
