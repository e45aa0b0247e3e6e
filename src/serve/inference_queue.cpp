#include "brainmri/serve/inference_queue.hpp"

#include <algorithm>
#include <vector>

namespace brainmri::serve {
namespace {
double milliseconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}
}  // namespace

InferenceQueue::InferenceQueue(BatchFunction run, QueueOptions options) : run_(std::move(run)), options_(options) {
  if (options_.max_batch < 1) throw std::invalid_argument("the largest batch must be at least 1");
  if (options_.max_pending < 1) throw std::invalid_argument("the queue must hold at least 1 request");
  worker_ = std::thread([this] { work(); });
}

InferenceQueue::~InferenceQueue() { shutdown(); }

std::future<InferenceOutput> InferenceQueue::submit(torch::Tensor image, bool explain) {
  Pending request;
  request.image = std::move(image);
  request.explain = explain;
  request.submitted = std::chrono::steady_clock::now();
  auto future = request.promise.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw std::logic_error("the inference queue is shut down");
    if (pending_.size() >= options_.max_pending) {
      throw QueueFull(std::to_string(pending_.size()) + " requests are already waiting for the model");
    }
    pending_.push_back(std::move(request));
  }
  wake_.notify_one();
  return future;
}

void InferenceQueue::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

QueueStatistics InferenceQueue::statistics() const {
  std::lock_guard lock(mutex_);
  auto copy = statistics_;
  copy.pending = pending_.size();
  return copy;
}

void InferenceQueue::work() {
  for (;;) {
    std::vector<Pending> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
      if (pending_.empty()) return;  // stopping, and everything is answered
      // The oldest request decides whether this batch explains; the others of its kind join it,
      // in arrival order, so nobody waits behind more than one batch of the other kind.
      const bool explain = pending_.front().explain;
      for (auto it = pending_.begin(); it != pending_.end() && static_cast<int>(batch.size()) < options_.max_batch;) {
        if (it->explain == explain) {
          batch.push_back(std::move(*it));
          it = pending_.erase(it);
        } else {
          ++it;
        }
      }
    }
    const auto started = std::chrono::steady_clock::now();
    std::vector<torch::Tensor> images;
    images.reserve(batch.size());
    for (const auto& request : batch) images.push_back(request.image);
    std::vector<InferenceOutput> outputs;
    try {
      const auto [probabilities, maps] = run_(torch::stack(images), batch.front().explain);
      const double computed = milliseconds(std::chrono::steady_clock::now() - started);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        InferenceOutput output;
        output.probabilities = probabilities[static_cast<std::int64_t>(i)];
        if (maps.defined()) output.map = maps[static_cast<std::int64_t>(i)];
        output.batch_size = static_cast<int>(batch.size());
        output.waited_ms = milliseconds(started - batch[i].submitted);
        output.computed_ms = computed;
        outputs.push_back(std::move(output));
      }
    } catch (...) {
      // Every request of the batch gets the failure; the worker goes on with the next batch.
      {
        std::lock_guard lock(mutex_);
        statistics_.failed += batch.size();
      }
      for (auto& request : batch) request.promise.set_exception(std::current_exception());
      continue;
    }
    {
      // Counted before answering, so that whoever has an answer sees it in the statistics.
      std::lock_guard lock(mutex_);
      statistics_.served += batch.size();
      statistics_.batches += 1;
      statistics_.largest_batch = std::max(statistics_.largest_batch, batch.size());
    }
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].promise.set_value(std::move(outputs[i]));
  }
}

}  // namespace brainmri::serve
