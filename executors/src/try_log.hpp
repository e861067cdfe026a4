// The per-try log file: created with its parent directories, opened for appending (O_APPEND, so
// the daemon's own lines and a bash child's output interleave without overwriting each other).
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string_view>

#include "dagd/scheduler/status.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::executors {

class TryLog {
 public:
  // internal with the path and errno text when the directory or file cannot be created.
  static StatusOr<std::unique_ptr<TryLog>> Open(const std::filesystem::path& path,
                                                const scheduler::Clock& clock);
  ~TryLog();
  TryLog(const TryLog&) = delete;
  TryLog& operator=(const TryLog&) = delete;

  // Writes "[<RFC 3339 now>] <text>\n" with one write(2). Thread-safe.
  void Line(std::string_view text);
  // The open descriptor (O_APPEND, close-on-exec), for a child's stdout/stderr.
  int fd() const { return fd_; }

 private:
  TryLog(int fd, const scheduler::Clock& clock) : fd_(fd), clock_(clock) {}

  const int fd_;
  const scheduler::Clock& clock_;
  std::mutex mu_;  // guards writes to fd_ from this process, so lines never interleave
};

}  // namespace dagd::executors
