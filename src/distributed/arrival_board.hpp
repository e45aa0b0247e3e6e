#pragma once
// Which ranks have reached which collective, so that a timeout can name the ranks that never
// arrived. Every rank but 0 sends rank 0 a tiny message as it enters each collective, on a
// communicator of its own; rank 0 drains them from its watchdog thread. Needs
// MPI_THREAD_MULTIPLE; without it the board stays silent and timeouts name no ranks.

#include <mpi.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace brainmri::distributed {

class ArrivalBoard {
 public:
  // `parent` is duplicated; `enabled` false makes every call a no-op.
  ArrivalBoard(MPI_Comm parent, bool enabled);
  ~ArrivalBoard();
  ArrivalBoard(const ArrivalBoard&) = delete;
  ArrivalBoard& operator=(const ArrivalBoard&) = delete;

  void announce(std::uint64_t sequence);  // this rank has entered collective `sequence`
  void poll();                            // rank 0: receive the notices that came in
  std::string describe_missing(std::uint64_t sequence);

 private:
  bool enabled_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::mutex mutex_;
  std::vector<std::int64_t> reached_;  // rank 0: highest sequence announced by each rank
  std::deque<std::pair<std::unique_ptr<std::uint64_t>, MPI_Request>> sends_;
};

}  // namespace brainmri::distributed
