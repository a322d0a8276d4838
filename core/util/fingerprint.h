#pragma once

// Short content fingerprints, to tell whether a model or data set is the one a report or session
// was made with. Not cryptographic.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace scalpel {

// FNV-1a, 64 bit, over bytes fed in pieces: tiny, dependency-free and fast enough to hash a model
// on every save.
class Fingerprint {
 public:
  void add(const void* data, std::size_t size);
  // Integers go in as little-endian bytes, so a fingerprint does not depend on the machine.
  void addInteger(std::uint64_t value, int bytes = 8);
  // "fnv1a64:<16 hex digits>:<size>", the size being what the caller counts (bytes, items).
  std::string text(std::uint64_t size) const;

 private:
  std::uint64_t m_hash = 0xcbf29ce484222325ULL;
};

// The fingerprint of the file's bytes (size in bytes); "" when it cannot be read.
std::string fileFingerprint(const std::filesystem::path& path);

}  // namespace scalpel
