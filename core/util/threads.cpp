#include "util/threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace scalpel {

void useAllCores() {
  auto cores = static_cast<int>(std::thread::hardware_concurrency());
  // Processes of one distributed run on this machine share its cores (torchrun and
  // `scalpel-cli train --nproc` say how many there are), or they would crowd each other out.
  if (const char* local = std::getenv("LOCAL_WORLD_SIZE"); local && std::atoi(local) > 1)
    cores /= std::atoi(local);
  at::set_num_threads(std::max(1, cores));
}

void useTorchThreads(int threads) { at::set_num_threads(std::max(1, threads)); }

int torchThreads() { return at::get_num_threads(); }

}  // namespace scalpel
