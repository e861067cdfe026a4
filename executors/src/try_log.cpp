#include "try_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace dagd::executors {
namespace {

// mkdir -p with mode 0700 for the directories it creates (create_directories would use 0777
// less the umask, leaving other accounts able to list runs and tasks).
Status CreateDirectories(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> missing;
  std::error_code ec;
  for (auto p = dir; !p.empty() && !std::filesystem::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::Internal("cannot create log directory '" + dir.string() +
                              "': " + std::strerror(errno));
    }
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::Internal("cannot create log directory '" + dir.string() +
                            "': a file of that name is in the way");
  }
  return Status::Ok();
}

std::string WriteErrorText(int err, const std::filesystem::path& path) {
  if (err == ENOSPC) return "no space left on device writing the log '" + path.string() + "'";
  if (err == EDQUOT) return "disk quota exceeded writing the log '" + path.string() + "'";
  return "cannot write the log '" + path.string() + "': " + std::strerror(err);
}

}  // namespace

StatusOr<std::unique_ptr<TryLog>> TryLog::Open(const std::filesystem::path& path,
                                               const scheduler::Clock& clock, uint64_t max_bytes) {
  if (path.empty()) return Status::Internal("the assignment has no log path");
  if (path.has_parent_path()) {
    if (Status s = CreateDirectories(path.parent_path()); !s.ok()) return s;
  }
  // O_NOFOLLOW: the daemon never writes through a symbolic link planted at a log's path.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Status::Internal("cannot open log file '" + path.string() +
                            "': " + std::strerror(errno));
  }
  struct stat st {};
  // A file left by an earlier version may be readable by others: tighten it.
  if (::fstat(fd, &st) != 0 || ::fchmod(fd, 0600) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Internal("cannot set up log file '" + path.string() +
                            "': " + std::strerror(err));
  }
  return std::unique_ptr<TryLog>(
      new TryLog(fd, path, clock, static_cast<uint64_t>(st.st_size), max_bytes));
}

TryLog::TryLog(int fd, std::filesystem::path path, const scheduler::Clock& clock, uint64_t size,
               uint64_t max_bytes)
    : fd_(fd), path_(std::move(path)), clock_(clock), max_bytes_(max_bytes), size_(size) {}

TryLog::~TryLog() { ::close(fd_); }

std::string TryLog::Stamp(std::string_view text) const {
  std::string line;
  line.reserve(text.size() + 40);
  line += '[';
  line += scheduler::FormatRfc3339(clock_.Now());
  line += "] ";
  line += text;
  if (line.back() != '\n') line += '\n';
  return line;
}

void TryLog::WriteLocked(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!write_error_) write_error_ = WriteErrorText(n < 0 ? errno : ENOSPC, path_);
      dropped_ += bytes.size();
      return;
    }
    size_ += static_cast<uint64_t>(n);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void TryLog::Line(std::string_view text) {
  const std::string line = Stamp(text);
  std::lock_guard lock(mu_);
  if (write_error_ || (max_bytes_ != 0 && size_ + line.size() > max_bytes_)) {
    dropped_ += line.size();
    return;
  }
  WriteLocked(line);
}

void TryLog::Note(std::string_view text) {
  const std::string line = Stamp(text);
  std::lock_guard lock(mu_);
  WriteLocked(line);
}

void TryLog::Output(std::string_view bytes) {
  std::lock_guard lock(mu_);
  if (write_error_) {
    dropped_ += bytes.size();
    return;
  }
  if (max_bytes_ != 0) {
    const uint64_t room = size_ >= max_bytes_ ? 0 : max_bytes_ - size_;
    if (bytes.size() > room) {
      dropped_ += bytes.size() - room;
      bytes = bytes.substr(0, room);
    }
  }
  WriteLocked(bytes);
}

void TryLog::NoteDropped() {
  uint64_t dropped = 0;
  bool failed = false;
  {
    std::lock_guard lock(mu_);
    dropped = dropped_;
    failed = write_error_.has_value();
  }
  if (dropped == 0) return;
  if (failed) {
    Note("dagd: " + std::to_string(dropped) + " bytes of output were lost: " + *write_error());
  } else {
    Note("dagd: " + std::to_string(dropped) + " bytes of output were dropped: the log reached " +
         "its cap of " + std::to_string(max_bytes_) + " bytes");
  }
}

std::optional<std::string> TryLog::write_error() const {
  std::lock_guard lock(mu_);
  return write_error_;
}

}  // namespace dagd::executors
