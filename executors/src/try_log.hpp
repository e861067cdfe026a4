// The per-try log file. Private to the daemon: missing parent directories are created 0700 and
// the file 0600 (the task account never opens it: a command's output reaches it through a pipe
// the daemon reads). Opened for appending.
//
// Size cap: Line() and Output() stop writing once the file holds `max_bytes` (0 = no cap) and
// count what they drop; Note() (dagd's own few lines per try) always writes, so the outcome and
// the note about dropped bytes (NoteDropped) survive a full log.
// Write errors: the first one (a full disk, a quota) is kept, later Line/Output calls are
// dropped; write_error() tells the executor that the log is incomplete, so the try fails saying
// why instead of succeeding with lost output.
// Thread-safe: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "dagd/scheduler/status.hpp"
#include "dagd/scheduler/time.hpp"

namespace dagd::executors {

class TryLog {
 public:
  // internal with the path and errno text when the directory or file cannot be created.
  static StatusOr<std::unique_ptr<TryLog>> Open(const std::filesystem::path& path,
                                                const scheduler::Clock& clock, uint64_t max_bytes);
  ~TryLog();
  TryLog(const TryLog&) = delete;
  TryLog& operator=(const TryLog&) = delete;

  // "[<RFC 3339 now>] <text>\n" with one write(2), subject to the cap (a job's log lines).
  void Line(std::string_view text);
  // The same, never dropped by the cap (dagd's own lines).
  void Note(std::string_view text);
  // Raw bytes of a command's output, as far as the cap allows.
  void Output(std::string_view bytes);
  // When the cap dropped anything: a note saying how many bytes and what the cap is.
  void NoteDropped();

  // "no space left on device writing the log '<path>'" (or another errno's text) once a write
  // failed; nullopt while every write succeeded.
  std::optional<std::string> write_error() const;

 private:
  TryLog(int fd, std::filesystem::path path, const scheduler::Clock& clock, uint64_t size,
         uint64_t max_bytes);
  std::string Stamp(std::string_view text) const;
  void WriteLocked(std::string_view bytes);  // mu_ held

  const int fd_;
  const std::filesystem::path path_;
  const scheduler::Clock& clock_;
  const uint64_t max_bytes_;
  mutable std::mutex mu_;  // guards the file offset and the fields below: lines never interleave
  uint64_t size_;          // bytes in the file
  uint64_t dropped_ = 0;   // bytes the cap or a write error kept out of the file
  std::optional<std::string> write_error_;
};

}  // namespace dagd::executors
