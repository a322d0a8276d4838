// libFuzzer target: the IDX parser and the gzip layer in front of it must reject any bytes with a
// message, never crash, hang or read out of bounds. Built and run by scripts/fuzz.
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/idx_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  scalpel::IdxArray array;
  const auto error = scalpel::parseIdx(bytes, "fuzz", array);
  if (error.empty() && array.data.empty() && !array.dims.empty()) {
    std::size_t count = 1;
    for (auto d : array.dims) count *= static_cast<std::size_t>(d);
    if (count != 0) __builtin_trap();  // a parsed array must hold what its header promises
  }
  std::string inflated;
  if (scalpel::gunzip(bytes, "fuzz", inflated).empty()) scalpel::parseIdx(inflated, "fuzz", array);
  return 0;
}
