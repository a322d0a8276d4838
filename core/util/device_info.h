#pragma once

#include <string>
#include <vector>

namespace scalpel {

// Says what a device is, for the status bar, logs and reports: "cpu (2 threads)" or
// "cuda:0 (NVIDIA H100 80GB HBM3)". `device` is "cpu", "cuda" or "cuda:N" (not "auto").
std::string describeDevice(const std::string& device);

// The device "auto" picks here: "cuda:0" when CUDA is usable, else "cpu".
std::string automaticDevice();

// The devices a user can choose: "cpu", then "cuda:0", "cuda:1", … for every usable GPU.
std::vector<std::string> availableDevices();

// The host memory available now (MemAvailable), in bytes; 4 GB where that cannot be read (not
// Linux).
double availableHostMemory();

// The LibTorch version Scalpel runs on, e.g. "1.13.0".
std::string torchVersion();

}  // namespace scalpel
