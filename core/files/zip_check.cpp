#include "files/zip_check.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <vector>

namespace scalpel {

namespace {

std::uint32_t read16(const unsigned char* p) { return p[0] | (p[1] << 8); }
std::uint32_t read32(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

// CRC-32 of `size` stored bytes at the stream's position.
bool storedCrc(std::ifstream& in, std::uint64_t size, std::uint32_t& crc) {
  std::vector<unsigned char> buffer(1 << 16);
  crc = ::crc32(0, nullptr, 0);
  while (size > 0) {
    const auto chunk = static_cast<std::streamsize>(std::min<std::uint64_t>(size, buffer.size()));
    if (!in.read(reinterpret_cast<char*>(buffer.data()), chunk)) return false;
    crc = ::crc32(crc, buffer.data(), static_cast<uInt>(chunk));
    size -= static_cast<std::uint64_t>(chunk);
  }
  return true;
}

// CRC-32 and length of what `size` deflated bytes at the stream's position inflate to.
bool deflatedCrc(std::ifstream& in, std::uint64_t size, std::uint32_t& crc,
                 std::uint64_t& inflated) {
  z_stream stream{};
  if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) return false;
  std::vector<unsigned char> input(1 << 16), output(1 << 16);
  crc = ::crc32(0, nullptr, 0);
  int status = Z_OK;
  while (status != Z_STREAM_END) {
    if (stream.avail_in == 0) {
      if (size == 0) break;
      const auto chunk = static_cast<std::streamsize>(std::min<std::uint64_t>(size, input.size()));
      if (!in.read(reinterpret_cast<char*>(input.data()), chunk)) break;
      size -= static_cast<std::uint64_t>(chunk);
      stream.next_in = input.data();
      stream.avail_in = static_cast<uInt>(chunk);
    }
    stream.next_out = output.data();
    stream.avail_out = static_cast<uInt>(output.size());
    status = inflate(&stream, Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END) break;
    crc = ::crc32(crc, output.data(), static_cast<uInt>(output.size() - stream.avail_out));
    inflated += output.size() - stream.avail_out;
  }
  inflateEnd(&stream);
  return status == Z_STREAM_END;
}

}  // namespace

std::string verifyZipChecksums(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const std::uint64_t fileSize = static_cast<std::uint64_t>(in.tellg());
  // The end-of-central-directory record, within the last 64 KiB + 22 bytes.
  const std::uint64_t tail = std::min<std::uint64_t>(fileSize, 65536 + 22);
  std::vector<unsigned char> end(tail);
  in.seekg(static_cast<std::streamoff>(fileSize - tail));
  if (!in.read(reinterpret_cast<char*>(end.data()), static_cast<std::streamsize>(tail))) return {};
  std::size_t at = std::string::npos;
  for (std::size_t i = tail >= 22 ? tail - 22 : 0; i + 22 <= tail; --i) {
    if (read32(&end[i]) == 0x06054b50) {
      at = i;
      break;
    }
    if (i == 0) break;
  }
  if (at == std::string::npos) return {};  // truncated: the loader says so in its own words
  const std::uint32_t entries = read16(&end[at + 10]);
  const std::uint32_t directorySize = read32(&end[at + 12]);
  const std::uint32_t directoryOffset = read32(&end[at + 16]);
  if (entries == 0xFFFF || directoryOffset == 0xFFFFFFFF ||
      std::uint64_t(directoryOffset) + directorySize > fileSize)
    return {};

  std::vector<unsigned char> directory(directorySize);
  in.seekg(directoryOffset);
  if (!in.read(reinterpret_cast<char*>(directory.data()), directorySize)) return {};
  std::size_t p = 0;
  for (std::uint32_t e = 0; e < entries; ++e) {
    if (p + 46 > directory.size() || read32(&directory[p]) != 0x02014b50)
      return "its zip directory is damaged";
    const std::uint32_t method = read16(&directory[p + 10]);
    const std::uint32_t crc = read32(&directory[p + 16]);
    const std::uint32_t packed = read32(&directory[p + 20]);
    const std::uint32_t unpacked = read32(&directory[p + 24]);
    const std::uint32_t nameLength = read16(&directory[p + 28]);
    const std::uint32_t extraLength = read16(&directory[p + 30]);
    const std::uint32_t commentLength = read16(&directory[p + 32]);
    const std::uint32_t local = read32(&directory[p + 42]);
    if (p + 46 + nameLength > directory.size()) return "its zip directory is damaged";
    const std::string name(reinterpret_cast<const char*>(&directory[p + 46]), nameLength);
    if (p + 46 + nameLength + extraLength > directory.size()) return "its zip directory is damaged";
    const unsigned char* extra = &directory[p + 46 + nameLength];
    p += 46 + nameLength + extraLength + commentLength;
    if (packed == 0xFFFFFFFF || unpacked == 0xFFFFFFFF || local == 0xFFFFFFFF) {
      // ZIP64: the real sizes are in the entry's ZIP64 field, and the loader reads them there.
      // Without that field, the loader would take 4 GiB for the size and try to allocate it.
      bool zip64 = false;
      for (std::uint32_t q = 0; q + 4 <= extraLength; q += 4 + read16(&extra[q + 2]))
        zip64 |= read16(&extra[q]) == 0x0001;
      if (!zip64)
        return "the entry '" + name + "' of its zip archive is damaged (it gives no size)";
      continue;
    }
    unsigned char header[30];
    in.seekg(local);
    if (!in.read(reinterpret_cast<char*>(header), 30) || read32(header) != 0x04034b50) {
      return "the entry '" + name + "' of its zip archive is missing or damaged";
    }
    in.seekg(static_cast<std::streamoff>(local) + 30 + read16(&header[26]) + read16(&header[28]));
    std::uint32_t actual = 0;
    std::uint64_t length = packed;
    bool readable = false;
    if (method == 0) {
      readable = storedCrc(in, packed, actual);
    } else if (method == 8) {
      length = 0;
      readable = deflatedCrc(in, packed, actual, length);
    } else {
      continue;  // another compression: left to the loader
    }
    // The length matters as much as the checksum: the loader allocates what the directory says.
    if (!readable || actual != crc || length != unpacked)
      return "the entry '" + name + "' of its zip archive fails its checksum";
  }
  return {};
}

}  // namespace scalpel
