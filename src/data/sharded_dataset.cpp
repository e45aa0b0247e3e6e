#include "brainmri/data/sharded_dataset.hpp"

#include <algorithm>

#include "brainmri/data/dataset_format.hpp"
#include "brainmri/data/hdf5.hpp"
#include "brainmri/data/shard_file.hpp"

namespace brainmri::data {

ShardedDataset::ShardedDataset(std::filesystem::path directory, FoldGrouping folds_by)
    : directory_(std::move(directory)), folds_by_(folds_by), manifest_(read_manifest(directory_)) {
  std::vector<std::string> content_hashes;
  bool sizes_known = true;
  labels_.reserve(static_cast<std::size_t>(manifest_.sample_count));
  for (const auto& entry : manifest_.shards) {
    const auto path = directory_ / entry.file;
    const auto file = hdf5::open_file_readonly(path);
    const auto header = read_shard_header(file);
    if (header.image_size != manifest_.image_size || header.channels != manifest_.channels ||
        header.dtype != manifest_.dtype || header.first_sample_id != entry.first_sample_id) {
      throw ManifestError(path.string() + ": shard header disagrees with manifest.json; run brainmri-prep verify");
    }
    auto columns = read_shard_columns(file);
    if (static_cast<std::int64_t>(columns.labels.size()) != entry.sample_count) {
      throw ManifestError(path.string() + ": holds " + std::to_string(columns.labels.size()) +
                          " samples, manifest.json says " + std::to_string(entry.sample_count));
    }
    labels_.insert(labels_.end(), columns.labels.begin(), columns.labels.end());
    std::move(columns.source_split.begin(), columns.source_split.end(), std::back_inserter(splits_));
    std::move(columns.source_paths.begin(), columns.source_paths.end(), std::back_inserter(paths_));
    colour_discarded_.insert(colour_discarded_.end(), columns.colour_discarded.begin(), columns.colour_discarded.end());
    sizes_known = sizes_known && columns.original_width.size() == columns.labels.size();
    for (std::size_t i = 0; sizes_known && i < columns.original_width.size(); ++i) {
      original_sizes_.push_back({columns.original_width[i], columns.original_height[i]});
    }
    if (folds_by_ == FoldGrouping::ExactCopies) {
      std::move(columns.content_hash.begin(), columns.content_hash.end(), std::back_inserter(content_hashes));
    }
  }
  if (!sizes_known) original_sizes_.clear();
  if (folds_by_ != FoldGrouping::DuplicateGroups) {
    require_folds();
    manifest_.folds.fold_of_sample = refold(manifest_, labels_, splits_, content_hashes, folds_by_);
  }
}

void ShardedDataset::require_folds() const {
  if (manifest_.folds.fold_count == 0) {
    throw std::invalid_argument(directory_.string() +
                                " has no fold assignment; repack it with brainmri-prep --folds K");
  }
}

int ShardedDataset::fold(std::int64_t sample_id) const {
  require_folds();
  return manifest_.folds.fold_of_sample.at(static_cast<std::size_t>(sample_id));
}

std::vector<std::int64_t> ShardedDataset::all() const {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(size()));
  std::iota(ids.begin(), ids.end(), std::int64_t{0});
  return ids;
}

std::vector<std::int64_t> ShardedDataset::select_split(std::string_view split) const {
  if (std::find(manifest_.split_names.begin(), manifest_.split_names.end(), split) == manifest_.split_names.end()) {
    throw std::invalid_argument("split '" + std::string(split) + "' is not in " + directory_.string());
  }
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < splits_.size(); ++i) {
    if (splits_[i] == split) ids.push_back(static_cast<std::int64_t>(i));
  }
  return ids;
}

std::vector<std::int64_t> ShardedDataset::select_folds(std::span<const int> folds) const {
  require_folds();
  for (const int f : folds) {
    if (f < 0 || f >= manifest_.folds.fold_count) {
      throw std::invalid_argument("fold " + std::to_string(f) + " is outside 0.." +
                                  std::to_string(manifest_.folds.fold_count - 1));
    }
  }
  std::vector<std::int64_t> ids;
  const auto& assignment = manifest_.folds.fold_of_sample;
  for (std::size_t i = 0; i < assignment.size(); ++i) {
    if (std::find(folds.begin(), folds.end(), assignment[i]) != folds.end())
      ids.push_back(static_cast<std::int64_t>(i));
  }
  return ids;
}

std::vector<std::int64_t> ShardedDataset::training_samples_for_fold(int validation_fold) const {
  require_folds();
  std::vector<int> others;
  for (int f = 0; f < manifest_.folds.fold_count; ++f) {
    if (f != validation_fold) others.push_back(f);
  }
  if (static_cast<int>(others.size()) == manifest_.folds.fold_count) {
    throw std::invalid_argument("validation fold " + std::to_string(validation_fold) + " does not exist");
  }
  return select_folds(others);
}

std::vector<std::int64_t> ShardedDataset::validation_samples_for_fold(int validation_fold) const {
  const int folds[] = {validation_fold};
  return select_folds(folds);
}

std::size_t ShardedDataset::shard_of(std::int64_t sample_id) const {
  if (sample_id < 0 || sample_id >= size()) {
    throw std::out_of_range("sample id " + std::to_string(sample_id) + " is outside 0.." + std::to_string(size() - 1));
  }
  const auto it = std::upper_bound(manifest_.shards.begin(), manifest_.shards.end(), sample_id,
                                   [](std::int64_t id, const ShardEntry& s) { return id < s.first_sample_id; });
  return static_cast<std::size_t>(std::distance(manifest_.shards.begin(), it)) - 1;
}

struct ShardImageReader::OpenShard {
  hdf5::Handle file;
  hdf5::Handle images;
  hdf5::Handle file_space;
};

ShardImageReader::ShardImageReader(const ShardedDataset& dataset)
    : dataset_(dataset), shards_(dataset.manifest().shards.size()) {}

ShardImageReader::~ShardImageReader() = default;

torch::Tensor ShardImageReader::read(std::span<const std::int64_t> sample_ids) {
  const auto& manifest = dataset_.manifest();
  const bool is_float = manifest.dtype == "float32";
  const auto h = static_cast<std::int64_t>(manifest.image_size);
  const auto c = static_cast<std::int64_t>(manifest.channels);
  auto out =
      torch::empty({static_cast<std::int64_t>(sample_ids.size()), h, h, c}, is_float ? torch::kFloat32 : torch::kUInt8);
  const std::size_t row_bytes = static_cast<std::size_t>(h * h * c) * (is_float ? 4 : 1);
  const hid_t memory_type = is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
  const hsize_t count[4] = {1, static_cast<hsize_t>(h), static_cast<hsize_t>(h), static_cast<hsize_t>(c)};
  hdf5::Handle memory_space(hdf5::check(H5Screate_simple(4, count, nullptr), "create memory dataspace"), H5Sclose);
  auto* base = static_cast<std::uint8_t*>(out.data_ptr());
  for (std::size_t position = 0; position < sample_ids.size(); ++position) {
    const auto id = sample_ids[position];
    const auto shard = dataset_.shard_of(id);
    const auto& entry = manifest.shards[shard];
    auto& open = shards_[shard];
    if (!open) {
      open = std::make_unique<OpenShard>();
      open->file = hdf5::open_file_readonly(dataset_.directory() / entry.file);
      open->images = hdf5::open_dataset(open->file, format::kImages);
      open->file_space = hdf5::Handle(hdf5::check(H5Dget_space(open->images), "get image dataspace"), H5Sclose);
    }
    const hsize_t start[4] = {static_cast<hsize_t>(id - entry.first_sample_id), 0, 0, 0};
    hdf5::check(H5Sselect_hyperslab(open->file_space, H5S_SELECT_SET, start, nullptr, count, nullptr),
                "select image row");
    hdf5::check(
        H5Dread(open->images, memory_type, memory_space, open->file_space, H5P_DEFAULT, base + position * row_bytes),
        "read image " + std::to_string(id) + " from " + entry.file);
  }
  return out;
}

torch::Tensor ShardedDataset::load_stored(std::span<const std::int64_t> sample_ids) const {
  ShardImageReader reader(*this);
  return reader.read(sample_ids);
}

Batch ShardedDataset::load(std::span<const std::int64_t> sample_ids) const {
  Batch batch;
  auto stored = load_stored(sample_ids);
  batch.images = stored.to(torch::kFloat32)
                     .mul_(manifest_.normalization_scale)
                     .add_(manifest_.normalization_offset)
                     .permute({0, 3, 1, 2})
                     .contiguous();
  std::vector<std::int64_t> labels;
  labels.reserve(sample_ids.size());
  for (const auto id : sample_ids) labels.push_back(label(id));
  batch.labels = torch::tensor(labels, torch::kInt64);
  batch.sample_ids = torch::tensor(std::vector<std::int64_t>(sample_ids.begin(), sample_ids.end()), torch::kInt64);
  return batch;
}

}  // namespace brainmri::data
