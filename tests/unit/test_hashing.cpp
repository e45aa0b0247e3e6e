#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>
#include <random>

#include "brainmri/common/sha256.hpp"
#include "hashing.hpp"

using namespace brainmri::prep;

namespace {
cv::Mat random_image(unsigned seed, int size = 96) {
  cv::Mat image(size, size, CV_8UC1);
  cv::RNG rng(seed);
  rng.fill(image, cv::RNG::UNIFORM, 0, 256);
  cv::GaussianBlur(image, image, cv::Size(15, 15), 5);  // smooth structure, like anatomy
  return image;
}
}  // namespace

TEST(Sha256, MatchesKnownVector) {
  const std::string abc = "abc";
  EXPECT_EQ(brainmri::sha256_hex({reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size()}),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ContentHash, EqualPixelsHashEqualAndAnyChangeDiffers) {
  const cv::Mat a = random_image(1);
  const cv::Mat copy = a.clone();
  EXPECT_EQ(content_hash(a), content_hash(copy));
  cv::Mat changed = a.clone();
  changed.at<std::uint8_t>(10, 10) ^= 1;
  EXPECT_NE(content_hash(a), content_hash(changed));
  // The same bytes in another shape are another image.
  EXPECT_NE(content_hash(a), content_hash(a.reshape(1, a.cols / 2)));
  EXPECT_EQ(content_hash(a).size(), 64u);
}

TEST(ContentHash, IgnoresRowPaddingOfViews) {
  const cv::Mat big = random_image(2, 128);
  const cv::Mat view = big(cv::Rect(8, 8, 64, 64));
  EXPECT_EQ(content_hash(view), content_hash(view.clone()));
}

TEST(PerceptualHash, NearForSmallChangesFarForOtherImages) {
  const cv::Mat a = random_image(3);
  cv::Mat brighter;
  a.convertTo(brighter, -1, 1.0, 6.0);
  cv::Mat noisy = a.clone();
  cv::RNG rng(9);
  cv::Mat noise(a.size(), CV_8SC1);
  rng.fill(noise, cv::RNG::UNIFORM, -3, 4);
  cv::add(a, noise, noisy, cv::noArray(), CV_8U);
  const auto base = perceptual_hash(a);
  EXPECT_LE(hamming_distance(base, perceptual_hash(brighter)), 2);
  EXPECT_LE(hamming_distance(base, perceptual_hash(noisy)), 4);
  int far = 0;
  for (unsigned seed = 10; seed < 20; ++seed) far += hamming_distance(base, perceptual_hash(random_image(seed))) > 12;
  EXPECT_GE(far, 9);
}
