#include "brainmri/distributed/device_selection.hpp"

#include <cstdlib>
#include <string>

#include "brainmri/common/config_error.hpp"

namespace brainmri::distributed {

torch::Device pick_device(DeviceChoice choice, const MpiEnvironment& environment) {
  if (choice == DeviceChoice::Cpu || (choice == DeviceChoice::Auto && !torch::cuda::is_available())) return torch::kCPU;
  if (!torch::cuda::is_available()) throw ConfigError("device", "cuda, but no CUDA device is available");
  const auto devices = static_cast<int>(torch::cuda::device_count());
  if (environment.local_size() <= devices) {
    return {torch::kCUDA, static_cast<c10::DeviceIndex>(environment.local_rank())};
  }
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (devices == 1 && visible != nullptr) return {torch::kCUDA, 0};
  throw ConfigError("device", std::to_string(environment.local_size()) + " ranks run on this node but only " +
                                  std::to_string(devices) + " CUDA device(s) are visible (CUDA_VISIBLE_DEVICES=" +
                                  (visible ? visible : "unset") + "); start at most one rank per GPU, or use the CPU");
}

}  // namespace brainmri::distributed
