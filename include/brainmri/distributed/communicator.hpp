#pragma once
// Collective communication between the ranks of a training job, behind one interface.
//
// Backends: "local" (a world of one; every collective is the identity), "mpi" (CPU tensors,
// collectives run in order on a dedicated communication thread so they overlap the caller's
// computation) and "nccl" (CUDA tensors, collectives on a dedicated CUDA stream ordered against
// torch's current stream with events). All ranks must issue the same collectives in the same
// order, as with MPI and NCCL themselves.
//
// Every collective is watched: one that has not completed within the communicator's timeout
// aborts the job with a message naming the collective (its label, e.g. "epoch 3 step 17 bucket
// 2/4"), how long it waited and, where known, the ranks that never arrived.

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "brainmri/common/enum_names.hpp"
#include "brainmri/distributed/mpi_environment.hpp"

namespace brainmri::distributed {

enum class ReduceOp { Sum, Average };

class CommunicationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An asynchronous collective. wait() makes its result usable by the caller (for CUDA tensors:
// by work queued afterwards on the caller's current stream) and rethrows its failure.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool completed() = 0;
};

struct CommunicatorOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // --comm-timeout
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "local", "mpi" or "nccl"

  // Reduces `tensor` in place across ranks. `label` names the collective in errors and in the
  // watchdog's messages.
  virtual std::shared_ptr<Work> allreduce_async(torch::Tensor tensor, ReduceOp op, std::string label) = 0;
  void allreduce(torch::Tensor tensor, ReduceOp op, std::string label = "allreduce") {
    allreduce_async(std::move(tensor), op, std::move(label))->wait();
  }
  // Overwrites `tensor` on every rank with rank `root`'s.
  virtual void broadcast(torch::Tensor tensor, int root, std::string label = "broadcast") = 0;
  // Every rank's tensor concatenated along dim 0 in rank order; dim 0 may differ between ranks
  // (zero rows included), the other dims and the dtype may not.
  virtual torch::Tensor allgatherv(const torch::Tensor& tensor, std::string label = "allgatherv") = 0;
  virtual void barrier(std::string label = "barrier") = 0;
  // Ends the whole job from this rank; no other rank is left waiting.
  [[noreturn]] virtual void abort(int exit_code, const std::string& why) = 0;
  // A communicator of the ranks that pass the same `color`, ordered by `key`: independent trial
  // groups each get their own (with its own NCCL communicator for the nccl backend). A negative
  // colour joins no group and returns null. Collective: every rank calls it.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

 protected:
  // The checks every backend makes before a reduction: Average needs a floating-point tensor.
  static void validate_reduction(const torch::Tensor& tensor, ReduceOp op, const std::string& label);
};

// auto: nccl for CUDA devices when compiled in, mpi otherwise; local in a world of one.
enum class Backend { Auto, Nccl, Mpi, Local };

// Throws CommunicationError naming what is missing.
std::unique_ptr<Communicator> make_communicator(const MpiEnvironment& environment, Backend backend,
                                                const torch::Device& device, CommunicatorOptions options = {});

// Whether this build has the NCCL backend.
bool nccl_available();

}  // namespace brainmri::distributed

namespace brainmri {
template <>
struct EnumNames<distributed::Backend> {
  static constexpr std::string_view what = "backend";
  static constexpr std::array names = {std::pair{distributed::Backend::Auto, std::string_view("auto")},
                                       std::pair{distributed::Backend::Nccl, std::string_view("nccl")},
                                       std::pair{distributed::Backend::Mpi, std::string_view("mpi")},
                                       std::pair{distributed::Backend::Local, std::string_view("local")}};
};
}  // namespace brainmri
