#pragma once

// Torch-free: where this process sits in a distributed run, as the standard launchers
// (torchrun, srun wrappers, Kubernetes jobs, `scalpel-cli train --nproc N`) describe it in the
// environment: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK.

#include <chrono>
#include <string>

namespace scalpel {

struct LaunchEnvironment {
  std::string masterAddress = "127.0.0.1";
  int masterPort = 29500;
  int rank = 0;
  int worldSize = 1;
  int localRank = 0;
  // How long a collective may wait for the others before this process gives up with a message
  // (SCALPEL_DIST_TIMEOUT, seconds): a dead rank is noticed at once (its sockets close), a
  // stuck one after this.
  std::chrono::seconds timeout{120};

  bool distributed() const { return worldSize > 1; }
  // "rank 1 of 3" for messages.
  std::string describe() const;
};

// Reads the launcher's variables. Without WORLD_SIZE (or with 1) the run is a single process.
// Returns "" or what is wrong with them and how to fix it; `out` is then unchanged.
std::string readLaunchEnvironment(LaunchEnvironment& out);

}  // namespace scalpel
