#include "util/torch_errors.h"

#include <regex>

namespace scalpel {

namespace {

// ATen's sentences for the failures people meet most, in words that say what to do. Each
// keeps ATen's own line after it, for a bug report.
std::string explained(const std::string& line) {
  std::smatch match;
  static const std::regex channels(
      R"(weight of size \[\d+, (\d+), .*expected input\[\d+, (\d+), .*channels)");
  if (std::regex_search(line, match, channels)) {
    return "the model takes images with " + match[1].str() + " channels but got " + match[2].str() +
           " — choose images the model was made for, or give the model its input "
           "shape so Scalpel converts them (" +
           line + ")";
  }
  static const std::regex matmul(
      R"(mat1 and mat2 shapes cannot be multiplied \(\d+x(\d+) and (\d+)x)");
  if (std::regex_search(line, match, matmul)) {
    return "the inputs reach a Linear layer with " + match[1].str() + " values where it takes " +
           match[2].str() +
           " — the data's size does not fit the model: give its input shape "
           "(e.g. --input-shape 1,3,224,224) or choose data of that size (" +
           line + ")";
  }
  static const std::regex dtype(R"(expected scalar type (\w+) but found (\w+))");
  if (std::regex_search(line, match, dtype)) {
    return "the model computes in " + match[1].str() + " but got " + match[2].str() +
           " values — save the model in float32 (model.float()) and open it again (" + line + ")";
  }
  static const std::regex small(
      R"(Kernel size can't be greater than actual input size|Output size is too small)");
  if (std::regex_search(line, small)) {
    return "the images are too small for this model — give it its input shape, or choose larger "
           "images (" +
           line + ")";
  }
  return line;
}

}  // namespace

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
  return line.empty() ? std::string("unknown error") : explained(line);
}

}  // namespace scalpel
