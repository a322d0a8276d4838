// libFuzzer target: the model-loading front door (ScriptModel::load, what File ▸ Open Model and
// every command run first) must turn any file into a model or a message, never a crash. Built
// with clang against the build's scalpel_core (uninstrumented: crashes inside it still stop the
// run) by scripts/fuzz.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "model/script_model.h"
#include "util/logging.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  static const fs::path file =
      fs::temp_directory_path() / ("scalpel-fuzz-model-" + std::to_string(::getpid()) + ".pt");
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  const auto loaded = scalpel::ScriptModel::load(file);
  if (!loaded.model && loaded.error.empty()) __builtin_trap();  // a refusal always says why
  return 0;
}
