#include "util/fingerprint.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

namespace scalpel {

namespace {

// FNV-1a, 64 bit: tiny, dependency-free and fast enough to hash a model on every save.
class Fnv1a64 {
 public:
  void add(const void* data, std::size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    std::uint64_t hash = m_hash;
    for (std::size_t i = 0; i < size; ++i) {
      hash ^= bytes[i];
      hash *= 0x100000001b3ULL;
    }
    m_hash = hash;
  }
  // Integers go in as little-endian bytes, so a fingerprint does not depend on the machine.
  void addInteger(std::uint64_t value, int bytes = 8) {
    unsigned char buffer[8];
    for (int i = 0; i < bytes; ++i) buffer[i] = static_cast<unsigned char>(value >> (8 * i));
    add(buffer, static_cast<std::size_t>(bytes));
  }
  std::uint64_t value() const { return m_hash; }

 private:
  std::uint64_t m_hash = 0xcbf29ce484222325ULL;
};

std::string format(std::uint64_t hash, std::uint64_t size) {
  char text[64];
  std::snprintf(text, sizeof text, "fnv1a64:%016llx:%llu", static_cast<unsigned long long>(hash),
                static_cast<unsigned long long>(size));
  return text;
}

}  // namespace

std::string fileFingerprint(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return {};
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  Fnv1a64 hash;
  std::vector<char> chunk(1 << 16);
  std::uint64_t size = 0;
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto n = in.gcount();
    hash.add(chunk.data(), static_cast<std::size_t>(n));
    size += static_cast<std::uint64_t>(n);
  }
  if (in.bad()) return {};
  return format(hash.value(), size);
}

std::string datasetFingerprint(const Dataset& data) {
  // Every list is preceded by its length, so moving a boundary (a value from one list to the
  // next, a character from one class name to the next) changes the fingerprint.
  Fnv1a64 hash;
  hash.addInteger(data.itemShape.size());
  for (auto dim : data.itemShape) hash.addInteger(static_cast<std::uint64_t>(dim));
  const auto addFloats = [&hash](const std::vector<float>& values) {
    hash.addInteger(values.size());
    for (float value : values) {
      std::uint32_t bits;
      std::memcpy(&bits, &value, sizeof bits);
      hash.addInteger(bits, 4);
    }
  };
  const auto addNames = [&hash](const std::vector<std::string>& names) {
    hash.addInteger(names.size());
    for (const auto& name : names) {
      hash.addInteger(name.size());
      hash.add(name.data(), name.size());
    }
  };
  addFloats(data.values);
  hash.addInteger(data.labels.size());
  for (int label : data.labels) hash.addInteger(static_cast<std::uint32_t>(label), 4);
  addNames(data.classNames);
  // Regression targets only where there are some: classification fingerprints stay as they were
  // (sessions saved before regression existed still match their data).
  if (data.isRegression()) {
    addFloats(data.targets);
    addNames(data.targetNames);
  }
  return format(hash.value(), data.size());
}

}  // namespace scalpel
