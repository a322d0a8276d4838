// libFuzzer target: any bytes in a session file give a session or a message, never a crash; a
// session that loads saves and loads again to the same thing. Built and run by scripts/fuzz.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/session.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  static const fs::path folder =
      fs::temp_directory_path() / ("scalpel-fuzz-session-" + std::to_string(::getpid()));
  fs::create_directories(folder);
  const fs::path file = folder / "session.json";
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  scalpel::Session session;
  const auto loaded = scalpel::loadSession(file, session);
  if (!loaded.ok) {
    if (loaded.error.empty()) __builtin_trap();  // a refusal always says why
    return 0;
  }
  // What loads round-trips: saved again (paths stay relative to the same folder) and reloaded.
  const fs::path again = folder / "again.json";
  if (!scalpel::saveSession(session, again).empty()) return 0;  // e.g. a path too long to write
  scalpel::Session reloaded;
  if (!scalpel::loadSession(again, reloaded).ok) __builtin_trap();
  return 0;
}
