// The batching queue between the HTTP threads and the model, with a stand-in for the model.

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "brainmri/serve/inference_queue.hpp"

using brainmri::serve::InferenceQueue;
using brainmri::serve::QueueFull;
using brainmri::serve::QueueOptions;

namespace {

// "Probabilities" that identify the image: [mean, batch size]; maps: the image's first channel.
// While its gate is closed, a call waits inside the model: the test then knows exactly what is
// queued behind it, however slowly the machine schedules the threads.
struct FakeModel {
  std::atomic<int> in_progress{0};
  std::atomic<int> most_at_once{0};
  std::vector<int> batch_sizes;
  std::mutex mutex;
  std::condition_variable changed;
  bool gate_open = true;
  int calls_started = 0;

  void close_gate() {
    std::lock_guard lock(mutex);
    gate_open = false;
  }
  void open_gate() {
    {
      std::lock_guard lock(mutex);
      gate_open = true;
    }
    changed.notify_all();
  }
  void wait_until_started(int calls) {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(30), [&] { return calls_started >= calls; }));
  }

  std::pair<torch::Tensor, torch::Tensor> operator()(const torch::Tensor& images, bool explain) {
    const int now = ++in_progress;
    most_at_once = std::max(most_at_once.load(), now);
    {
      std::unique_lock lock(mutex);
      ++calls_started;
      batch_sizes.push_back(static_cast<int>(images.size(0)));
      changed.notify_all();
      changed.wait(lock, [&] { return gate_open; });
    }
    const auto n = images.size(0);
    auto probabilities = torch::stack({images.mean({1, 2, 3}), torch::full({n}, static_cast<double>(n))}, 1);
    --in_progress;
    return {probabilities, explain ? images.select(1, 0).clone() : torch::Tensor()};
  }
};

InferenceQueue::BatchFunction wrap(FakeModel& model) {
  return [&model](const torch::Tensor& images, bool explain) { return model(images, explain); };
}

TEST(InferenceQueue, WaitingRequestsShareOneCallAndEachGetsItsOwnAnswer) {
  FakeModel model;
  model.close_gate();
  InferenceQueue queue(wrap(model), QueueOptions{4, 100});
  // The first request occupies the model; the next ten wait and go in batches of at most 4.
  std::vector<std::future<brainmri::serve::InferenceOutput>> answers;
  answers.push_back(queue.submit(torch::full({1, 2, 2}, 0.0), true));
  model.wait_until_started(1);
  for (int i = 1; i < 11; ++i) answers.push_back(queue.submit(torch::full({1, 2, 2}, static_cast<double>(i)), true));
  EXPECT_EQ(queue.statistics().pending, 10u);
  model.open_gate();
  for (int i = 0; i < 11; ++i) {
    const auto output = answers[static_cast<std::size_t>(i)].get();
    EXPECT_DOUBLE_EQ(output.probabilities[0].item<double>(), i) << "request " << i << " got another's answer";
    EXPECT_EQ(output.probabilities[1].item<int>(), output.batch_size);
    ASSERT_TRUE(output.map.defined());
    EXPECT_EQ(output.map.sizes(), (std::vector<std::int64_t>{2, 2}));
    EXPECT_DOUBLE_EQ(output.map[1][1].item<double>(), i);
  }
  EXPECT_EQ(model.batch_sizes, (std::vector<int>{1, 4, 4, 2}));
  EXPECT_EQ(model.most_at_once, 1) << "the model was called from two threads at once";
  const auto stats = queue.statistics();
  EXPECT_EQ(stats.served, 11u);
  EXPECT_EQ(stats.batches, 4u);
  EXPECT_EQ(stats.largest_batch, 4u);
}

TEST(InferenceQueue, RequestsWithAndWithoutExplanationGoInSeparateBatches) {
  FakeModel model;
  model.close_gate();
  InferenceQueue queue(wrap(model), QueueOptions{16, 100});
  auto first = queue.submit(torch::zeros({1, 2, 2}), true);
  model.wait_until_started(1);
  std::vector<std::future<brainmri::serve::InferenceOutput>> answers;
  for (int i = 0; i < 6; ++i) answers.push_back(queue.submit(torch::zeros({1, 2, 2}), i % 2 == 0));
  model.open_gate();
  first.get();
  for (int i = 0; i < 6; ++i) {
    const auto output = answers[static_cast<std::size_t>(i)].get();
    EXPECT_EQ(output.map.defined(), i % 2 == 0);
    EXPECT_EQ(output.batch_size, 3);
  }
}

TEST(InferenceQueue, AFailedBatchFailsItsRequestsAndTheNextBatchStillRuns) {
  std::atomic<int> calls{0};
  InferenceQueue queue(
      [&](const torch::Tensor& images, bool) -> std::pair<torch::Tensor, torch::Tensor> {
        if (calls++ == 0) throw std::runtime_error("out of memory (simulated)");
        return {torch::ones({images.size(0), 2}), torch::Tensor()};
      },
      QueueOptions{});
  auto failed = queue.submit(torch::zeros({1, 2, 2}), false);
  EXPECT_THROW(failed.get(), std::runtime_error);
  auto next = queue.submit(torch::zeros({1, 2, 2}), false);
  EXPECT_EQ(next.get().probabilities.size(0), 2);
  EXPECT_EQ(queue.statistics().failed, 1u);
}

TEST(InferenceQueue, AFullQueueRefusesAndShutdownAnswersWhatWaits) {
  FakeModel model;
  model.close_gate();
  InferenceQueue queue(wrap(model), QueueOptions{1, 2});
  auto running = queue.submit(torch::zeros({1, 1, 1}), false);
  model.wait_until_started(1);  // the worker has taken it: two places are free
  auto waiting1 = queue.submit(torch::ones({1, 1, 1}), false);
  auto waiting2 = queue.submit(torch::ones({1, 1, 1}), false);
  EXPECT_THROW(queue.submit(torch::ones({1, 1, 1}), false), QueueFull);
  std::thread stop([&] { queue.shutdown(); });  // waits for the model, so the gate opens after
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  model.open_gate();
  stop.join();
  EXPECT_EQ(running.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_DOUBLE_EQ(waiting1.get().probabilities[0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(waiting2.get().probabilities[0].item<double>(), 1.0);
  EXPECT_THROW(queue.submit(torch::ones({1, 1, 1}), false), std::logic_error);
}

TEST(InferenceQueue, RefusesNonsenseLimits) {
  FakeModel model;
  EXPECT_THROW(InferenceQueue(wrap(model), QueueOptions{0, 10}), std::invalid_argument);
  EXPECT_THROW(InferenceQueue(wrap(model), QueueOptions{4, 0}), std::invalid_argument);
}

}  // namespace
