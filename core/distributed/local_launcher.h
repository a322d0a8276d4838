#pragma once

// Torch-free: starts the processes of a distributed run on this machine, as torchrun's
// --standalone mode does, and watches them: `scalpel-cli train --nproc N`.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace scalpel {

struct LocalLaunch {
  std::string program;                 // an executable path
  std::vector<std::string> arguments;  // without the program name
  int processes = 2;
  // After one process fails, how long the others get to notice and stop by themselves before
  // they are stopped (SIGTERM, then SIGKILL 5 s later).
  std::chrono::seconds grace{30};
};

struct LaunchOutcome {
  int exitCode = 0;     // 0 when every process succeeded
  std::string message;  // which process failed first and how, for the user
  int stopSignal = 0;   // SIGINT or SIGTERM passed on (asked to stop, not a failure); 0 if none
};

// Runs `processes` copies of the program with the launcher variables set (MASTER_ADDR=127.0.0.1,
// a free MASTER_PORT, RANK = LOCAL_RANK = 0…N−1, WORLD_SIZE = LOCAL_WORLD_SIZE = N), their output
// going where this process's goes, and waits for all of them. SIGINT and SIGTERM received
// meanwhile are passed on. `started` hears each rank's process id.
LaunchOutcome launchLocalProcesses(const LocalLaunch& launch,
                                   const std::function<void(int rank, int pid)>& started = {});

// A TCP port on 127.0.0.1 that nothing listens on right now (0 when none could be found).
int freeLocalPort();

}  // namespace scalpel
