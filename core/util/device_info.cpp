#include "util/device_info.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <fstream>

namespace scalpel {

namespace {

// The GPU's marketing name from NVML, the driver's own library, so the CPU build needs no CUDA
// headers. Indexes follow NVML's order, which matches CUDA's unless CUDA_VISIBLE_DEVICES
// reorders them.
std::string gpuName(int index) {
  void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!nvml) return "";
  using Init = int (*)();
  using Handle = int (*)(unsigned, void**);
  using Name = int (*)(void*, char*, unsigned);
  const auto init = reinterpret_cast<Init>(dlsym(nvml, "nvmlInit_v2"));
  const auto handleOf = reinterpret_cast<Handle>(dlsym(nvml, "nvmlDeviceGetHandleByIndex_v2"));
  const auto nameOf = reinterpret_cast<Name>(dlsym(nvml, "nvmlDeviceGetName"));
  std::string name;
  void* device = nullptr;
  char buffer[96] = {};
  if (init && handleOf && nameOf && init() == 0 &&
      handleOf(static_cast<unsigned>(index), &device) == 0 &&
      nameOf(device, buffer, sizeof buffer) == 0) {
    name = buffer;
  }
  dlclose(nvml);
  return name;
}

}  // namespace

std::string describeDevice(const std::string& device) {
  if (device.rfind("cuda", 0) == 0) {
    const auto colon = device.find(':');
    const int index = colon == std::string::npos ? 0 : std::stoi(device.substr(colon + 1));
    const std::string name = gpuName(index);
    return "cuda:" + std::to_string(index) + (name.empty() ? "" : " (" + name + ")");
  }
  const int threads = at::get_num_threads();
  return "cpu (" + std::to_string(threads) + (threads == 1 ? " thread)" : " threads)");
}

std::string torchVersion() { return TORCH_VERSION; }

std::string automaticDevice() { return torch::cuda::is_available() ? "cuda:0" : "cpu"; }

std::vector<std::string> availableDevices() {
  std::vector<std::string> devices{"cpu"};
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  for (int i = 0; i < gpus; ++i) devices.push_back("cuda:" + std::to_string(i));
  return devices;
}

double availableHostMemory() {
  std::ifstream info("/proc/meminfo");
  std::string key;
  double kilobytes = 0;
  while (info >> key >> kilobytes) {
    if (key == "MemAvailable:") return kilobytes * 1024;
    info.ignore(256, '\n');
  }
  return 4e9;
}

}  // namespace scalpel
