#include "brainmri/distributed/communicator.hpp"

#include <iostream>

#include "brainmri/common/log.hpp"
#include "mpi_communicator.hpp"
#include "mpi_world.hpp"
#ifdef BRAINMRI_HAVE_NCCL
#include "nccl_communicator.hpp"
#endif

namespace brainmri::distributed {
namespace {

// A world of one: every collective leaves its tensor as it is.
class LocalCommunicator final : public Communicator {
  class DoneWork final : public Work {
   public:
    void wait() override {}
    bool completed() override { return true; }
  };

 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  std::shared_ptr<Work> allreduce_async(torch::Tensor tensor, ReduceOp op, std::string label) override {
    validate_reduction(tensor, op, label);
    return std::make_shared<DoneWork>();
  }
  void broadcast(torch::Tensor, int root, std::string label) override {
    if (root != 0)
      throw CommunicationError("broadcast (" + label + ") from rank " + std::to_string(root) + " in a world of one");
  }
  torch::Tensor allgatherv(const torch::Tensor& tensor, std::string) override { return tensor.clone(); }
  void barrier(std::string) override {}
  [[noreturn]] void abort(int exit_code, const std::string& why) override {
    logging::error(why);
    std::_Exit(exit_code);
  }
  std::unique_ptr<Communicator> split(int color, int) override {
    return color < 0 ? nullptr : std::make_unique<LocalCommunicator>();
  }
};

}  // namespace

void Communicator::validate_reduction(const torch::Tensor& tensor, ReduceOp op, const std::string& label) {
  if (op == ReduceOp::Average && !at::isFloatingType(tensor.scalar_type())) {
    throw CommunicationError("average of " + std::string(c10::toString(tensor.scalar_type())) + " tensors (" + label +
                             ") is not defined; reduce with Sum");
  }
}

bool nccl_available() {
#ifdef BRAINMRI_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_communicator(const MpiEnvironment& environment, Backend backend,
                                                const torch::Device& device, CommunicatorOptions options) {
  if (backend == Backend::Local || (backend == Backend::Auto && !environment.uses_mpi())) {
    if (environment.size() > 1)
      throw CommunicationError("the local backend serves a world of one, this job has " +
                               std::to_string(environment.size()) + " ranks");
    return std::make_unique<LocalCommunicator>();
  }
  const bool want_nccl = backend == Backend::Nccl || (backend == Backend::Auto && device.is_cuda() && nccl_available());
  if (!environment.uses_mpi()) {
    throw CommunicationError("the " + std::string(want_nccl ? "nccl" : "mpi") +
                             " backend needs an MPI launch (mpirun, srun) or BRAINMRI_FORCE_MPI=1");
  }
  MPI_Comm own = MPI_COMM_NULL;
  MPI_Comm_dup(MpiWorld::of(environment), &own);
  if (want_nccl) {
#ifdef BRAINMRI_HAVE_NCCL
    if (!device.is_cuda()) {
      MPI_Comm_free(&own);
      throw CommunicationError("the nccl backend needs a CUDA device, this rank uses " + device.str());
    }
    return make_nccl_communicator(own, environment.thread_multiple(), device, options);
#else
    MPI_Comm_free(&own);
    throw CommunicationError(
        "this brainmri was built without NCCL (BRAINMRI_WITH_NCCL); use the mpi backend or rebuild "
        "with CUDA LibTorch and NCCL");
#endif
  }
  return std::make_unique<MpiCommunicator>(own, environment.thread_multiple(), options);
}

}  // namespace brainmri::distributed
