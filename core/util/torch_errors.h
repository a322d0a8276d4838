#pragma once

#include <string>

namespace scalpel {

// Torch errors carry a TorchScript traceback and C++ frames; people need the one line that says
// what failed ("RuntimeError: Given groups=1, weight of size ..."). Returns that line.
std::string summariseTorchError(const std::string& what);

}  // namespace scalpel
