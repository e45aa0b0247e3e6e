#include "mpi_communicator.hpp"

#include <c10/util/BFloat16.h>

#include <climits>
#include <iostream>

#include "brainmri/common/log.hpp"
#include "mpi_world.hpp"

namespace brainmri::distributed {

MPI_Datatype mpi_datatype(c10::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kInt32: return MPI_INT32_T;
    case torch::kUInt8: return MPI_UINT8_T;
    case torch::kInt8: return MPI_INT8_T;
    case torch::kBFloat16: return MPI_UINT16_T;  // reduced with bf16_sum_op()
    default:
      throw CommunicationError(std::string("the mpi backend cannot reduce ") + c10::toString(type) +
                               " tensors (float32, float64, bfloat16, int64, int32, uint8 and int8 are supported)");
  }
}

namespace {

void add_bf16(void* in, void* inout, int* length, MPI_Datatype*) {
  const auto* a = static_cast<const c10::BFloat16*>(in);
  auto* b = static_cast<c10::BFloat16*>(inout);
  for (int i = 0; i < *length; ++i) b[i] = c10::BFloat16(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

// MPI counts are int: larger buffers go in pieces of at most this many elements.
constexpr std::int64_t kMaxCount = INT_MAX / 2;

}  // namespace

MPI_Op bf16_sum_op() {
  static const MPI_Op op = [] {
    MPI_Op created;
    MPI_Op_create(&add_bf16, 1, &created);
    return created;
  }();
  return op;
}

class MpiCommunicator::Task final : public Work {
 public:
  Task(std::string operation_name, std::string collective_label, std::function<void()> run, std::function<void()> then)
      : operation(std::move(operation_name)),
        label(std::move(collective_label)),
        body(std::move(run)),
        after_wait(std::move(then)) {}

  void wait() override {
    std::unique_lock lock(mutex);
    finished_changed.wait(lock, [this] { return finished; });
    if (failure) std::rethrow_exception(failure);
    if (after_wait) {
      after_wait();
      after_wait = nullptr;
    }
  }
  bool completed() override {
    std::lock_guard lock(mutex);
    return finished;
  }
  void complete(std::exception_ptr error) {
    {
      std::lock_guard lock(mutex);
      finished = true;
      failure = error;
    }
    finished_changed.notify_all();
  }

  const std::string operation;
  const std::string label;
  std::function<void()> body;
  std::uint64_t sequence = 0;

 private:
  std::function<void()> after_wait;
  std::mutex mutex;
  std::condition_variable finished_changed;
  bool finished = false;
  std::exception_ptr failure;
};

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool thread_multiple, CommunicatorOptions options)
    : comm_(comm), thread_multiple_(thread_multiple), options_(options) {
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  arrivals_ = std::make_unique<ArrivalBoard>(comm_, thread_multiple_);
  CollectiveWatchdog::Hooks hooks;
  if (thread_multiple_) {
    hooks.poll = [this] { arrivals_->poll(); };
    hooks.describe_missing = [this](std::uint64_t sequence) { return arrivals_->describe_missing(sequence); };
  }
  hooks.abort = [this](const std::string& message) { abort(3, message); };
  const auto grace = rank_ == 0 ? std::chrono::milliseconds(0)
                                : std::min<std::chrono::milliseconds>(options_.timeout / 10, std::chrono::seconds(10));
  watchdog_ = std::make_unique<CollectiveWatchdog>(
      "mpi (communicator rank " + std::to_string(rank_) + "/" + std::to_string(size_) + ")", options_.timeout, grace,
      hooks);
  worker_ = std::thread([this] { run_tasks(); });
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
  watchdog_.reset();
  arrivals_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

std::string MpiCommunicator::describe(const std::string& operation, const std::string& label, int code) const {
  return "mpi " + operation + " (" + label + ") failed on communicator rank " + std::to_string(rank_) + "/" +
         std::to_string(size_) + ": " + mpi_error_text(code);
}

std::shared_ptr<MpiCommunicator::Task> MpiCommunicator::submit(std::string operation, std::string label,
                                                               std::function<void()> body,
                                                               std::function<void()> after_wait) {
  auto task = std::make_shared<Task>(std::move(operation), std::move(label), std::move(body), std::move(after_wait));
  {
    std::lock_guard lock(mutex_);
    task->sequence = next_sequence_++;
    queue_.push_back(task);
  }
  changed_.notify_all();
  return task;
}

void MpiCommunicator::run_tasks() {
  for (;;) {
    std::shared_ptr<Task> task;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = queue_.front();
      queue_.pop_front();
    }
    watchdog_->start(task->sequence, task->operation + " " + task->label);
    arrivals_->announce(task->sequence);
    std::exception_ptr failure;
    try {
      task->body();
    } catch (...) {
      failure = std::current_exception();
    }
    watchdog_->finish(task->sequence);
    task->complete(failure);
  }
}

std::shared_ptr<Work> MpiCommunicator::allreduce_async(torch::Tensor tensor, ReduceOp op, std::string label) {
  validate_reduction(tensor, op, label);
  const auto type = tensor.scalar_type();
  const MPI_Datatype datatype = mpi_datatype(type);
  // The communication thread works on a contiguous host buffer; the caller's tensor receives the
  // result in wait() when it is not that buffer itself.
  const bool staged = !tensor.device().is_cpu() || !tensor.is_contiguous();
  auto buffer = staged ? tensor.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true).contiguous() : tensor;
  const MPI_Op mpi_op = type == torch::kBFloat16 ? bf16_sum_op() : MPI_SUM;
  const int world = size_;
  auto body = [this, buffer, datatype, mpi_op, op, world, label] {
    auto* data = static_cast<char*>(buffer.data_ptr());
    const auto element = static_cast<std::int64_t>(buffer.element_size());
    for (std::int64_t offset = 0; offset < buffer.numel(); offset += kMaxCount) {
      const auto count = static_cast<int>(std::min(kMaxCount, buffer.numel() - offset));
      const int code = MPI_Allreduce(MPI_IN_PLACE, data + offset * element, count, datatype, mpi_op, comm_);
      if (code != MPI_SUCCESS) throw CommunicationError(describe("allreduce", label, code));
    }
    if (op == ReduceOp::Average) buffer.div_(world);
  };
  std::function<void()> after_wait;
  if (staged) after_wait = [tensor, buffer]() mutable { tensor.copy_(buffer); };
  return submit("allreduce", std::move(label), std::move(body), std::move(after_wait));
}

void MpiCommunicator::broadcast(torch::Tensor tensor, int root, std::string label) {
  const bool staged = !tensor.device().is_cpu() || !tensor.is_contiguous();
  auto buffer = staged ? tensor.to(torch::kCPU, false, true).contiguous() : tensor;
  submit("broadcast", label, [this, buffer, root, label] {
    auto* data = static_cast<char*>(buffer.data_ptr());
    const std::int64_t bytes = buffer.numel() * static_cast<std::int64_t>(buffer.element_size());
    for (std::int64_t offset = 0; offset < bytes; offset += kMaxCount) {
      const int code =
          MPI_Bcast(data + offset, static_cast<int>(std::min(kMaxCount, bytes - offset)), MPI_BYTE, root, comm_);
      if (code != MPI_SUCCESS) throw CommunicationError(describe("broadcast", label, code));
    }
  })->wait();
  if (staged) tensor.copy_(buffer);
}

torch::Tensor MpiCommunicator::allgatherv(const torch::Tensor& tensor, std::string label) {
  const auto local = tensor.to(torch::kCPU).contiguous();
  std::int64_t row_bytes = local.element_size();
  for (std::int64_t d = 1; d < local.dim(); ++d) row_bytes *= local.size(d);
  std::vector<long long> shape_signature(static_cast<std::size_t>(size_) * 2);
  torch::Tensor gathered;
  submit("allgatherv", label, [&, this] {
    if (local.dim() == 0)
      throw CommunicationError("allgatherv (" + label + ") needs a tensor with at least one dimension");
    // Every rank states its row count and row size; rows of different sizes are a usage error
    // that would otherwise corrupt the result silently.
    long long mine[2] = {local.size(0), static_cast<long long>(row_bytes)};
    int code = MPI_Allgather(mine, 2, MPI_LONG_LONG, shape_signature.data(), 2, MPI_LONG_LONG, comm_);
    if (code != MPI_SUCCESS) throw CommunicationError(describe("allgatherv", label, code));
    std::vector<int> counts(static_cast<std::size_t>(size_)), displacements(static_cast<std::size_t>(size_));
    long long total_rows = 0, offset = 0;
    for (int r = 0; r < size_; ++r) {
      const long long rows = shape_signature[2 * static_cast<std::size_t>(r)];
      const long long bytes_per_row = shape_signature[2 * static_cast<std::size_t>(r) + 1];
      if (bytes_per_row != shape_signature[1]) {
        throw CommunicationError("allgatherv (" + label + "): rank " + std::to_string(r) + " sends rows of " +
                                 std::to_string(bytes_per_row) + " bytes, rank 0 of " +
                                 std::to_string(shape_signature[1]) + "; every rank must send the same row shape");
      }
      if (rows * row_bytes > INT_MAX || offset > INT_MAX) {
        throw CommunicationError("allgatherv (" + label + ") of more than 2 GiB is not supported");
      }
      counts[static_cast<std::size_t>(r)] = static_cast<int>(rows * row_bytes);
      displacements[static_cast<std::size_t>(r)] = static_cast<int>(offset);
      offset += rows * row_bytes;
      total_rows += rows;
    }
    auto shape = local.sizes().vec();
    shape[0] = total_rows;
    gathered = torch::empty(shape, local.options());
    code = MPI_Allgatherv(local.data_ptr(), static_cast<int>(local.size(0) * row_bytes), MPI_BYTE, gathered.data_ptr(),
                          counts.data(), displacements.data(), MPI_BYTE, comm_);
    if (code != MPI_SUCCESS) throw CommunicationError(describe("allgatherv", label, code));
  })->wait();
  return gathered.to(tensor.device());
}

void MpiCommunicator::barrier(std::string label) {
  submit("barrier", label, [this, label] {
    const int code = MPI_Barrier(comm_);
    if (code != MPI_SUCCESS) throw CommunicationError(describe("barrier", label, code));
  })->wait();
}

void MpiCommunicator::abort(int exit_code, const std::string& why) {
  logging::error(why);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

MPI_Comm MpiCommunicator::split_raw(int color, int key) {
  MPI_Comm part = MPI_COMM_NULL;
  const std::string label = "color " + std::to_string(color);
  submit("split", label, [&, this] {
    const int code = MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &part);
    if (code != MPI_SUCCESS) throw CommunicationError(describe("split", label, code));
  })->wait();
  return part;
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  const MPI_Comm part = split_raw(color, key);
  if (part == MPI_COMM_NULL) return nullptr;
  return std::make_unique<MpiCommunicator>(part, thread_multiple_, options_);
}

}  // namespace brainmri::distributed
