// A copy of the sample with broken and unusual files added: bad ones rejected with reasons,
// good ones packed, and every usage mistake answered with a clear message and the right code.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "prep_test_support.hpp"

using namespace brainmri::testing;
namespace fs = std::filesystem;

namespace {

fs::path first_jpeg(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".jpg") return entry.path();
  }
  return {};
}

class SampleWithBadFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::copy(kSampleRoot, root(), fs::copy_options::recursive);
    const fs::path glioma = root() / "Training/glioma";
    std::ofstream(glioma / "zero_bytes.jpg");
    std::ofstream(glioma / "text_named.jpg") << "this is a text file, not a JPEG\n";
    {
      const auto source = first_jpeg(glioma);
      std::ifstream in(source, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::ofstream(glioma / "truncated.jpg", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    }
    // A 16-bit grayscale PNG: a horizontal ramp over the full 16-bit range.
    cv::Mat ramp(200, 256, CV_16UC1);
    for (int x = 0; x < 256; ++x) ramp.col(x).setTo(x * 257);
    ASSERT_TRUE(cv::imwrite((root() / "Training/notumor/sixteen_bit.png").string(), ramp));
    // The other formats OpenCV reads: BMP and TIFF.
    cv::Mat gray(90, 70, CV_8UC1, cv::Scalar(120));
    ASSERT_TRUE(cv::imwrite((root() / "Training/meningioma/bitmap.bmp").string(), gray));
    ASSERT_TRUE(cv::imwrite((root() / "Training/meningioma/scan.tiff").string(), gray));
    // An RGBA PNG with real colour (a red square on a blue field).
    cv::Mat rgba(180, 180, CV_8UC4, cv::Scalar(200, 40, 10, 255));
    rgba(cv::Rect(40, 40, 100, 100)).setTo(cv::Scalar(10, 20, 220, 128));
    ASSERT_TRUE(cv::imwrite((root() / "Training/pituitary/colour_rgba.png").string(), rgba));
  }
  fs::path root() const { return scratch_ / "input"; }
  ScratchDir scratch_;
};

}  // namespace

TEST_F(SampleWithBadFiles, BadFilesAreRejectedWithReasonsGoodOnesPacked) {
  const auto result = prep("-q --out " + shell_quote(scratch_ / "out") + " " + shell_quote(root()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto m = brainmri::data::read_manifest(scratch_ / "out");
  ASSERT_EQ(m.rejected.size(), 3u);
  std::map<std::string, std::string> reasons;
  for (const auto& r : m.rejected) reasons[fs::path(r.path).filename().string()] = r.reason;
  EXPECT_NE(reasons["zero_bytes.jpg"].find("empty file"), std::string::npos);
  EXPECT_NE(reasons["text_named.jpg"].find("not an image"), std::string::npos);
  EXPECT_NE(reasons["truncated.jpg"].find("truncated"), std::string::npos);

  // The 16-bit and RGBA images are in, with the right pixels and colour flag.
  bool saw_sixteen = false, saw_rgba = false;
  for (const auto& entry : m.shards) {
    const auto file = brainmri::hdf5::open_file_readonly(scratch_ / "out" / entry.file);
    const auto columns = brainmri::data::read_shard_columns(file);
    for (std::size_t row = 0; row < columns.source_paths.size(); ++row) {
      if (columns.source_paths[row] == "Training/notumor/sixteen_bit.png") {
        saw_sixteen = true;
        const cv::Mat image = read_stored_image(scratch_ / "out" / entry.file, row);
        EXPECT_NEAR(image.at<std::uint8_t>(64, 0), 0, 1);
        EXPECT_NEAR(image.at<std::uint8_t>(64, 127), 255, 1);
        EXPECT_NEAR(image.at<std::uint8_t>(64, 64), 128, 2);
        EXPECT_EQ(columns.colour_discarded[row], 0);
        EXPECT_EQ(columns.original_width[row], 256);  // format version 2 records the source's size
        EXPECT_EQ(columns.original_height[row], 200);
      }
      if (columns.source_paths[row] == "Training/pituitary/colour_rgba.png") {
        saw_rgba = true;
        EXPECT_EQ(columns.colour_discarded[row], 1);
        EXPECT_EQ(columns.original_width[row], 180);
      }
      if (columns.source_paths[row] == "Training/meningioma/bitmap.bmp") {
        EXPECT_EQ(columns.original_width[row], 70);
        EXPECT_EQ(columns.original_height[row], 90);
      }
    }
  }
  EXPECT_TRUE(saw_sixteen);
  EXPECT_TRUE(saw_rgba);
  EXPECT_EQ(m.counts_by_split_and_class.at("Training").at("meningioma"), 42);  // 40 JPEGs + BMP + TIFF

  const auto audit = prep("audit " + shell_quote(scratch_ / "out"));
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_NE(audit.output.find("Rejected inputs: 3"), std::string::npos) << audit.output;
  EXPECT_NE(audit.output.find("truncated.jpg: truncated JPEG"), std::string::npos) << audit.output;
}

TEST_F(SampleWithBadFiles, StrictTurnsRejectionsIntoFailureWithNoOutput) {
  const auto result = prep("-q --strict --out " + shell_quote(scratch_ / "out") + " " + shell_quote(root()));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--strict"), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(scratch_ / "out"));
  for (const auto& entry : fs::directory_iterator(scratch_.path())) EXPECT_EQ(entry.path().filename(), "input");
}

TEST(PrepUsage, UnknownOrInvalidOptionsExitWithTwo) {
  ScratchDir scratch;
  const auto unknown = prep("--out " + shell_quote(scratch / "o") + " --no-such-option " + shell_quote(kSampleRoot));
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.output.find("no-such-option"), std::string::npos) << unknown.output;
  EXPECT_EQ(prep("--out " + shell_quote(scratch / "o") + " --size abc " + shell_quote(kSampleRoot)).exit_code, 2);
  EXPECT_EQ(prep("--out " + shell_quote(scratch / "o") + " --dtype int16 " + shell_quote(kSampleRoot)).exit_code, 2);
  EXPECT_EQ(prep(shell_quote(kSampleRoot)).exit_code, 2);  // no --out
  EXPECT_EQ(prep("verify").exit_code, 2);
  EXPECT_FALSE(fs::exists(scratch / "o"));
}

TEST(PrepUsage, HelpDocumentsEveryOptionWithItsDefault) {
  const auto help = prep("--help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* option : {"--out", "--force", "--splits", "--class-map", "--size", "--channels", "--resize",
                             "--dtype", "--shards", "--shard-size-mb", "--threads", "--compression", "--near-dup-bits",
                             "--folds", "--seed", "--holdout-split", "--strict"}) {
    EXPECT_NE(help.output.find(option), std::string::npos) << option;
  }
  EXPECT_NE(help.output.find("(=128)"), std::string::npos);
  EXPECT_NE(help.output.find("(=stretch)"), std::string::npos);
  EXPECT_EQ(prep("verify --help").exit_code, 0);
  EXPECT_EQ(prep("audit --help").exit_code, 0);
}

TEST(PrepUsage, LayoutErrorsNameThePath) {
  ScratchDir scratch;
  const auto missing = prep("--out " + shell_quote(scratch / "o") + " " + shell_quote(scratch / "nowhere"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find((scratch / "nowhere").string()), std::string::npos) << missing.output;
  EXPECT_NE(missing.output.find("does not exist"), std::string::npos);

  fs::create_directories(scratch / "in/Training/glioma");
  fs::create_directories(scratch / "in/Training/notumor");
  fs::copy(first_jpeg(kSampleRoot / "Training/glioma"), scratch / "in/Training/glioma/a.jpg");
  const auto empty = prep("--out " + shell_quote(scratch / "o") + " " + shell_quote(scratch / "in"));
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.output.find("notumor is empty"), std::string::npos) << empty.output;
  EXPECT_FALSE(fs::exists(scratch / "o"));
}

TEST(PrepUsage, UnwritableOutputFailsCleanly) {
  ScratchDir scratch;
  std::ofstream(scratch / "a_file") << "x";
  const auto result = prep("-q --out " + shell_quote(scratch / "a_file" / "out") + " " + shell_quote(kSampleRoot));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("cannot create"), std::string::npos) << result.output;
}

TEST(PrepUsage, DiskFullMidRunFailsAndRemovesThePartialOutput) {
  ScratchDir scratch;
  // A file-size limit makes every write past 64 KiB fail with EFBIG, as a full disk would
  // (SIGXFSZ is ignored so the write returns an error instead of killing the process).
  const std::string script = "trap '' XFSZ; ulimit -f 64; exec " + shell_quote(kPrep) + " -q --out " +
                             shell_quote(scratch / "out") + " " + shell_quote(kSampleRoot);
  const auto result = run_command("bash -c " + shell_quote(script));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("error"), std::string::npos) << result.output;
  for (const auto& entry : fs::directory_iterator(scratch.path())) ADD_FAILURE() << "left behind: " << entry.path();
}

TEST(PrepUsage, ConfigFileSetsOptionsAndTheCommandLineWins) {
  ScratchDir scratch;
  std::ofstream(scratch / "prep.ini") << "size = 48\nfolds = 3\nseed = 5\n";
  const auto result = prep("-q --config " + shell_quote(scratch / "prep.ini") + " --seed 6 --out " +
                           shell_quote(scratch / "out") + " " + shell_quote(kSampleRoot));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto m = brainmri::data::read_manifest(scratch / "out");
  EXPECT_EQ(m.image_size, 48);
  EXPECT_EQ(m.folds.fold_count, 3);
  EXPECT_EQ(m.folds.seed, 6u);
  EXPECT_EQ(
      prep("-q --config " + shell_quote(scratch / "missing.ini") + " --out x " + shell_quote(kSampleRoot)).exit_code,
      2);
}
