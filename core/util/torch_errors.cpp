#include "util/torch_errors.h"

namespace scalpel {

std::string summariseTorchError(const std::string& what) {
  const std::string marker = "RuntimeError: ";
  std::string line;
  if (const auto at = what.rfind(marker); at != std::string::npos) {
    line = what.substr(at + marker.size());
  } else {
    line = what;
  }
  line = line.substr(0, line.find('\n'));
  // Torch appends the C++ location in parentheses for internal asserts: keep only the message.
  if (const auto frame = line.find(" (Triggered internally at"); frame != std::string::npos) {
    line.resize(frame);
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == '.')) line.pop_back();
  return line.empty() ? std::string("unknown error") : line;
}

}  // namespace scalpel
