#pragma once

// Where the programs find their files: installed from the .deb (bin/ beside share/scalpel/), or
// in the build tree they were built in. The demo's trained model is written where the user can
// write: the build tree's demo/ when running from it, else ~/.cache/scalpel/.

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace scalpel::app {

// <prefix>/share/scalpel when this program runs as <prefix>/bin/…, else empty.
inline std::filesystem::path installedShare() {
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return {};
  const auto share = self.parent_path().parent_path() / "share" / "scalpel";
  return std::filesystem::is_directory(share / "demo", error) ? share : std::filesystem::path();
}

// Data definitions (resources/ in the source tree).
inline std::string resourceDir() {
  const auto share = installedShare();
  return share.empty() ? std::string(SCALPEL_RESOURCE_DIR) : (share / "resources").string();
}

// The demo's untrained architectures (demo_untrained.pt, demo_untrained_5.pt).
inline std::string demoArchitectureDir() {
  const auto share = installedShare();
  return share.empty() ? std::string(SCALPEL_DEMO_DIR) : (share / "demo").string();
}

// The architecture library checkpoints are rebuilt into; empty: core's own default (the build
// tree's, or $SCALPEL_ARCHITECTURES).
inline std::string architectureDir() {
  const auto share = installedShare();
  return share.empty() ? std::string() : (share / "architectures").string();
}

// The trained demo model (made on first use).
inline std::string demoModelPath() {
  if (installedShare().empty()) return std::string(SCALPEL_DEMO_DIR) + "/demo_model.pt";
  const char* cache = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::filesystem::path base =
      cache && *cache ? cache : std::filesystem::path(home ? home : "/tmp") / ".cache";
  return (base / "scalpel" / "demo_model.pt").string();
}

}  // namespace scalpel::app
