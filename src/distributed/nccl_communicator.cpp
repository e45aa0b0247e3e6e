#include "nccl_communicator.hpp"

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include "arrival_board.hpp"
#include "brainmri/common/log.hpp"
#include "mpi_communicator.hpp"
#include "watchdog.hpp"

namespace brainmri::distributed {
namespace {

ncclDataType_t nccl_datatype(c10::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kFloat16: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kInt64: return ncclInt64;
    case torch::kInt32: return ncclInt32;
    case torch::kUInt8: return ncclUint8;
    case torch::kInt8: return ncclInt8;
    default:
      throw CommunicationError(std::string("the nccl backend cannot reduce ") + c10::toString(type) + " tensors");
  }
}

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<at::cuda::CUDAEvent> done, torch::Device device, std::function<void()> check)
      : done_(std::move(done)), device_(device), check_(std::move(check)) {}
  void wait() override {
    check_();
    done_->block(c10::cuda::getCurrentCUDAStream(device_.index()));
  }
  bool completed() override { return done_->query(); }

 private:
  std::shared_ptr<at::cuda::CUDAEvent> done_;
  torch::Device device_;
  std::function<void()> check_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm bootstrap, bool thread_multiple, torch::Device device, CommunicatorOptions options)
      : device_(device), options_(options), thread_multiple_(thread_multiple) {
    if (!device_.is_cuda() || !device_.has_index()) {
      throw CommunicationError("the nccl backend needs a CUDA device with an index, got " + device_.str());
    }
    host_ = std::make_unique<MpiCommunicator>(bootstrap, thread_multiple, options);
    rank_ = host_->rank();
    size_ = host_->size();
    who_ = "nccl (communicator rank " + std::to_string(rank_) + "/" + std::to_string(size_) + ")";
    // Work that relies on the current device (cuBLAS handles, NCCL's own checks) must see this
    // rank's GPU.
    c10::cuda::set_device(device_.index());
    c10::cuda::CUDAGuard guard(device_.index());
    reject_shared_gpus();
    ncclUniqueId id;
    if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId", "init");
    auto id_bytes = torch::from_blob(&id, {static_cast<std::int64_t>(sizeof(id))}, torch::kUInt8);
    host_->broadcast(id_bytes, 0, "nccl unique id");
    initialize(id);
    stream_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device_.index());
    arrivals_ = std::make_unique<ArrivalBoard>(bootstrap, thread_multiple_);  // duplicates it
    CollectiveWatchdog::Hooks hooks;
    hooks.poll = [this] {
      if (thread_multiple_) arrivals_->poll();
      ncclResult_t state = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress) {
        abort(3, who_ + " error: asynchronous NCCL failure: " + ncclGetErrorString(state) + " (" +
                     ncclGetLastError(comm_) + "); aborting the job.");
      }
    };
    if (thread_multiple_) hooks.describe_missing = [this](std::uint64_t s) { return arrivals_->describe_missing(s); };
    hooks.abort = [this](const std::string& message) { abort(3, message); };
    const auto grace = rank_ == 0
                           ? std::chrono::milliseconds(0)
                           : std::min<std::chrono::milliseconds>(options_.timeout / 10, std::chrono::seconds(10));
    watchdog_ = std::make_unique<CollectiveWatchdog>(who_, options_.timeout, grace, hooks);
  }

  // Finalizes with a deadline: a peer that died with collectives still queued must not turn
  // the teardown into a hang. The watchdog stays alive until the end for the same reason.
  ~NcclCommunicator() override {
    if (comm_ != nullptr) {
      c10::cuda::CUDAGuard guard(device_.index());
      ncclResult_t state = ncclCommFinalize(comm_);
      const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
      while (state == ncclInProgress && std::chrono::steady_clock::now() < deadline) {
        if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (state == ncclSuccess) {
        ncclCommDestroy(comm_);
      } else {
        logging::warning(who_ + ": NCCL finalize did not complete (" + ncclGetErrorString(state) +
                         "); aborting the communicator");
        ncclCommAbort(comm_);
      }
      comm_ = nullptr;
    }
    watchdog_.reset();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  std::shared_ptr<Work> allreduce_async(torch::Tensor tensor, ReduceOp op, std::string label) override {
    validate_reduction(tensor, op, label);
    // Small host-side values (epoch totals, evaluation loss) go over MPI.
    if (tensor.device().is_cpu()) return host_->allreduce_async(std::move(tensor), op, std::move(label));
    require_device_tensor(tensor, "allreduce", label);
    const auto sequence = next_sequence_++;
    auto done = enqueue(tensor, sequence, label, [&](cudaStream_t stream) {
      return ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()),
                           nccl_datatype(tensor.scalar_type()), op == ReduceOp::Average ? ncclAvg : ncclSum, comm_,
                           stream);
    });
    return std::make_shared<NcclWork>(done, device_, [this, label] { check_async("allreduce", label); });
  }

  void broadcast(torch::Tensor tensor, int root, std::string label) override {
    if (tensor.device().is_cpu()) return host_->broadcast(std::move(tensor), root, std::move(label));
    require_device_tensor(tensor, "broadcast", label);
    const auto sequence = next_sequence_++;
    auto done = enqueue(tensor, sequence, label, [&](cudaStream_t stream) {
      return ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()),
                           nccl_datatype(tensor.scalar_type()), root, comm_, stream);
    });
    NcclWork(done, device_, [this, label] { check_async("broadcast", label); }).wait();
  }

  torch::Tensor allgatherv(const torch::Tensor& tensor, std::string label) override {
    // Small (evaluation results): staged through host memory and MPI after the device work.
    c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
    return host_->allgatherv(tensor.to(torch::kCPU), std::move(label)).to(tensor.device());
  }

  void barrier(std::string label) override {
    c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
    stream_->synchronize();
    host_->barrier(std::move(label));
  }

  [[noreturn]] void abort(int exit_code, const std::string& why) override {
    logging::error(why);
    if (comm_ != nullptr) ncclCommAbort(comm_);  // releases ranks blocked in NCCL kernels
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    // A fresh NCCL communicator per group, bootstrapped over the matching MPI split.
    const MPI_Comm part = host_->split_raw(color, key);
    if (part == MPI_COMM_NULL) return nullptr;
    return std::make_unique<NcclCommunicator>(part, thread_multiple_, device_, options_);
  }

 private:
  void check(ncclResult_t result, const char* call, const std::string& label) const {
    if (result == ncclSuccess || result == ncclInProgress) return;
    throw CommunicationError(who_ + " " + call + " (" + label + ") failed: " + ncclGetErrorString(result) +
                             (comm_ != nullptr ? std::string(" (") + ncclGetLastError(comm_) + ")" : std::string()));
  }

  void check_async(const std::string& operation, const std::string& label) const {
    ncclResult_t state = ncclSuccess;
    check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", label);
    check(state, operation.c_str(), label);
  }

  // Element-wise collectives only need the elements to fill one dense block of memory, in any
  // order: channels-last weights qualify as they are.
  void require_device_tensor(const torch::Tensor& tensor, const char* operation, const std::string& label) const {
    const bool dense = tensor.is_non_overlapping_and_dense();
    if (tensor.device() != device_ || !dense) {
      throw CommunicationError(who_ + " " + operation + " (" + label + "): needs a dense tensor on " + device_.str() +
                               ", got one on " + tensor.device().str() + (dense ? "" : " (a strided view)"));
    }
  }

  // Two ranks of one node on one GPU (a launcher that set CUDA_VISIBLE_DEVICES to the same card
  // for every rank) would oversubscribe it and make NCCL fail obscurely: compare GPU UUIDs.
  void reject_shared_gpus() {
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, device_.index()) != cudaSuccess) return;
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    std::string key = std::string(host) + "/";
    for (const auto byte : properties.uuid.bytes) {
      char hex[3];
      std::snprintf(hex, sizeof(hex), "%02x", static_cast<unsigned char>(byte));
      key += hex;
    }
    key.resize(320, '\0');
    auto mine = torch::from_blob(key.data(), {1, static_cast<std::int64_t>(key.size())}, torch::kUInt8).clone();
    const auto all = host_->allgatherv(mine, "gpu identity");
    for (std::int64_t r = 0; r < all.size(0); ++r) {
      if (r != rank_ && torch::equal(all[r], mine[0])) {
        throw CommunicationError(who_ + ": ranks " + std::to_string(std::min<std::int64_t>(r, rank_)) + " and " +
                                 std::to_string(std::max<std::int64_t>(r, rank_)) + " run on the same GPU (" +
                                 std::string(key.c_str()) + "); give every rank its own GPU");
      }
    }
  }

  // Creates the communicator non-blocking and polls it, so a rank that never joins ends in a
  // timeout error rather than a hang.
  void initialize(const ncclUniqueId& id) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    check(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), "ncclCommInitRankConfig", "init");
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    for (;;) {
      ncclResult_t state = ncclSuccess;
      check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", "init");
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) check(state, "ncclCommInitRankConfig", "init");
      if (std::chrono::steady_clock::now() > deadline) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        throw CommunicationError(who_ + " ncclCommInitRankConfig did not finish within " +
                                 format_seconds(options_.timeout) +
                                 " (the communication timeout, comm-timeout); is every rank running?");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // Orders `launch` after the work on the current stream, keeps `tensor`'s memory alive for the
  // communication stream, and returns the event that marks the collective's end.
  template <typename Launch>
  std::shared_ptr<at::cuda::CUDAEvent> enqueue(const torch::Tensor& tensor, std::uint64_t sequence,
                                               const std::string& label, Launch launch) {
    c10::cuda::CUDAGuard guard(device_.index());
    at::cuda::CUDAEvent inputs_ready;
    inputs_ready.record(c10::cuda::getCurrentCUDAStream(device_.index()));
    inputs_ready.block(*stream_);
    c10::cuda::CUDACachingAllocator::recordStream(tensor.storage().data_ptr(), *stream_);
    arrivals_->announce(sequence);
    // Watched from before the launch: with a non-blocking communicator the enqueue itself can
    // wait for peers (connections are made on first use).
    auto done = std::make_shared<at::cuda::CUDAEvent>();
    auto recorded = std::make_shared<std::atomic<bool>>(false);
    watchdog_->start(sequence, label, [done, recorded] { return recorded->load() && done->query(); });
    ncclResult_t result = launch(stream_->stream());
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    while (result == ncclInProgress) {
      // The call is complete once the communicator's state leaves ncclInProgress.
      check(ncclCommGetAsyncError(comm_, &result), "ncclCommGetAsyncError", label);
      if (result != ncclInProgress) break;
      if (std::chrono::steady_clock::now() > deadline) {
        abort(3, who_ + " error: enqueueing " + label + " did not finish within " + format_seconds(options_.timeout) +
                     " (the communication timeout, comm-timeout); aborting the job.");
      }
      std::this_thread::yield();
    }
    check(result, "collective", label);
    done->record(*stream_);
    recorded->store(true);
    return done;
  }

  torch::Device device_;
  CommunicatorOptions options_;
  bool thread_multiple_;
  std::unique_ptr<MpiCommunicator> host_;
  int rank_ = 0;
  int size_ = 1;
  std::string who_;
  ncclComm_t comm_ = nullptr;
  std::optional<c10::cuda::CUDAStream> stream_;
  std::uint64_t next_sequence_ = 0;
  std::unique_ptr<ArrivalBoard> arrivals_;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm bootstrap, bool thread_multiple,
                                                     const torch::Device& device, CommunicatorOptions options) {
  return std::make_unique<NcclCommunicator>(bootstrap, thread_multiple, device, options);
}

}  // namespace brainmri::distributed
