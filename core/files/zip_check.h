#pragma once

// Checks a zip archive's entries against their CRC-32 checksums. LibTorch's reader does not, and
// a damaged TorchScript file (a bad copy, a flipped bit) can crash its parser instead of being
// refused; checking first turns that into a message. Torch-free.

#include <filesystem>
#include <string>

namespace scalpel {

// "" when every entry's data matches its checksum (or the archive is too unusual to check, e.g.
// ZIP64 sizes: then the loader decides); else which entry is damaged.
std::string verifyZipChecksums(const std::filesystem::path& path);

}  // namespace scalpel
