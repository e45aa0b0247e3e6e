#include <gtest/gtest.h>

#include <fstream>

#include "discovery.hpp"
#include "test_support.hpp"

using namespace brainmri::prep;
namespace fs = std::filesystem;

namespace {
void touch(const fs::path& path) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << "x";
}

template <typename F>
std::string layout_error(F&& f) {
  try {
    f();
  } catch (const LayoutError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Discovery, KaggleLayoutWithSortedClassesAndSplits) {
  brainmri::testing::ScratchDir dir;
  for (const auto* split : {"Training", "Testing"}) {
    touch(dir / (std::string(split) + "/notumor/b.jpg"));
    touch(dir / (std::string(split) + "/notumor/a.jpg"));
    touch(dir / (std::string(split) + "/glioma/c.jpg"));
  }
  touch(dir / "Training/glioma/.hidden.jpg");
  const auto found = discover_dataset({{dir.path()}, {}, {}});
  EXPECT_EQ(found.class_names, (std::vector<std::string>{"glioma", "notumor"}));
  EXPECT_EQ(found.split_names, (std::vector<std::string>{"Testing", "Training"}));
  ASSERT_EQ(found.candidates.size(), 6u);
  EXPECT_EQ(found.candidates[0].relative_path, "Testing/glioma/c.jpg");
  EXPECT_EQ(found.candidates[1].relative_path, "Testing/notumor/a.jpg");
  EXPECT_EQ(found.candidates[5].relative_path, "Training/notumor/b.jpg");
  EXPECT_EQ(found.candidates[5].label, 1);
  EXPECT_EQ(found.candidates[5].split_index, 1);
}

TEST(Discovery, FlatLayoutTakesTheRootNameAsSplit) {
  brainmri::testing::ScratchDir dir;
  touch(dir / "Validation/pituitary/x.png");
  touch(dir / "Validation/glioma/y.png");
  const auto found = discover_dataset({{dir / "Validation"}, {}, {}});
  EXPECT_EQ(found.split_names, (std::vector<std::string>{"Validation"}));
  EXPECT_EQ(found.candidates[0].relative_path, "glioma/y.png");
}

TEST(Discovery, SplitFilterAndClassMap) {
  brainmri::testing::ScratchDir dir;
  touch(dir / "Training/notumor/a.jpg");
  touch(dir / "Training/glioma/a.jpg");
  touch(dir / "Testing/notumor/a.jpg");
  touch(dir / "Testing/glioma/a.jpg");
  const auto found = discover_dataset({{dir.path()}, {"Training"}, parse_class_map("notumor=healthy")});
  EXPECT_EQ(found.split_names, (std::vector<std::string>{"Training"}));
  EXPECT_EQ(found.class_names, (std::vector<std::string>{"glioma", "healthy"}));
  EXPECT_EQ(found.candidates.size(), 2u);
  EXPECT_NE(layout_error([&] {
              discover_dataset({{dir.path()}, {"Validation"}, {}});
            }).find("Testing, Training"),
            std::string::npos);
  EXPECT_NE(layout_error([&] {
              discover_dataset({{dir.path()}, {}, parse_class_map("meningioma=m")});
            }).find("meningioma"),
            std::string::npos);
  EXPECT_THROW(parse_class_map("notumor"), std::invalid_argument);
  EXPECT_THROW(parse_class_map("a=b,a=c"), std::invalid_argument);
}

TEST(Discovery, ClearErrorsForBadLayouts) {
  brainmri::testing::ScratchDir dir;
  EXPECT_NE(layout_error([&] {
              discover_dataset({{dir / "missing"}, {}, {}});
            }).find("does not exist"),
            std::string::npos);
  EXPECT_NE(layout_error([&] {
              discover_dataset({{dir.path()}, {}, {}});
            }).find("no class folders"),
            std::string::npos);

  fs::create_directories(dir / "Training/glioma");
  touch(dir / "Training/notumor/a.jpg");
  EXPECT_NE(layout_error([&] { discover_dataset({{dir.path()}, {}, {}}); }).find("is empty"), std::string::npos);

  touch(dir / "Training/glioma/a.jpg");
  touch(dir / "Testing/glioma/a.jpg");
  const auto message = layout_error([&] { discover_dataset({{dir.path()}, {}, {}}); });
  EXPECT_NE(message.find("class 'notumor' is missing from split(s) Testing"), std::string::npos) << message;
}
