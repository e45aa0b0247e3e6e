#pragma once
// Decoding and preprocessing of one image file: the single code path shared by brainmri-prep
// and by everything that classifies a new image, so training and inference see the same pixels.

#include <cstdint>
#include <filesystem>
#include <opencv2/core.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

namespace brainmri::imaging {

// A file that cannot become a training image; what() is a reason fit for a rejection list.
class ImageRejected : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An image whose header declares more pixels than the caller accepts (a "decompression bomb": a
// small file that would decode to gigabytes).
class ImageTooLarge : public ImageRejected {
 public:
  using ImageRejected::ImageRejected;
};

enum class ResizeMode { kStretch, kPad };

enum class PixelType { kUint8, kFloat32 };

struct PreprocessOptions {
  int size = 128;    // output is size x size
  int channels = 1;  // 1 (grayscale) or 3 (RGB order)
  ResizeMode resize = ResizeMode::kStretch;
  PixelType output = PixelType::kUint8;
};

struct DecodedImage {
  cv::Mat pixels;  // as decoded: 8- or 16-bit, 1, 3 or 4 channels (BGR[A] order)
};

struct PreprocessedImage {
  // size x size x channels: CV_8U (value / 255 in [0,1]) or CV_32F (in [0,1]), per options.output.
  cv::Mat pixels;
  int source_width = 0;
  int source_height = 0;
  int source_channels = 0;
  int source_bit_depth = 0;
  bool colour_discarded = false;  // the source had real colour and channels == 1 removed it
};

ResizeMode parse_resize_mode(const std::string& name);  // "stretch" | "pad"
std::string to_string(ResizeMode mode);

// The width and height the header of a JPEG, PNG, BMP or TIFF declares, read without decoding;
// nullopt for another format or a header too short to say.
std::optional<std::pair<std::int64_t, std::int64_t>> declared_image_size(std::span<const std::uint8_t> encoded);

struct DecodeLimits {
  // 0: no limit. Otherwise only JPEG, PNG, BMP and TIFF are accepted (formats whose size can be
  // read before decoding), and only up to this many pixels (ImageTooLarge).
  std::int64_t max_pixels = 0;
};

// Throws ImageRejected for empty, truncated or undecodable data (ImageTooLarge beyond the limits).
DecodedImage decode_image(std::span<const std::uint8_t> encoded, const DecodeLimits& limits = {});
DecodedImage decode_image_file(const std::filesystem::path& path);

PreprocessedImage preprocess(const DecodedImage& decoded, const PreprocessOptions& options);

// Mean over pixels of (max channel - min channel), in 8-bit grey levels. Grayscale content saved
// as a colour JPEG stays well below 1 (chroma noise); real tints and colour overlays exceed it.
double mean_channel_spread(const cv::Mat& pixels);
inline constexpr double kColourSpreadThreshold = 1.0;

// The preprocessed pixels as 8-bit (floats in [0,1] are rounded from value * 255).
cv::Mat to_uint8(const cv::Mat& pixels);

}  // namespace brainmri::imaging
