#pragma once
// The NCCL backend (compiled when CUDA LibTorch and NCCL are found): CUDA tensors reduced on a
// dedicated stream that waits, through an event, for the work already queued on torch's current
// stream; wait() makes the current stream wait for the collective in turn, so neither stream
// blocks the host. The NCCL communicator is created non-blocking so its initialization can time
// out, and the watchdog polls ncclCommGetAsyncError. Host-side collectives (barrier, the small
// allgatherv of evaluation results) go over MPI.

#include <mpi.h>

#include <memory>

#include "brainmri/distributed/communicator.hpp"

namespace brainmri::distributed {

// `bootstrap` is taken over (a communicator of its own); it carries the NCCL unique id.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm bootstrap, bool thread_multiple,
                                                     const torch::Device& device, CommunicatorOptions options);

}  // namespace brainmri::distributed
