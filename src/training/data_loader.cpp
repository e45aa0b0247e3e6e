#include "brainmri/training/data_loader.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "brainmri/training/augmentation.hpp"

namespace brainmri::training {

BatchSource::BatchSource(const data::ShardedDataset& dataset, std::vector<std::int64_t> sample_ids,
                         torch::Device device)
    : sample_ids_(std::move(sample_ids)),
      device_(device),
      scale_(dataset.manifest().normalization_scale),
      offset_(dataset.manifest().normalization_offset) {
  std::vector<std::int64_t> labels;
  labels.reserve(sample_ids_.size());
  for (const auto id : sample_ids_) labels.push_back(dataset.label(id));
  labels_ = torch::tensor(labels, torch::kInt64).to(device);
}

std::vector<std::int64_t> BatchSource::class_counts(int class_count) const {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(class_count), 0);
  const auto labels = labels_.to(torch::kCPU);
  const auto* data = labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) ++counts[static_cast<std::size_t>(data[i])];
  return counts;
}

BatchPlan BatchSource::plan_epoch(std::uint64_t seed, int epoch, std::int64_t batch_size, bool shuffle, bool drop_last,
                                  int rank, int world) const {
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

torch::Tensor BatchSource::to_model_input(const torch::Tensor& stored) const {
  // The permuted view keeps the stored NHWC memory order: exactly the channels-last layout the
  // trainer asks for, so no copy is made for it. Out-of-place arithmetic: for float32 storage,
  // .to(kFloat32) returns the stored tensor itself.
  auto images = stored.to(device_).permute({0, 3, 1, 2}).to(torch::kFloat32);
  if (scale_ != 1.0 || offset_ != 0.0) images = images * scale_ + offset_;
  return images;
}

InMemoryLoader::InMemoryLoader(const data::ShardedDataset& dataset, std::vector<std::int64_t> sample_ids,
                               torch::Device device)
    : BatchSource(dataset, std::move(sample_ids), device) {
  stored_ = dataset.load_stored(sample_ids_).to(device);
}

std::pair<torch::Tensor, torch::Tensor> InMemoryLoader::gather(const std::vector<std::int64_t>& positions) const {
  const auto index = torch::tensor(positions, torch::kInt64).to(stored_.device());
  return {to_model_input(stored_.index_select(0, index)), labels_.index_select(0, index)};
}

// Reads the batches of one plan ahead of the consumer: batch b is read by thread b % readers,
// at most `depth` batches ahead of the one being consumed.
class StreamingLoader::Prefetcher {
 public:
  Prefetcher(const StreamingLoader& owner, BatchPlan plan, int readers, int depth)
      : owner_(owner), plan_(std::move(plan)), depth_(static_cast<std::size_t>(depth)) {
    for (int r = 0; r < readers; ++r) threads_.emplace_back([this, r, readers] { run(r, readers); });
  }
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;
  ~Prefetcher() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& t : threads_) t.join();
  }

  // The stored pixels of the next batch if `positions` is it; nothing otherwise.
  std::optional<torch::Tensor> take(const std::vector<std::int64_t>& positions) {
    std::unique_lock lock(mutex_);
    if (next_ >= plan_.batches.size() || plan_.batches[next_] != positions) return std::nullopt;
    changed_.wait(lock, [&] { return ready_.contains(next_) || failure_; });
    if (failure_) std::rethrow_exception(failure_);
    auto pixels = std::move(ready_[next_]);
    ready_.erase(next_++);
    lock.unlock();
    changed_.notify_all();
    return pixels;
  }

 private:
  void run(int reader, int readers) {
    data::ShardImageReader images(owner_.dataset_);  // this thread's own HDF5 handles
    for (std::size_t b = static_cast<std::size_t>(reader); b < plan_.batches.size();
         b += static_cast<std::size_t>(readers)) {
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || b < next_ + depth_; });
        if (stopping_) return;
      }
      try {
        std::vector<std::int64_t> ids;
        for (const auto position : plan_.batches[b])
          ids.push_back(owner_.sample_ids_[static_cast<std::size_t>(position)]);
        auto pixels = images.read(ids);
        std::lock_guard lock(mutex_);
        ready_.emplace(b, std::move(pixels));
      } catch (...) {
        std::lock_guard lock(mutex_);
        failure_ = std::current_exception();
      }
      changed_.notify_all();
    }
  }

  const StreamingLoader& owner_;
  BatchPlan plan_;
  std::size_t depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::size_t, torch::Tensor> ready_;
  std::size_t next_ = 0;
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::vector<std::thread> threads_;
};

StreamingLoader::StreamingLoader(const data::ShardedDataset& dataset, std::vector<std::int64_t> sample_ids,
                                 torch::Device device, int reader_threads, int queue_depth)
    : BatchSource(dataset, std::move(sample_ids), device),
      dataset_(dataset),
      reader_threads_(std::max(1, reader_threads)),
      queue_depth_(std::max(1, queue_depth)) {}

StreamingLoader::~StreamingLoader() = default;

void StreamingLoader::begin(const BatchPlan& plan) const {
  prefetcher_.reset();  // stops the previous plan's readers first
  prefetcher_ = std::make_unique<Prefetcher>(*this, plan, reader_threads_, queue_depth_);
}

std::pair<torch::Tensor, torch::Tensor> StreamingLoader::gather(const std::vector<std::int64_t>& positions) const {
  std::optional<torch::Tensor> pixels;
  if (prefetcher_) pixels = prefetcher_->take(positions);
  if (!pixels) {
    std::vector<std::int64_t> ids;
    for (const auto position : positions) ids.push_back(sample_ids_[static_cast<std::size_t>(position)]);
    pixels = dataset_.load_stored(ids);
  }
  const auto index = torch::tensor(positions, torch::kInt64).to(labels_.device());
  return {to_model_input(*pixels), labels_.index_select(0, index)};
}

std::unique_ptr<BatchSource> make_loader(const data::ShardedDataset& dataset, std::vector<std::int64_t> sample_ids,
                                         torch::Device device, LoaderKind kind, std::size_t memory_limit_bytes) {
  const auto& m = dataset.manifest();
  const std::size_t bytes = sample_ids.size() * static_cast<std::size_t>(m.image_size) * m.image_size * m.channels *
                            (m.dtype == "float32" ? 4 : 1);
  if (kind == LoaderKind::Memory || (kind == LoaderKind::Auto && bytes <= memory_limit_bytes)) {
    return std::make_unique<InMemoryLoader>(dataset, std::move(sample_ids), device);
  }
  return std::make_unique<StreamingLoader>(dataset, std::move(sample_ids), device);
}

}  // namespace brainmri::training
