#include "try_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

namespace dagd::executors {

StatusOr<std::unique_ptr<TryLog>> TryLog::Open(const std::filesystem::path& path,
                                               const scheduler::Clock& clock) {
  if (path.empty()) return Status::Internal("the assignment has no log path");
  std::error_code ec;
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      return Status::Internal("cannot create log directory '" + path.parent_path().string() +
                              "': " + ec.message());
    }
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::Internal("cannot open log file '" + path.string() +
                            "': " + std::strerror(errno));
  }
  return std::unique_ptr<TryLog>(new TryLog(fd, clock));
}

TryLog::~TryLog() { ::close(fd_); }

void TryLog::Line(std::string_view text) {
  std::string line;
  line.reserve(text.size() + 40);
  line += '[';
  line += scheduler::FormatRfc3339(clock_.Now());
  line += "] ";
  line += text;
  if (line.back() != '\n') line += '\n';
  std::lock_guard lock(mu_);
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a full disk must not fail the try; the outcome still reaches the store
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace dagd::executors
