#include "brainmri/distributed/device_selection.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#ifdef BRAINMRI_HAVE_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "brainmri/common/config_error.hpp"

namespace brainmri::distributed {

namespace fs = std::filesystem;

CudaProbe probe_cuda() {
  CudaProbe probe;
  probe.nvidia_device =
      fs::exists("/dev/nvidiactl") || fs::exists("/dev/nvidia0") || fs::exists("/proc/driver/nvidia/version");
  probe.libtorch_has_cuda = at::hasCUDA();
  probe.usable_devices = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
#ifdef BRAINMRI_HAVE_CUDA
  if (probe.usable_devices == 0 && probe.libtorch_has_cuda) {
    try {
      c10::cuda::device_count_ensure_non_zero();
    } catch (const c10::Error& e) {
      probe.runtime_error = e.what_without_backtrace();
    }
  }
#endif
  std::ifstream version("/proc/driver/nvidia/version");
  std::getline(version, probe.driver);
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES")) probe.visible_devices = visible;
  return probe;
}

std::string diagnose_cuda(const CudaProbe& probe) {
  if (probe.usable_devices > 0 || !probe.nvidia_device) return "";
  std::string why = "this machine has an NVIDIA device but CUDA is unusable: ";
  if (!probe.libtorch_has_cuda) {
    return why +
           "this LibTorch was built without CUDA (a CPU-only torch wheel or download); install the CUDA build "
           "(e.g. BRAINMRI_TORCH=torch==2.11.0 scripts/setup.sh) and rebuild";
  }
  if (probe.visible_devices &&
      (probe.visible_devices->empty() || *probe.visible_devices == "-1" || *probe.visible_devices == "NoDevFiles")) {
    return why + "CUDA_VISIBLE_DEVICES='" + *probe.visible_devices +
           "' hides every GPU (did the job ask for GPUs, e.g. sbatch --gres=gpu:N?)";
  }
  why += probe.runtime_error.empty() ? std::string("the CUDA runtime finds no usable device") : probe.runtime_error;
  if (!probe.driver.empty()) why += " [driver: " + probe.driver + "]";
  return why + "; the usual cause is a driver older than the CUDA of the torch build (" +
         "check nvidia-smi; pick a matching wheel with BRAINMRI_TORCH / BRAINMRI_TORCH_INDEX)";
}

DeviceSelection pick_device(DeviceChoice choice, const MpiEnvironment& environment) {
  return pick_device(choice, environment.local_rank(), environment.local_size());
}

DeviceSelection pick_device(DeviceChoice choice, int local_rank, int local_size) {
  if (choice == DeviceChoice::Cpu) return {torch::kCPU, ""};
  if (!torch::cuda::is_available()) {
    const auto why = diagnose_cuda(probe_cuda());
    if (choice == DeviceChoice::Cuda)
      throw ConfigError("device", "cuda, but " + (why.empty() ? std::string("this machine has no NVIDIA GPU") : why));
    return {torch::kCPU, why.empty() ? "" : "WARNING: --device auto runs on the CPU: " + why};
  }
  const auto devices = static_cast<int>(torch::cuda::device_count());
  if (local_size <= devices) {
    return {{torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank)}, ""};
  }
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (devices == 1 && visible != nullptr) return {{torch::kCUDA, 0}, ""};
  throw ConfigError("device", std::to_string(local_size) + " ranks run on this node but only " +
                                  std::to_string(devices) + " CUDA device(s) are visible (CUDA_VISIBLE_DEVICES=" +
                                  (visible ? visible : "unset") + "); start at most one rank per GPU, or use the CPU");
}

}  // namespace brainmri::distributed
