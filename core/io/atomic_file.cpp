#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace scalpel {

std::string writeFileAtomically(const std::filesystem::path& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  const fs::path temporary = path.string() + ".tmp" + std::to_string(::getpid());
  const auto fail = [&](const std::string& what) {
    const std::string message = "cannot write " + path.string() + ": " + what + " (" + std::strerror(errno) + ")" +
                                (fs::exists(path) ? " — the previous file is unchanged" : "");
    ::unlink(temporary.c_str());
    return message;
  };
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("cannot create a file in " + path.parent_path().string());
  std::size_t written = 0;
  while (written < bytes.size()) {
    const auto n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return fail("writing failed");
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return fail("flushing failed");
  }
  if (::close(fd) != 0) return fail("closing failed");
  if (::rename(temporary.c_str(), path.c_str()) != 0) return fail("renaming into place failed");
  return {};
}

}  // namespace scalpel
