// Schema round trip: what ShardWriter writes, the readers return, with the documented layout.

#include <gtest/gtest.h>

#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/data/shard_file.hpp"
#include "synthetic_dataset.hpp"
#include "test_support.hpp"

using namespace brainmri;
using brainmri::testing::ScratchDir;

TEST(ShardFile, HeaderColumnsAndPixelsRoundTrip) {
  ScratchDir dir;
  const auto m = brainmri::testing::write_synthetic_dataset(dir.path(), 10, 3, 8, 2, false, 2, 0);
  const auto file = hdf5::open_file_readonly(dir / m.shards[1].file);
  const auto header = data::read_shard_header(file);
  EXPECT_EQ(header.format_version, data::format::kFormatVersion);
  EXPECT_EQ(header.class_names, (std::vector<std::string>{"class0", "class1", "class2"}));
  EXPECT_EQ(header.image_size, 8);
  EXPECT_EQ(header.channels, 2);
  EXPECT_EQ(header.dtype, "uint8");
  EXPECT_DOUBLE_EQ(header.normalization_scale, 1.0 / 255.0);
  EXPECT_EQ(header.shard_index, 1);
  EXPECT_EQ(header.shard_count, 2);
  EXPECT_EQ(header.first_sample_id, 5);

  const auto columns = data::read_shard_columns(file);
  EXPECT_EQ(columns.sample_ids, (std::vector<std::int64_t>{5, 6, 7, 8, 9}));
  EXPECT_EQ(columns.labels, (std::vector<std::int32_t>{2, 0, 1, 2, 0}));
  EXPECT_EQ(columns.source_paths[0], "Training/class2/5.png");
  EXPECT_EQ(columns.content_hash[1], std::string(64, 'a'));
  EXPECT_EQ(columns.phash[2], 7 * 0x9E3779B97F4A7C15ULL);

  const auto images = hdf5::open_dataset(file, data::format::kImages);
  EXPECT_EQ(hdf5::dataset_shape(images), (std::vector<hsize_t>{5, 8, 8, 2}));
  std::vector<std::uint8_t> pixels(5 * 8 * 8 * 2);
  hdf5::check(H5Dread(images, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, pixels.data()), "read");
  for (std::size_t row = 0; row < 5; ++row) EXPECT_EQ(pixels[row * 128 + 17], 5 + row);
}

TEST(ShardFile, WriterRefusesColumnsOfTheWrongLength) {
  ScratchDir dir;
  data::ShardWriter writer(dir / "s.h5", {4, 1, false}, 2, 1);
  std::vector<std::uint8_t> pixels(16, 1);
  writer.append_pixels(pixels.data());
  data::ShardColumns empty;
  EXPECT_THROW(writer.finish({}, empty), hdf5::Hdf5Error);
}

TEST(ShardFile, MissingFilesAndDatasetsAreErrorsNamingThem) {
  ScratchDir dir;
  try {
    hdf5::open_file_readonly(dir / "absent.h5");
    FAIL();
  } catch (const hdf5::Hdf5Error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.h5"), std::string::npos);
  }
  const auto m = brainmri::testing::write_synthetic_dataset(dir / "d", 4, 2, 4, 1, true, 1, 2);
  const auto file = hdf5::open_file_readonly(dir / "d" / m.shards[0].file);
  EXPECT_THROW(hdf5::open_dataset(file, "no_such_dataset"), hdf5::Hdf5Error);
  EXPECT_EQ(data::read_shard_header(file).dtype, "float32");
}
