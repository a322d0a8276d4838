#include "util/fingerprint.h"

#include <cstdio>
#include <fstream>
#include <vector>

namespace scalpel {

void Fingerprint::add(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::uint64_t hash = m_hash;
  for (std::size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  m_hash = hash;
}

void Fingerprint::addInteger(std::uint64_t value, int bytes) {
  unsigned char buffer[8];
  for (int i = 0; i < bytes; ++i) buffer[i] = static_cast<unsigned char>(value >> (8 * i));
  add(buffer, static_cast<std::size_t>(bytes));
}

std::string Fingerprint::text(std::uint64_t size) const {
  char text[64];
  std::snprintf(text, sizeof text, "fnv1a64:%016llx:%llu", static_cast<unsigned long long>(m_hash),
                static_cast<unsigned long long>(size));
  return text;
}

std::string fileFingerprint(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return {};
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  Fingerprint hash;
  std::vector<char> chunk(1 << 16);
  std::uint64_t size = 0;
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto n = in.gcount();
    hash.add(chunk.data(), static_cast<std::size_t>(n));
    size += static_cast<std::uint64_t>(n);
  }
  if (in.bad()) return {};
  return hash.text(size);
}

}  // namespace scalpel
