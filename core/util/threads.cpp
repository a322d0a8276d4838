#include "util/threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <thread>

namespace scalpel {

void useAllCores() {
  const auto cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores > 0) at::set_num_threads(cores);
}

void useTorchThreads(int threads) { at::set_num_threads(std::max(1, threads)); }

int torchThreads() { return at::get_num_threads(); }

}  // namespace scalpel
