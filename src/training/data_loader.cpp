#include "brainmri/training/data_loader.hpp"

#include <algorithm>
#include <numeric>
#include <random>

#include "brainmri/training/augmentation.hpp"

namespace brainmri::training {

InMemoryLoader::InMemoryLoader(const data::ShardedDataset& dataset, std::vector<std::int64_t> sample_ids,
                               torch::Device device)
    : sample_ids_(std::move(sample_ids)),
      scale_(dataset.manifest().normalization_scale),
      offset_(dataset.manifest().normalization_offset) {
  stored_ = dataset.load_stored(sample_ids_).permute({0, 3, 1, 2}).contiguous().to(device);
  std::vector<std::int64_t> labels;
  labels.reserve(sample_ids_.size());
  for (const auto id : sample_ids_) labels.push_back(dataset.label(id));
  labels_ = torch::tensor(labels, torch::kInt64).to(device);
}

std::vector<std::int64_t> InMemoryLoader::class_counts(int class_count) const {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(class_count), 0);
  const auto labels = labels_.to(torch::kCPU);
  const auto* data = labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) ++counts[static_cast<std::size_t>(data[i])];
  return counts;
}

BatchPlan InMemoryLoader::plan_epoch(std::uint64_t seed, int epoch, std::int64_t batch_size, bool shuffle,
                                     bool drop_last, int rank, int world) const {
  std::vector<std::int64_t> order(static_cast<std::size_t>(size()));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (shuffle) {
    std::mt19937_64 random(augmentation_seed(seed, -1, epoch, -1));
    std::shuffle(order.begin(), order.end(), random);
  }
  BatchPlan plan;
  const std::int64_t global = batch_size * world;
  for (std::int64_t start = 0; start < size(); start += global) {
    const std::int64_t end = std::min(size(), start + global);
    if (drop_last && end - start < global) break;
    std::vector<std::int64_t> mine;
    for (std::int64_t i = start + rank; i < end; i += world) mine.push_back(order[static_cast<std::size_t>(i)]);
    if (!mine.empty()) plan.batches.push_back(std::move(mine));
  }
  return plan;
}

std::pair<torch::Tensor, torch::Tensor> InMemoryLoader::gather(const std::vector<std::int64_t>& positions) const {
  const auto index = torch::tensor(positions, torch::kInt64).to(stored_.device());
  auto images = stored_.index_select(0, index).to(torch::kFloat32);
  if (scale_ != 1.0) images.mul_(scale_);
  if (offset_ != 0.0) images.add_(offset_);
  return {images, labels_.index_select(0, index)};
}

}  // namespace brainmri::training
