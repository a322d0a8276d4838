// libFuzzer target: the CSV parser must turn any text into a data set or a message, never crash,
// read for classification and for regression (the first and last header fields as targets).
// Built and run by scripts/fuzz.
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/csv_reader.h"

namespace {

void check(const scalpel::DataLoadResult& result) {
  if (result) {
    const auto& set = *result.dataset;
    // Every row holds itemSize() values, and a label naming one of the classes or its targets.
    if (set.values.size() != set.size() * set.itemSize()) __builtin_trap();
    for (int label : set.labels) {
      if (label < 0 || static_cast<std::size_t>(label) >= set.classNames.size()) __builtin_trap();
    }
    if (set.isRegression() &&
        (!set.labels.empty() || set.targets.size() != set.size() * set.targetNames.size()))
      __builtin_trap();
  } else if (result.error.empty()) {
    __builtin_trap();  // a refusal always says why
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  check(scalpel::parseCsv(text, "fuzz"));
  const std::string header = text.substr(0, text.find('\n'));
  scalpel::CsvOptions regression;
  regression.targetColumns = {header.substr(0, header.find(',')),
                              header.substr(header.rfind(',') + 1)};
  check(scalpel::parseCsv(text, "fuzz", regression));
  return 0;
}
