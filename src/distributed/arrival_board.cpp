#include "arrival_board.hpp"

namespace brainmri::distributed {
namespace {
constexpr int kArrivalTag = 7001;
}

ArrivalBoard::ArrivalBoard(MPI_Comm parent, bool enabled) : enabled_(enabled && parent != MPI_COMM_NULL) {
  if (!enabled_) return;
  MPI_Comm_dup(parent, &comm_);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  reached_.assign(static_cast<std::size_t>(size_), -1);
}

ArrivalBoard::~ArrivalBoard() {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  for (auto& [buffer, request] : sends_) MPI_Wait(&request, MPI_STATUS_IGNORE);  // 8-byte sends: eager
  sends_.clear();
  MPI_Comm_free(&comm_);
}

void ArrivalBoard::announce(std::uint64_t sequence) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  if (rank_ == 0) {
    reached_[0] = static_cast<std::int64_t>(sequence);
    return;
  }
  while (!sends_.empty()) {
    int done = 0;
    MPI_Test(&sends_.front().second, &done, MPI_STATUS_IGNORE);
    if (!done) break;
    sends_.pop_front();
  }
  auto buffer = std::make_unique<std::uint64_t>(sequence);
  MPI_Request request = MPI_REQUEST_NULL;
  MPI_Isend(buffer.get(), 1, MPI_UINT64_T, 0, kArrivalTag, comm_, &request);
  sends_.emplace_back(std::move(buffer), request);
}

void ArrivalBoard::poll() {
  if (!enabled_ || rank_ != 0) return;
  std::lock_guard lock(mutex_);
  for (;;) {
    int waiting = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kArrivalTag, comm_, &waiting, &status);
    if (!waiting) return;
    std::uint64_t sequence = 0;
    MPI_Recv(&sequence, 1, MPI_UINT64_T, status.MPI_SOURCE, kArrivalTag, comm_, MPI_STATUS_IGNORE);
    auto& reached = reached_[static_cast<std::size_t>(status.MPI_SOURCE)];
    reached = std::max(reached, static_cast<std::int64_t>(sequence));
  }
}

std::string ArrivalBoard::describe_missing(std::uint64_t sequence) {
  if (!enabled_) return "";
  if (rank_ != 0) return "rank 0 names the ranks that did not arrive (if rank 0 is silent, it is one of them)";
  poll();
  std::lock_guard lock(mutex_);
  std::string missing;
  for (int r = 0; r < size_; ++r) {
    if (reached_[static_cast<std::size_t>(r)] < static_cast<std::int64_t>(sequence)) {
      missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    }
  }
  return missing.empty() ? "every rank arrived; the collective itself stalled" : "ranks that never arrived: " + missing;
}

}  // namespace brainmri::distributed
