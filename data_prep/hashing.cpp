#include "hashing.hpp"

#include <array>
#include <fstream>
#include <memory>
#include <opencv2/img_hash.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

#include "brainmri/common/sha256.hpp"

namespace brainmri::prep {

std::string content_hash(const cv::Mat& decoded_pixels) {
  Sha256 sha;
  const std::array<std::int32_t, 3> header = {decoded_pixels.rows, decoded_pixels.cols, decoded_pixels.type()};
  sha.update(header.data(), sizeof(header));
  const std::size_t row_bytes = decoded_pixels.cols * decoded_pixels.elemSize();
  for (int row = 0; row < decoded_pixels.rows; ++row) sha.update(decoded_pixels.ptr(row), row_bytes);
  return sha.hex();
}

std::uint64_t perceptual_hash(const cv::Mat& pixels_8bit) {
  cv::Mat hash;
  cv::img_hash::pHash(pixels_8bit, hash);
  std::uint64_t value = 0;
  for (int i = 0; i < hash.cols; ++i) value = (value << 8) | hash.at<std::uint8_t>(0, i);
  return value;
}

}  // namespace brainmri::prep
