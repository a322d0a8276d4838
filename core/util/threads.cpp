#include "util/threads.h"

#include <ATen/Parallel.h>

#include <thread>

namespace scalpel {

void useAllCores() {
  const auto cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores > 0) at::set_num_threads(cores);
}

}  // namespace scalpel
