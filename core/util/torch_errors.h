#pragma once

#include <string>

namespace scalpel {

// Torch errors carry a TorchScript traceback and C++ frames; people need the one line that says
// what failed ("RuntimeError: Given groups=1, weight of size ..."). Returns that line, and for
// the common failures (channels, sizes, dtypes) first a sentence that says what to do.
std::string summariseTorchError(const std::string& what);

}  // namespace scalpel
