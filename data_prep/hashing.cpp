#include "hashing.hpp"

#include <openssl/evp.h>

#include <array>
#include <fstream>
#include <memory>
#include <opencv2/img_hash.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

namespace brainmri::prep {
namespace {

class Sha256 {
 public:
  Sha256() : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
    }
  }
  void update(const void* data, std::size_t size) {
    if (EVP_DigestUpdate(context_.get(), data, size) != 1) throw std::runtime_error("OpenSSL: SHA-256 update failed");
  }
  std::string hex() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(context_.get(), digest.data(), &length) != 1) {
      throw std::runtime_error("OpenSSL: SHA-256 final failed");
    }
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string text(length * 2, '0');
    for (unsigned int i = 0; i < length; ++i) {
      text[2 * i] = kDigits[digest[i] >> 4];
      text[2 * i + 1] = kDigits[digest[i] & 0xF];
    }
    return text;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context_;
};

}  // namespace

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

std::string sha256_hex(std::span<const std::uint8_t> data) {
  Sha256 sha;
  sha.update(data.data(), data.size());
  return sha.hex();
}

std::string sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string() + " to hash it");
  Sha256 sha;
  std::array<char, 1 << 16> buffer{};
  while (in) {
    in.read(buffer.data(), buffer.size());
    if (in.gcount() > 0) sha.update(buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error("read error while hashing " + path.string());
  return sha.hex();
}

}  // namespace brainmri::prep
