#include "distributed/launch_environment.h"

#include <cstdlib>
#include <string>
#include <tuple>

namespace scalpel {
namespace {

// The variable's value as a whole number in [low, high]; "" or what is wrong.
std::string readNumber(const char* name, long low, long high, int& out) {
  const char* text = std::getenv(name);
  if (!text || !*text) return "";
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < low || value > high) {
    return std::string(name) + "=" + text + " is not a whole number from " + std::to_string(low) +
           " to " + std::to_string(high) +
           " — check how the job was launched (torchrun and srun set it themselves)";
  }
  out = static_cast<int>(value);
  return "";
}

}  // namespace

std::string LaunchEnvironment::describe() const {
  return "rank " + std::to_string(rank) + " of " + std::to_string(worldSize);
}

std::string readLaunchEnvironment(LaunchEnvironment& out) {
  LaunchEnvironment read;
  for (const auto& [name, low, high, field] :
       {std::tuple{"WORLD_SIZE", 1L, 65536L, &read.worldSize},
        std::tuple{"RANK", 0L, 65535L, &read.rank},
        std::tuple{"LOCAL_RANK", 0L, 65535L, &read.localRank},
        std::tuple{"MASTER_PORT", 1L, 65535L, &read.masterPort}}) {
    if (auto problem = readNumber(name, low, high, *field); !problem.empty()) return problem;
  }
  int timeout = static_cast<int>(read.timeout.count());
  if (auto problem = readNumber("SCALPEL_DIST_TIMEOUT", 1, 86400, timeout); !problem.empty())
    return problem;
  read.timeout = std::chrono::seconds(timeout);
  if (const char* address = std::getenv("MASTER_ADDR"); address && *address)
    read.masterAddress = address;
  if (read.distributed()) {
    if (!std::getenv("RANK"))
      return "WORLD_SIZE is " + std::to_string(read.worldSize) +
             " but RANK is not set — launch with torchrun, srun or scalpel-cli train --nproc N";
    if (read.rank >= read.worldSize)
      return "RANK " + std::to_string(read.rank) + " is not below WORLD_SIZE " +
             std::to_string(read.worldSize) + " — ranks count from 0";
    if (!std::getenv("MASTER_ADDR") || !std::getenv("MASTER_PORT"))
      return "a distributed run needs MASTER_ADDR and MASTER_PORT (rank 0's address and a free "
             "port) — torchrun sets them; by hand: MASTER_ADDR=host MASTER_PORT=29500";
  } else {
    read.rank = 0;
  }
  out = read;
  return "";
}

}  // namespace scalpel
