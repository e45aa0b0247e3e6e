#include "brainmri/imaging/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

namespace brainmri::imaging {
namespace {

bool starts_with(std::span<const std::uint8_t> data, std::initializer_list<std::uint8_t> magic) {
  return data.size() >= magic.size() && std::equal(magic.begin(), magic.end(), data.begin());
}

// libjpeg decodes a truncated JPEG without failing (it pads the missing rows with grey), so a cut
// file would enter the dataset silently. A complete JPEG ends with the EOI marker FF D9, possibly
// followed by a few bytes of padding some writers append.
bool jpeg_is_truncated(std::span<const std::uint8_t> data) {
  constexpr std::size_t kTrailingSlack = 1024;
  const std::size_t start = data.size() > kTrailingSlack ? data.size() - kTrailingSlack : 2;
  for (std::size_t i = data.size(); i-- > start + 1;) {
    if (data[i - 1] == 0xFF && data[i] == 0xD9) return false;
  }
  return true;
}

}  // namespace

ResizeMode parse_resize_mode(const std::string& name) {
  if (name == "stretch") return ResizeMode::kStretch;
  if (name == "pad") return ResizeMode::kPad;
  throw std::invalid_argument("unknown resize mode '" + name + "' (expected stretch or pad)");
}

std::string to_string(ResizeMode mode) { return mode == ResizeMode::kStretch ? "stretch" : "pad"; }

DecodedImage decode_image(std::span<const std::uint8_t> encoded) {
  if (encoded.empty()) throw ImageRejected("empty file (0 bytes)");
  const bool is_jpeg = starts_with(encoded, {0xFF, 0xD8, 0xFF});
  if (is_jpeg && jpeg_is_truncated(encoded)) throw ImageRejected("truncated JPEG (no end-of-image marker)");
  // ANYDEPTH keeps 16-bit data; ANYCOLOR keeps grayscale as one channel and applies EXIF
  // orientation, which IMREAD_UNCHANGED would not.
  const cv::Mat wrapped(1, static_cast<int>(encoded.size()), CV_8UC1, const_cast<std::uint8_t*>(encoded.data()));
  cv::Mat pixels;
  try {
    pixels = cv::imdecode(wrapped, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
  } catch (const cv::Exception& e) {
    throw ImageRejected(std::string("cannot decode image: ") + e.what());
  }
  if (pixels.empty()) throw ImageRejected("not an image OpenCV can decode (unknown format or corrupt data)");
  if (pixels.depth() != CV_8U && pixels.depth() != CV_16U) {
    throw ImageRejected("unsupported pixel depth (only 8- and 16-bit integer images are accepted)");
  }
  return {pixels};
}

DecodedImage decode_image_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ImageRejected("cannot open file for reading");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ImageRejected("read error");
  return decode_image(bytes);
}

double mean_channel_spread(const cv::Mat& pixels) {
  if (pixels.channels() < 3) return 0.0;
  std::vector<cv::Mat> planes;
  cv::split(pixels, planes);
  cv::Mat high = cv::max(cv::max(planes[0], planes[1]), planes[2]);
  cv::Mat low = cv::min(cv::min(planes[0], planes[1]), planes[2]);
  cv::Mat spread;
  cv::subtract(high, low, spread, cv::noArray(), CV_32F);
  const double to_8bit = pixels.depth() == CV_16U ? 255.0 / 65535.0 : 1.0;
  return cv::mean(spread)[0] * to_8bit;
}

PreprocessedImage preprocess(const DecodedImage& decoded, const PreprocessOptions& options) {
  const cv::Mat& source = decoded.pixels;
  PreprocessedImage out;
  out.source_width = source.cols;
  out.source_height = source.rows;
  out.source_channels = source.channels();
  out.source_bit_depth = source.depth() == CV_16U ? 16 : 8;

  // Channels are converted at the source depth, exactly as cv::cvtColor does for an 8-bit image;
  // values become [0,1] floats only afterwards, for the resize. Alpha carries no anatomy and is
  // dropped rather than composited.
  cv::Mat converted;
  const int source_channels = source.channels();
  if (options.channels == 1) {
    if (source_channels == 1) {
      converted = source;
    } else {
      out.colour_discarded = mean_channel_spread(source) > kColourSpreadThreshold;
      cv::cvtColor(source, converted, source_channels == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
    }
  } else if (options.channels == 3) {
    if (source_channels == 1) {
      cv::cvtColor(source, converted, cv::COLOR_GRAY2RGB);
    } else {
      cv::cvtColor(source, converted, source_channels == 4 ? cv::COLOR_BGRA2RGB : cv::COLOR_BGR2RGB);
    }
  } else {
    throw std::invalid_argument("channels must be 1 or 3, got " + std::to_string(options.channels));
  }
  cv::Mat unit;
  converted.convertTo(unit, CV_32F, source.depth() == CV_16U ? 1.0 / 65535.0 : 1.0 / 255.0);

  const int size = options.size;
  // Area averaging is the alias-free choice when shrinking; it degrades to bilinear-like
  // weights when enlarging, which is what we want there too.
  if (options.resize == ResizeMode::kStretch) {
    cv::resize(unit, out.unit_pixels, cv::Size(size, size), 0, 0, cv::INTER_AREA);
  } else {
    const double scale = static_cast<double>(size) / std::max(unit.cols, unit.rows);
    const int width = std::clamp(static_cast<int>(std::lround(unit.cols * scale)), 1, size);
    const int height = std::clamp(static_cast<int>(std::lround(unit.rows * scale)), 1, size);
    cv::Mat scaled;
    cv::resize(unit, scaled, cv::Size(width, height), 0, 0, cv::INTER_AREA);
    out.unit_pixels = cv::Mat::zeros(size, size, scaled.type());
    scaled.copyTo(out.unit_pixels(cv::Rect((size - width) / 2, (size - height) / 2, width, height)));
  }
  cv::min(cv::max(out.unit_pixels, 0.0), 1.0, out.unit_pixels);
  return out;
}

cv::Mat to_uint8(const cv::Mat& unit_pixels) {
  cv::Mat quantized;
  unit_pixels.convertTo(quantized, CV_8U, 255.0);  // saturate_cast rounds to nearest
  return quantized;
}

}  // namespace brainmri::imaging
