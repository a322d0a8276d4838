#include "files/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace scalpel {

namespace {

// A writer killed mid-write leaves its "NAME.tmpPID" behind; the next write to NAME clears those
// whose process is gone.
void removeStaleTemporaries(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const std::string prefix = path.filename().string() + ".tmp";
  std::error_code error;
  for (const auto& entry :
       fs::directory_iterator(path.parent_path().empty() ? "." : path.parent_path(), error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove(entry.path(), error);
  }
}

}  // namespace

std::string writeFileAtomically(const std::filesystem::path& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  const fs::path temporary = path.string() + ".tmp" + std::to_string(::getpid());
  const auto fail = [&](const std::string& what) {
    const std::string message = "cannot write " + path.string() + ": " + what + " (" +
                                std::strerror(errno) + ")" +
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
  removeStaleTemporaries(path);
  return {};
}

}  // namespace scalpel
