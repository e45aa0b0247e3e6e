#pragma once
// Many request threads, one model: requests wait in a bounded queue and a single worker thread
// runs them through the model in batches (as many as are waiting, up to a limit). The model is
// touched by that thread alone, so it needs no locking, and a burst of requests costs one forward
// and backward pass per batch instead of one per image.

#include <torch/torch.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace brainmri::serve {

// The queue holds as many requests as it may; the caller should answer "busy, retry".
class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct InferenceOutput {
  torch::Tensor probabilities;  // [classes]
  torch::Tensor map;            // [H, W], undefined without an explanation
  int batch_size = 0;           // how many requests shared the model call
  double waited_ms = 0;         // in the queue
  double computed_ms = 0;       // the model call of the whole batch
};

struct QueueOptions {
  int max_batch = 16;
  std::size_t max_pending = 256;
};

struct QueueStatistics {
  std::size_t served = 0;
  std::size_t failed = 0;
  std::size_t batches = 0;
  std::size_t largest_batch = 0;
  std::size_t pending = 0;
};

class InferenceQueue {
 public:
  // images [N, C, H, W], explain -> probabilities [N, K] and maps [N, H, W] (or undefined).
  using BatchFunction =
      std::function<std::pair<torch::Tensor, torch::Tensor>(const torch::Tensor& images, bool explain)>;

  InferenceQueue(BatchFunction run, QueueOptions options);
  ~InferenceQueue();  // shutdown()
  InferenceQueue(const InferenceQueue&) = delete;
  InferenceQueue& operator=(const InferenceQueue&) = delete;

  // `image`: [C, H, W]. Throws QueueFull when max_pending requests wait, std::logic_error after
  // shutdown(). The future carries the model's exception if its batch failed.
  std::future<InferenceOutput> submit(torch::Tensor image, bool explain);

  // Answers everything already submitted, then stops the worker. Idempotent.
  void shutdown();

  QueueStatistics statistics() const;

 private:
  struct Pending {
    torch::Tensor image;
    bool explain = false;
    std::chrono::steady_clock::time_point submitted;
    std::promise<InferenceOutput> promise;
  };
  void work();

  BatchFunction run_;
  QueueOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> pending_;
  bool stopping_ = false;
  QueueStatistics statistics_;
  std::thread worker_;
};

}  // namespace brainmri::serve
