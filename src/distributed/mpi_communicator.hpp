#pragma once
// The MPI backend: CPU tensors reduced in place. Collectives run in submission order on one
// communication thread, so an allreduce started from a backward hook proceeds while the caller
// keeps computing (Open MPI makes no progress on non-blocking collectives between MPI calls,
// so MPI_Iallreduce alone would not overlap). CUDA tensors are staged through host memory.

#include <mpi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "arrival_board.hpp"
#include "brainmri/distributed/communicator.hpp"
#include "watchdog.hpp"

namespace brainmri::distributed {

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (a communicator of its own, e.g. a duplicate or a split).
  MpiCommunicator(MPI_Comm comm, bool thread_multiple, CommunicatorOptions options);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  std::shared_ptr<Work> allreduce_async(torch::Tensor tensor, ReduceOp op, std::string label) override;
  void broadcast(torch::Tensor tensor, int root, std::string label) override;
  torch::Tensor allgatherv(const torch::Tensor& tensor, std::string label) override;
  void barrier(std::string label) override;
  [[noreturn]] void abort(int exit_code, const std::string& why) override;
  std::unique_ptr<Communicator> split(int color, int key) override;
  // The MPI communicator of split(color, key), owned by the caller.
  MPI_Comm split_raw(int color, int key);

 private:
  class Task;
  // Runs `body` on the communication thread after every earlier collective.
  std::shared_ptr<Task> submit(std::string operation, std::string label, std::function<void()> body,
                               std::function<void()> after_wait = {});
  void run_tasks();
  std::string describe(const std::string& operation, const std::string& label, int code) const;

  MPI_Comm comm_;
  bool thread_multiple_;
  CommunicatorOptions options_;
  int rank_ = 0;
  int size_ = 1;
  std::uint64_t next_sequence_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<Task>> queue_;
  bool stopping_ = false;
  std::unique_ptr<ArrivalBoard> arrivals_;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
  std::thread worker_;
};

// MPI datatype of a tensor's elements; throws CommunicationError for unsupported dtypes.
MPI_Datatype mpi_datatype(c10::ScalarType type);
// Element-wise bf16 sum as an MPI operation: each pair is added in fp32 and rounded back.
MPI_Op bf16_sum_op();

}  // namespace brainmri::distributed
