#include "watchdog.hpp"

#include <cstdio>
#include <iostream>
#include <vector>

#include "brainmri/common/log.hpp"

namespace brainmri::distributed {

std::string format_seconds(std::chrono::steady_clock::duration duration) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f s", std::chrono::duration<double>(duration).count());
  return text;
}

CollectiveWatchdog::CollectiveWatchdog(std::string who, std::chrono::milliseconds timeout,
                                       std::chrono::milliseconds grace, Hooks hooks)
    : who_(std::move(who)), timeout_(timeout), grace_(grace), hooks_(std::move(hooks)) {
  thread_ = std::thread([this] { run(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_requested_.notify_all();
  thread_.join();
}

void CollectiveWatchdog::start(std::uint64_t sequence, std::string label, std::function<bool()> done) {
  std::lock_guard lock(mutex_);
  pending_[sequence] = Pending{std::move(label), std::chrono::steady_clock::now(), std::move(done), false};
}

void CollectiveWatchdog::finish(std::uint64_t sequence) {
  std::lock_guard lock(mutex_);
  pending_.erase(sequence);
}

void CollectiveWatchdog::run() {
  using namespace std::chrono;
  constexpr auto kTick = milliseconds(50);
  std::unique_lock lock(mutex_);
  while (!stop_requested_.wait_for(lock, kTick, [this] { return stopping_; })) {
    lock.unlock();
    if (hooks_.poll) hooks_.poll();
    lock.lock();
    const auto now = steady_clock::now();
    std::vector<std::uint64_t> completed;
    for (auto& [sequence, pending] : pending_) {
      bool done = false;
      try {
        done = pending.done && pending.done();
      } catch (const std::exception& e) {  // e.g. a sticky CUDA error while querying an event
        const std::string message = who_ + " error: collective #" + std::to_string(sequence) + " (" + pending.label +
                                    ") failed: " + e.what() + "; aborting the job.";
        lock.unlock();
        hooks_.abort(message);
        return;
      }
      if (done) {
        completed.push_back(sequence);
        continue;
      }
      const auto waited = now - pending.started;
      if (!pending.warned && waited > timeout_ / 2) {
        pending.warned = true;
        logging::warning(who_ + ": collective #" + std::to_string(sequence) + " (" + pending.label + ") has waited " +
                         format_seconds(waited) + " of its " + format_seconds(timeout_) + " timeout");
      }
      if (waited > timeout_ + grace_) {
        std::string missing = hooks_.describe_missing ? hooks_.describe_missing(sequence) : "";
        const std::string message =
            who_ + " error: collective #" + std::to_string(sequence) + " (" + pending.label +
            ") did not complete within " + format_seconds(timeout_) + " (the communication timeout, comm-timeout)" +
            (missing.empty() ? "" : "; " + missing) + ". Another rank failed, hung or is far slower; aborting the job.";
        lock.unlock();
        hooks_.abort(message);
        return;
      }
    }
    for (const auto sequence : completed) pending_.erase(sequence);
  }
}

}  // namespace brainmri::distributed
