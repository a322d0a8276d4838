#include "checkpoint/safetensors_format.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>

namespace scalpel {

namespace {

// The reference implementation refuses headers above 100 MB; a real one is a few hundred KB even
// for thousands of tensors, so anything bigger is damage, not a model.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

const char* const kKnownDtypes = "F32, F16, BF16, F64, I64, I32, I16, I8, U8 and BOOL";

// Names come from the file; a damaged one can be megabytes long.
std::string inQuotes(const std::string& name) {
  constexpr std::size_t kMax = 120;
  return "'" + (name.size() <= kMax ? name : name.substr(0, kMax) + "...") + "'";
}

std::string sizeText(std::uint64_t bytes) { return std::to_string(bytes) + " bytes"; }

}  // namespace

std::size_t safetensorsElementSize(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

std::string parseSafetensorsHeader(std::istream& in, std::uint64_t fileSize,
                                   SafetensorsHeader& out) {
  if (fileSize < 8) {
    return "the file has only " + sizeText(fileSize) +
           ", too few for a safetensors file (it starts with an 8-byte header length); the file is "
           "truncated or empty — copy it again";
  }
  unsigned char lengthBytes[8];
  if (!in.read(reinterpret_cast<char*>(lengthBytes), 8)) {
    return "its first 8 bytes could not be read; check that the file is readable and copy it "
           "again";
  }
  std::uint64_t headerLength = 0;
  for (int i = 7; i >= 0; --i) headerLength = (headerLength << 8) | lengthBytes[i];
  if (headerLength > fileSize - 8) {
    return "its header says " + sizeText(headerLength) + " but the file has " + sizeText(fileSize) +
           " — the file is truncated or is not a safetensors file; copy it again";
  }
  if (headerLength > kMaxHeaderBytes) {
    return "its header length is " + sizeText(headerLength) +
           ", more than the 100 MB a safetensors header may have; the file is damaged or is not a "
           "safetensors file";
  }
  if (headerLength < 2) {
    return "its header is " + sizeText(headerLength) +
           " long, too short for the JSON a safetensors file starts with; the file is damaged or "
           "is not a safetensors file";
  }
  std::string text(static_cast<std::size_t>(headerLength), '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(headerLength))) {
    return "its header could not be read; the file is truncated — copy it again";
  }
  if (text[0] != '{') {
    return "its header does not start with '{' as a safetensors header must; the file is damaged "
           "or is not a safetensors file";
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    return "its header is not valid JSON (at byte " + std::to_string(error.byte) +
           " of the header); the file is damaged — copy it again or re-export it";
  }
  if (!json.is_object()) {
    return "its header is not a JSON object; the file is damaged or is not a safetensors file";
  }

  const std::uint64_t dataSize = fileSize - 8 - headerLength;
  SafetensorsHeader header;
  header.dataOffset = 8 + headerLength;
  for (const auto& [name, value] : json.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) {
        return "its \"__metadata__\" is not a JSON object; the file is damaged or was written by a "
               "tool that does not follow the safetensors format";
      }
      for (const auto& [key, item] : value.items()) {
        header.metadata[key] =
            item.is_string() ? item.get<std::string>()
                             : item.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
      continue;
    }
    const std::string what = "tensor " + inQuotes(name);
    if (!value.is_object()) return what + " is not described by a JSON object; the file is damaged";
    const auto dtype = value.find("dtype");
    const auto shape = value.find("shape");
    const auto offsets = value.find("data_offsets");
    if (dtype == value.end() || shape == value.end() || offsets == value.end()) {
      return what + " lacks " +
             (dtype == value.end()   ? "\"dtype\""
              : shape == value.end() ? "\"shape\""
                                     : "\"data_offsets\"") +
             "; the file is damaged or was not written by a safetensors library";
    }
    SafetensorsEntry entry;
    entry.name = name;
    if (!dtype->is_string()) {
      return what + " has a \"dtype\" that is not a string; the file is damaged";
    }
    entry.dtype = dtype->get<std::string>();
    const std::size_t elementSize = safetensorsElementSize(entry.dtype);
    if (elementSize == 0) {
      return what + " has dtype " + inQuotes(entry.dtype) +
             ", which Scalpel cannot read (it reads " + kKnownDtypes +
             "); convert that tensor to one of these and save the file again";
    }
    if (!shape->is_array()) {
      return what + " has a \"shape\" that is not a list; the file is damaged";
    }
    std::uint64_t numel = 1;
    bool overflow = false;
    for (const auto& dim : *shape) {
      // nlohmann reads a non-negative JSON integer as unsigned, a negative one as signed.
      if (!dim.is_number_unsigned()) {
        return what + " has a shape with " +
               (dim.is_number_integer() ? "a negative size" : "a size that is not an integer") +
               "; the file is damaged";
      }
      const auto size = dim.get<std::uint64_t>();
      overflow |= size > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
      entry.shape.push_back(static_cast<std::int64_t>(size));
      overflow |= __builtin_mul_overflow(numel, size, &numel);
    }
    std::uint64_t byteCount = 0;
    overflow |= __builtin_mul_overflow(numel, static_cast<std::uint64_t>(elementSize), &byteCount);
    if (overflow) return what + " has a shape too large to exist; the file is damaged";
    if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned()) {
      return what +
             " has \"data_offsets\" that are not two non-negative integers; the file is "
             "damaged";
    }
    entry.begin = (*offsets)[0].get<std::uint64_t>();
    entry.end = (*offsets)[1].get<std::uint64_t>();
    if (entry.begin > entry.end) {
      return what + " ends (byte " + std::to_string(entry.end) + ") before it begins (byte " +
             std::to_string(entry.begin) + "); the file is damaged";
    }
    if (entry.end > dataSize) {
      return what + " lies at bytes " + std::to_string(entry.begin) + "-" +
             std::to_string(entry.end) + " of the data but the file holds only " +
             sizeText(dataSize) + " of data — the file is truncated; copy it again";
    }
    if (entry.end - entry.begin != byteCount) {
      return what + " (" + entry.dtype + ", " + std::to_string(numel) + " elements) needs " +
             sizeText(byteCount) + " but its data_offsets give it " +
             sizeText(entry.end - entry.begin) + "; the file is damaged";
    }
    header.entries.push_back(std::move(entry));
  }
  std::stable_sort(header.entries.begin(), header.entries.end(),
                   [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  out = std::move(header);
  return {};
}

std::string safetensorsHeaderBytes(const std::vector<SafetensorsEntry>& entries,
                                   const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the entries in the caller's order, as the safetensors library writes them.
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& meta = json["__metadata__"];
    meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
  }
  for (const auto& entry : entries) {
    json[entry.name] = {
        {"dtype", entry.dtype}, {"shape", entry.shape}, {"data_offsets", {entry.begin, entry.end}}};
  }
  // Names are not always valid UTF-8; replacing bad bytes beats throwing halfway through a save.
  std::string text = json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  // Padding to 8 bytes keeps the data section aligned for whoever maps the file.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) {
    bytes[static_cast<std::size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  }
  return bytes + text;
}

}  // namespace scalpel
