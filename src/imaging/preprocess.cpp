#include "brainmri/imaging/preprocess.hpp"

#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
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

// True when the JPEG carries an Exif APP1 segment (which may rotate the image). Only the
// segments before the first scan are examined.
bool jpeg_has_exif(std::span<const std::uint8_t> data) {
  std::size_t at = 2;  // after SOI
  while (at + 4 <= data.size() && data[at] == 0xFF) {
    const std::uint8_t marker = data[at + 1];
    if (marker == 0xDA || marker == 0xD9) return false;  // start of scan / end of image
    const std::size_t length = (static_cast<std::size_t>(data[at + 2]) << 8) | data[at + 3];
    if (marker == 0xE1 && length >= 8 && at + 10 <= data.size() &&
        std::equal(data.begin() + static_cast<std::ptrdiff_t>(at + 4),
                   data.begin() + static_cast<std::ptrdiff_t>(at + 10), std::begin({'E', 'x', 'i', 'f', '\0', '\0'}))) {
      return true;
    }
    at += 2 + length;
  }
  return false;
}

class TurboJpegDecoder {
 public:
  TurboJpegDecoder() : handle_(tjInitDecompress()) {}
  TurboJpegDecoder(const TurboJpegDecoder&) = delete;
  TurboJpegDecoder& operator=(const TurboJpegDecoder&) = delete;
  ~TurboJpegDecoder() {
    if (handle_) tjDestroy(handle_);
  }

  // Decodes straight to OpenCV's BGR (or gray) layout. OpenCV 4.6 decodes colour JPEGs to RGB and
  // swaps the bytes in a scalar loop, a fifth of the packer's time; libjpeg-turbo writes BGR
  // directly. Same library, same accurate IDCT and fancy upsampling, so the pixels are
  // bit-identical to cv::imdecode's (tested). Returns nothing where OpenCV must decode instead:
  // CMYK, Exif orientation, or anything TurboJPEG cannot parse.
  std::optional<cv::Mat> decode(std::span<const std::uint8_t> data) {
    if (!handle_ || jpeg_has_exif(data)) return std::nullopt;
    int width = 0, height = 0, subsampling = 0, colour_space = 0;
    auto* bytes = const_cast<unsigned char*>(data.data());
    const auto size = static_cast<unsigned long>(data.size());
    if (tjDecompressHeader3(handle_, bytes, size, &width, &height, &subsampling, &colour_space) != 0)
      return std::nullopt;
    int pixel_format = 0;
    cv::Mat pixels;
    if (colour_space == TJCS_GRAY) {
      pixel_format = TJPF_GRAY;
      pixels.create(height, width, CV_8UC1);
    } else if (colour_space == TJCS_YCbCr || colour_space == TJCS_RGB) {
      pixel_format = TJPF_BGR;
      pixels.create(height, width, CV_8UC3);
    } else {
      return std::nullopt;
    }
    const int status = tjDecompress2(handle_, bytes, size, pixels.data, width, static_cast<int>(pixels.step), height,
                                     pixel_format, TJFLAG_ACCURATEDCT);
    // A warning (recoverable corrupt data) still yields the image, as it does through OpenCV.
    if (status != 0 && tjGetErrorCode(handle_) != TJERR_WARNING) return std::nullopt;
    return pixels;
  }

 private:
  tjhandle handle_;
};

}  // namespace

ResizeMode parse_resize_mode(const std::string& name) {
  if (name == "stretch") return ResizeMode::kStretch;
  if (name == "pad") return ResizeMode::kPad;
  throw std::invalid_argument("unknown resize mode '" + name + "' (expected stretch or pad)");
}

std::string to_string(ResizeMode mode) { return mode == ResizeMode::kStretch ? "stretch" : "pad"; }

namespace {

std::uint32_t big_endian(std::span<const std::uint8_t> d, std::size_t at, int bytes) {
  std::uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | d[at + static_cast<std::size_t>(i)];
  return v;
}

std::uint32_t little_endian(std::span<const std::uint8_t> d, std::size_t at, int bytes) {
  std::uint32_t v = 0;
  for (int i = bytes; i-- > 0;) v = (v << 8) | d[at + static_cast<std::size_t>(i)];
  return v;
}

using Size = std::optional<std::pair<std::int64_t, std::int64_t>>;

// The first start-of-frame segment (SOF0..SOF15 but DHT, JPG and DAC) holds height, then width.
Size jpeg_size(std::span<const std::uint8_t> d) {
  std::size_t at = 2;
  while (at + 9 <= d.size()) {
    if (d[at] != 0xFF) return std::nullopt;
    const std::uint8_t marker = d[at + 1];
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
      at += 2;
      continue;
    }
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      return std::make_pair(std::int64_t{big_endian(d, at + 7, 2)}, std::int64_t{big_endian(d, at + 5, 2)});
    }
    if (marker == 0xDA || marker == 0xD9) return std::nullopt;  // scan or end before any frame
    at += 2 + big_endian(d, at + 2, 2);
  }
  return std::nullopt;
}

Size tiff_size(std::span<const std::uint8_t> d) {
  const bool little = d[0] == 'I';
  auto read = [&](std::size_t at, int bytes) {
    return little ? little_endian(d, at, bytes) : big_endian(d, at, bytes);
  };
  const std::size_t ifd = read(4, 4);
  if (ifd + 2 > d.size()) return std::nullopt;
  const std::size_t entries = read(ifd, 2);
  std::int64_t width = -1, height = -1;
  for (std::size_t e = 0; e < entries && ifd + 2 + 12 * (e + 1) <= d.size(); ++e) {
    const std::size_t at = ifd + 2 + 12 * e;
    const auto tag = read(at, 2), type = read(at + 2, 2);
    const std::int64_t value = type == 3 ? read(at + 8, 2) : read(at + 8, 4);  // SHORT or LONG
    if (tag == 256) width = value;
    if (tag == 257) height = value;
  }
  if (width < 0 || height < 0) return std::nullopt;
  return std::make_pair(width, height);
}

}  // namespace

std::optional<std::pair<std::int64_t, std::int64_t>> declared_image_size(std::span<const std::uint8_t> d) {
  if (starts_with(d, {0xFF, 0xD8, 0xFF})) return jpeg_size(d);
  if (starts_with(d, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'})) {
    if (d.size() < 24) return std::nullopt;
    return std::make_pair(std::int64_t{big_endian(d, 16, 4)}, std::int64_t{big_endian(d, 20, 4)});
  }
  if (starts_with(d, {'B', 'M'}) && d.size() >= 26) {
    if (little_endian(d, 14, 4) == 12) {  // BITMAPCOREHEADER: 16-bit sizes
      return std::make_pair(std::int64_t{little_endian(d, 18, 2)}, std::int64_t{little_endian(d, 20, 2)});
    }
    const auto height = static_cast<std::int32_t>(little_endian(d, 22, 4));  // negative: top-down rows
    return std::make_pair(std::int64_t{static_cast<std::int32_t>(little_endian(d, 18, 4))},
                          std::abs(std::int64_t{height}));
  }
  if ((starts_with(d, {'I', 'I', 42, 0}) || starts_with(d, {'M', 'M', 0, 42})) && d.size() >= 8) return tiff_size(d);
  return std::nullopt;
}

DecodedImage decode_image(std::span<const std::uint8_t> encoded, const DecodeLimits& limits) {
  if (encoded.empty()) throw ImageRejected("empty file (0 bytes)");
  if (limits.max_pixels > 0) {
    const auto size = declared_image_size(encoded);
    if (!size) throw ImageRejected("not a JPEG, PNG, BMP or TIFF image (or its header is damaged)");
    const auto [width, height] = *size;
    if (width <= 0 || height <= 0) {
      throw ImageRejected("the header declares an empty image (" + std::to_string(width) + " x " +
                          std::to_string(height) + ")");
    }
    if (width * height > limits.max_pixels) {
      throw ImageTooLarge("the image declares " + std::to_string(width) + " x " + std::to_string(height) +
                          " pixels, more than the limit of " + std::to_string(limits.max_pixels / 1000000) +
                          " megapixels");
    }
  }
  const bool is_jpeg = starts_with(encoded, {0xFF, 0xD8, 0xFF});
  if (is_jpeg && jpeg_is_truncated(encoded)) throw ImageRejected("truncated JPEG (no end-of-image marker)");
  if (is_jpeg) {
    thread_local TurboJpegDecoder jpeg;
    if (auto pixels = jpeg.decode(encoded)) return {std::move(*pixels)};
  }
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
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw ImageRejected("cannot open file for reading");
  const auto size = static_cast<std::size_t>(in.tellg());
  std::vector<std::uint8_t> bytes(size);
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    throw ImageRejected("read error");
  }
  return decode_image(bytes);
}

double mean_channel_spread(const cv::Mat& pixels) {
  if (pixels.channels() < 3 || pixels.empty()) return 0.0;
  // Whole-plane operations: OpenCV vectorizes each, a per-pixel loop over interleaved BGR it cannot.
  std::vector<cv::Mat> planes;
  cv::split(pixels, planes);
  cv::Mat high, low;
  cv::max(planes[0], planes[1], high);
  cv::max(high, planes[2], high);
  cv::min(planes[0], planes[1], low);
  cv::min(low, planes[2], low);
  cv::subtract(high, low, high);  // high >= low, so nothing saturates
  const double to_8bit = pixels.depth() == CV_16U ? 255.0 / 65535.0 : 1.0;
  return cv::mean(high)[0] * to_8bit;
}

PreprocessedImage preprocess(const DecodedImage& decoded, const PreprocessOptions& options) {
  const cv::Mat& source = decoded.pixels;
  PreprocessedImage out;
  out.source_width = source.cols;
  out.source_height = source.rows;
  out.source_channels = source.channels();
  out.source_bit_depth = source.depth() == CV_16U ? 16 : 8;

  // Channels are converted at the source depth, exactly as cv::cvtColor does for an 8-bit image.
  // Alpha carries no anatomy and is dropped rather than composited.
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

  // 8-bit output from 8-bit input resizes the bytes directly: OpenCV's area interpolation
  // rounds once, and it is several times faster than a float round trip. Otherwise the resize
  // runs on [0,1] floats, so float output keeps sub-grey-level precision and 16-bit input
  // keeps its depth until the final rounding.
  const bool resize_bytes = options.output == PixelType::kUint8 && source.depth() == CV_8U;
  cv::Mat working;
  if (resize_bytes) {
    working = converted;
  } else {
    converted.convertTo(working, CV_32F, source.depth() == CV_16U ? 1.0 / 65535.0 : 1.0 / 255.0);
  }

  const int size = options.size;
  cv::Mat resized;
  // Area averaging is the alias-free choice when shrinking; it degrades to bilinear-like
  // weights when enlarging, which is what we want there too.
  if (options.resize == ResizeMode::kStretch) {
    cv::resize(working, resized, cv::Size(size, size), 0, 0, cv::INTER_AREA);
  } else {
    const double scale = static_cast<double>(size) / std::max(working.cols, working.rows);
    const int width = std::clamp(static_cast<int>(std::lround(working.cols * scale)), 1, size);
    const int height = std::clamp(static_cast<int>(std::lround(working.rows * scale)), 1, size);
    cv::Mat scaled;
    cv::resize(working, scaled, cv::Size(width, height), 0, 0, cv::INTER_AREA);
    resized = cv::Mat::zeros(size, size, scaled.type());
    scaled.copyTo(resized(cv::Rect((size - width) / 2, (size - height) / 2, width, height)));
  }

  if (resize_bytes) {
    out.pixels = resized;
  } else if (options.output == PixelType::kUint8) {
    resized.convertTo(out.pixels, CV_8U, 255.0);  // saturate_cast rounds to nearest
  } else {
    cv::min(cv::max(resized, 0.0), 1.0, out.pixels);
  }
  return out;
}

cv::Mat to_uint8(const cv::Mat& pixels) {
  if (pixels.depth() == CV_8U) return pixels;
  cv::Mat quantized;
  pixels.convertTo(quantized, CV_8U, 255.0);  // saturate_cast rounds to nearest
  return quantized;
}

}  // namespace brainmri::imaging
