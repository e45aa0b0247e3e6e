#pragma once
// Content hashes (exact duplicates) and perceptual hashes (near duplicates); file digests are in
// brainmri/common/sha256.hpp.

#include <cstdint>
#include <filesystem>
#include <opencv2/core.hpp>
#include <span>
#include <string>

namespace brainmri::prep {

// SHA-256 of the decoded pixels together with their shape and type, as 64 hex characters:
// byte-identical files and re-encodings that decode to the same pixels hash alike.
std::string content_hash(const cv::Mat& decoded_pixels);

// 64-bit DCT perceptual hash (OpenCV img_hash PHash) of an 8-bit image, bit 63 = first bit.
std::uint64_t perceptual_hash(const cv::Mat& pixels_8bit);

inline int hamming_distance(std::uint64_t a, std::uint64_t b) { return __builtin_popcountll(a ^ b); }

}  // namespace brainmri::prep
