#pragma once
// Which device a rank trains on: one CUDA device per rank (local rank k uses cuda:k; a launcher
// that gives each rank a single device of its own leaves cuda:0), or the CPU.

#include <torch/torch.h>

#include <optional>
#include <string>

#include "brainmri/common/enum_names.hpp"
#include "brainmri/distributed/mpi_environment.hpp"

namespace brainmri::distributed {

enum class DeviceChoice { Auto, Cpu, Cuda };  // auto: CUDA when available

struct DeviceSelection {
  torch::Device device = torch::kCPU;
  // Non-empty when `auto` fell back to the CPU on a machine with an NVIDIA GPU whose CUDA is
  // unusable: a day of CPU training on a GPU server must not go unnoticed. Every rank prints it.
  std::string warning;
};

// Throws ConfigError ("device") when CUDA is asked for but unusable (saying why), or when a node
// runs more ranks than it has visible GPUs.
DeviceSelection pick_device(DeviceChoice choice, const MpiEnvironment& environment);
// The same for the rank `local_rank` of `local_size` on its node (one process alone: 0 of 1).
DeviceSelection pick_device(DeviceChoice choice, int local_rank = 0, int local_size = 1);

// What was found out about CUDA on this machine, for diagnose_cuda (separate so that tests can
// describe machines they are not running on).
struct CudaProbe {
  bool nvidia_device = false;                  // /dev/nvidiactl, /dev/nvidia0 or /proc/driver/nvidia/version exists
  bool libtorch_has_cuda = false;              // LibTorch was built with CUDA
  int usable_devices = 0;                      // what the CUDA runtime counts
  std::string runtime_error;                   // the runtime's error when it counts none (e.g. driver too old)
  std::string driver;                          // first line of /proc/driver/nvidia/version
  std::optional<std::string> visible_devices;  // CUDA_VISIBLE_DEVICES
};
CudaProbe probe_cuda();
// Why CUDA cannot be used although an NVIDIA device is present; empty when it can be used or when
// there is no NVIDIA device at all (a CPU machine: nothing to warn about).
std::string diagnose_cuda(const CudaProbe& probe);

}  // namespace brainmri::distributed

namespace brainmri {
template <>
struct EnumNames<distributed::DeviceChoice> {
  static constexpr std::string_view what = "device";
  static constexpr std::array names = {std::pair{distributed::DeviceChoice::Auto, std::string_view("auto")},
                                       std::pair{distributed::DeviceChoice::Cpu, std::string_view("cpu")},
                                       std::pair{distributed::DeviceChoice::Cuda, std::string_view("cuda")}};
};
}  // namespace brainmri
