#include <gtest/gtest.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "brainmri/imaging/preprocess.hpp"

using namespace brainmri::imaging;
namespace fs = std::filesystem;

namespace {
std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
std::vector<std::uint8_t> encode(const cv::Mat& image, const std::string& extension) {
  std::vector<std::uint8_t> bytes;
  cv::imencode(extension, image, bytes);
  return bytes;
}
}  // namespace

TEST(Decode, JpegFastPathIsBitIdenticalToOpenCv) {
  int colour = 0, gray = 0;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(BRAINMRI_SAMPLE_DIR) / "Training")) {
    if (entry.path().extension() != ".jpg") continue;
    const auto bytes = read_bytes(entry.path());
    const cv::Mat ours = decode_image(bytes).pixels;
    const cv::Mat reference = cv::imdecode(bytes, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
    ASSERT_EQ(ours.type(), reference.type()) << entry.path();
    ASSERT_EQ(ours.size(), reference.size()) << entry.path();
    EXPECT_EQ(cv::norm(ours, reference, cv::NORM_INF), 0.0) << entry.path();
    (ours.channels() == 3 ? colour : gray)++;
  }
  EXPECT_GT(colour, 10);  // both kinds of JPEG are in the sample
  EXPECT_GT(gray, 10);
}

TEST(Decode, RejectsEmptyTruncatedAndForeignData) {
  EXPECT_THROW(decode_image({}), ImageRejected);
  const std::string text = "plain text";
  EXPECT_THROW(decode_image({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}), ImageRejected);
  cv::Mat image(64, 64, CV_8UC3, cv::Scalar(10, 100, 200));
  auto jpeg = encode(image, ".jpg");
  jpeg.resize(jpeg.size() / 2);
  try {
    decode_image(jpeg);
    FAIL();
  } catch (const ImageRejected& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
  }
}

TEST(Decode, KeepsSixteenBitsAndAlpha) {
  cv::Mat deep(20, 30, CV_16UC1, cv::Scalar(40000));
  EXPECT_EQ(decode_image(encode(deep, ".png")).pixels.type(), CV_16UC1);
  cv::Mat rgba(20, 30, CV_8UC4, cv::Scalar(1, 2, 3, 4));
  const auto decoded = decode_image(encode(rgba, ".png")).pixels;
  EXPECT_EQ(decoded.channels(), 3);  // ANYCOLOR drops alpha at decode
}

TEST(Preprocess, GrayColourAndDepthConversions) {
  cv::Mat colour(40, 60, CV_8UC3, cv::Scalar(0, 0, 255));  // pure red, BGR
  const auto gray = preprocess({colour}, {16, 1, ResizeMode::kStretch, PixelType::kUint8});
  EXPECT_EQ(gray.pixels.type(), CV_8UC1);
  EXPECT_EQ(gray.pixels.size(), cv::Size(16, 16));
  EXPECT_NEAR(gray.pixels.at<std::uint8_t>(8, 8), 76, 1);  // 0.299 * 255
  EXPECT_TRUE(gray.colour_discarded);
  const auto rgb = preprocess({colour}, {16, 3, ResizeMode::kStretch, PixelType::kFloat32});
  EXPECT_EQ(rgb.pixels.type(), CV_32FC3);
  EXPECT_FLOAT_EQ(rgb.pixels.at<cv::Vec3f>(8, 8)[0], 1.0f);  // red first: RGB order
  EXPECT_FALSE(rgb.colour_discarded);

  cv::Mat neutral(40, 60, CV_8UC3, cv::Scalar(90, 90, 90));
  EXPECT_FALSE(preprocess({neutral}, {16, 1, ResizeMode::kStretch, PixelType::kUint8}).colour_discarded);

  cv::Mat deep(32, 32, CV_16UC1, cv::Scalar(65535));
  const auto from_deep = preprocess({deep}, {16, 1, ResizeMode::kStretch, PixelType::kUint8});
  EXPECT_EQ(from_deep.pixels.at<std::uint8_t>(3, 3), 255);
  EXPECT_EQ(from_deep.source_bit_depth, 16);
}

TEST(Preprocess, PadKeepsAspectWithBlackBorders) {
  cv::Mat wide(50, 100, CV_8UC1, cv::Scalar(200));
  const auto padded = preprocess({wide}, {64, 1, ResizeMode::kPad, PixelType::kUint8});
  EXPECT_EQ(padded.pixels.size(), cv::Size(64, 64));
  EXPECT_EQ(padded.pixels.at<std::uint8_t>(0, 32), 0);     // border above
  EXPECT_EQ(padded.pixels.at<std::uint8_t>(32, 32), 200);  // content in the middle
  EXPECT_EQ(padded.pixels.at<std::uint8_t>(63, 32), 0);    // border below
  const auto stretched = preprocess({wide}, {64, 1, ResizeMode::kStretch, PixelType::kUint8});
  EXPECT_EQ(stretched.pixels.at<std::uint8_t>(0, 32), 200);
}

TEST(Preprocess, ByteAndFloatOutputAgreeWithinHalfAGreyLevel) {
  cv::Mat image(224, 224, CV_8UC1);
  cv::RNG(5).fill(image, cv::RNG::UNIFORM, 0, 256);
  const auto bytes = preprocess({image}, {128, 1, ResizeMode::kStretch, PixelType::kUint8});
  const auto floats = preprocess({image}, {128, 1, ResizeMode::kStretch, PixelType::kFloat32});
  cv::Mat scaled;
  bytes.pixels.convertTo(scaled, CV_32F, 1.0 / 255.0);
  EXPECT_LE(cv::norm(scaled, floats.pixels, cv::NORM_INF), 0.5 / 255.0 + 1e-6);
  EXPECT_THROW(parse_resize_mode("crop"), std::invalid_argument);
}

TEST(Decode, ExifOrientationIsHonouredThroughOpenCv) {
  cv::Mat image(32, 48, CV_8UC3, cv::Scalar(20, 20, 20));
  image(cv::Rect(0, 0, 24, 32)).setTo(cv::Scalar(230, 230, 230));  // bright left half
  const auto plain = encode(image, ".jpg");
  // An Exif APP1 segment holding one IFD entry: Orientation (0x0112) = 3, rotate 180 degrees.
  const std::vector<std::uint8_t> exif = {0xFF, 0xE1, 0x00, 0x22, 'E',  'x',  'i',  'f',  0,    0,    'I',  'I',
                                          0x2A, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x12, 0x01, 0x03, 0x00,
                                          0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  std::vector<std::uint8_t> rotated = plain;
  rotated.insert(rotated.begin() + 2, exif.begin(), exif.end());  // right after SOI

  const cv::Mat ours = decode_image(rotated).pixels;
  const cv::Mat reference = cv::imdecode(rotated, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
  ASSERT_EQ(ours.size(), reference.size());
  EXPECT_EQ(cv::norm(ours, reference, cv::NORM_INF), 0.0);
  EXPECT_LT(ours.at<cv::Vec3b>(16, 4)[0], 100);   // after the rotation the left is dark...
  EXPECT_GT(ours.at<cv::Vec3b>(16, 44)[0], 150);  // ...and the right bright
}

TEST(Decode, DeclaredSizeIsReadFromTheHeaderOfEveryAcceptedFormat) {
  const cv::Mat image(53, 37, CV_8UC3, cv::Scalar(10, 120, 200));
  for (const auto* extension : {".jpg", ".png", ".bmp", ".tif"}) {
    const auto bytes = encode(image, extension);
    const auto size = declared_image_size(bytes);
    ASSERT_TRUE(size.has_value()) << extension;
    EXPECT_EQ(*size, std::make_pair(std::int64_t{37}, std::int64_t{53})) << extension;
    // Within the limit it decodes as without one; beyond it, it is refused before decoding.
    EXPECT_EQ(decode_image(bytes, DecodeLimits{37 * 53}).pixels.size(), cv::Size(37, 53)) << extension;
    EXPECT_THROW(decode_image(bytes, DecodeLimits{37 * 53 - 1}), ImageTooLarge) << extension;
  }
  const std::vector<std::uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  EXPECT_FALSE(declared_image_size(text).has_value());
  EXPECT_THROW(decode_image(text, DecodeLimits{1000}), ImageRejected);
  // A PNG that promises 100000 x 100000 pixels in a 29-byte file.
  const std::string bomb("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\x01\x86\xa0\0\x01\x86\xa0\x08\0\0\0\0", 29);
  const std::vector<std::uint8_t> bomb_bytes(bomb.begin(), bomb.end());
  EXPECT_EQ(declared_image_size(bomb_bytes), std::make_pair(std::int64_t{100000}, std::int64_t{100000}));
  EXPECT_THROW(decode_image(bomb_bytes, DecodeLimits{50'000'000}), ImageTooLarge);
}
