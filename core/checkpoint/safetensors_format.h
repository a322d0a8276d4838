#pragma once

// The .safetensors container (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON describing each tensor's dtype, shape and byte
// range, then the raw little-endian data. Parsing is separate from reading tensors so that a
// damaged or hostile header is refused with a clear message before any data is touched.
// Torch-free.

#include <cstddef>
#include <cstdint>
#include <istream>
#include <map>
#include <string>
#include <vector>

namespace scalpel {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // in file order of offsets
  std::map<std::string, std::string> metadata;
  std::uint64_t dataOffset = 0;  // 8 + header length
};

// Parses the header of a .safetensors file per its specification; `fileSize` lets it check the
// offsets. Returns "" or what is wrong, phrased for a user after "<file name>: " (e.g. "its header
// says 4096 bytes but the file has 100 — the file is truncated; copy it again"). `out` is only
// written on success. Non-string metadata values are kept as their JSON text.
std::string parseSafetensorsHeader(std::istream& in, std::uint64_t fileSize,
                                   SafetensorsHeader& out);

// Bytes of a complete header (length + JSON padded with spaces to a multiple of 8) for entries
// whose begin/end are already laid out; metadata goes into "__metadata__" (string values only).
// Entries keep their order in the JSON.
std::string safetensorsHeaderBytes(const std::vector<SafetensorsEntry>& entries,
                                   const std::map<std::string, std::string>& metadata);

// Bytes per element of a safetensors dtype; 0 when unknown.
std::size_t safetensorsElementSize(const std::string& dtype);

}  // namespace scalpel
