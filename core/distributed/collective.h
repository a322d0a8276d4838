#pragma once

// Torch-free (the CLI includes it); tensors are only named here.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/launch_environment.h"

namespace at {
class Tensor;
}

namespace scalpel {

// This process's place in a group of processes training one model together, through PyTorch's
// own distributed engine (c10d): a Gloo process group (CPU tensors, and CUDA tensors through the
// host) that meets at rank 0's TCPStore (MASTER_ADDR:MASTER_PORT). c10d stays in the source.
//
// Every collective blocks or is waited on; a failure (another rank died: its sockets close, or
// stopped answering for the launch environment's timeout) throws std::runtime_error saying so.
class Collective {
 public:
  // Joins the group; nullptr with `error` set when that fails within the timeout.
  static std::shared_ptr<Collective> connect(const LaunchEnvironment& environment,
                                             std::string& error);
  ~Collective();
  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

  int rank() const { return m_environment.rank; }
  int size() const { return m_environment.worldSize; }
  const LaunchEnvironment& environment() const { return m_environment; }

  // Sums the tensors over all ranks, in place.
  void allReduceSum(std::vector<at::Tensor>& tensors);
  // Rank 0's `text` on every rank (through the store: for plans and settings, not tensors).
  std::string shareFromRankZero(const std::string& key, const std::string& text,
                                std::chrono::seconds timeout);
  void barrier();

  struct Impl;  // c10d's objects
  Impl& impl() { return *m_impl; }

 private:
  Collective(LaunchEnvironment environment, std::unique_ptr<Impl> impl);
  LaunchEnvironment m_environment;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace scalpel
