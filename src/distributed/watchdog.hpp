#pragma once
// Watches the collectives of one communicator from a thread of its own: a collective pending for
// half the timeout prints a warning, one pending for the whole timeout aborts the job with a
// message naming it. Without this a rank that died or hung leaves every other rank blocked in
// MPI or NCCL forever.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace brainmri::distributed {

class CollectiveWatchdog {
 public:
  struct Hooks {
    // Called on every tick (about 20 times a second) from the watchdog thread: drains arrival
    // notices, polls NCCL's asynchronous errors (and may abort itself).
    std::function<void()> poll;
    // "ranks that never arrived: 1, 3" for collective `sequence`, or "" when unknown.
    std::function<std::string(std::uint64_t sequence)> describe_missing;
    // Ends the job; must not return.
    std::function<void(const std::string& message)> abort;
  };

  // `who` prefixes every message ("[rank 1/2] mpi"); `grace` is added before this rank aborts,
  // so the rank that can name the missing ranks (rank 0) reports first.
  CollectiveWatchdog(std::string who, std::chrono::milliseconds timeout, std::chrono::milliseconds grace, Hooks hooks);
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Registers collective `sequence`; `done` (optional) is polled for completion, otherwise
  // finish() must be called.
  void start(std::uint64_t sequence, std::string label, std::function<bool()> done = {});
  void finish(std::uint64_t sequence);

  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  struct Pending {
    std::string label;
    std::chrono::steady_clock::time_point started;
    std::function<bool()> done;
    bool warned = false;
  };
  void run();

  std::string who_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds grace_;
  Hooks hooks_;
  std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stopping_ = false;
  std::map<std::uint64_t, Pending> pending_;
  std::thread thread_;
};

std::string format_seconds(std::chrono::steady_clock::duration duration);

}  // namespace brainmri::distributed
