// libFuzzer target: the CSV parser must turn any text into a data set or a message, never crash.
// Built and run by scripts/fuzz.
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/csv_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto result = scalpel::parseCsv(text, "fuzz");
  if (result) {
    const auto& set = *result.dataset;
    // Every row holds itemSize() values and a label naming one of the classes.
    if (set.values.size() != set.size() * set.itemSize()) __builtin_trap();
    for (int label : set.labels) {
      if (label < 0 || static_cast<std::size_t>(label) >= set.classNames.size()) __builtin_trap();
    }
  } else if (result.error.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  return 0;
}
