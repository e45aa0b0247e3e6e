#pragma once
// Helpers for the packer's integration tests: run brainmri-prep, read shards back.

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>

#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/data/manifest.hpp"
#include "brainmri/data/shard_file.hpp"
#include "test_support.hpp"

namespace brainmri::testing {

inline const std::filesystem::path kSampleRoot = BRAINMRI_SAMPLE_DIR;
inline const std::string kPrep = BRAINMRI_PREP_EXE;

inline CommandResult prep(const std::string& arguments) { return run_command(shell_quote(kPrep) + " " + arguments); }

// One stored image as an OpenCV matrix (uint8 or float32, H x W x C).
inline cv::Mat read_stored_image(const std::filesystem::path& shard, std::size_t row) {
  const auto file = hdf5::open_file_readonly(shard);
  const auto images = hdf5::open_dataset(file, data::format::kImages);
  const auto shape = hdf5::dataset_shape(images);
  hdf5::Handle type(H5Dget_type(images), H5Tclose);
  const bool is_float = H5Tget_class(type) == H5T_FLOAT;
  cv::Mat image(static_cast<int>(shape[1]), static_cast<int>(shape[2]),
                CV_MAKETYPE(is_float ? CV_32F : CV_8U, static_cast<int>(shape[3])));
  hdf5::Handle space(H5Dget_space(images), H5Sclose);
  const hsize_t start[4] = {row, 0, 0, 0};
  const hsize_t count[4] = {1, shape[1], shape[2], shape[3]};
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hdf5::Handle memory(H5Screate_simple(4, count, nullptr), H5Sclose);
  hdf5::check(H5Dread(images, is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, memory, space, H5P_DEFAULT, image.data),
              "read test image");
  return image;
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

}  // namespace brainmri::testing
