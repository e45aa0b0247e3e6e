#pragma once
// Which device a rank trains on: one CUDA device per rank (local rank k uses cuda:k; a launcher
// that gives each rank a single device of its own leaves cuda:0), or the CPU.

#include <torch/torch.h>

#include "brainmri/common/enum_names.hpp"
#include "brainmri/distributed/mpi_environment.hpp"

namespace brainmri::distributed {

enum class DeviceChoice { Auto, Cpu, Cuda };  // auto: CUDA when available

// Throws ConfigError ("device") when CUDA is asked for but unusable, or when a node runs more
// ranks than it has visible GPUs.
torch::Device pick_device(DeviceChoice choice, const MpiEnvironment& environment);

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
