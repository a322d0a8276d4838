#pragma once

#include <filesystem>
#include <string>

namespace scalpel {

// Writes `bytes` to a temporary file beside `path`, flushes it and renames it into place, so a
// crash or a full disk never leaves half a file and never destroys the previous one.
// Returns "" or what went wrong (the previous file, if any, is then untouched).
std::string writeFileAtomically(const std::filesystem::path& path, const std::string& bytes);

}  // namespace scalpel
